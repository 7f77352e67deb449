//! `BURST_STATE_URL` and friends: which store the settings choose, and errors that name the
//! setting without echoing a SAS.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use burst_store::{
    BlobAuth, ConfigError, DEFAULT_TIMEOUT, STATE_TIMEOUT_MS, STATE_URL, StoreConfig,
    valid_container,
};
use url::Url;

fn parse(pairs: &[(&str, &str)]) -> Result<Option<StoreConfig>, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    StoreConfig::from_settings(&|k| map.get(k).cloned())
}

const SAS: &str = "sv=2025-11-05&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00%3A00%3A00Z&spr=https%2Chttp&sig=c2VjcmV0c2lnbmF0dXJl";

#[test]
fn unset_or_empty_means_not_configured() {
    assert_eq!(parse(&[]), Ok(None));
    assert_eq!(parse(&[(STATE_URL, "  ")]), Ok(None));
}

#[test]
fn file_urls() {
    assert_eq!(
        parse(&[(STATE_URL, "file:///var/lib/burst/state")]),
        Ok(Some(StoreConfig::File {
            dir: PathBuf::from("/var/lib/burst/state")
        }))
    );
    assert_eq!(
        parse(&[(STATE_URL, "file://localhost/tmp/a%20b")]),
        Ok(Some(StoreConfig::File {
            dir: PathBuf::from("/tmp/a b")
        }))
    );
    for bad in ["file://server/share", "file:///tmp/x?y=1", "file:///"] {
        let err = parse(&[(STATE_URL, bad)]).unwrap_err();
        assert_eq!(err.setting, STATE_URL, "{bad}");
    }
}

#[test]
fn azure_url_uses_the_shared_credential() {
    let got = parse(&[(STATE_URL, "https://acct.blob.core.windows.net/burst-state/")])
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        StoreConfig::Blob {
            container: Url::parse("https://acct.blob.core.windows.net/burst-state").unwrap(),
            auth: BlobAuth::Token,
            timeout: DEFAULT_TIMEOUT,
        }
    );
    assert!(got.needs_credential());
    // Without the app's credential the store cannot open, and says which setting led there.
    let Err(err) = got.open(None) else {
        panic!("opened without a credential")
    };
    assert_eq!(err.setting, STATE_URL);
    assert!(err.problem.contains("managed identity"), "{err}");
}

#[test]
fn opens_without_io() {
    let file = parse(&[(STATE_URL, "file:///nonexistent/burst-state")])
        .unwrap()
        .unwrap();
    assert!(!file.needs_credential());
    assert!(file.open(None).is_ok());
    assert!(!std::path::Path::new("/nonexistent/burst-state").exists());
}

#[test]
fn azurite_url_with_sas() {
    let url = format!("http://127.0.0.1:10000/devstoreaccount1/state?{SAS}");
    let got = parse(&[(STATE_URL, &url), (STATE_TIMEOUT_MS, "750")])
        .unwrap()
        .unwrap();
    let StoreConfig::Blob {
        container,
        auth: BlobAuth::Sas(sas),
        timeout,
    } = &got
    else {
        panic!("{got:?}")
    };
    assert_eq!(
        container.as_str(),
        "http://127.0.0.1:10000/devstoreaccount1/state"
    );
    assert_eq!(sas.expose(), SAS);
    assert_eq!(*timeout, Duration::from_millis(750));
    // The SAS never shows in Debug output.
    let debug = format!("{got:?}");
    assert!(!debug.contains("sig="), "{debug}");
    assert!(!debug.contains("c2VjcmV0"), "{debug}");
}

#[test]
fn errors_name_the_setting_and_never_echo_the_sas() {
    let cases = [
        format!("s3://bucket/state?{SAS}"),
        format!("http://127.0.0.1:10000/?{SAS}"),
        format!("http://127.0.0.1:10000/acct/Bad_Name?{SAS}"),
        "http://127.0.0.1:10000/acct/state".to_owned(),
        "https://acct.blob.core.windows.net/state?foo=bar".to_owned(),
        format!("https://user:c2VjcmV0@acct.blob.core.windows.net/state?{SAS}"),
        format!("https://acct.blob.core.windows.net/state?{SAS}#frag"),
        format!("not a url {SAS}"),
    ];
    for case in cases {
        let text = parse(&[(STATE_URL, &case)]).unwrap_err().to_string();
        assert!(text.starts_with("BURST_STATE_URL: "), "{text}");
        assert!(!text.contains("c2VjcmV0"), "{case} → {text}");
    }
    let s3 = parse(&[(STATE_URL, "s3://bucket/x")]).unwrap_err();
    assert_eq!(
        s3.to_string(),
        "BURST_STATE_URL: unsupported scheme \"s3\"; expected file, http or https"
    );
}

#[test]
fn bad_timeout() {
    let url = format!("http://127.0.0.1:10000/devstoreaccount1/state?{SAS}");
    for bad in ["0", "-1", "abc", "60001"] {
        assert_eq!(
            parse(&[(STATE_URL, &url), (STATE_TIMEOUT_MS, bad)])
                .unwrap_err()
                .to_string(),
            format!("BURST_STATE_TIMEOUT_MS: expected milliseconds from 1 to 60000, got \"{bad}\"")
        );
    }
}

#[test]
fn container_names() {
    for ok in ["abc", "burst-state", "a1-b2", &"a".repeat(63)] {
        assert!(valid_container(ok), "{ok}");
    }
    for bad in ["ab", "Abc", "a_b", "-ab", "ab-", "a--b", &"a".repeat(64)] {
        assert!(!valid_container(bad), "{bad}");
    }
}
