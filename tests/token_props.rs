//! The handoff token through the public layer (SPEC section 5, "The token"): what a shopper,
//! a log reader or an attacker holding a handoff URL can observe and do.
//!
//! The token format itself (layout, every bit flip, re-spellings, purpose, version, time
//! rule, key ids) is private and checked by the unit tests in src/token/tests.rs. Here a
//! token is always minted by the layer (a cacheless POST from the AMP cache, as amp-form
//! sends it) and completed as a top-level navigation. Cases: tampering 64 tokens, each
//! with every character changed.

// Rows of behaviours are tuples: their types are long by design.
#![allow(clippy::type_complexity)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::*;
use http::StatusCode;
use proptest::prelude::*;
use tower_amp_session::{AmpSessionLayer, Keyring, KeyringBuilder, TOKEN_PARAM};

const URLENCODED: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// Mints a handoff for `body` posted to `/cart/add` from the cache; the full
/// `AMP-Redirect-To` URL.
async fn mint_url(svc: &mut Svc, body: &str) -> String {
    let a = send(
        svc,
        request("POST", "/cart/add", &[("origin", CACHE), URLENCODED], body),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.header("amp-redirect-to")
        .expect("AMP-Redirect-To")
        .to_owned()
}

/// The token text of a handoff URL.
fn token_of(url: &str) -> String {
    let query = url.split_once('?').expect("a query").1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == TOKEN_PARAM)
        .expect("a token")
        .1
        .into_owned()
}

fn handoff_with(token: &str) -> String {
    format!("/_amp/handoff?{TOKEN_PARAM}={token}")
}

/// Completes `path` as a top-level navigation.
async fn complete(svc: &mut Svc, path: &str) -> Answer {
    send(svc, request("GET", path, &NAV, "")).await
}

/// The layer accepted the token: no rejection, and either applied (303) or shown for
/// confirmation (200), whichever the layer's provenance rules choose.
fn accepted(a: &Answer) -> bool {
    a.rejection.is_none() && matches!(a.status, StatusCode::SEE_OTHER | StatusCode::OK)
}

fn layer_with(keys: KeyringBuilder) -> AmpSessionLayer {
    builder().keyring(keys).build().unwrap()
}

// ---------------------------------------------------------------------------------------
// Confidentiality: the URL (history, access logs) shows no form field
// ---------------------------------------------------------------------------------------

