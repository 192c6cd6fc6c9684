//! Properties of the handoff token (SPEC section 5, "The token"), as proptests and tables.
//!
//! Case counts are explicit so a reader knows how hard each property was pushed:
//! round trip 512 cases, bit flips / truncations / extensions / re-encodings 64 cases each
//! (every bit, every prefix and several suffixes of every generated token), time windows
//! 1024 cases. Everything here runs in well under a second per property.

// Rows of behaviours are tuples: their types are long by design.
#![allow(clippy::type_complexity)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use common::*;
use hmac::{Hmac, KeyInit, Mac};
use http::{Method, StatusCode};
use proptest::prelude::*;
use sha2::Sha256;
use tower_amp_session::{
    CapturedChange, FormEncoding, HandoffToken, Keyring, TokenError, MAX_TARGET_LEN, MAX_TOKEN_LEN,
    TOKEN_VERSION,
};

/// The crate's purpose string (src/keyring.rs `PURPOSE`), restated: a test that builds MACs
/// by hand must prove it builds the crate's own MAC first (see `hand_made_mac_matches`).
const PURPOSE: &[u8] = b"tower-amp-session/handoff/v1";
const MAC_LEN: usize = 32;
const NOW: u64 = 1_700_000_000;
const K1: [u8; 32] = [1; 32];
const K2: [u8; 32] = [2; 32];

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
    HandoffToken::seal(k, c, NOW, NOW + 120, [9; 16]).unwrap()
}

fn open(k: &Keyring, text: &str) -> Result<HandoffToken, TokenError> {
    HandoffToken::open(k, text, NOW + 1, 30)
}

/// HMAC-SHA256 the way the keyring does it: key, then the length-prefixed purpose, then the
/// signed bytes.
fn mac(key: &[u8], purpose: &[u8], signed: &[u8]) -> [u8; MAC_LEN] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(&[purpose.len() as u8]);
    m.update(purpose);
    m.update(signed);
    m.finalize().into_bytes().into()
}

/// `signed` followed by its MAC, as token text.
fn sign(key: &[u8], purpose: &[u8], signed: &[u8]) -> String {
    let mut raw = signed.to_vec();
    raw.extend_from_slice(&mac(key, purpose, signed));
    URL_SAFE_NO_PAD.encode(raw)
}

/// The signed part (everything before the MAC) of a token made by the crate.
fn signed_part(text: &str) -> Vec<u8> {
    let raw = URL_SAFE_NO_PAD.decode(text).unwrap();
    raw[..raw.len() - MAC_LEN].to_vec()
}

/// The same signed part with another key id (the layout's `key id len u8 | key id`).
fn with_key_id(signed: &[u8], kid: &[u8]) -> Vec<u8> {
    let old = signed[1] as usize;
    let mut out = vec![signed[0], kid.len() as u8];
    out.extend_from_slice(kid);
    out.extend_from_slice(&signed[2 + old..]);
    out
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
                target,
                encoding,
                body: body.into(),
                return_path,
            },
        )
}

/// Tampering properties try every byte of a token, each with an HMAC in an unoptimized
/// test build: small changes keep them fast, the layout is the same.
fn small_change() -> impl Strategy<Value = CapturedChange> {
    change_strategy(48, 48)
}

/// The token length `seal` must produce, from the documented layout.
fn expected_raw_len(kid: &str, c: &CapturedChange) -> usize {
    2 + kid.len()
        + 8
        + 8
        + 16
        + 1
        + c.method.as_str().len()
        + 2
        + c.target.len()
        + 1
        + 2
        + c.body.len()
        + 2
        + c.return_path.len()
        + MAC_LEN
}

// ---------------------------------------------------------------------------------------
// Round trip
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever `seal` accepts, `open` returns unchanged; `seal` refuses only what would not
    /// fit (`TooLarge`), exactly when the layout says it would not fit.
    #[test]
    fn round_trip_any_change(
        c in change_strategy(MAX_TARGET_LEN, 5_400),
        issued in 0u64..u64::MAX / 2,
        ttl in 1u64..=3_600,
        nonce in any::<[u8; 16]>(),
    ) {
        let k = keyring();
        let fits = base64::encoded_len(expected_raw_len("k2", &c), false).unwrap() <= MAX_TOKEN_LEN
            && c.target.len() <= MAX_TARGET_LEN
            && c.return_path.len() <= MAX_TARGET_LEN;
        match HandoffToken::seal(&k, &c, issued, issued + ttl, nonce) {
            Ok(text) => {
                prop_assert!(fits, "sealed a token that should not fit");
                prop_assert!(text.len() <= MAX_TOKEN_LEN);
                // A token is URL-safe as it is: nothing to escape in a query.
                prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
                let t = HandoffToken::open(&k, &text, issued, 0).unwrap();
                prop_assert_eq!(&t.change, &c);
                prop_assert_eq!((t.key_id.as_str(), t.issued_at, t.expires_at, t.nonce),
                    ("k2", issued, issued + ttl, nonce));
                // The nonce makes every token distinct even for one change.
                let mut other = nonce;
                other[0] ^= 1;
                prop_assert_ne!(HandoffToken::seal(&k, &c, issued, issued + ttl, other).unwrap(), text);
            }
            Err(e) => {
                prop_assert_eq!(e, TokenError::TooLarge);
                prop_assert!(!fits, "refused a change that fits");
            }
        }
    }
}

