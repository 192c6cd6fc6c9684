//! HChaCha20 + ring's ChaCha20-Poly1305 against RustCrypto's `XChaCha20Poly1305`, the
//! construction tokens were sealed with before: the draft's test vector, then 10 000 random
//! cases (random key, 24-byte nonce, associated data, messages of 0 to 70 000 bytes, most of
//! them token-sized), each sealed and opened both ways and tampered with.

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{KeyInit, Tag as RefTag, XChaCha20Poly1305, XNonce};
use data_encoding::HEXLOWER;
use proptest::prelude::*;

use super::*;

fn reference_seal(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    msg: &[u8],
) -> (Vec<u8>, [u8; TAG_LEN]) {
    let mut ct = msg.to_vec();
    let tag = XChaCha20Poly1305::new(&(*key).into())
        .encrypt_inout_detached(&XNonce::from(*nonce), aad, ct.as_mut_slice().into())
        .expect("any length here");
    (ct, tag.into())
}

fn reference_open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ct: &[u8],
    tag: &[u8; TAG_LEN],
) -> Option<Vec<u8>> {
    let mut pt = ct.to_vec();
    XChaCha20Poly1305::new(&(*key).into())
        .decrypt_inout_detached(
            &XNonce::from(*nonce),
            aad,
            pt.as_mut_slice().into(),
            &RefTag::from(*tag),
        )
        .ok()
        .map(|()| pt)
}

fn ours_open(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ct: &[u8],
    tag: &[u8; TAG_LEN],
) -> Option<Vec<u8>> {
    let mut pt = ct.to_vec();
    open(key, nonce, aad, &mut pt, tag).ok().map(|()| pt)
}

fn hex(s: &str) -> Vec<u8> {
    HEXLOWER.decode(s.as_bytes()).expect("hex")
}

/// draft-irtf-cfrg-xchacha-03, appendix A.3.1.
#[test]
fn draft_test_vector() {
    let key: [u8; 32] = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
        .try_into()
        .unwrap();
    let nonce: [u8; 24] = hex("404142434445464748494a4b4c4d4e4f5051525354555657")
        .try_into()
        .unwrap();
    let aad = hex("50515253c0c1c2c3c4c5c6c7");
    let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip \
                  for the future, sunscreen would be it.";
    let ct = hex(
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa644\
         0bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e\
         3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e",
    );
    let tag: [u8; 16] = hex("c0875924c1c7987947deafd8780acf49").try_into().unwrap();

    let mut buf = plain.to_vec();
    assert_eq!(seal(&key, &nonce, &aad, &mut buf), Ok(tag));
    assert_eq!(buf, ct);
    assert_eq!(
        ours_open(&key, &nonce, &aad, &ct, &tag).as_deref(),
        Some(&plain[..])
    );
}

/// Message lengths: mostly token-sized, some up to a few KiB, a few up to 70 000 bytes; and
/// the lengths where ChaCha blocks (64) and Poly1305 blocks (16) start and end.
fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0..=400usize,
        3 => 401..=8_192usize,
        1 => 8_193..=70_000usize,
        1 => prop::sample::select(vec![0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255, 256, 70_000]),
    ]
}

/// Which part of a sealed message a tampering changes.
#[derive(Debug, Clone, Copy)]
enum Part {
    Ciphertext,
    Tag,
    Aad,
    Nonce,
    Key,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn byte_identical_to_rustcrypto(
        key in any::<[u8; KEY_LEN]>(),
        nonce in any::<[u8; NONCE_LEN]>(),
        aad in prop::collection::vec(any::<u8>(), 0..80),
        len in length(),
        fill in any::<[u8; 32]>(),
        part in prop::sample::select(vec![Part::Ciphertext, Part::Tag, Part::Aad, Part::Nonce, Part::Key]),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        // Random message bytes from a keystream: generating 70 000 values one by one would
        // dominate an unoptimized test build.
        let mut msg = vec![0u8; len];
        chacha20::ChaCha20::new(&fill.into(), &[0u8; 12].into()).apply_keystream(&mut msg);

        let (want_ct, want_tag) = reference_seal(&key, &nonce, &aad, &msg);
        let mut ct = msg.clone();
        let tag = seal(&key, &nonce, &aad, &mut ct).unwrap();
        prop_assert_eq!(&ct, &want_ct);
        prop_assert_eq!(tag, want_tag);
        // Each opens the other's.
        prop_assert_eq!(ours_open(&key, &nonce, &aad, &want_ct, &want_tag), Some(msg.clone()));
        prop_assert_eq!(reference_open(&key, &nonce, &aad, &ct, &tag), Some(msg.clone()));

        // One bit changed anywhere: both refuse. (An empty ciphertext or associated data
        // has no bit to change; the tag is changed instead.)
        let (mut key2, mut nonce2, mut aad2, mut ct2, mut tag2) = (key, nonce, aad.clone(), ct.clone(), tag);
        let flip = |bytes: &mut [u8]| {
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
        };
        match part {
            Part::Ciphertext if !ct2.is_empty() => flip(&mut ct2),
            Part::Aad if !aad2.is_empty() => flip(&mut aad2),
            Part::Nonce => flip(&mut nonce2),
            Part::Key => flip(&mut key2),
            _ => flip(&mut tag2),
        }
        prop_assert_eq!(ours_open(&key2, &nonce2, &aad2, &ct2, &tag2), None, "{:?}", part);
        prop_assert_eq!(reference_open(&key2, &nonce2, &aad2, &ct2, &tag2), None, "{:?}", part);
    }
}
