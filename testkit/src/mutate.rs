//! A byte mutator for the seeded fuzz tests (reliability's fuzz corpus, the TCP transport's
//! random-bytes test).

use fastrand::Rng;

/// `base` with 1–4 random edits: bit flips, byte overwrites, truncation, insertions, `0xff`
/// bytes (huge varint lengths), swaps, splices of a slice of `donor` (plausible structure in
/// the wrong place; skipped when `donor` is empty), small integer tweaks, appends.
pub fn mutate(rng: &mut Rng, base: &[u8], donor: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..=rng.usize(..4) {
        let len = v.len();
        match rng.usize(..9) {
            0 if len > 0 => v[rng.usize(..len)] ^= 1 << rng.u32(..8),
            1 if len > 0 => v[rng.usize(..len)] = rng.u8(..),
            2 => v.truncate(rng.usize(..=len)),
            3 => {
                let at = rng.usize(..=len);
                let extra: Vec<u8> = (0..rng.usize(1..=16)).map(|_| rng.u8(..)).collect();
                v.splice(at..at, extra);
            }
            4 if len > 0 => v[rng.usize(..len)] = 0xff,
            5 if len > 1 => v.swap(rng.usize(..len), rng.usize(..len)),
            6 if !donor.is_empty() => {
                let a = rng.usize(..donor.len());
                let b = rng.usize(a..=donor.len());
                let at = rng.usize(..=len);
                v.splice(at..at, donor[a..b].iter().copied());
            }
            7 if len > 0 => {
                // Varint fields off by one.
                let i = rng.usize(..len);
                v[i] = v[i].wrapping_add(if rng.bool() { 1 } else { 255 });
            }
            _ => v.extend((0..rng.usize(..8)).map(|_| rng.u8(..))),
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_mutations_and_they_change_the_input() {
        let base = b"a valid frame, more or less".to_vec();
        let (mut a, mut b) = (Rng::with_seed(3), Rng::with_seed(3));
        let mut changed = 0;
        for _ in 0..100 {
            let m = mutate(&mut a, &base, b"donor");
            assert_eq!(m, mutate(&mut b, &base, b"donor"));
            changed += usize::from(m != base);
        }
        assert!(changed > 90, "{changed} of 100 mutations changed the input");
        assert!(mutate(&mut a, &[], &[]).len() <= 4 * 16);
    }
}
