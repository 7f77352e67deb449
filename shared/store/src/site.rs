//! Site names and document limits shared by every store.

use burst_ports::StoreError;

/// The largest document a store accepts on save (4 MiB). State documents are a few KiB; the
/// limit keeps a runaway document from becoming a multi-part blob upload or a huge file.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// Checks a site name: 1 to 64 characters of `[A-Za-z0-9._-]`, not starting with a dot (so
/// `.`, `..` and hidden names are impossible) — the name becomes a file or blob name.
///
/// A bad name is [`StoreError::Refused`]: it comes from configuration or an authenticated
/// token, so retrying cannot help.
pub fn validate_site(site: &str) -> Result<(), StoreError> {
    if burst_settings::is_site_id(site) {
        Ok(())
    } else {
        Err(StoreError::Refused(format!(
            "invalid site name {:?}: expected 1-64 characters of A-Z a-z 0-9 . _ - not starting with a dot",
            truncate(site)
        )))
    }
}

/// The file or blob name of a site's document: `<site>.json`.
pub fn document_name(site: &str) -> Result<String, StoreError> {
    validate_site(site)?;
    Ok(format!("{site}.json"))
}

/// Rejects documents over [`MAX_DOCUMENT_BYTES`].
pub fn check_size(bytes: &[u8]) -> Result<(), StoreError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(StoreError::Refused(format!(
            "document of {} bytes is over the {MAX_DOCUMENT_BYTES}-byte limit",
            bytes.len()
        )));
    }
    Ok(())
}

/// Keeps error messages short when a caller passes a very long name.
fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}
