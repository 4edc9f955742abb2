//! The store fast path's overlay mask (`pt_deny`, hyp arch/fast_path.rs)
//! under virtual POE, and a small cache of it per POR_EL1 value.
//!
//! The mask depends on POR_EL1, POR_EL0 and TCR2_EL1 only: it holds the
//! SCTLR_EL1.WXN = 0 and 1 variants side by side (the assembly picks by the
//! live bit), and with S1PIE it assumes every PIR entry applies the overlay
//! with WXN (a superset; PIR_EL1/PIRE0_EL1 are not inputs). A kpkeys kernel
//! toggles POR_EL1 between two values around every guarded write; the
//! assembly completes those writes itself, and without the cache the first
//! table store after each one found the mask stale and took the Rust path.
//! Rust fills the cache when it computes a mask; the assembly only looks
//! the new value up (vectors.S `vpoe_changed`). Entries are valid for one
//! (POR_EL0, TCR2_EL1) pair: any other pair empties the cache first, so a
//! hit is always the mask [`deny_bytes`] would compute for the registers
//! now in force.
use super::overlay::{write_deny_mask, OverlayRegs, Privilege};

/// A mask that says "every POIndex may deny": stores walk and go to Rust
/// (what the assembly leaves after a POR_EL1 change the cache misses).
pub const DENY_STALE: u64 = 0xffff_ffff;

/// `pt_deny` for virtual POE's registers: POIndex values through which a
/// privileged (bytes 0, 1) or unprivileged (bytes 2, 3) write could be
/// denied, without and with WXN.
pub fn deny_bytes(por_el1: u64, por_el0: u64, tcr2: u64) -> u64 {
    let mask = |p, wxn| {
        let r = OverlayRegs { por_el1, por_el0, tcr2_el1: tcr2, pir_el1: 0, pire0_el1: 0, wxn };
        write_deny_mask(&r, p) as u64
    };
    let (p, u) = (Privilege::Privileged, Privilege::Unprivileged);
    mask(p, false) | mask(p, true) << 8 | mask(u, false) << 16 | mask(u, true) << 24
}

/// Entries in [`DenyCache`] (vectors.S compares with each in turn).
pub const DENY_CACHE_ENTRIES: usize = 2;

/// (POR_EL1 value, its mask) pairs, most recently computed first, for one
/// (POR_EL0, TCR2_EL1). An unused entry's mask is [`DENY_STALE`], so a
/// lookup that matches it is a miss either way (no valid flag to check).
/// Layout shared with vectors.S (the hyp embeds it in its FastPath block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct DenyCache {
    pub entries: [(u64, u64); DENY_CACHE_ENTRIES],
    /// The (POR_EL0, TCR2_EL1) the entries were computed with.
    inputs: (u64, u64),
}

impl DenyCache {
    pub const EMPTY: Self = Self { entries: [(0, DENY_STALE); DENY_CACHE_ENTRIES], inputs: (0, 0) };

    /// What the assembly does: the mask cached for `por_el1`, else
    /// [`DENY_STALE`].
    pub fn lookup(&self, por_el1: u64) -> u64 {
        self.entries.iter().find(|e| e.0 == por_el1).map_or(DENY_STALE, |e| e.1)
    }

    /// The mask for these registers, from the cache or computed and cached
    /// (the entry it replaces is the least recently computed).
    pub fn get(&mut self, por_el1: u64, por_el0: u64, tcr2: u64) -> u64 {
        if self.inputs != (por_el0, tcr2) {
            *self = Self { inputs: (por_el0, tcr2), ..Self::EMPTY };
        }
        let hit = self.lookup(por_el1);
        if hit != DENY_STALE {
            return hit;
        }
        let mask = deny_bytes(por_el1, por_el0, tcr2);
        self.entries.copy_within(..DENY_CACHE_ENTRIES - 1, 1);
        self.entries[0] = (por_el1, mask);
        mask
    }
}