/// The mint path's largest body (the 5 120-byte `body_limit` cap) always fits with a
/// typical target and return path.
#[test]
fn largest_mint_body_fits() {
    let c = CapturedChange {
        body: Bytes::from(vec![b'a'; 5_120]),
        ..change()
    };
    let text = seal(&keyring(), &c);
    assert!(text.len() <= MAX_TOKEN_LEN, "{}", text.len());
    assert_eq!(open(&keyring(), &text).unwrap().change, c);
}

// ---------------------------------------------------------------------------------------
// Tampering: bit flips, truncations, extensions, re-encodings
// ---------------------------------------------------------------------------------------

/// Key id bytes pick the key; every other byte is under the MAC.
fn expected_after_flip(raw: &[u8], i: usize) -> &'static [TokenError] {
    let kid_len = raw[1] as usize;
    if i == 1 {
        // A new key id length frames a different key id (unknown) or overruns (malformed).
        &[TokenError::UnknownKey, TokenError::Malformed]
    } else if (2..2 + kid_len).contains(&i) {
        // Only a flip that lands on another id of the keyring reaches a MAC check.
        if matches!(&raw[2..2 + kid_len], b"k1" | b"k2") {
            &[TokenError::BadSignature]
        } else {
            &[TokenError::UnknownKey]
        }
    } else {
        &[TokenError::BadSignature]
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every single-bit flip of every byte of a valid token is refused, for the reason the
    /// byte's place in the layout predicts.
    #[test]
    fn every_bit_flip_is_refused(c in small_change()) {
        let k = keyring();
        let Ok(text) = HandoffToken::seal(&k, &c, NOW, NOW + 120, [7; 16]) else {
            return Ok(());
        };
        let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
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
        let Ok(text) = HandoffToken::seal(&k, &c, NOW, NOW + 120, [7; 16]) else {
            return Ok(());
        };
        let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
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
                matches!(got, Err(TokenError::BadSignature | TokenError::TooLarge)),
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
        let Ok(text) = HandoffToken::seal(&k, &c, NOW, NOW + 120, [7; 16]) else {
            return Ok(());
        };
        let raw = URL_SAFE_NO_PAD.decode(&text).unwrap();
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
    let rows: &[(usize, TokenError)] = &[
        // At the cap the text is decoded: all zero bytes frame an empty key id.
        (MAX_TOKEN_LEN, TokenError::UnknownKey),
        (MAX_TOKEN_LEN + 1, TokenError::TooLarge),
        (1 << 20, TokenError::TooLarge),
    ];
    for (len, want) in rows {
        // 'A' * len: valid base64url alphabet, so only the length can decide.
        let got = open(&k, &"A".repeat(*len));
        assert_eq!(got, Err(*want), "length {len}");
    }
    for short in ["", "A", "AA", "AAAA", &"A".repeat(45)] {
        assert_eq!(
            open(&k, short),
            Err(TokenError::Malformed),
            "length {}",
            short.len()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Purpose and version
// ---------------------------------------------------------------------------------------

/// The hand-made MAC equals the crate's: otherwise the "other purpose" rows below would
/// pass for the wrong reason.
#[test]
fn hand_made_mac_matches() {
    let k = keyring();
    let text = seal(&k, &change());
    assert_eq!(sign(&K2, PURPOSE, &signed_part(&text)), text);
}

#[test]
fn other_purpose_or_version_never_verifies() {
    let k = keyring();
    let signed = signed_part(&seal(&k, &change()));
    let mut v2 = signed.clone();
    v2[0] = TOKEN_VERSION + 1;
    let mut v0 = signed.clone();
    v0[0] = 0;
    // Length prefix dropped: the purpose glued to the data must not be an equivalent spelling.
    let unprefixed = {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&K2).unwrap();
        m.update(PURPOSE);
        m.update(&signed);
        let mut raw = signed.clone();
        raw.extend_from_slice(&m.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    };
    // Plain HMAC of the data, no purpose at all (what a careless sibling format would do).
    let bare = {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&K2).unwrap();
        m.update(&signed);
        let mut raw = signed.clone();
        raw.extend_from_slice(&m.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    };
    let rows: Vec<(&str, String, Result<(), TokenError>)> = vec![
        ("control: same purpose", sign(&K2, PURPOSE, &signed), Ok(())),
        (
            "session purpose",
            sign(&K2, b"tower-amp-session/session/v1", &signed),
            Err(TokenError::BadSignature),
        ),
        (
            "handoff v2 purpose",
            sign(&K2, b"tower-amp-session/handoff/v2", &signed),
            Err(TokenError::BadSignature),
        ),
        (
            "purpose prefix",
            sign(&K2, b"tower-amp-session/handoff/", &signed),
            Err(TokenError::BadSignature),
        ),
        (
            "empty purpose",
            sign(&K2, b"", &signed),
            Err(TokenError::BadSignature),
        ),
        (
            "purpose without length prefix",
            unprefixed,
            Err(TokenError::BadSignature),
        ),
        ("no purpose", bare, Err(TokenError::BadSignature)),
        (
            "version 2, v1 purpose, valid MAC",
            sign(&K2, PURPOSE, &v2),
            Err(TokenError::UnsupportedVersion),
        ),
        (
            "version 0, v1 purpose, valid MAC",
            sign(&K2, PURPOSE, &v0),
            Err(TokenError::UnsupportedVersion),
        ),
        (
            "version 2, v2 purpose",
            sign(&K2, b"tower-amp-session/handoff/v2", &v2),
            Err(TokenError::BadSignature),
        ),
        (
            "version 2 under the v1 MAC",
            {
                let mut raw = v2.clone();
                raw.extend_from_slice(&mac(&K2, PURPOSE, &signed));
                URL_SAFE_NO_PAD.encode(raw)
            },
            Err(TokenError::BadSignature),
        ),
    ];
    for (name, text, want) in rows {
        assert_eq!(open(&k, &text).map(|_| ()), want, "{name}");
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

#[test]
fn time_boundaries_table() {
    let k = keyring();
    let (i, e) = (NOW, NOW + 120);
    let text = HandoffToken::seal(&k, &change(), i, e, [1; 16]).unwrap();
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
    // Degenerate windows a buggy minter could sign: empty, inverted, at the end of time.
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
        let t = HandoffToken::seal(&k, &change(), *issued, *expires, [1; 16]).unwrap();
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
        let text = HandoffToken::seal(&k, &change(), issued, expires, [3; 16]).unwrap();
        prop_assert_eq!(
            HandoffToken::open(&k, &text, now, skew).map(|_| ()),
            time_model(issued, expires, now, skew),
            "issued {} expires {} now {} skew {}", issued, expires, now, skew
        );
    }
}

/// The same boundaries through the layer, with an injected clock: mint at T, complete at
/// T + ttl - 1 (applied) and at T + ttl (410 Gone); a token from a clock running ahead by
/// exactly the skew completes, one second more does not (400).
#[tokio::test]
async fn time_boundaries_through_the_layer() {
    const T: u64 = 1_800_000_000;
    // (name, completion time, status, applied)
    let rows: &[(&str, u64, StatusCode, bool)] = &[
        ("at mint", T, StatusCode::SEE_OTHER, true),
        ("last second", T + 119, StatusCode::SEE_OTHER, true),
        ("at expiry", T + 120, StatusCode::GONE, false),
        (
            "minter ahead by the skew",
            T - 30,
            StatusCode::SEE_OTHER,
            true,
        ),
        (
            "minter ahead by skew + 1",
            T - 31,
            StatusCode::BAD_REQUEST,
            false,
        ),
    ];
    for (name, at, status, applied) in rows {
        let clock = Arc::new(AtomicU64::new(T));
        let c = clock.clone();
        let layer = builder()
            .handoff_ttl(Duration::from_secs(120))
            .clock_skew(Duration::from_secs(30))
            .clock(move || UNIX_EPOCH + Duration::from_secs(c.load(Ordering::SeqCst)))
            .build()
            .unwrap();
        let rec = Recorder::default();
        let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
        let handoff = mint(&mut svc).await;
        clock.store(*at, Ordering::SeqCst);
        let a = send(&mut svc, request("GET", &handoff, &NAV, "")).await;
        assert_eq!(a.status, *status, "{name}: {}", a.body);
        assert_eq!(rec.count(), usize::from(*applied), "{name}");
        if !applied {
            let r = a.rejection.expect("a rejection");
            assert!(
                a.body.contains(&escape_html(r.reason())),
                "{name}: {}",
                a.body
            );
        }
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('\'', "&#39;")
}

async fn mint(svc: &mut Svc) -> String {
    let a = send(
        svc,
        request(
            "POST",
            "/cart/add",
            &[
                ("origin", CACHE),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            "product_id=1&quantity=1",
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    path_of(a.header("amp-redirect-to").unwrap())
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
    let rotating = keyring();
    // (name, keyring, token, outcome)
    let rows: Vec<(&str, &Keyring, &str, Result<&str, TokenError>)> = vec![
        (
            "old key verifies during rotation",
            &rotating,
            &from_old,
            Ok("k1"),
        ),
        ("new key verifies", &rotating, &from_new, Ok("k2")),
        (
            "from_list: old key verifies",
            &env_rotating,
            &from_old,
            Ok("k1"),
        ),
        (
            "from_list: new key verifies",
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
            Err(TokenError::BadSignature),
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
    // New tokens are signed by the first key only.
    assert_eq!(env_rotating.signing_key_id(), "k2");
    assert_eq!(
        open(&env_rotating, &seal(&env_rotating, &change()))
            .unwrap()
            .key_id,
        "k2"
    );
}

/// The key id picks the key; no other key is tried. A token whose MAC was made with a key
/// that IS in the keyring, under another id, is refused: as `UnknownKey` when its id is not
/// in the keyring, as `BadSignature` when its id names a different key.
#[test]
fn key_id_picks_the_key_and_only_that_key() {
    let k = keyring(); // k2 = K2 (signs), k1 = K1
    let signed = signed_part(&seal(&k, &change()));
    let rows: Vec<(&str, String, TokenError)> = vec![
        (
            "unknown id, MAC by K2 (in ring as k2)",
            sign(&K2, PURPOSE, &with_key_id(&signed, b"k3")),
            TokenError::UnknownKey,
        ),
        (
            "unknown id, MAC by K1 (in ring as k1)",
            sign(&K1, PURPOSE, &with_key_id(&signed, b"kx")),
            TokenError::UnknownKey,
        ),
        (
            "id differs in case only",
            sign(&K2, PURPOSE, &with_key_id(&signed, b"K2")),
            TokenError::UnknownKey,
        ),
        (
            "id with a NUL",
            sign(&K2, PURPOSE, &with_key_id(&signed, b"k2\0")),
            TokenError::UnknownKey,
        ),
        (
            "id prefix",
            sign(&K2, PURPOSE, &with_key_id(&signed, b"k")),
            TokenError::UnknownKey,
        ),
        (
            "empty id",
            sign(&K2, PURPOSE, &with_key_id(&signed, b"")),
            TokenError::UnknownKey,
        ),
        (
            "non-UTF-8 id",
            sign(&K2, PURPOSE, &with_key_id(&signed, b"\xff\xfe")),
            TokenError::UnknownKey,
        ),
        (
            "id k1, MAC by K2",
            sign(&K2, PURPOSE, &with_key_id(&signed, b"k1")),
            TokenError::BadSignature,
        ),
        (
            "id k2, MAC by K1",
            sign(&K1, PURPOSE, &with_key_id(&signed, b"k2")),
            TokenError::BadSignature,
        ),
    ];
    for (name, text, want) in rows {
        assert_eq!(open(&k, &text).map(|_| ()), Err(want), "{name}");
    }
    // Control: the same construction with the right pairing verifies, so the refusals above
    // are about the key id alone.
    let ok = sign(&K1, PURPOSE, &with_key_id(&signed, b"k1"));
    assert_eq!(open(&k, &ok).unwrap().key_id, "k1");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any key id not in the keyring is `UnknownKey`, whichever keyring key made the MAC.
    #[test]
    fn any_unknown_key_id_is_unknown_key(
        kid in prop::collection::vec(any::<u8>(), 0..=40),
        by_k1 in any::<bool>(),
    ) {
        prop_assume!(kid != b"k1" && kid != b"k2");
        let k = keyring();
        let signed = signed_part(&seal(&k, &change()));
        let key = if by_k1 { K1 } else { K2 };
        let text = sign(&key, PURPOSE, &with_key_id(&signed, &kid));
        prop_assert_eq!(open(&k, &text).map(|_| ()), Err(TokenError::UnknownKey));
    }
}
