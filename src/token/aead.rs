//! The token's AEAD: XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03), byte for byte what
//! RustCrypto's `XChaCha20Poly1305` seals, computed as HChaCha20 then ChaCha20-Poly1305.
//!
//! # Why not `chacha20poly1305::XChaCha20Poly1305`
//!
//! XChaCha20-Poly1305 is, by definition, HChaCha20 over the key and the first 16 nonce bytes
//! (a 256-bit subkey), then IETF ChaCha20-Poly1305 (RFC 8439) under that subkey with the
//! 96-bit nonce `[0; 4] || nonce[16..24]`. The first step is one ChaCha block: RustCrypto's
//! `chacha20::hchacha` does it. The second step is where the time goes, and there ring's
//! `CHACHA20_POLY1305` (the AEAD of rustls, BoringSSL's assembly) is several times faster on
//! token-sized messages than RustCrypto's `poly1305`, which pays an AVX2 set-up on every short
//! message (a library cannot choose its soft backend for its users).
//!
//! Measured on the 2-core EPYC of issue 23, release, 300-byte message: RustCrypto
//! `XChaCha20Poly1305` 1 986–2 107 ns to seal (1 914–1 920 to open), this construction 406 ns,
//! one HMAC-SHA256 345 ns. `cargo bench --bench overhead` prints rows k / k' (in HMACs).
//!
//! Same format, same keys, same 192-bit random nonces (safe at any volume per key): every
//! token sealed before still opens. The unit tests hold the two byte-identical on random
//! keys, nonces, associated data and messages of 0 to 70 000 bytes.

use chacha20::cipher::array::Array;
use chacha20::{hchacha, Key, R20};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};

/// The key, in bytes.
pub(crate) const KEY_LEN: usize = 32;
/// The extended nonce, in bytes (random per token).
pub(crate) const NONCE_LEN: usize = 24;
/// The Poly1305 tag, in bytes.
pub(crate) const TAG_LEN: usize = 16;

/// The seal or open did not succeed: a wrong tag (tampered, another key, other associated
/// data), or a message longer than ChaCha20's 256 GiB (never a token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AeadError;

/// Encrypts `in_out` in place under `key` and `nonce`, authenticating `aad` too; returns the
/// tag. A `nonce` must never be used twice with one key.
pub(crate) fn seal(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    in_out: &mut [u8],
) -> Result<[u8; TAG_LEN], AeadError> {
    let (subkey, nonce) = subkey(key, nonce)?;
    let tag = subkey
        .seal_in_place_separate_tag(nonce, Aad::from(aad), in_out)
        .map_err(|_| AeadError)?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    Ok(out)
}

/// Checks `tag` over `aad` and the ciphertext `in_out` (in constant time), then decrypts
/// `in_out` in place. On an error `in_out` holds no plaintext worth reading.
pub(crate) fn open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    in_out: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), AeadError> {
    let (subkey, nonce) = subkey(key, nonce)?;
    subkey
        .open_in_place_separate_tag(nonce, Aad::from(aad), Tag::from(*tag), in_out, 0..)
        .map(|_| ())
        .map_err(|_| AeadError)
}

/// HChaCha20 of `key` and the first 16 bytes of `nonce`, as a ChaCha20-Poly1305 key, with
/// the 96-bit nonce that goes with it: four zero bytes, then the last 8 of `nonce`.
fn subkey(key: &[u8; KEY_LEN], nonce: &[u8; NONCE_LEN]) -> Result<(LessSafeKey, Nonce), AeadError> {
    let mut head = [0u8; 16];
    head.copy_from_slice(&nonce[..16]);
    let sub = hchacha::<R20>(&Key::from(*key), &Array::from(head));
    let mut short = [0u8; 12];
    short[4..].copy_from_slice(&nonce[16..]);
    let sealing = UnboundKey::new(&CHACHA20_POLY1305, &sub).map_err(|_| AeadError)?;
    Ok((
        LessSafeKey::new(sealing),
        Nonce::assume_unique_for_key(short),
    ))
}

#[cfg(test)]
mod tests;
