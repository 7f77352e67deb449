//! The framing rules of every agent route: a JSON body of at most [`BODY_LIMIT`] bytes.

/// Request bodies above this are refused with 413. An agent payload is a few hundred bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The only media type the agent routes accept (parameters such as `charset` are allowed).
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Why a body was refused before anyone looked inside it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body is {len} bytes; the limit is {BODY_LIMIT}")]
    TooLarge { len: usize },
    #[error("Content-Type must be application/json, got {content_type:?}")]
    NotJson { content_type: String },
}

impl BodyError {
    /// The HTTP status the refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::TooLarge { .. } => 413,
            BodyError::NotJson { .. } => 415,
        }
    }

    /// The short error code of the refusal's body.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "body_too_large",
            BodyError::NotJson { .. } => "unsupported_media_type",
        }
    }
}

/// Checks the size first (cheap, and a huge body's type does not matter), then the type.
pub fn check_body(content_type: Option<&str>, len: usize) -> Result<(), BodyError> {
    if len > BODY_LIMIT {
        return Err(BodyError::TooLarge { len });
    }
    let header = content_type.unwrap_or("");
    let mime = header.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case(JSON_CONTENT_TYPE) {
        return Err(BodyError::NotJson {
            content_type: truncate(header, 80),
        });
    }
    Ok(())
}

/// Shortens text for error messages (never echo large or secret input).
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let head: String = s.chars().take(max).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_with_parameters_is_accepted_in_any_case() {
        assert_eq!(check_body(Some("application/json"), 10), Ok(()));
        assert_eq!(
            check_body(Some("Application/JSON; charset=utf-8"), 10),
            Ok(())
        );
    }

    #[test]
    fn size_is_checked_before_type() {
        let too_big = check_body(Some("text/plain"), BODY_LIMIT + 1).unwrap_err();
        assert_eq!((too_big.status(), too_big.code()), (413, "body_too_large"));
        assert_eq!(check_body(Some("application/json"), BODY_LIMIT), Ok(()));
    }

    #[test]
    fn other_types_name_what_was_sent() {
        let e = check_body(Some("text/plain"), 2).unwrap_err();
        assert_eq!((e.status(), e.code()), (415, "unsupported_media_type"));
        assert!(e.to_string().contains("\"text/plain\""), "{e}");
        let missing = check_body(None, 2).unwrap_err();
        assert!(missing.to_string().contains("got \"\""), "{missing}");
    }

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("ééé", 3), "ééé");
        assert_eq!(truncate("éééé", 3), "ééé…");
    }
}
