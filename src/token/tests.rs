//! Properties of the handoff token (SPEC section 5, "The token"), as tables and proptests.
//!
//! Case counts are explicit so a reader knows how hard each property was pushed: round trip
//! 512, bit flips / truncations / re-spellings 64 each (every bit, every prefix, several
//! suffixes of every generated token), sealed arbitrary payloads 2 048, unsealed text 2 048,
//! time windows 1 024, unknown key ids 256.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::{KeyInit, XNonce};
use proptest::prelude::*;

use super::*;
use crate::keyring::{derive, Keyring, HANDOFF_INFO};

const NOW: u64 = 1_700_000_000;
const K1: [u8; 32] = [1; 32];
const K2: [u8; 32] = [2; 32];
const PUBLISHER: &str = "https://shop.example";
const IV: [u8; AEAD_NONCE_LEN] = [5; AEAD_NONCE_LEN];

/// `k2` signs, `k1` still verifies (a rotation in progress).
fn keyring() -> Keyring {
    Keyring::builder()
        .signing("k2", K2)
        .verifying("k1", K1)
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

fn seal(k: &Keyring, c: &CapturedChange) -> String {
    HandoffToken::seal(k, PUBLISHER, c, NOW, NOW + 120, [9; 16]).unwrap()
}

fn open(k: &Keyring, text: &str) -> Result<HandoffToken, TokenError> {
    HandoffToken::open(k, text, NOW + 1, 30)
}

fn decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// The plaintext of the documented layout, written out independently of `seal`.
fn plaintext(
    publisher: &str,
    c: &CapturedChange,
    issued: u64,
    expires: u64,
    nonce: [u8; 16],
) -> Vec<u8> {
    let mut p = issued.to_be_bytes().to_vec();
    p.extend_from_slice(&expires.to_be_bytes());
    p.extend_from_slice(&nonce);
    p.extend_from_slice(&(publisher.len() as u16).to_be_bytes());
    p.extend_from_slice(publisher.as_bytes());
    p.push(c.method.as_str().len() as u8);
    p.extend_from_slice(c.method.as_str().as_bytes());
    p.extend_from_slice(&(c.target.len() as u16).to_be_bytes());
    p.extend_from_slice(c.target.as_bytes());
    p.push(c.encoding.to_byte());
    p.extend_from_slice(&(c.body.len() as u16).to_be_bytes());
    p.extend_from_slice(&c.body);
    p.extend_from_slice(&(c.return_path.len() as u16).to_be_bytes());
    p.extend_from_slice(c.return_path.as_bytes());
    p
}

/// How a hand-made token is sealed: the cipher key, and the header put in clear and in
/// the associated data.
struct Hand<'a> {
    /// The 32-byte XChaCha20-Poly1305 key.
    key: [u8; 32],
    version: u8,
    kid: &'a [u8],
    /// `None`: the clear header is the associated data, as the crate does it.
    aad: Option<&'a [u8]>,
}

impl Hand<'_> {
    /// Sealed the crate's way: HKDF(`ikm`, the handoff info), version 2, key id `kid`.
    fn crate_way<'k>(ikm: &[u8], kid: &'k [u8]) -> Hand<'k> {
        Hand {
            key: derive(ikm, HANDOFF_INFO),
            version: TOKEN_VERSION,
            kid,
            aad: None,
        }
    }

    fn seal(&self, plain: &[u8]) -> String {
        let mut header = vec![self.version, self.kid.len() as u8];
        header.extend_from_slice(self.kid);
        let aad = self.aad.map_or(header.clone(), <[u8]>::to_vec);
        let mut sealed = plain.to_vec();
        let tag = XChaCha20Poly1305::new(&self.key.into())
            .encrypt_inout_detached(&XNonce::from(IV), &aad, sealed.as_mut_slice().into())
            .unwrap();
        let mut raw = header;
        raw.extend_from_slice(&IV);
        raw.extend_from_slice(&sealed);
        raw.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(raw)
    }
}

fn typical_plaintext() -> Vec<u8> {
    plaintext(PUBLISHER, &change(), NOW, NOW + 120, [9; 16])
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// Any RFC 9110 method token: standard methods and extension methods alike.
fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        prop::sample::select(vec![
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::GET,
        ]),
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

fn encoding() -> impl Strategy<Value = FormEncoding> {
    prop::sample::select(vec![
        FormEncoding::Empty,
        FormEncoding::UrlEncoded,
        FormEncoding::Multipart,
    ])
}

/// Any text up to `max` bytes-ish: the token must carry what it is given, byte for byte.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..=max / 4).prop_map(|v| v.into_iter().collect()),
        proptest::string::string_regex(&format!("/[ -~]{{0,{}}}", max - 1)).unwrap(),
    ]
}

fn change_strategy(max_text: usize, max_body: usize) -> impl Strategy<Value = CapturedChange> {
    (
        method(),
        text(max_text),
        encoding(),
        prop::collection::vec(any::<u8>(), 0..=max_body),
        text(max_text),
    )
        .prop_map(
            |(method, target, encoding, body, return_path)| CapturedChange {
                method,
                target: target.into(),
                encoding,
                body: body.into(),
                return_path: return_path.into(),
            },
        )
}

