//! The token's AEAD as the crate computes it (src/token/aead.rs): HChaCha20 for the subkey,
//! then ring's ChaCha20-Poly1305 on the nonce's last 8 bytes. Written out here for rows k / k'
//! and the ideal handoff rows; `check_stacks` opens tokens the crate sealed with it, so it
//! cannot drift from the crate's.

use chacha20::cipher::array::Array;
use chacha20::{hchacha, Key, R20};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};

fn subkey(key: &[u8; 32], nonce: &[u8; 24]) -> (LessSafeKey, Nonce) {
    let mut head = [0u8; 16];
    head.copy_from_slice(&nonce[..16]);
    let sub = hchacha::<R20>(&Key::from(*key), &Array::from(head));
    let mut short = [0u8; 12];
    short[4..].copy_from_slice(&nonce[16..]);
    let key = UnboundKey::new(&CHACHA20_POLY1305, &sub).expect("32-byte key");
    (LessSafeKey::new(key), Nonce::assume_unique_for_key(short))
}

/// Encrypts `buf` in place; the tag.
pub fn seal(key: &[u8; 32], nonce: &[u8; 24], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
    let (k, n) = subkey(key, nonce);
    let tag = k
        .seal_in_place_separate_tag(n, Aad::from(aad), buf)
        .expect("token-sized");
    let mut out = [0u8; 16];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Decrypts `buf` in place when `tag` is right.
pub fn open(key: &[u8; 32], nonce: &[u8; 24], aad: &[u8], buf: &mut [u8], tag: &[u8; 16]) -> bool {
    let (k, n) = subkey(key, nonce);
    k.open_in_place_separate_tag(n, Aad::from(aad), Tag::from(*tag), buf, 0..)
        .is_ok()
}
