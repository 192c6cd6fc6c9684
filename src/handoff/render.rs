//! The confirmation page's authenticated render time: the form carries when the page was
//! rendered, under a MAC bound to the token's nonce, so the POST can tell how long the page
//! was shown (a double-click lure's second click comes within a fraction of a second).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::Config;

/// The form field that carries `<unix ms>.<MAC>`.
pub(crate) const RENDER_FIELD: &str = "amp_render";

/// Why a confirmation POST is answered with the page again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RenderRefusal {
    /// No render field, or one that is malformed, forged or for another token.
    Missing,
    /// Sooner than the confirmation delay after the render.
    TooSoon,
    /// Rendered longer ago than a token lives.
    TooOld,
}

fn mac(key: &[u8; 32], nonce: &[u8; 16], ms: u64) -> Hmac<Sha256> {
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    m.update(nonce);
    m.update(&ms.to_be_bytes());
    m
}

/// The field's value for a page rendered at `ms` (Unix milliseconds).
pub(crate) fn render_value(config: &Config, nonce: &[u8; 16], ms: u64) -> String {
    let tag = mac(&config.keyring.signer().render, nonce, ms).finalize();
    format!("{ms}.{}", URL_SAFE_NO_PAD.encode(tag.into_bytes()))
}

/// Checks the render field of a confirmation POST against the token's nonce and the clock.
pub(super) fn check_render(
    config: &Config,
    nonce: &[u8; 16],
    value: Option<&str>,
) -> Result<(), RenderRefusal> {
    let (ms, tag) = value
        .and_then(|v| v.split_once('.'))
        .ok_or(RenderRefusal::Missing)?;
    if ms.is_empty() || ms.len() > 15 || !ms.bytes().all(|b| b.is_ascii_digit()) || tag.len() != 43
    {
        return Err(RenderRefusal::Missing);
    }
    let ms: u64 = ms.parse().map_err(|_| RenderRefusal::Missing)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| RenderRefusal::Missing)?;
    // Constant-time comparison of the tag.
    mac(&config.keyring.signer().render, nonce, ms)
        .verify_slice(&tag)
        .map_err(|_| RenderRefusal::Missing)?;
    let now = config.now_ms();
    // A render "in the future" (clocks of two instances) counts as just rendered.
    if now < ms.saturating_add(config.confirmation_delay_ms) {
        return Err(RenderRefusal::TooSoon);
    }
    let life_ms = config
        .handoff_ttl
        .saturating_add(config.clock_skew)
        .saturating_mul(1000);
    if now - ms > life_ms {
        return Err(RenderRefusal::TooOld);
    }
    Ok(())
}