/// Tampering properties try every byte of a token in an unoptimized test build: small
/// changes keep them fast, the layout is the same.
fn small_change() -> impl Strategy<Value = CapturedChange> {
    change_strategy(48, 48)
}

fn publisher() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(PUBLISHER.to_owned()),
        "https://[a-z0-9.-]{1,60}(:[0-9]{1,5})?",
    ]
}

/// The token length `seal` must produce, from the documented layout.
fn expected_raw_len(kid: &str, publisher: &str, c: &CapturedChange) -> usize {
    2 + kid.len() + AEAD_NONCE_LEN + plaintext(publisher, c, 0, 0, [0; 16]).len() + TAG_LEN
}

// ---------------------------------------------------------------------------------------
// Round trip and layout
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever `seal` accepts, `open` returns unchanged; `seal` refuses only what would not
    /// fit (`TooLarge`), exactly when the layout says it would not fit.
    #[test]
    fn round_trip_any_change(
        c in change_strategy(MAX_TARGET_LEN, 5_400),
        publisher in publisher(),
        issued in 0u64..u64::MAX / 2,
        ttl in 1u64..=3_600,
        nonce in any::<[u8; 16]>(),
    ) {
        let k = keyring();
        let fits = base64::encoded_len(expected_raw_len("k2", &publisher, &c), false).unwrap()
            <= MAX_TOKEN_LEN
            && c.target.len() <= MAX_TARGET_LEN
            && c.return_path.len() <= MAX_TARGET_LEN;
        match HandoffToken::seal(&k, &publisher, &c, issued, issued + ttl, nonce) {
            Ok(text) => {
                prop_assert!(fits, "sealed a token that should not fit");
                prop_assert!(text.len() <= MAX_TOKEN_LEN);
                prop_assert_eq!(
                    decode(&text).len(),
                    expected_raw_len("k2", &publisher, &c)
                );
                // A token is URL-safe as it is: nothing to escape in a query.
                prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                let t = HandoffToken::open(&k, &text, issued, 0).unwrap();
                prop_assert_eq!(&t.change, &c);
                prop_assert_eq!(&t.publisher, &publisher);
                prop_assert_eq!((t.key_id.as_str(), t.issued_at, t.expires_at, t.nonce),
                    ("k2", issued, issued + ttl, nonce));
                // A fresh AEAD nonce per seal: the same change never gives the same text.
                prop_assert_ne!(
                    HandoffToken::seal(&k, &publisher, &c, issued, issued + ttl, nonce).unwrap(),
                    text
                );
            }
            Err(e) => {
                prop_assert_eq!(e, TokenError::TooLarge);
                prop_assert!(!fits, "refused a change that fits");
            }
        }
    }
}

/// The hand-made construction equals the crate's, byte for byte: the rows below that seal
/// by hand with another purpose, key or header would otherwise pass for the wrong reason.
#[test]
fn hand_made_token_matches_the_crate() {
    let k = keyring();
    let text =
        HandoffToken::seal_with_aead_nonce(&k, PUBLISHER, &change(), NOW, NOW + 120, [9; 16], IV)
            .unwrap();
    assert_eq!(Hand::crate_way(&K2, b"k2").seal(&typical_plaintext()), text);
    // The clear part is exactly version, key id and AEAD nonce.
    let raw = decode(&text);
    assert_eq!(&raw[..4], &[TOKEN_VERSION, 2, b'k', b'2']);
    assert_eq!(&raw[4..4 + AEAD_NONCE_LEN], &IV);
}

/// The AEAD nonce comes from the CSPRNG: no two tokens share one, even for one change, one
/// replay nonce and one second.
#[test]
fn every_seal_draws_a_fresh_aead_nonce() {
    let k = keyring();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1_000 {
        let raw = decode(&seal(&k, &change()));
        assert!(seen.insert(raw[4..4 + AEAD_NONCE_LEN].to_vec()));
    }
}

/// The mint path's largest body (the 5 120-byte `body_limit` cap) always fits with a
/// typical target, return path and publisher, with room to spare; the URL stays well
/// under 8 KiB.
#[test]
fn largest_mint_body_fits() {
    let c = CapturedChange {
        body: Bytes::from(vec![b'a'; 5_120]),
        ..change()
    };
    let text = seal(&keyring(), &c);
    assert!(text.len() <= MAX_TOKEN_LEN - 100, "{}", text.len());
    assert_eq!(open(&keyring(), &text).unwrap().change, c);
    // The longest handoff path the config accepts is 256 bytes.
    let url_len = PUBLISHER.len() + 256 + "?token=".len() + MAX_TOKEN_LEN;
    assert!(url_len < 7_800, "{url_len}");
}

