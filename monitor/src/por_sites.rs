//! Patched POR_EL1 sites (docs/tap.md, "Patched POR_EL1 sites"): the
//! decisions; the mechanism is hyp/src/arch/code_shadow.rs and
//! hyp/src/por_sites.rs.
//!
//! Under virtual POE (a CPU without FEAT_S1POE, e.g. QEMU) every guest
//! `MRS/MSR POR_EL1` UNDEFs at EL1 and reaches EL2 through the tap's vector
//! hook: three exception-level changes (the UNDEF, the hook's trap, the
//! return). Under QEMU each costs about as much as a thousand guest
//! instructions, whatever EL2 does, and a kpkeys kernel makes two such
//! accesses per guarded page-table update. So porwatch rewrites a site it
//! sees often, in a porwatch-owned shadow of its code page that stage 2
//! maps execute-only in place of the guest's page (as the tap's
//! trampoline), into the same access of a **carrier** register that EL2
//! keeps equal to the virtual POR_EL1: SCXTNUM_EL1 (FEAT_CSV2_2; porwatch
//! then hides CSV2_2 from the guest, so a conforming guest never uses it
//! itself). Reads of the carrier do not trap: `MRS POR_EL1` costs nothing.
//! Writes trap to EL2 through a fine-grained trap (HFGWTR_EL2.SCXTNUM_EL1),
//! one trap instead of an UNDEF plus a trap, and are traced exactly as
//! before, with the site's PC.
//!
//! POR_EL0, which Linux reads (and writes back) at every context switch,
//! is carried the same way by SCXTNUM_EL0 at EL1 sites.
use crate::sysreg::{decode_msr_mrs, encode_msr_mrs, SysRegId, POR_EL0, POR_EL1, SCXTNUM_EL0, SCXTNUM_EL1};

/// The register that stands for POR_EL1 at patched sites.
pub const CARRIER: SysRegId = SCXTNUM_EL1;
/// The register that stands for POR_EL0 at patched sites.
pub const CARRIER_EL0: SysRegId = SCXTNUM_EL0;

/// Instructions in a 4 KiB page.
pub const PAGE_WORDS: usize = 1024;
const WORD_BITS: usize = 64;

/// Every this many POR_EL1 accesses that UNDEF on a CPU, the next one goes
/// to Rust, which patches its site: a hot site is patched within this many
/// executions, and a site that cannot be patched costs the slow path only
/// once in this many.
pub const PATCH_EVERY: u64 = 16;

/// Data accesses (reads or writes by the guest, which never see the
/// shadow and are completed on the guest's page) a shadowed page may take
/// before porwatch gives it up for good: a page that mixes hot data with a
/// POR_EL1 site would cost more in faults than the site saves.
pub const MAX_DATA_ACCESSES: u32 = 256;

/// The carrier form of `insn` if it is an `MRS Xt, POR_EL1/POR_EL0` or an
/// `MSR POR_EL1/POR_EL0, Xt` (same Xt, same direction), else None.
pub fn carrier_form(insn: u32) -> Option<u32> {
    let (id, rt, is_read) = decode_msr_mrs(insn)?;
    let carrier = match id {
        POR_EL1 => CARRIER,
        POR_EL0 => CARRIER_EL0,
        _ => return None,
    };
    encode_msr_mrs(carrier, rt, is_read)
}

/// The patched sites of one code page: a bit per instruction word.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Sites {
    bits: [u64; PAGE_WORDS / WORD_BITS],
}

impl Sites {
    pub const NONE: Sites = Sites { bits: [0; PAGE_WORDS / WORD_BITS] };

    /// Marks word `w` (0..1024) as a site; false if out of range.
    pub fn add(&mut self, w: usize) -> bool {
        if w >= PAGE_WORDS {
            return false;
        }
        self.bits[w / WORD_BITS] |= 1 << (w % WORD_BITS);
        true
    }

    pub fn contains(&self, w: usize) -> bool {
        w < PAGE_WORDS && self.bits[w / WORD_BITS] & (1 << (w % WORD_BITS)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&b| b == 0)
    }

    pub fn count(&self) -> u32 {
        self.bits.iter().map(|b| b.count_ones()).sum()
    }

    /// The shadow of the guest's page `original`: the same words, with
    /// each site's POR_EL1 access in its carrier form. A site whose word is
    /// no longer a POR_EL1 access (the guest rewrote its code) is dropped,
    /// and the shadow has the guest's word there.
    pub fn build(&mut self, original: &[u32; PAGE_WORDS], shadow: &mut [u32; PAGE_WORDS]) {
        shadow.copy_from_slice(original);
        self.apply(original, shadow);
    }
}

