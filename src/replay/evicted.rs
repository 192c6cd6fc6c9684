//! What a full [`MemoryReplayGuard`](super::MemoryReplayGuard) forgot: the nonces it evicted,
//! kept compactly in Bloom filters grouped by expiry second until they expire.
//!
//! A Bloom filter has no false negatives, so an evicted nonce is always found again (a
//! replay is refused); an unseen nonce is found by mistake at the filter's false-positive
//! rate. Filters are grouped by the nonce's expiry second, which the token carries under
//! its MAC, so a lookup tests only the filters of one second: the false-positive rate does
//! not add up over the whole history.

use std::collections::BTreeMap;

/// Bits per evicted nonce; with [`HASHES`] probes the false-positive rate is about 0.82 %.
pub(super) const BITS_PER_NONCE: usize = 10;
/// Probes per nonce: `ln 2 × bits per nonce`, rounded.
const HASHES: u32 = 7;

/// One Bloom filter, sized for the nonces of one expiry second evicted in one pass.
struct Filter {
    bits: Box<[u64]>,
    /// How many nonces it holds.
    count: usize,
}

impl Filter {
    fn with_room_for(n: usize) -> Self {
        let words = (n * BITS_PER_NONCE).div_ceil(64).max(1);
        Filter {
            bits: vec![0u64; words].into_boxed_slice(),
            count: n,
        }
    }

    fn len_bits(&self) -> u64 {
        self.bits.len() as u64 * 64
    }

