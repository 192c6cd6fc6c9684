use super::*;
use crate::keyring::Keyring;

const NOW: u64 = 1_700_000_000;

fn keyring() -> Keyring {
    Keyring::builder()
        .signing("k2", [2u8; 32])
        .verifying("k1", [1u8; 32])
        .build()
        .unwrap()
}

fn change() -> CapturedChange {
    CapturedChange {
        method: Method::POST,
        target: "/cart/add?x=1".into(),
        encoding: FormEncoding::UrlEncoded,
        body: Bytes::from_static(b"product_id=3&quantity=2"),
        return_path: "/products/3".into(),
    }
}

fn seal_with(k: &Keyring) -> String {
    HandoffToken::seal(k, &change(), NOW, NOW + 120, [9u8; 16]).unwrap()
}

#[test]
fn round_trip() {
    let k = keyring();
    let t = HandoffToken::open(&k, &seal_with(&k), NOW + 1, 30).unwrap();
    assert_eq!(t.change, change());
    assert_eq!(t.key_id, "k2");
    assert_eq!(
        (t.issued_at, t.expires_at, t.nonce),
        (NOW, NOW + 120, [9u8; 16])
    );
}

#[test]
fn every_changed_byte_is_refused() {
    let k = keyring();
    let text = seal_with(&k);
    let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
    for i in 0..raw.len() {
        let mut bad = raw.clone();
        bad[i] ^= 0x01;
        let got = HandoffToken::open(&k, &URL_SAFE_NO_PAD.encode(&bad), NOW, 30);
        // Flipping a key-id byte names an unknown key; anything else breaks the MAC.
        assert!(
            matches!(
                got,
                Err(TokenError::BadSignature | TokenError::UnknownKey | TokenError::Malformed)
            ),
            "byte {i}: {got:?}"
        );
    }
}

#[test]
fn outcome_table() {
    let k = keyring();
    let good = seal_with(&k);
    let other_key = Keyring::builder().signing("k2", [3u8; 32]).build().unwrap();
    let old_signer = Keyring::builder().signing("k1", [1u8; 32]).build().unwrap();
    let unknown = Keyring::builder().signing("k9", [1u8; 32]).build().unwrap();
    let rotated_out = Keyring::builder().signing("k2", [2u8; 32]).build().unwrap();
    let from_old = seal_with(&old_signer);
    let raw = URL_SAFE_NO_PAD.decode(&good).unwrap();
    let truncated = URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 3]);
    let extended = URL_SAFE_NO_PAD.encode([&raw[..], &[0u8; 3]].concat());
    let rows: Vec<(&str, &Keyring, String, u64, Result<(), TokenError>)> = vec![
        ("valid", &k, good.clone(), NOW + 10, Ok(())),
        (
            "another key with the same id",
            &other_key,
            good.clone(),
            NOW,
            Err(TokenError::BadSignature),
        ),
        (
            "old key after rotation verifies",
            &k,
            from_old.clone(),
            NOW,
            Ok(()),
        ),
        (
            "removed key no longer verifies",
            &rotated_out,
            from_old.clone(),
            NOW,
            Err(TokenError::UnknownKey),
        ),
        (
            "unknown key id",
            &k,
            seal_with(&unknown),
            NOW,
            Err(TokenError::UnknownKey),
        ),
        (
            "expired at the second",
            &k,
            good.clone(),
            NOW + 120,
            Err(TokenError::Expired),
        ),
        (
            "one second before expiry",
            &k,
            good.clone(),
            NOW + 119,
            Ok(()),
        ),
        (
            "issued in the future within skew",
            &k,
            good.clone(),
            NOW - 30,
            Ok(()),
        ),
        (
            "issued in the future beyond skew",
            &k,
            good.clone(),
            NOW - 31,
            Err(TokenError::IssuedInFuture),
        ),
        ("empty", &k, String::new(), NOW, Err(TokenError::Malformed)),
        (
            "padding added",
            &k,
            format!("{good}="),
            NOW,
            Err(TokenError::Malformed),
        ),
        (
            "standard alphabet",
            &k,
            good.replace('-', "+").replace('_', "/"),
            NOW,
            Err(TokenError::Malformed),
        ),
        (
            "truncated",
            &k,
            truncated,
            NOW,
            Err(TokenError::BadSignature),
        ),
        ("extended", &k, extended, NOW, Err(TokenError::BadSignature)),
        (
            "huge",
            &k,
            "A".repeat(MAX_TOKEN_LEN + 1),
            NOW,
            Err(TokenError::TooLarge),
        ),
        (
            "not base64",
            &k,
            "%%%".into(),
            NOW,
            Err(TokenError::Malformed),
        ),
    ];
    for (name, keys, text, now, want) in rows {
        let got = HandoffToken::open(keys, &text, now, 30).map(|_| ());
        // Tokens with `+` or `/` only differ when the encoding has those characters.
        if name == "standard alphabet" && text == good {
            continue;
        }
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn another_purpose_never_verifies() {
    use hmac::{KeyInit, Mac};
    let k = keyring();
    let raw = URL_SAFE_NO_PAD.decode(seal_with(&k)).unwrap();
    let signed = &raw[..raw.len() - 32];
    let purpose = b"some-other-purpose";
    let mut mac = <crate::keyring::HmacSha256 as KeyInit>::new_from_slice(&[2u8; 32]).unwrap();
    mac.update(&[purpose.len() as u8]);
    mac.update(purpose);
    mac.update(signed);
    let mut forged = signed.to_vec();
    forged.extend_from_slice(&mac.finalize().into_bytes());
    assert_eq!(
        HandoffToken::open(&k, &URL_SAFE_NO_PAD.encode(&forged), NOW, 30),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn another_version_never_verifies_even_when_signed() {
    use hmac::Mac;
    let k = keyring();
    let raw = URL_SAFE_NO_PAD.decode(seal_with(&k)).unwrap();
    let mut signed = raw[..raw.len() - 32].to_vec();
    signed[0] = 2;
    let mut mac = k.signer().mac.clone();
    mac.update(&signed);
    signed.extend_from_slice(&mac.finalize().into_bytes());
    assert_eq!(
        HandoffToken::open(&k, &URL_SAFE_NO_PAD.encode(&signed), NOW, 30),
        Err(TokenError::UnsupportedVersion)
    );
}

#[test]
fn oversized_changes_are_refused_at_seal() {
    let k = keyring();
    let mut c = change();
    c.target = format!("/{}", "a".repeat(MAX_TARGET_LEN));
    assert_eq!(
        HandoffToken::seal(&k, &c, NOW, NOW + 1, [0; 16]),
        Err(TokenError::TooLarge)
    );
    let mut c = change();
    c.body = Bytes::from(vec![b'a'; 6000]);
    assert_eq!(
        HandoffToken::seal(&k, &c, NOW, NOW + 1, [0; 16]),
        Err(TokenError::TooLarge)
    );
}

#[test]
fn token_carries_no_session_and_fits_a_url() {
    let k = keyring();
    let mut c = change();
    c.body = Bytes::from(vec![b'a'; 4096]);
    let text = HandoffToken::seal(&k, &c, NOW, NOW + 1, [0; 16]).unwrap();
    assert!(text.len() < 6000, "{}", text.len());
    assert!(text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
}
