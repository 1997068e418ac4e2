//! A tiny seeded PRNG (xorshift64*) and a byte mutator: deterministic, dependency-free, enough
//! to pick faults and mutations. Not for anything cryptographic.

/// xorshift64*.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1) ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// Picks one element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Mutates `base` with 1–4 random edits: bit flips, byte overwrites, truncation,
    /// insertions, `0xff` bytes (huge varint lengths), swaps, splices from `donor`, appends.
    pub fn mutate(&mut self, base: &[u8], donor: &[u8]) -> Vec<u8> {
        let mut v = base.to_vec();
        for _ in 0..=self.below(4) {
            match self.below(9) {
                0 if !v.is_empty() => {
                    let i = self.below(v.len());
                    v[i] ^= 1 << self.below(8);
                }
                1 if !v.is_empty() => {
                    let i = self.below(v.len());
                    v[i] = self.next_u64() as u8;
                }
                2 => v.truncate(self.below(v.len() + 1)),
                3 => {
                    let i = self.below(v.len() + 1);
                    let n = self.below(16) + 1;
                    let extra = self.bytes(n);
                    v.splice(i..i, extra);
                }
                4 if !v.is_empty() => {
                    let i = self.below(v.len());
                    v[i] = 0xff;
                }
                5 if v.len() > 1 => {
                    let i = self.below(v.len());
                    let j = self.below(v.len());
                    v.swap(i, j);
                }
                6 if !donor.is_empty() => {
                    // Splice a slice of another valid input in: plausible structure, wrong place.
                    let a = self.below(donor.len());
                    let b = a + self.below(donor.len() - a + 1);
                    let at = self.below(v.len() + 1);
                    v.splice(at..at, donor[a..b].iter().copied());
                }
                7 if !v.is_empty() => {
                    // Small integer tweaks: varint fields off by one.
                    let i = self.below(v.len());
                    v[i] = v[i].wrapping_add(if self.one_in(2) { 1 } else { 255 });
                }
                _ => {
                    let n = self.below(8);
                    let extra = self.bytes(n);
                    v.extend(extra);
                }
            }
        }
        v
    }
}
