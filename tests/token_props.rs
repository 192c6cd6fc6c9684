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

// ---------------------------------------------------------------------------------------
// Tokens from before the AEAD change (RustCrypto XChaCha20-Poly1305 until 0.1 of issue 23)
// ---------------------------------------------------------------------------------------

/// When the tokens below were minted (the layer's clock), with `builder()`'s keyring.
const OLD_AT: u64 = 1_800_000_000;

// Minted by the layer before the token's AEAD became HChaCha20 + ring's ChaCha20-Poly1305:
// `product_id=3&quantity=2` and a 2 KiB note (urlencoded), `product_id=3`, `size=M`
// (multipart), each a cookieless cache POST to `/cart/add`.
const OLD_URLENCODED: &str = concat!(
    "AgJrMSI82UU0_2Vsj1VegjTo2C3pU24XLuPAUD48mZbsVXWjvAfvoH6tetjdMwm9qnkVFjRZEIpoVYFFGZV-wQjJ",
    "Kj6q9zYEExGfnUY-RPFNgoQpRgNjs3OGC8HojyJjOw48Ns8a2SQ2OrjffudDMCCO1F2GntwDCh06gr1a4DZHzCv3",
    "FgHPbT67tk9QA4k",
);

const OLD_LONG: &str = concat!(
    "AgJrMebkpUXaqvVSY4al6Pj-b8Z48sxBwIHajCksDW82DrW_9ByX5hRqKB_pevFcVyKSv_wNGSY_wX6_O4AZtaTL",
    "2WyTaqNioujlQ5gn44ND6Xjac0qKEpkSJGIrqSBx-MnJn1cTtoGTB2XnF15x_faoeJyOnIMdMqS487_nZCEPYbWl",
    "cwb25uV4r4w_MHnEtkOvZrILj4pYeHEOJs_TOK8CNINw3qd41xVcC-hPPYelXXYXG3shVoHjgDXE0RzUQ8493QFn",
    "bFLbE7Gpd5NCZaEJggnkmN_0imFx4MtzoXTY8lZrMOICV7hOKt034KS3dt6T6FLObXN207Am6bHscjhQrCeyCNGs",
    "tZTl7-Ob2yft-KdwQ_drHTksGO8CvCDgfIDQZcyXggt4B8yxQO5SSj-eUHz9OuIh1AJwbdxZznlp6_dxs0cACSgS",
    "87AdB1fC_I93yBsLicP4jtRbeIjFnO2EG0N4_MJGGY1zHI0BTDcfUXTXLd4ldaUhkfhicGjHFz4umSi3QRvfs4L_",
    "rD-KpJpJ3E9OpcDDkIHTeBvXnumO6zzO_B3fW7smyYB3gpA-c85hm6AmcSo9Int2QKW9P-whdEODB8j_E3OG37uF",
    "y5vM6xQpbSwjlioMDw_ogzWpddGwChV-oubqMk5-_7HjRv3hbqT6fGO00vNuOlumhJz1XEXpaeyL7u-F3W99vp2U",
    "dxSkYNSudqakMHcFSwARmDD5lMoahGOhF9lJR6ZtIHJASDNxwX2-CEKIgD0Go3MiWeEgYrfXGHLWhgvGqLQ-a57Z",
    "sJRDFvyxJT2hVm9d6lyZ3Tdc5cGJKk6-mxIkZU7CAQ7P59s1Z1T4S15Y3U-JcjjJP2qBp9Twii2vb_i9ntn9gHn4",
    "OUlFiesNewrtqSe3poPgdTyECdUl7zre5Y2iHs-uNJr6zF0VL9pnnd3zzY4nl88nuVw1EeOYQDtb1URb5mCDixja",
    "tJCN0mA-21Af9wgb9l0L3beXbd7gKfWbqt3RGgSMrL071EBZ-7lgF1_Op_W_YhKF6WyXpa2T0RiM_hkGfZ-aMV08",
    "-QSbMlge09dz1XP7lcyS4ECUeB4YkotE8lqffW1wjVYCo3m8e_2_aOaezMv_wDHSWeyOcv5XMj6kycuH7FLt811-",
    "mOuc3SlLUhZ6ko8Nj9uvponod6-PCdt-Eyl30l7Mxh8M9I1GkiQg-2KvyJXelJ6p0c7ueFiStzsAwFxstnAzk3ip",
    "6a7ydeuRrIOlwM7wfMpl-ao8jpdUc6GYBH0SYG-EDgDsZnVz6iUbGVZZq016pgootwKUD1U3dIuYzuZEwPL2sL_5",
    "wUUF6SM2HKyNFv6hu2hIQHwHuiIYObo5jeTWszVF12CcVgWa6grWRwz7rfCaDAdh0Zs9UM6YTbiOD4msa-Ek-aD0",
    "nOWJfxuFctYlDiqsg4PnccTNw6Yavvz4xmBzQv2GaVSvIH25plDuIwk4bq0XygHLi-U6P95Ck2GZ_k1ts_NFIfyL",
    "lko_hRdDzrZhhtbMwAcJICpfjhEEUqsDyv69yDaIQK25kMT7C4nGJR27AzicjAa2wBZy8YLkaOfkOuJ0uyfnMN1w",
    "F2whrewdwUgdcp372mMcqGUfrOtE3XzvT5fgrQQXe8x2BfPMTTtsDnIxlTt9kClIXPmBbSsfiCvoGi2Vmb43MNkf",
    "LjFhpJjkVC0GdkQ0V-WrqenWHjIuF84TYMnlriDgec7ZFnwFWhiTgx4fz7Am_2qN5-gEtzEN1T1A3jxzlm8Na93_",
    "TI1_BbZAH7Oc3v7LaYi9jUdY8U8m_4KsV8N85dlnkyTUECfpar86L5z-uvyLu6ALMxbStze0lByl3AUNcIxAjdD8",
    "DZi1Ol5u7T85pbdMrC0cDA5t5b1W9n75NDheXuxWUL4AThrfAFkLxveSNnYPNDNck1E5McP5aKOykQT9rtuMgtp0",
    "PVPGFom0zM26e1ATgdZxNEa3lUWequjHVERpK6aIz7ZjZ08Pf95IW2naqCaJMRN65Cv7NqSsTGYyFh2dJQvPfBiW",
    "iJTorJraINW6nW02wGJlruKF8Q7KDlQnxdzrEgZ1tiAhA3vw9-pgLI8Hdo93Ob7boM8NLNOyCoQ4cz-j4s5lra7o",
    "ExhrcOxfScC7EJLaIv7ItCGeZWjLXuIsFcT8S2nx6p1G4qgYskoK7nHRh74TC0ThP6OmXZfOC211y1oOoZRqImR5",
    "YLURuSOWj_iI_PZZpRh10EGHpEsEMWxlobygTxMLgxdYrc1hI-RpVXqOh1eL0tLkI8tuRJkdl1YXE6sFt1n6IVvU",
    "Wm8LiVS-yaNaO4Pjv3eimwqUe0g9LTKmOpuqPFlsEcWB2oFmr4eNv7vUJ7EUZh7Lqmck78gO5GJ8Q5W855yu-4QI",
    "wMNTC2q3MYyb41uvwzIz-NwiDjMdPwZonAuF9GcygxTFzhV4rZgaeepNda81-6Kl7dq8VMASAWKJaqa4XzJmL5HZ",
    "ndAY6HnL6Urxhm3k_7NN_tuFlWrL9sFxEkCavXrNs4Nwsb_G5vp7GKc0muZk8ZAr1tuENKe_atekgdseJ326R6Cb",
    "CjDFU8ID0IkbCl-OXsPGw77pezhDdfgk4M_FSW9pLuwtkt38lSmcSfAHNZvG2pMvpI3m31Xj276uvjzU5cOmBZuv",
    "x1lCmMcwW1n4XiArWBAwMWfnsbYzreX8LiKg5-rW9gaessO2TJxPiNFOoWUhKK_EKMWNQGCv6772Q_PIOY0xG_KF",
    "YwH1LXx1ezfddsqJMXsB49IPGHI3XED8WXxy4Sj1hZLWAlPpiCnkyky_GOuFMHKrEJFpSJJvP_m1xv8BFqEuwqhi",
    "WpLgLlMt8V4C0aoFUVoMMCd6pn92oBxY4_8",
);

