//! The file store's journal format: an append-only file of saved documents (flushed by group
//! commit, see `group.rs`).
//!
//! A record is `MAGIC`, the payload length (u32 LE), the payload, then the SHA-256 of the
//! payload. The payload is: site length (u8), site, previous tag length (u8), previous tag,
//! document bytes. A torn or foreign stretch (a crash in the middle of an append) fails its
//! checksum; the scan then looks for the next `MAGIC` and goes on, so one bad record never
//! hides the good ones after it.

use sha2::{Digest, Sha256};

use crate::site::MAX_DOCUMENT_BYTES;

const MAGIC: &[u8; 4] = b"BJR1";
const HASH_LEN: usize = 32;
/// The largest payload a record can have: site and tags are under 256 bytes each.
const MAX_PAYLOAD: usize = MAX_DOCUMENT_BYTES + 2 + 2 * 255;

/// One record's content, borrowed from the journal's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub site: &'a str,
    /// The tag the save expected (`None` for a create).
    pub previous: Option<&'a str>,
    pub bytes: &'a [u8],
}

/// Encodes a record; `None` if the site or tag is too long to frame (never for checked input).
pub(crate) fn encode(site: &str, previous: Option<&str>, bytes: &[u8]) -> Option<Vec<u8>> {
    let prev = previous.unwrap_or("");
    let site_len = u8::try_from(site.len()).ok()?;
    let prev_len = u8::try_from(prev.len()).ok()?;
    let payload_len = 2 + site.len() + prev.len() + bytes.len();
    let mut out = Vec::with_capacity(4 + 4 + payload_len + HASH_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&u32::try_from(payload_len).ok()?.to_le_bytes());
    let start = out.len();
    out.push(site_len);
    out.extend_from_slice(site.as_bytes());
    out.push(prev_len);
    out.extend_from_slice(prev.as_bytes());
    out.extend_from_slice(bytes);
    let hash = Sha256::digest(&out[start..]);
    out.extend_from_slice(&hash);
    Some(out)
}

fn decode_payload(p: &[u8]) -> Option<Record<'_>> {
    let (&site_len, rest) = p.split_first()?;
    let (site, rest) = rest.split_at_checked(usize::from(site_len))?;
    let (&prev_len, rest) = rest.split_first()?;
    let (prev, bytes) = rest.split_at_checked(usize::from(prev_len))?;
    Some(Record {
        site: std::str::from_utf8(site).ok()?,
        previous: (!prev.is_empty())
            .then(|| std::str::from_utf8(prev).ok())
            .flatten(),
        bytes,
    })
}

/// Every intact record of a journal, in order. Damaged stretches are skipped.
#[cfg(test)]
pub(crate) fn scan(data: &[u8]) -> Vec<Record<'_>> {
    scan_part(data, false).0
}

/// [`scan`] of a stretch that may be followed by more bytes (`more`): the scan then stops at a
/// record that does not end within `data`, and returns where it stopped, so the caller can read
/// on from there. Without `more`, such a record counts as damaged and the offset is the end.
pub(crate) fn scan_part(data: &[u8], more: bool) -> (Vec<Record<'_>>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        if &data[at..at + 4] != MAGIC {
            at += 1;
            continue;
        }
        let len = u32::from_le_bytes([data[at + 4], data[at + 5], data[at + 6], data[at + 7]]);
        let len = len as usize;
        let end = at + 8 + len + HASH_LEN;
        if len > MAX_PAYLOAD {
            at += 1;
            continue;
        }
        if end > data.len() {
            if more {
                return (out, at);
            }
            at += 1;
            continue;
        }
        let payload = &data[at + 8..at + 8 + len];
        let intact = Sha256::digest(payload).as_slice() == &data[at + 8 + len..end];
        match decode_payload(payload).filter(|_| intact) {
            Some(r) => {
                out.push(r);
                at = end;
            }
            None => at += 1,
        }
    }
    if more { (out, at) } else { (out, data.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::etag_of;

    #[test]
    fn records_round_trip_and_damage_is_skipped() {
        let a = encode("home", None, b"{\"n\":1}").unwrap();
        let b = encode("home", Some(&etag_of(b"{\"n\":1}")), b"{\"n\":2}").unwrap();
        let c = encode("lab", None, b"").unwrap();
        let mut data = a.clone();
        // A torn append: the first half of a record, then more good records.
        data.extend_from_slice(&b[..b.len() / 2]);
        data.extend_from_slice(&b);
        data.extend_from_slice(b"garbage BJR1\xff\xff\xff\xff");
        data.extend_from_slice(&c);
        data.extend_from_slice(&a[..10]);
        let got = scan(&data);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].bytes, b"{\"n\":1}");
        assert_eq!(got[0].previous, None);
        assert_eq!(got[1].bytes, b"{\"n\":2}");
        assert_eq!(got[1].previous, Some(etag_of(b"{\"n\":1}").as_str()));
        assert_eq!(got[2].site, "lab");
        assert!(got[2].bytes.is_empty());
    }

    #[test]
    fn scanning_in_pieces_finds_what_one_scan_finds() {
        let mut data = Vec::new();
        for i in 0..20u8 {
            data.extend_from_slice(
                &encode("home", None, &vec![b'a' + i; 50 + usize::from(i)]).unwrap(),
            );
            if i == 7 {
                data.extend_from_slice(b"BJR1\x10\x00\x00\x00torn");
            }
        }
        let whole: Vec<Vec<u8>> = scan(&data).iter().map(|r| r.bytes.to_vec()).collect();
        assert_eq!(whole.len(), 20);
        for piece in [1, 7, 64, 100, 1000] {
            let mut found = Vec::new();
            let mut carry: Vec<u8> = Vec::new();
            let mut read = 0;
            while read < data.len() {
                let n = piece.min(data.len() - read);
                carry.extend_from_slice(&data[read..read + n]);
                read += n;
                let (records, used) = scan_part(&carry, read < data.len());
                found.extend(records.iter().map(|r| r.bytes.to_vec()));
                carry.drain(..used);
            }
            assert_eq!(found, whole, "pieces of {piece}");
        }
    }

    #[test]
    fn a_flipped_bit_drops_only_that_record() {
        let a = encode("home", None, b"one").unwrap();
        let mut b = encode("home", None, b"two").unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        let mut data = a;
        data.extend_from_slice(&b);
        let got = scan(&data);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].bytes, b"one");
    }
}