impl Sites {
    /// Carries the sites in `words`, a shadow of `original` (which porwatch
    /// may have changed elsewhere already: the tap's vector hooks): a site
    /// whose word there is not the guest's (a hook, an out-of-line copy) or
    /// no longer a POR_EL1 access is dropped.
    pub fn apply(&mut self, original: &[u32; PAGE_WORDS], words: &mut [u32; PAGE_WORDS]) {
        for (i, word) in self.bits.iter_mut().enumerate() {
            let mut rest = *word;
            while rest != 0 {
                let b = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                let w = i * WORD_BITS + b;
                match carrier_form(original[w]).filter(|_| words[w] == original[w]) {
                    Some(c) => words[w] = c,
                    None => *word &= !(1 << b),
                }
            }
        }
    }
}

/// ESR_EL2.ISS of a trapped `MSR CARRIER, Xt` (EC 0x18), without Rt: the
/// value the assembly compares (vectors.S `ISS_MSR_CARRIER`).
pub const fn carrier_write_iss() -> u32 {
    CARRIER.to_sys64_iss()
}

/// Likewise for `MSR CARRIER_EL0, Xt` (vectors.S `ISS_MSR_CARRIER_EL0`).
pub const fn carrier_el0_write_iss() -> u32 {
    CARRIER_EL0.to_sys64_iss()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MRS_X3_POR_EL1: u32 = 0xd538_a283;
    const MSR_POR_EL1_X4: u32 = 0xd518_a284;
    const MRS_X3_SCXTNUM_EL1: u32 = 0xd538_d0e3;
    const MSR_SCXTNUM_EL1_X4: u32 = 0xd518_d0e4;
    const MRS_X0_POR_EL0: u32 = 0xd53b_a280;
    const NOP: u32 = 0xd503_201f;

    #[test]
    fn por_el1_accesses_become_carrier_accesses_with_the_same_register() {
        assert_eq!(carrier_form(MRS_X3_POR_EL1), Some(MRS_X3_SCXTNUM_EL1));
        assert_eq!(carrier_form(MSR_POR_EL1_X4), Some(MSR_SCXTNUM_EL1_X4));
        assert_eq!(carrier_form(0xd518_a29f), Some(0xd518_d0ff), "XZR stays XZR");
        assert_eq!(carrier_form(MRS_X0_POR_EL0), Some(0xd53b_d0e0), "POR_EL0: SCXTNUM_EL0");
        assert_eq!(carrier_form(0xd51b_a281), Some(0xd51b_d0e1), "MSR POR_EL0, X1");
        assert_eq!(carrier_form(NOP), None);
        assert_eq!(carrier_form(MRS_X3_SCXTNUM_EL1), None);
    }

    #[test]
    fn the_shadow_carries_every_site_still_there_and_drops_rewritten_ones() {
        let mut page = [NOP; PAGE_WORDS];
        page[0] = MRS_X3_POR_EL1;
        page[1] = MSR_POR_EL1_X4;
        page[1023] = MSR_POR_EL1_X4;
        page[500] = MRS_X3_POR_EL1; // not a site: stays as it is
        let mut s = Sites::NONE;
        assert!(s.add(0) && s.add(1) && s.add(1023) && !s.add(1024));
        let mut shadow = [0; PAGE_WORDS];
        s.build(&page, &mut shadow);
        assert_eq!(shadow[0], MRS_X3_SCXTNUM_EL1);
        assert_eq!(shadow[1], MSR_SCXTNUM_EL1_X4);
        assert_eq!(shadow[1023], MSR_SCXTNUM_EL1_X4);
        assert_eq!(shadow[500], MRS_X3_POR_EL1);
        assert_eq!(shadow[2], NOP);
        assert_eq!(s.count(), 3);
        // The guest rewrites site 1 (e.g. text patching): dropped.
        page[1] = NOP;
        s.build(&page, &mut shadow);
        assert_eq!(shadow[1], NOP);
        assert!(!s.contains(1) && s.contains(0) && s.contains(1023));
        assert_eq!(s.count(), 2);
        page[0] = NOP;
        page[1023] = NOP;
        s.build(&page, &mut shadow);
        assert!(s.is_empty());
        assert_eq!(shadow, page);
    }

    #[test]
    fn sites_in_a_hooked_page_skip_porwatchs_own_words() {
        let mut page = [NOP; PAGE_WORDS];
        page[10] = MRS_X3_POR_EL1;
        page[11] = MSR_POR_EL1_X4;
        let mut words = page;
        words[11] = 0xd400_0002; // a hook (HVC) took this word
        let mut s = Sites::NONE;
        s.add(10);
        s.add(11);
        s.apply(&page, &mut words);
        assert_eq!(words[10], MRS_X3_SCXTNUM_EL1);
        assert_eq!(words[11], 0xd400_0002, "the hook stays");
        assert!(s.contains(10) && !s.contains(11));
    }

    #[test]
    fn the_carrier_write_iss_names_scxtnum_el1_as_a_write() {
        // Op0 3 [21:20], Op2 7 [19:17], Op1 0 [16:14], CRn 13 [13:10],
        // CRm 0 [4:1], direction 0 (write) [0].
        assert_eq!(carrier_write_iss(), (3 << 20) | (7 << 17) | (13 << 10));
    }
}