const OLD_MULTIPART: &str = concat!(
    "AgJrMemrLLRjeMrLs7tcExGVHR1JhXrMDhBDmPoPrQu92_dL02z-DX8EioUmCDFYh-sNZob-MXjVMmwBAXzXv3UU",
    "SCHf2psF9GMSeyLdBP-gkpmiTrdvLCbGGATtiZ8WpxaA-y65VwaKn1s4ArVNwmcRBHCrbCxnc_AsLxPSwlNyKojJ",
    "qnJq2UbKlw",
);

/// Format version 2 did not change: a token sealed by the old cipher opens, applies once and
/// delivers its form as minted.
#[tokio::test]
async fn tokens_sealed_before_the_cipher_change_still_open() {
    let pairs = |fields: &[(&str, &str)]| -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let note = "x".repeat(2000);
    // (token, the fields the app gets)
    let rows = [
        (
            OLD_URLENCODED,
            pairs(&[("product_id", "3"), ("quantity", "2")]),
        ),
        (OLD_LONG, pairs(&[("note", &note), ("product_id", "7")])),
        (OLD_MULTIPART, pairs(&[("product_id", "3"), ("size", "M")])),
    ];
    for (token, want) in rows {
        let layer = builder()
            .clock(|| UNIX_EPOCH + Duration::from_secs(OLD_AT + 1))
            .build()
            .unwrap();
        let rec = Recorder::default();
        let mut svc = service(&layer, app(&rec, StatusCode::OK, &[]));
        let a = complete(&mut svc, &handoff_with(token)).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let seen = rec.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].method.as_str(), seen[0].uri.as_str()),
            ("POST", "/cart/add")
        );
        assert_eq!(multipart_or_urlencoded(&seen[0]).await, want);
        // Single use still holds: a reload is redirected, not applied again.
        let again = complete(&mut svc, &handoff_with(token)).await;
        assert_eq!(again.status, StatusCode::SEE_OTHER);
        assert_eq!(rec.count(), 1);
    }
}

/// The form fields the app got, in either encoding.
async fn multipart_or_urlencoded(seen: &Seen) -> Vec<(String, String)> {
    let ct = seen.content_type.as_deref().unwrap_or("");
    let Ok(boundary) = multer::parse_boundary(ct) else {
        return fields(&seen.body);
    };
    let body = seen.body.clone();
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut m = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    while let Some(f) = m.next_field().await.unwrap() {
        let name = f.name().unwrap().to_owned();
        out.push((name, f.text().await.unwrap()));
    }
    out
}