/// Every spelling under which a value could show in a URL: raw, percent-encoded (both
/// `%40` and `+` forms), and base64 at each of the 3 alignments in both alphabets, trimmed
/// to the characters that depend on the value alone.
fn spellings(value: &str) -> Vec<String> {
    let mut out = vec![
        value.to_owned(),
        value.replace('@', "%40"),
        value.replace('@', "%2540"),
        form_urlencoded::byte_serialize(value.as_bytes()).collect(),
    ];
    for encoded in [value.to_owned(), value.replace('@', "%40")] {
        for pad in 0..3 {
            let mut shifted = vec![0u8; pad];
            shifted.extend_from_slice(encoded.as_bytes());
            for engine in [&URL_SAFE_NO_PAD, &STANDARD_NO_PAD] {
                let enc = engine.encode(&shifted);
                let start = (pad * 8).div_ceil(6);
                let part = &enc[start..enc.len().saturating_sub(4).max(start)];
                // Shorter fragments match random text too often to mean anything.
                if part.len() >= 6 {
                    out.push(part.to_owned());
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn the_url_shows_neither_the_address_nor_its_base64() {
    let rec = Recorder::default();
    let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    for body in [
        "email=shopper@example.com",
        "email=shopper%40example.com",
        "product_id=3&email=shopper%40example.com&quantity=1",
    ] {
        // Many tokens: the AEAD nonce is random, so each lands at another alignment.
        for _ in 0..16 {
            let url = mint_url(&mut svc, body).await;
            let lower = url.to_ascii_lowercase();
            for needle in ["shopper@example.com", "shopper", "example.com"]
                .iter()
                .flat_map(|v| spellings(v))
            {
                assert!(
                    !url.contains(&needle) && !lower.contains(&needle.to_ascii_lowercase()),
                    "{needle:?} in {url}"
                );
            }
            // Nor any other part of the change: field names, route, return path.
            for part in ["email=", "/cart/add", "product_id", "quantity"] {
                for needle in spellings(part) {
                    assert!(!token_of(&url).contains(&needle), "{needle:?} in {url}");
                }
            }
        }
    }
    // The token is not an empty shell: it still carries the form to the app.
    let url = mint_url(&mut svc, "email=shopper%40example.com").await;
    let a = complete(&mut svc, &path_of(&url)).await;
    assert!(accepted(&a), "{} {}", a.status, a.body);
    if a.status == StatusCode::SEE_OTHER {
        assert_eq!(
            fields(&rec.seen().pop().unwrap().body),
            [("email".to_owned(), "shopper@example.com".to_owned())]
        );
    }
}

// ---------------------------------------------------------------------------------------
// Tampering with the token text in the URL: 400, never applied
// ---------------------------------------------------------------------------------------

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A table of tampered spellings of one genuine token: each is refused with 400 and never
/// reaches the app.
#[tokio::test]
async fn tampered_tokens_are_refused_through_the_layer() {
    let rec = Recorder::default();
    let layer = builder().build().unwrap();
    let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
    let good = token_of(&mint_url(&mut svc, "product_id=3&quantity=1").await);
    let n = good.len();
    let swap = |i: usize| {
        let mut b = good.clone().into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let other_key = {
        let mut other = service(
            &layer_with(Keyring::builder().signing("k1", [8u8; 32])),
            app(&Recorder::default(), StatusCode::OK, &[]),
        );
        token_of(&mint_url(&mut other, "product_id=3&quantity=1").await)
    };
    let unknown_id = {
        let mut other = service(
            &layer_with(Keyring::builder().signing("k9", [7u8; 32])),
            app(&Recorder::default(), StatusCode::OK, &[]),
        );
        token_of(&mint_url(&mut other, "product_id=3&quantity=1").await)
    };
    let rows: Vec<(&str, String)> = vec![
        ("version character", swap(0)),
        ("key id character", swap(3)),
        ("AEAD nonce character", swap(10)),
        ("ciphertext character", swap(n / 2)),
        ("tag character", swap(n - 2)),
        ("last character", swap(n - 1)),
        ("truncated by one", good[..n - 1].to_owned()),
        ("truncated by four", good[..n - 4].to_owned()),
        ("extended", format!("{good}AAAA")),
        ("padded", format!("{good}%3D")),
        ("standard alphabet", format!("{good}%2B")),
        ("space inside", format!("{}%20{}", &good[..8], &good[8..])),
        ("empty", String::new()),
        ("sealed with another key under the same id", other_key),
        ("sealed with an unknown key id", unknown_id),
        ("not base64", "%%%".into()),
        ("over the length cap", "A".repeat(8_000)),
    ];
    for (name, token) in rows {
        let a = complete(&mut svc, &handoff_with(&token)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{name}: {}", a.body);
        assert!(a.rejection.is_some(), "{name}");
        assert_eq!(a.header("location"), None, "{name}");
    }
    assert_eq!(rec.count(), 0, "a tampered token was applied");
    // Control: the genuine token still completes (refusals never use it up).
    assert!(accepted(&complete(&mut svc, &handoff_with(&good)).await));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any one character of a minted token replaced by any other base64url character: 400,
    /// never applied, whatever the position.
    #[test]
    fn any_changed_character_is_refused(body in "[a-z_]{1,8}=[a-z0-9]{0,16}", seed in any::<u64>()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let rec = Recorder::default();
            let mut svc = service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
            let good = token_of(&mint_url(&mut svc, &body).await);
            for i in 0..good.len() {
                let mut bad = good.clone().into_bytes();
                let pick = (seed as usize).wrapping_add(i * 7) % B64URL.len();
                bad[i] = if B64URL[pick] == bad[i] { B64URL[(pick + 1) % 64] } else { B64URL[pick] };
                let bad = String::from_utf8(bad).unwrap();
                let a = complete(&mut svc, &handoff_with(&bad)).await;
                assert_eq!(a.status, StatusCode::BAD_REQUEST, "position {i}: {}", a.body);
            }
            assert_eq!(rec.count(), 0);
        });
    }
}

// ---------------------------------------------------------------------------------------
// Time: expiry and clock skew, with an injected clock
// ---------------------------------------------------------------------------------------

/// Mint at T, complete at T + ttl - 1 (accepted) and at T + ttl (410 Gone); a token from a
/// clock running ahead by exactly the skew completes, one second more does not (400).
#[tokio::test]
async fn time_boundaries_through_the_layer() {
    const T: u64 = 1_800_000_000;
    // (name, completion time, status when refused)
    let rows: &[(&str, u64, Option<StatusCode>)] = &[
        ("at mint", T, None),
        ("last second", T + 119, None),
        ("at expiry", T + 120, Some(StatusCode::GONE)),
        ("long after expiry", T + 86_400, Some(StatusCode::GONE)),
        ("minter ahead by the skew", T - 30, None),
        (
            "minter ahead by skew + 1",
            T - 31,
            Some(StatusCode::BAD_REQUEST),
        ),
    ];
    for (name, at, refused) in rows {
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
        let handoff = path_of(&mint_url(&mut svc, "product_id=1&quantity=1").await);
        clock.store(*at, Ordering::SeqCst);
        let a = complete(&mut svc, &handoff).await;
        match refused {
            None => assert!(accepted(&a), "{name}: {} {}", a.status, a.body),
            Some(status) => {
                assert_eq!(a.status, *status, "{name}: {}", a.body);
                assert_eq!(rec.count(), 0, "{name}: applied");
                let r = a.rejection.expect("a rejection");
                assert!(
                    a.body.contains(&escape_html(r.reason())),
                    "{name}: {}",
                    a.body
                );
            }
        }
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('\'', "&#39;")
}

// ---------------------------------------------------------------------------------------
// Keys: rotation across instances built with rotated keyrings
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rotation_across_layers() {
    const K1: [u8; 32] = [1; 32];
    const K2: [u8; 32] = [2; 32];
    let before = || Keyring::builder().signing("k1", K1);
    let rotating = || Keyring::builder().signing("k2", K2).verifying("k1", K1);
    let after = || Keyring::builder().signing("k2", K2);
    let k1_reused = || {
        Keyring::builder()
            .signing("k2", K2)
            .verifying("k1", [9; 32])
    };
    // (name, minting keyring, completing keyring, accepted)
    let rows: Vec<(&str, KeyringBuilder, KeyringBuilder, bool)> = vec![
        ("same keys", before(), before(), true),
        ("old key still verifies", before(), rotating(), true),
        ("new key signs and verifies", rotating(), rotating(), true),
        ("new key on a rotated instance", rotating(), after(), true),
        ("old key removed", before(), after(), false),
        ("instance not yet rotated", rotating(), before(), false),
        ("id reused for another key", before(), k1_reused(), false),
    ];
    for (name, minting, completing, ok) in rows {
        let rec = Recorder::default();
        let mut a = service(&layer_with(minting), app(&rec, StatusCode::OK, &[]));
        let mut b = service(&layer_with(completing), app(&rec, StatusCode::OK, &[]));
        let url = mint_url(&mut a, "product_id=3&quantity=1").await;
        let done = complete(&mut b, &path_of(&url)).await;
        if ok {
            assert!(accepted(&done), "{name}: {} {}", done.status, done.body);
        } else {
            assert_eq!(
                done.status,
                StatusCode::BAD_REQUEST,
                "{name}: {}",
                done.body
            );
            assert_eq!(rec.count(), 0, "{name}: applied");
        }
    }
}

/// The environment form instances share (`k2:<base64>,k1:<base64>`) rotates the same way.
#[tokio::test]
async fn rotation_with_from_list() {
    let b64 = |k: [u8; 32]| base64::engine::general_purpose::STANDARD.encode(k);
    let old = Keyring::from_list(&format!("k1:{}", b64([1; 32]))).unwrap();
    let new = Keyring::from_list(&format!("k2:{},k1:{}", b64([2; 32]), b64([1; 32]))).unwrap();
    assert_eq!(new.signing_key_id(), "k2");
    let rec = Recorder::default();
    let mut a = service(&layer_with(old.into()), app(&rec, StatusCode::OK, &[]));
    let mut b = service(&layer_with(new.into()), app(&rec, StatusCode::OK, &[]));
    let from_old = mint_url(&mut a, "product_id=3").await;
    let from_new = mint_url(&mut b, "product_id=3").await;
    assert!(accepted(&complete(&mut b, &path_of(&from_old)).await));
    let refused = complete(&mut a, &path_of(&from_new)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
}
