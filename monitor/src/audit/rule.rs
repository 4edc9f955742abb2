//! The audit's question for one stage-1 alias of a page-table page: would a
//! privileged (EL1) write through this leaf descriptor be allowed under the
//! guest's restrictive POR_EL1?
//!
//! Two checks, as the hardware makes them: the base permission (AP[2]
//! without S1PIE; with S1PIE the PIR_EL1 entry the leaf's PIIndex selects,
//! as QEMU's `get_S1prot_indirect` and Linux's `PIE_*` values read it: W in
//! 0b0101, 0b0110, 0b0111, 0b1100 and 0b1110, and no access at all for a
//! page EL1 may execute while EL0 may write it), then the overlay
//! ([`crate::s1::overlay::verdict`], which also applies WXN). PAN is not
//! modelled: it depends on PSTATE at the time of the write, and a table
//! alias EL0 can reach is worth reporting anyway.

use crate::s1::desc::{piindex, AP2_RDONLY};
use crate::s1::overlay::{perm_field, verdict, write_deny_mask, OverlayRegs, Privilege, TCR2_PIE};

/// PIR values whose base permission includes W (bit i set = PIR value i).
const PIR_W: u16 = 1 << 0b0101 | 1 << 0b0110 | 1 << 0b0111 | 1 << 0b1100 | 1 << 0b1110;
/// PIR values whose base permission includes X.
const PIR_X: u16 = 1 << 0b0010 | 1 << 0b0011 | 1 << 0b0110 | 1 << 0b0111 | 1 << 0b1010 | 1 << 0b1110;

/// What the audit rule says about one leaf descriptor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AliasVerdict {
    /// The base permissions let EL1 write.
    pub base_write: bool,
    /// The overlay (under the audited POR) does not forbid the write.
    pub overlay_write: bool,
    /// POIndex of the leaf (its pkey).
    pub poindex: u8,
    /// Perm<POIndex> of the audited POR_EL1.
    pub perm: u8,
}

impl AliasVerdict {
    /// A privileged write through this alias succeeds.
    pub const fn writable(&self) -> bool {
        self.base_write && self.overlay_write
    }

    /// Writable by its base permissions, and only the overlay forbids it:
    /// the alias is protected by its pkey.
    pub const fn protected_by_pkey(&self) -> bool {
        self.base_write && !self.overlay_write
    }
}

/// The registers the rule reads: the guest's overlay state with POR_EL1
/// replaced by the value under audit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AuditRule {
    pub regs: OverlayRegs,
    /// POIndex values through which a privileged write can be denied
    /// ([`write_deny_mask`]); a leaf with another POIndex is writable
    /// whenever its base permissions are.
    pub deny_mask: u8,
}

impl AuditRule {
    /// The rule for `regs` (POR_EL1 = the restrictive value under audit).
    pub const fn new(regs: OverlayRegs) -> Self {
        Self { regs, deny_mask: write_deny_mask(&regs, Privilege::Privileged) }
    }

    /// True if some leaf could be protected by its pkey (the overlay is on
    /// and the POR denies write to at least one POIndex).
    pub const fn can_protect(&self) -> bool {
        self.deny_mask != 0
    }

    /// True if the overlay may deny a write through a leaf with this POIndex.
    #[inline]
    pub const fn may_deny(&self, poindex: u8) -> bool {
        poindex < 8 && self.deny_mask & (1 << poindex) != 0
    }

    /// The verdict for a privileged write through `leaf` (a block or page
    /// descriptor).
    pub const fn alias(&self, leaf: u64) -> AliasVerdict {
        let v = verdict(&self.regs, leaf, Privilege::Privileged);
        AliasVerdict {
            base_write: base_write(&self.regs, leaf),
            overlay_write: v.grants_write,
            poindex: v.poindex,
            perm: v.perm,
        }
    }
}

/// Do the base permissions of `leaf` let EL1 write?
pub const fn base_write(regs: &OverlayRegs, leaf: u64) -> bool {
    if regs.tcr2_el1 & TCR2_PIE == 0 {
        return leaf & AP2_RDONLY == 0;
    }
    let pi = piindex(leaf);
    let p = perm_field(regs.pir_el1, pi);
    let u = perm_field(regs.pire0_el1, pi);
    // A page EL1 may execute and EL0 may write gets no access at all.
    if PIR_X & (1 << p) != 0 && PIR_W & (1 << u) != 0 {
        return false;
    }
    PIR_W & (1 << p) != 0
}
