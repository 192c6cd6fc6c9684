//! `HandoffToken::open` on arbitrary input never panics and never accepts a forgery; a
//! correctly signed but arbitrary payload either parses into a token that re-seals to the
//! very same text (one token, one spelling) or is refused.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use tower_amp_session::{
    HandoffToken, Keyring, TokenError, MAX_TARGET_LEN, MAX_TOKEN_LEN, TOKEN_VERSION,
};

const KEY: [u8; 32] = [7; 32];
/// src/keyring.rs `PURPOSE`; the MAC is HMAC(key, len || purpose || signed bytes).
const PURPOSE: &[u8] = b"tower-amp-session/handoff/v1";

static KEYRING: LazyLock<Keyring> = LazyLock::new(|| {
    Keyring::builder()
        .signing("k1", KEY)
        .verifying("k0", [8u8; 32])
        .build()
        .unwrap()
});

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    /// Any text as the token, at any time.
    Text { text: &'a [u8], now: u64, skew: u16 },
    /// `version | "k1" | rest`, with a valid MAC: the parser behind the MAC.
    Signed { version: u8, rest: &'a [u8] },
}

fn sign(signed: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&KEY).unwrap();
    m.update(&[PURPOSE.len() as u8]);
    m.update(PURPOSE);
    m.update(signed);
    let mut raw = signed.to_vec();
    raw.extend_from_slice(&m.finalize().into_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Text { text, now, skew } => {
        let text = String::from_utf8_lossy(text);
        if let Ok(t) = HandoffToken::open(&KEYRING, &text, now, u64::from(skew)) {
            panic!("accepted a token nobody signed: {t:?}");
        }
    }
    Input::Signed { version, rest } => {
        let mut signed = vec![version, 2, b'k', b'1'];
        signed.extend_from_slice(rest);
        let text = sign(&signed);
        // Open at the issue time the payload names, so the time checks do not hide the parser.
        let issued = rest
            .get(..8)
            .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()));
        match HandoffToken::open(&KEYRING, &text, issued, 0) {
            Ok(t) => {
                assert_eq!(version, TOKEN_VERSION);
                assert_eq!(t.key_id, "k1");
                match HandoffToken::seal(&KEYRING, &t.change, t.issued_at, t.expires_at, t.nonce) {
                    Ok(again) => assert_eq!(again, text, "a second spelling of one token"),
                    // `open` reads fields up to their u8/u16 framing; `seal` caps them lower.
                    // Only a key holder can sign such a token, so refusing to re-seal is fine.
                    Err(TokenError::TooLarge) => assert!(
                        t.change.method.as_str().len() > 16
                            || t.change.target.len() > MAX_TARGET_LEN
                            || t.change.return_path.len() > MAX_TARGET_LEN
                    ),
                    Err(e) => panic!("re-seal failed: {e:?}"),
                }
            }
            Err(TokenError::TooLarge) => assert!(text.len() > MAX_TOKEN_LEN),
            Err(
                TokenError::Malformed
                | TokenError::UnsupportedVersion
                | TokenError::Expired
                | TokenError::IssuedInFuture,
            ) => {}
            Err(e) => panic!("a correctly signed token refused as {e:?}"),
        }
    }
});
