//! Site names and the document size limit, as every store applies them.
#![allow(clippy::unwrap_used)]

use burst_store::{
    FileStore, MAX_DOCUMENT_BYTES, StateStore, StoreError, document_name, validate_site,
};

#[test]
fn accepts_plain_names() {
    for ok in [
        "home",
        "home-1",
        "a",
        "site_2.lab",
        "A.b-C_d",
        &"x".repeat(64),
        "a..b",
    ] {
        assert_eq!(validate_site(ok), Ok(()), "{ok}");
    }
    assert_eq!(document_name("home").as_deref(), Ok("home.json"));
}

#[test]
fn rejects_path_tricks_and_odd_characters() {
    let long = "x".repeat(65);
    for bad in [
        "", ".", "..", ".hidden", "../etc", "a/b", "a\\b", "a b", "é", "a\0b", "a:b", "a%2fb",
        "a?b", "a#b", &long,
    ] {
        match validate_site(bad) {
            Err(StoreError::Refused(msg)) => assert!(msg.contains("invalid site name"), "{msg}"),
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
}

#[tokio::test]
async fn size_limit_is_inclusive() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    assert!(
        store
            .save("home", &vec![b'x'; MAX_DOCUMENT_BYTES], None)
            .await
            .is_ok()
    );
    assert!(matches!(
        store
            .save("big", &vec![b'x'; MAX_DOCUMENT_BYTES + 1], None)
            .await,
        Err(StoreError::Refused(_))
    ));
}