    fn insert(&mut self, (h1, h2): (u64, u64)) {
        let m = self.len_bits();
        for i in 0..u64::from(HASHES) {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % m;
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    fn may_contain(&self, (h1, h2): (u64, u64)) -> bool {
        let m = self.len_bits();
        (0..u64::from(HASHES)).all(|i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % m;
            self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }

    fn bytes(&self) -> usize {
        self.bits.len() * 8 + std::mem::size_of::<Self>()
    }
}

/// The evicted nonces, by expiry second (relative to the guard's base).
pub(super) struct Evicted {
    by_expiry: BTreeMap<u32, Vec<Filter>>,
    seed: u64,
    bytes: usize,
    nonces: usize,
}

impl Evicted {
    pub(super) fn new(seed: u64) -> Self {
        Evicted {
            by_expiry: BTreeMap::new(),
            seed,
            bytes: 0,
            nonces: 0,
        }
    }

    /// Two independent 64-bit hashes of the nonce, mixed with the guard's seed (nonces are
    /// random already; the seed keeps a caller of the trait from aiming at chosen bits).
    fn hashes(&self, nonce: &[u8; 16]) -> (u64, u64) {
        let (lo, hi) = nonce.split_at(8);
        let lo = u64::from_le_bytes(lo.try_into().unwrap_or_default());
        let hi = u64::from_le_bytes(hi.try_into().unwrap_or_default());
        let h1 = mix(lo ^ self.seed, hi);
        let h2 = mix(hi ^ self.seed.rotate_left(32), lo) | 1;
        (h1, h2)
    }

    /// Remembers `nonces`, all expiring at `second`, in one new filter sized for them.
    pub(super) fn add(&mut self, second: u32, nonces: &[[u8; 16]]) {
        if nonces.is_empty() {
            return;
        }
        let mut filter = Filter::with_room_for(nonces.len());
        for n in nonces {
            filter.insert(self.hashes(n));
        }
        self.bytes += filter.bytes();
        self.nonces += nonces.len();
        let filters = self.by_expiry.entry(second).or_default();
        if filters.is_empty() {
            self.bytes += PER_SECOND;
        }
        filters.push(filter);
    }

    /// Whether a nonce expiring at `second` may have been evicted.
    pub(super) fn may_contain(&self, second: u32, nonce: &[u8; 16]) -> bool {
        match self.by_expiry.get(&second) {
            None => false,
            Some(filters) => {
                let h = self.hashes(nonce);
                filters.iter().any(|f| f.may_contain(h))
            }
        }
    }

    /// Whether any nonce expiring at `second` was evicted (then a lookup is needed).
    pub(super) fn has_second(&self, second: u32) -> bool {
        !self.by_expiry.is_empty() && self.by_expiry.contains_key(&second)
    }

    /// Forgets the filters of every second up to `up_to` (their tokens have expired).
    pub(super) fn drop_up_to(&mut self, up_to: u32) {
        while self
            .by_expiry
            .first_key_value()
            .is_some_and(|(s, _)| *s <= up_to)
        {
            if let Some((_, filters)) = self.by_expiry.pop_first() {
                self.forget(filters);
            }
        }
    }

    /// Forgets the soonest-expiring second; returns it (the caller then refuses every nonce
    /// expiring at or before it, since their filters are gone).
    pub(super) fn drop_soonest(&mut self) -> Option<u32> {
        let (second, filters) = self.by_expiry.pop_first()?;
        self.forget(filters);
        Some(second)
    }

    fn forget(&mut self, filters: Vec<Filter>) {
        self.bytes -= PER_SECOND + filters.iter().map(Filter::bytes).sum::<usize>();
        self.nonces -= filters.iter().map(|f| f.count).sum::<usize>();
    }

    /// Bytes held by the filters (with their bookkeeping).
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many evicted nonces are remembered.
    pub(super) fn nonces(&self) -> usize {
        self.nonces
    }
}

/// Bookkeeping per expiry second that holds filters: a B-tree slot and the `Vec`.
const PER_SECOND: usize = std::mem::size_of::<(u32, Vec<Filter>)>() + 8;

/// A 64-bit finalizer (murmur3's `fmix64`) of `a` after folding in `b`.
fn mix(a: u64, b: u64) -> u64 {
    let mut x = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce(i: u64) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&mix(i, 1).to_le_bytes());
        b[8..].copy_from_slice(&mix(i, 2).to_le_bytes());
        b
    }

    /// Every evicted nonce is found again (no false negatives), at every batch size.
    #[test]
    fn evicted_nonces_are_always_found() {
        for n in [1usize, 2, 7, 64, 1000, 20_000] {
            let mut e = Evicted::new(42);
            let batch: Vec<_> = (0..n as u64).map(nonce).collect();
            e.add(10, &batch);
            assert!(batch.iter().all(|b| e.may_contain(10, b)), "batch of {n}");
            // Another second is not looked at.
            assert!(!e.may_contain(11, &batch[0]));
        }
    }

    /// Unseen nonces of a second with evictions are found at about the designed rate.
    #[test]
    fn false_positive_rate_is_about_one_percent() {
        let mut e = Evicted::new(7);
        let batch: Vec<_> = (0..50_000).map(nonce).collect();
        e.add(3, &batch);
        let tries = 200_000u64;
        let hits = (1_000_000..1_000_000 + tries)
            .filter(|&i| e.may_contain(3, &nonce(i)))
            .count();
        let rate = hits as f64 / tries as f64;
        assert!(rate < 0.012, "false-positive rate {rate}");
        let per_nonce = e.bytes() as f64 / e.nonces() as f64;
        assert!(per_nonce < 1.3, "{per_nonce} bytes per nonce");
    }

    #[test]
    fn expired_seconds_are_dropped_with_their_bytes() {
        let mut e = Evicted::new(1);
        e.add(5, &[nonce(1)]);
        e.add(6, &[nonce(2)]);
        e.add(6, &[nonce(3)]);
        e.drop_up_to(5);
        assert!(!e.has_second(5));
        assert!(e.may_contain(6, &nonce(2)) && e.may_contain(6, &nonce(3)));
        assert_eq!(e.drop_soonest(), Some(6));
        assert_eq!(e.bytes(), 0);
        assert_eq!(e.drop_soonest(), None);
    }
}
