//! Arbitrary token text on the handoff URL, through the whole layer: never a panic, never a
//! 5xx, never the app, always `400`. Only the layer seals tokens (the format is private), so
//! any text it did not mint is refused: nobody can forge one. Half the inputs start with a
//! well-formed clear header (version 2, a key id of the keyring) so the fuzzer reaches the
//! AEAD check. The sealed-payload half of this property (a correctly sealed arbitrary
//! plaintext parses into a canonical token or is refused) needs the private format and is a
//! unit test: src/token/tests.rs, `sealed_arbitrary_payloads`.
#![no_main]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use tower_amp_session::{AmpSessionLayer, Keyring, Rejection, RequestBody};

const NOW: u64 = 1_800_000_000;

static CALLS: AtomicUsize = AtomicUsize::new(0);

struct World {
    layer: AmpSessionLayer,
    rt: tokio::runtime::Runtime,
}

static WORLD: LazyLock<World> = LazyLock::new(|| World {
    layer: AmpSessionLayer::builder()
        .publisher_origin("https://shop.example")
        .keyring(
            Keyring::builder()
                .signing("k1", [7u8; 32])
                .verifying("k0", [8u8; 32]),
        )
        .clock(|| UNIX_EPOCH + Duration::from_secs(NOW))
        .build()
        .unwrap(),
    rt: tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap(),
});

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    /// Any text as the token.
    Text(&'a [u8]),
    /// Version 2 and key id `k1` or `k0` in clear, then arbitrary bytes, as base64url.
    Framed { k0: bool, rest: &'a [u8] },
}

fuzz_target!(|input: Input<'_>| {
    let text = match input {
        Input::Text(b) => String::from_utf8_lossy(b).into_owned(),
        Input::Framed { k0, rest } => {
            let mut raw = vec![2, 2, b'k', if k0 { b'0' } else { b'1' }];
            raw.extend_from_slice(rest);
            URL_SAFE_NO_PAD.encode(raw)
        }
    };
    let token: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
    let Ok(req) = Request::get(format!("/_amp/handoff?token={token}"))
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .body(Full::new(Bytes::new()))
    else {
        return;
    };
    let app = tower::service_fn(|_: Request<RequestBody<Full<Bytes>>>| async {
        CALLS.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let svc = tower::Layer::layer(&WORLD.layer, app);
    let (status, rejection) = WORLD.rt.block_on(async move {
        let res = svc.oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let _ = body.collect().await.unwrap();
        (parts.status, parts.extensions.get::<Rejection>().copied())
    });
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "accepted a token nobody sealed: {text:?}"
    );
    assert!(rejection.is_some());
    assert_eq!(CALLS.load(Ordering::SeqCst), 0, "the app was called");
});