impl Default for DenyCache {
    fn default() -> Self {
        Self::EMPTY
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s1::overlay::{TCR2_E0POE, TCR2_PIE, TCR2_POE};

    const POE: u64 = TCR2_POE | TCR2_E0POE;
    // kpkeys: pkey 0 RW (kernel data), 1 R (tables) / RW (raised).
    const DEFAULT: u64 = 0x17;
    const RAISED: u64 = 0x57;

    #[test]
    fn kpkeys_default_denies_pkey_1_and_the_raise_nothing() {
        assert_eq!(deny_bytes(DEFAULT, u64::MAX, TCR2_POE) & 0xff, 0xfe);
        assert_eq!(deny_bytes(RAISED, u64::MAX, TCR2_POE) & 0xff, 0xfc);
        assert_eq!(deny_bytes(RAISED, 0, 0), 0, "overlays off: nothing denies");
    }

    #[test]
    fn toggling_between_two_values_hits_after_both_were_computed() {
        let mut c = DenyCache::EMPTY;
        assert_eq!(c.lookup(DEFAULT), DENY_STALE);
        let d = c.get(DEFAULT, 0, POE);
        assert_eq!(c.lookup(RAISED), DENY_STALE, "not computed yet");
        let r = c.get(RAISED, 0, POE);
        for _ in 0..3 {
            assert_eq!(c.lookup(DEFAULT), d);
            assert_eq!(c.lookup(RAISED), r);
        }
        assert_ne!(d, r);
    }

    #[test]
    fn a_third_value_evicts_the_least_recent() {
        let mut c = DenyCache::EMPTY;
        c.get(DEFAULT, 0, POE);
        c.get(RAISED, 0, POE);
        c.get(0x77, 0, POE);
        assert_eq!(c.lookup(DEFAULT), DENY_STALE);
        assert_eq!(c.lookup(RAISED), deny_bytes(RAISED, 0, POE));
        assert_eq!(c.lookup(0x77), deny_bytes(0x77, 0, POE));
    }

    #[test]
    fn other_tcr2_or_por_el0_empties_it() {
        let mut c = DenyCache::EMPTY;
        c.get(DEFAULT, 0, POE);
        c.get(RAISED, 0, POE);
        for (el0, tcr2) in [(0, POE | TCR2_PIE), (0, TCR2_E0POE), (0x7, POE)] {
            let mut d = c;
            assert_eq!(d.get(DEFAULT, el0, tcr2), deny_bytes(DEFAULT, el0, tcr2));
            assert_eq!(d.lookup(RAISED), DENY_STALE, "computed for other inputs");
        }
    }

    #[test]
    fn stale_entry_for_value_zero_is_a_miss() {
        // POR_EL1 = 0 is a real value; the empty entries' key is 0 too.
        let c = DenyCache::EMPTY;
        assert_eq!(c.lookup(0), DENY_STALE);
    }

    /// Exactness: whatever sequence of register values Rust publishes, a
    /// lookup for any POR_EL1 afterwards is a miss or the exact mask for
    /// that value with the latest (POR_EL0, TCR2_EL1).
    #[test]
    fn a_hit_is_always_the_mask_for_the_registers_in_force() {
        let pors = [0, DEFAULT, RAISED, 0x77, 0x7777_7777, u64::MAX, 0x1];
        let ctxs = [(0, POE), (0, 0), (0x7, POE | TCR2_PIE), (0, TCR2_POE)];
        let mut c = DenyCache::EMPTY;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = pors[(x % pors.len() as u64) as usize];
            let (el0, tcr2) = ctxs[((x >> 8) % ctxs.len() as u64) as usize];
            assert_eq!(c.get(p, el0, tcr2), deny_bytes(p, el0, tcr2));
            for q in pors {
                let l = c.lookup(q);
                assert!(l == DENY_STALE || l == deny_bytes(q, el0, tcr2), "{q:#x} under {el0:#x} {tcr2:#x}");
            }
        }
    }
}