#[test]
fn oversized_changes_are_refused_at_seal() {
    let k = keyring();
    let long = format!("/{}", "a".repeat(MAX_TARGET_LEN));
    let rows: Vec<(&str, &str, CapturedChange)> = vec![
        (
            "target over the cap",
            PUBLISHER,
            CapturedChange {
                target: long.clone().into(),
                ..change()
            },
        ),
        (
            "return path over the cap",
            PUBLISHER,
            CapturedChange {
                return_path: long.clone().into(),
                ..change()
            },
        ),
        ("publisher over the cap", &long, change()),
        (
            "body that would not fit the URL",
            PUBLISHER,
            CapturedChange {
                body: Bytes::from(vec![b'a'; 6_000]),
                ..change()
            },
        ),
        (
            "body over u16",
            PUBLISHER,
            CapturedChange {
                body: Bytes::from(vec![b'a'; 70_000]),
                ..change()
            },
        ),
    ];
    for (name, publisher, c) in rows {
        assert_eq!(
            HandoffToken::seal(&k, publisher, &c, NOW, NOW + 1, [0; 16]),
            Err(TokenError::TooLarge),
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Confidentiality
// ---------------------------------------------------------------------------------------

/// Every way a field could show in token text: raw, and its base64 at each of the three
/// alignments (in both alphabets), trimmed to the characters that depend only on the field.
fn spellings(field: &[u8]) -> Vec<String> {
    let mut out = vec![String::from_utf8_lossy(field).into_owned()];
    for pad in 0..3 {
        let mut shifted = vec![0u8; pad];
        shifted.extend_from_slice(field);
        for engine in [&URL_SAFE_NO_PAD, &STANDARD_NO_PAD] {
            let enc = engine.encode(&shifted);
            // Skip the characters that mix in the prefix, and the last (partial) group.
            let start = (pad * 8).div_ceil(6);
            let end = enc.len() - 4;
            out.push(enc[start..end].to_owned());
        }
    }
    out
}

#[test]
fn token_text_shows_no_field_in_any_spelling() {
    let k = keyring();
    let c = CapturedChange {
        body: Bytes::from_static(b"email=shopper%40example.com&name=Ada+Lovelace"),
        target: "/newsletter/subscribe".into(),
        return_path: "/thanks/for/subscribing".into(),
        ..change()
    };
    for _ in 0..32 {
        let text = seal(&k, &c);
        let raw = decode(&text);
        for field in [
            &b"shopper"[..],
            b"shopper@example.com",
            b"shopper%40example.com",
            b"Ada+Lovelace",
            b"/newsletter/subscribe",
            b"/thanks/for/subscribing",
            PUBLISHER.as_bytes(),
        ] {
            // Not in the decoded bytes either (the ciphertext is not the plaintext).
            assert!(
                !raw.windows(field.len()).any(|w| w == field),
                "{:?} in the raw token",
                String::from_utf8_lossy(field)
            );
            for s in spellings(field) {
                assert!(!text.contains(&s), "{s:?} in {text}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tampering: bit flips, truncations, extensions, re-encodings
// ---------------------------------------------------------------------------------------

/// The version and key id are read in clear; every other byte is under the tag.
fn expected_after_flip(flipped: &[u8], i: usize) -> &'static [TokenError] {
    let kid_len = usize::from(flipped[1]);
    if i == 0 {
        &[TokenError::UnsupportedVersion]
    } else if i == 1 {
        // A new key id length frames a different key id (unknown) or overruns (malformed).
        &[TokenError::UnknownKey, TokenError::Malformed]
    } else if (2..2 + kid_len).contains(&i) {
        // Only a flip that lands on another id of the keyring reaches the tag check.
        if matches!(&flipped[2..2 + kid_len], b"k1" | b"k2") {
            &[TokenError::Inauthentic]
        } else {
            &[TokenError::UnknownKey]
        }
    } else {
        &[TokenError::Inauthentic]
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every single-bit flip of every byte of a valid token is refused, for the reason the
    /// byte's place in the layout predicts.
    #[test]
    fn every_bit_flip_is_refused(c in small_change()) {
        let k = keyring();
        let Ok(text) = HandoffToken::seal(&k, PUBLISHER, &c, NOW, NOW + 120, [7; 16]) else {
            return Ok(());
        };
        let raw = decode(&text);
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut bad = raw.clone();
                bad[i] ^= 1 << bit;
                let got = open(&k, &URL_SAFE_NO_PAD.encode(&bad)).map(|_| ());
                let allowed = expected_after_flip(&bad, i);
                prop_assert!(
                    matches!(got, Err(e) if allowed.contains(&e)),
                    "byte {} bit {}: {:?}, expected one of {:?}", i, bit, got, allowed
                );
            }
        }
    }

    /// Every strict prefix (of the bytes and of the text) and every extension is refused.
    #[test]
    fn every_truncation_and_extension_is_refused(
        c in small_change(),
        tails in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..64), 1..8),
    ) {
        let k = keyring();
        let Ok(text) = HandoffToken::seal(&k, PUBLISHER, &c, NOW, NOW + 120, [7; 16]) else {
            return Ok(());
        };
        let raw = decode(&text);
        for n in 0..raw.len() {
            let got = open(&k, &URL_SAFE_NO_PAD.encode(&raw[..n]));
            prop_assert!(got.is_err(), "byte prefix {}: {:?}", n, got);
        }
        for n in 0..text.len() {
            let got = open(&k, &text[..n]);
            prop_assert!(got.is_err(), "text prefix {}: {:?}", n, got);
        }
        for tail in &tails {
            let mut longer = raw.clone();
            longer.extend_from_slice(tail);
            let got = open(&k, &URL_SAFE_NO_PAD.encode(&longer));
            prop_assert!(
                matches!(got, Err(TokenError::Inauthentic | TokenError::TooLarge)),
                "extension by {} bytes: {:?}", tail.len(), got
            );
            // Text-level: base64url characters appended to the text.
            let got = open(&k, &format!("{text}{}", URL_SAFE_NO_PAD.encode(tail)));
            prop_assert!(got.is_err(), "text extension: {:?}", got);
        }
    }

    /// The same bytes spelled another way are refused: padding, the standard alphabet,
    /// whitespace anywhere, percent-encoding, non-zero trailing bits. One token, one spelling.
    #[test]
    fn every_other_spelling_is_refused(c in small_change(), at in any::<prop::sample::Index>()) {
        let k = keyring();
        let Ok(text) = HandoffToken::seal(&k, PUBLISHER, &c, NOW, NOW + 120, [7; 16]) else {
            return Ok(());
        };
        let raw = decode(&text);
        let i = at.index(text.len());
        let ch = text.as_bytes()[i];
        let mut spellings: Vec<(String, String)> = vec![
            ("padded (URL_SAFE)".into(), URL_SAFE.encode(&raw)),
            ("standard alphabet".into(), STANDARD_NO_PAD.encode(&raw)),
            ("standard alphabet, padded".into(), STANDARD.encode(&raw)),
            ("one '=' appended".into(), format!("{text}=")),
            ("two '=' appended".into(), format!("{text}==")),
            ("percent-encoded character".into(),
                format!("{}%{:02X}{}", &text[..i], ch, &text[i + 1..])),
            ("percent-encoded whole".into(),
                text.bytes().map(|b| format!("%{b:02X}")).collect()),
        ];
        for ws in [" ", "\t", "\n", "\r\n", "\u{0}", "\u{a0}", "+"] {
            spellings.push((format!("{ws:?} before"), format!("{ws}{text}")));
            spellings.push((format!("{ws:?} after"), format!("{text}{ws}")));
            spellings.push((format!("{ws:?} inside"), format!("{}{ws}{}", &text[..i], &text[i..])));
        }
        // The last character carries trailing bits when the length is not a multiple of 3:
        // every other character that a lenient decoder reads as the same bytes is
        // non-canonical.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
        );
        let (head, last) = text.split_at(text.len() - 1);
        for alt in ('A'..='Z').chain('a'..='z').chain('0'..='9').chain(['-', '_']) {
            let spelled = format!("{head}{alt}");
            if alt.to_string() != last && lenient.decode(&spelled).ok().as_deref() == Some(&raw[..]) {
                spellings.push((format!("trailing bits {alt:?}"), spelled));
            }
        }
        for (name, spelled) in &spellings {
            if spelled == &text {
                continue; // e.g. the standard alphabet when the text has no '-' or '_'
            }
            let got = open(&k, spelled);
            prop_assert!(
                matches!(got, Err(TokenError::Malformed | TokenError::TooLarge)),
                "{}: {:?}", name, got
            );
        }
    }
}

/// The cap is on the text before any decoding: a long input costs no base64 work.
#[test]
fn length_cap_is_exact() {
    let k = keyring();
    // "AgJrMQ" decodes to version 2, key id "k1": what follows reaches the tag check.
    let at_cap = |len: usize| format!("AgJrMQ{}", "A".repeat(len - 6));
    let rows: Vec<(&str, String, TokenError)> = vec![
        (
            "at the cap: decoded, tag checked",
            at_cap(MAX_TOKEN_LEN),
            TokenError::Inauthentic,
        ),
        (
            "one over the cap",
            at_cap(MAX_TOKEN_LEN + 1),
            TokenError::TooLarge,
        ),
        ("a megabyte", at_cap(1 << 20), TokenError::TooLarge),
        (
            "a megabyte that is not base64",
            "%".repeat(1 << 20),
            TokenError::TooLarge,
        ),
        ("empty", String::new(), TokenError::Malformed),
        ("one character", "A".into(), TokenError::Malformed),
        ("one byte", "Ag".into(), TokenError::Malformed),
        ("version 0", "AAAA".into(), TokenError::UnsupportedVersion),
        ("header only", "AgJrMQ".into(), TokenError::Malformed),
        (
            "header and nonce, no tag",
            format!("AgJrMQ{}", "A".repeat(32)),
            TokenError::Malformed,
        ),
        ("not base64", "%%%".into(), TokenError::Malformed),
    ];
    for (name, text, want) in rows {
        assert_eq!(open(&k, &text), Err(want), "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Purpose and version
// ---------------------------------------------------------------------------------------

/// A token sealed for another purpose or version, with a key derived another way, or with
/// another header as associated data never opens as a handoff token.
#[test]
fn other_purpose_version_or_derivation_never_opens() {
    let k = keyring();
    let plain = typical_plaintext();
    let info_key = |info: &[u8]| derive(&K2, info);
    let with = |key: [u8; 32], version: u8, aad: Option<&[u8]>| {
        Hand {
            key,
            version,
            kid: b"k2",
            aad,
        }
        .seal(&plain)
    };
    let handoff = info_key(HANDOFF_INFO);
    let salted = {
        let mut okm = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(Some(b"salt"), &K2)
            .expand(HANDOFF_INFO, &mut okm)
            .unwrap();
        okm
    };
    let rows: Vec<(&str, String, Result<(), TokenError>)> = vec![
        (
            "control: the crate's way",
            with(handoff, TOKEN_VERSION, None),
            Ok(()),
        ),
        (
            "session purpose",
            with(
                info_key(b"tower-amp-session/session/v2"),
                TOKEN_VERSION,
                None,
            ),
            Err(TokenError::Inauthentic),
        ),
        (
            "handoff v1 info",
            with(
                info_key(b"tower-amp-session/handoff/v1"),
                TOKEN_VERSION,
                None,
            ),
            Err(TokenError::Inauthentic),
        ),
        (
            "info prefix",
            with(info_key(b"tower-amp-session/handoff/"), TOKEN_VERSION, None),
            Err(TokenError::Inauthentic),
        ),
        (
            "empty info",
            with(info_key(b""), TOKEN_VERSION, None),
            Err(TokenError::Inauthentic),
        ),
        (
            "the raw keyring key (no HKDF)",
            with(K2, TOKEN_VERSION, None),
            Err(TokenError::Inauthentic),
        ),
        (
            "HKDF with a salt",
            with(salted, TOKEN_VERSION, None),
            Err(TokenError::Inauthentic),
        ),
        (
            "no associated data",
            with(handoff, TOKEN_VERSION, Some(b"")),
            Err(TokenError::Inauthentic),
        ),
        (
            "associated data of version 1",
            with(handoff, TOKEN_VERSION, Some(&[1, 2, b'k', b'2'])),
            Err(TokenError::Inauthentic),
        ),
        (
            "associated data of key id k1",
            with(handoff, TOKEN_VERSION, Some(&[2, 2, b'k', b'1'])),
            Err(TokenError::Inauthentic),
        ),
        (
            "version 1, sealed consistently",
            with(handoff, 1, None),
            Err(TokenError::UnsupportedVersion),
        ),
        (
            "version 3, sealed consistently",
            with(handoff, 3, None),
            Err(TokenError::UnsupportedVersion),
        ),
        (
            "version 0",
            with(handoff, 0, None),
            Err(TokenError::UnsupportedVersion),
        ),
    ];
    for (name, text, want) in rows {
        assert_eq!(open(&k, &text).map(|_| ()), want, "{name}");
    }
}

/// A v1 token (HMAC-signed, contents in clear) from before the upgrade is refused as an
/// unsupported version, never parsed.
#[test]
fn a_version_1_token_is_refused() {
    let mut raw = vec![1u8, 2, b'k', b'2'];
    raw.extend_from_slice(&[0; 120]);
    assert_eq!(
        open(&keyring(), &URL_SAFE_NO_PAD.encode(raw)),
        Err(TokenError::UnsupportedVersion)
    );
}

// ---------------------------------------------------------------------------------------
// Sealed but arbitrary payloads: the parser behind the tag (the fuzz target's property)
// ---------------------------------------------------------------------------------------

/// A correctly sealed `plain` either opens into a token that re-seals to the very same text
/// (one token, one spelling), or is refused for its framing or its times. Returns whether it
/// opened.
fn check_sealed(plain: &[u8]) -> bool {
    let k = Keyring::builder().signing("k1", K1).build().unwrap();
    let text = Hand::crate_way(&K1, b"k1").seal(plain);
    // Open at the issue time the payload names, so the time checks do not hide the parser.
    let issued = plain
        .get(..8)
        .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()));
    match HandoffToken::open(&k, &text, issued, 0) {
        Ok(t) => {
            assert_eq!(t.key_id, "k1");
            let again = HandoffToken::seal_with_aead_nonce(
                &k,
                &t.publisher,
                &t.change,
                t.issued_at,
                t.expires_at,
                t.nonce,
                IV,
            );
            match again {
                Ok(again) => assert_eq!(again, text, "a second spelling of one token"),
                // `open` reads fields up to their u8/u16 framing; `seal` caps them lower.
                // Only a key holder can seal such a token, so refusing to re-seal is fine.
                Err(TokenError::TooLarge) => assert!(
                    t.change.method.as_str().len() > MAX_METHOD_LEN
                        || t.change.target.len() > MAX_TARGET_LEN
                        || t.change.return_path.len() > MAX_TARGET_LEN
                        || t.publisher.len() > MAX_TARGET_LEN
                ),
                Err(e) => panic!("re-seal failed: {e:?}"),
            }
            true
        }
        Err(TokenError::TooLarge) => {
            assert!(text.len() > MAX_TOKEN_LEN);
            false
        }
        Err(TokenError::Malformed | TokenError::Expired | TokenError::IssuedInFuture) => false,
        Err(e) => panic!("a correctly sealed token refused as {e:?}"),
    }
}

/// The check is not vacuous: a real token's plaintext opens through it.
#[test]
fn sealed_payload_check_opens_real_tokens() {
    assert!(check_sealed(&typical_plaintext()));
    assert!(!check_sealed(b""));
}

fn utf8_or_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => ".{0,30}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ]
}

/// A well-framed plaintext with arbitrary field contents, so the generator reaches `Ok`
/// often instead of dying in the framing.
fn framed_payload() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u64>(),
        1u64..10_000,
        any::<[u8; 16]>(),
        utf8_or_bytes(),
        prop_oneof![
            "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..20),
        ],
        utf8_or_bytes(),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..40),
        utf8_or_bytes(),
    )
        .prop_map(
            |(issued, ttl, nonce, publisher, method, target, enc, body, ret)| {
                let mut p = issued.to_be_bytes().to_vec();
                p.extend_from_slice(&issued.saturating_add(ttl).to_be_bytes());
                p.extend_from_slice(&nonce);
                p.extend_from_slice(&(publisher.len() as u16).to_be_bytes());
                p.extend_from_slice(&publisher);
                p.push(method.len() as u8);
                p.extend_from_slice(&method);
                for (i, field) in [target, vec![enc % 4], body, ret].iter().enumerate() {
                    if i == 1 {
                        p.extend_from_slice(field);
                    } else {
                        p.extend_from_slice(&(field.len() as u16).to_be_bytes());
                        p.extend_from_slice(field);
                    }
                }
                p
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Correctly sealed arbitrary payloads: parsed into a canonical token, or refused, never
    /// a panic.
    #[test]
    fn sealed_arbitrary_payloads(
        plain in prop_oneof![framed_payload(), prop::collection::vec(any::<u8>(), 0..200)],
    ) {
        let _ = check_sealed(&plain);
    }

    /// No input that nobody sealed opens, at any time; nothing panics.
    #[test]
    fn unsealed_text_never_opens(
        text in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{0,200}",
            prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
            // A valid header for k1 or k2, then anything.
            (prop::sample::select(vec![&b"k1"[..], b"k2"]), prop::collection::vec(any::<u8>(), 0..300))
                .prop_map(|(kid, rest)| {
                    let mut raw = vec![TOKEN_VERSION, 2];
                    raw.extend_from_slice(kid);
                    raw.extend_from_slice(&rest);
                    URL_SAFE_NO_PAD.encode(raw)
                }),
        ],
        now in any::<u64>(),
        skew in 0u64..=300,
    ) {
        let got = HandoffToken::open(&keyring(), &text, now, skew);
        prop_assert!(got.is_err(), "{:?}", got);
    }
}

// ---------------------------------------------------------------------------------------
// Time: expiry and clock skew, exact at the boundaries
// ---------------------------------------------------------------------------------------

/// The rule `open` documents, written out independently.
fn time_model(issued: u64, expires: u64, now: u64, skew: u64) -> Result<(), TokenError> {
    if issued > now.saturating_add(skew) {
        Err(TokenError::IssuedInFuture)
    } else if now >= expires || expires < issued {
        Err(TokenError::Expired)
    } else {
        Ok(())
    }
}

fn seal_at(k: &Keyring, issued: u64, expires: u64) -> String {
    HandoffToken::seal(k, PUBLISHER, &change(), issued, expires, [1; 16]).unwrap()
}

#[test]
fn time_boundaries_table() {
    let k = keyring();
    let (i, e) = (NOW, NOW + 120);
    let text = seal_at(&k, i, e);
    // (name, now, skew, outcome)
    let rows: &[(&str, u64, u64, Result<(), TokenError>)] = &[
        ("at issue", i, 0, Ok(())),
        ("last valid second", e - 1, 30, Ok(())),
        ("at expiry", e, 30, Err(TokenError::Expired)),
        ("after expiry", e + 1, 30, Err(TokenError::Expired)),
        ("far future", u64::MAX, 30, Err(TokenError::Expired)),
        ("skew covers the whole gap", i - 30, 30, Ok(())),
        (
            "one second past the skew",
            i - 31,
            30,
            Err(TokenError::IssuedInFuture),
        ),
        (
            "no skew, one second early",
            i - 1,
            0,
            Err(TokenError::IssuedInFuture),
        ),
        ("epoch", 0, 300, Err(TokenError::IssuedInFuture)),
    ];
    for (name, now, skew, want) in rows {
        assert_eq!(
            HandoffToken::open(&k, &text, *now, *skew).map(|_| ()),
            *want,
            "{name}"
        );
    }
    // Degenerate windows a buggy minter could seal: empty, inverted, at the end of time.
    let degenerate: &[(u64, u64, u64, Result<(), TokenError>)] = &[
        (NOW, NOW, NOW, Err(TokenError::Expired)),
        // An empty window still opens within the skew before its issue time: the window
        // is `[issued - skew, expires)`. The layer never mints one (ttl >= 1 s).
        (NOW, NOW, NOW - 1, Ok(())),
        (NOW, NOW - 1, NOW - 5, Err(TokenError::Expired)),
        (u64::MAX, u64::MAX, u64::MAX, Err(TokenError::Expired)),
        (u64::MAX - 1, u64::MAX, u64::MAX - 1, Ok(())),
    ];
    for (issued, expires, now, want) in degenerate {
        let t = seal_at(&k, *issued, *expires);
        assert_eq!(
            HandoffToken::open(&k, &t, *now, 30).map(|_| ()),
            *want,
            "issued {issued} expires {expires} now {now}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Around every boundary (`now` within a few seconds of issue - skew and of expiry) the
    /// outcome is exactly the documented rule.
    #[test]
    fn time_window_matches_the_rule(
        issued in prop_oneof![Just(0u64), 1u64..u64::MAX - 4_000, Just(u64::MAX - 1)],
        ttl in prop_oneof![Just(0u64), 1u64..=3_600],
        skew in 0u64..=300,
        offset in -5i64..=5,
        anchor in 0u8..3,
    ) {
        let k = keyring();
        let expires = issued.saturating_add(ttl);
        let base = match anchor {
            0 => issued.saturating_sub(skew),
            1 => expires,
            _ => issued,
        };
        let now = base.saturating_add_signed(offset);
        let text = seal_at(&k, issued, expires);
        prop_assert_eq!(
            HandoffToken::open(&k, &text, now, skew).map(|_| ()),
            time_model(issued, expires, now, skew),
            "issued {} expires {} now {} skew {}", issued, expires, now, skew
        );
    }
}

// ---------------------------------------------------------------------------------------
// Keys: rotation, unknown ids, one key tried
// ---------------------------------------------------------------------------------------

fn b64(key: [u8; 32]) -> String {
    STANDARD.encode(key)
}

#[test]
fn rotation_table() {
    let old_signer = Keyring::builder().signing("k1", K1).build().unwrap();
    let from_old = seal(&old_signer, &change());
    let new_signer = Keyring::builder().signing("k2", K2).build().unwrap();
    let from_new = seal(&new_signer, &change());
    // The environment form that instances share: first key signs, the rest verify.
    let env_rotating = Keyring::from_list(&format!("k2:{},k1:{}", b64(K2), b64(K1))).unwrap();
    let env_done = Keyring::from_list(&format!("k2:{}", b64(K2))).unwrap();
    let k1_reused = Keyring::builder()
        .signing("k2", K2)
        .verifying("k1", [9; 32])
        .build()
        .unwrap();
    let same_id_other_key = Keyring::builder().signing("k2", [3; 32]).build().unwrap();
    let rotating = keyring();
    // (name, keyring, token, outcome)
    let rows: Vec<(&str, &Keyring, &str, Result<&str, TokenError>)> = vec![
        (
            "old key opens during rotation",
            &rotating,
            &from_old,
            Ok("k1"),
        ),
        ("new key opens", &rotating, &from_new, Ok("k2")),
        (
            "from_list: old key opens",
            &env_rotating,
            &from_old,
            Ok("k1"),
        ),
        (
            "from_list: new key opens",
            &env_rotating,
            &from_new,
            Ok("k2"),
        ),
        (
            "removed key: unknown",
            &new_signer,
            &from_old,
            Err(TokenError::UnknownKey),
        ),
        (
            "from_list: removed key",
            &env_done,
            &from_old,
            Err(TokenError::UnknownKey),
        ),
        (
            "id reused for a new key",
            &k1_reused,
            &from_old,
            Err(TokenError::Inauthentic),
        ),
        (
            "another key under the same id",
            &same_id_other_key,
            &from_new,
            Err(TokenError::Inauthentic),
        ),
        (
            "old keyring does not know k2",
            &old_signer,
            &from_new,
            Err(TokenError::UnknownKey),
        ),
    ];
    for (name, k, text, want) in rows {
        assert_eq!(
            open(k, text).map(|t| t.key_id),
            want.map(str::to_owned),
            "{name}"
        );
    }
    // New tokens are sealed by the first key only.
    assert_eq!(env_rotating.signing_key_id(), "k2");
    assert_eq!(
        open(&env_rotating, &seal(&env_rotating, &change()))
            .unwrap()
            .key_id,
        "k2"
    );
}

/// The key id picks the key; no other key is tried. A token sealed with a key that IS in the
/// keyring, under another id, is refused: as `UnknownKey` when its id is not in the keyring,
/// as `Inauthentic` when its id names a different key.
#[test]
fn key_id_picks_the_key_and_only_that_key() {
    let k = keyring(); // k2 = K2 (signs), k1 = K1
    let plain = typical_plaintext();
    let by = |ikm: &[u8], kid: &[u8]| Hand::crate_way(ikm, kid).seal(&plain);
    let rows: Vec<(&str, String, TokenError)> = vec![
        (
            "unknown id, sealed by K2 (in ring as k2)",
            by(&K2, b"k3"),
            TokenError::UnknownKey,
        ),
        (
            "unknown id, sealed by K1 (in ring as k1)",
            by(&K1, b"kx"),
            TokenError::UnknownKey,
        ),
        (
            "id differs in case only",
            by(&K2, b"K2"),
            TokenError::UnknownKey,
        ),
        ("id with a NUL", by(&K2, b"k2\0"), TokenError::UnknownKey),
        ("id prefix", by(&K2, b"k"), TokenError::UnknownKey),
        ("empty id", by(&K2, b""), TokenError::UnknownKey),
        ("non-UTF-8 id", by(&K2, b"\xff\xfe"), TokenError::UnknownKey),
        (
            "id k1, sealed by K2",
            by(&K2, b"k1"),
            TokenError::Inauthentic,
        ),
        (
            "id k2, sealed by K1",
            by(&K1, b"k2"),
            TokenError::Inauthentic,
        ),
    ];
    for (name, text, want) in rows {
        assert_eq!(open(&k, &text).map(|_| ()), Err(want), "{name}");
    }
    // Control: the same construction with the right pairing opens, so the refusals above
    // are about the key id alone.
    assert_eq!(open(&k, &by(&K1, b"k1")).unwrap().key_id, "k1");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any key id not in the keyring is `UnknownKey`, whichever keyring key sealed it.
    #[test]
    fn any_unknown_key_id_is_unknown_key(
        kid in prop::collection::vec(any::<u8>(), 0..=40),
        by_k1 in any::<bool>(),
    ) {
        prop_assume!(kid != b"k1" && kid != b"k2");
        let k = keyring();
        let ikm = if by_k1 { K1 } else { K2 };
        let text = Hand::crate_way(&ikm, &kid).seal(&typical_plaintext());
        prop_assert_eq!(open(&k, &text).map(|_| ()), Err(TokenError::UnknownKey));
    }
}

/// The keyring keeps only derived keys, and derives them once: building is where HKDF runs,
/// and a clone of the keyring seals tokens the original opens.
#[test]
fn derived_keys_survive_a_clone() {
    let k = keyring();
    let clone = k.clone();
    assert_eq!(open(&k, &seal(&clone, &change())).unwrap().change, change());
    assert_ne!(derive(&K2, HANDOFF_INFO), K2);
    assert_ne!(derive(&K2, HANDOFF_INFO), derive(&K1, HANDOFF_INFO));
}

// ---------------------------------------------------------------------------------------
// Completion re-validates what a token carries
// ---------------------------------------------------------------------------------------

/// A token sealed with the layer's own key that carries an open-redirect payload as its
/// return path (what a buggy or older minter could produce) is refused at completion: 400,
/// nothing applied, no redirect anywhere. Completion runs the same `validate_return_path`
/// that tests/return_path_props.rs checks against its full payload table; these rows are
/// one of each family.
#[tokio::test]
async fn hostile_return_paths_in_a_sealed_token_are_refused_at_completion() {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use http_body_util::{BodyExt, Full};
    use tower::ServiceExt;

    const PAYLOADS: &[&str] = &[
        "//evil.com",
        "/\\evil.com",
        "/%5C%5Cevil.com",
        "/%2F%2Fevil.com",
        "https://evil.com",
        "https://shop.example@evil.com",
        "javascript:alert(1)",
        "/\t/evil.com",
        "/%0d%0aLocation:%20https://evil.com",
        "//evil\u{3002}com",
        "/..//evil.com",
        " //evil.com",
        "",
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let layer = crate::AmpSessionLayer::builder()
        .publisher_origin(PUBLISHER)
        .keyring(Keyring::builder().signing("k1", [7u8; 32]))
        .build()
        .unwrap();
    let keyring = Keyring::builder().signing("k1", [7u8; 32]).build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    for (i, p) in PAYLOADS.iter().enumerate() {
        let c = CapturedChange {
            method: Method::POST,
            target: "/cart/add".into(),
            encoding: FormEncoding::UrlEncoded,
            body: "product_id=1".into(),
            return_path: (*p).into(),
        };
        let token =
            HandoffToken::seal(&keyring, PUBLISHER, &c, now, now + 60, [i as u8; 16]).unwrap();
        let seen = calls.clone();
        let app = tower::service_fn(move |_: http::Request<crate::RequestBody<Full<Bytes>>>| {
            seen.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new()))) }
        });
        let req = http::Request::get(format!("/_amp/handoff?token={token}"))
            .header("host", "shop.example")
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "document")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = tower::Layer::layer(&layer, app).oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(parts.status, http::StatusCode::BAD_REQUEST, "{p:?}: {body}");
        assert_eq!(parts.headers.get("location"), None, "{p:?}");
        assert_eq!(
            parts
                .extensions
                .get::<crate::Rejection>()
                .map(|r| r.reason()),
            Some("the handoff link has an invalid return path"),
            "{p:?}"
        );
        assert!(
            !body.contains("evil"),
            "{p:?}: the page links to it: {body}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "applied");
}
