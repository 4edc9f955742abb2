//! The permission-overlay (FEAT_S1POE) rule for one access, as a pure
//! function: does the overlay in force grant write to the page a store
//! goes through?
//!
//! Sources: Arm ARM DDI 0487 D24.2.150/153 "POR_EL0"/"POR_ELx" (Perm<m> at
//! bits [4m+3:4m]; 0 none, 1 R, 2 X, 3 RX, 4 W, 5 RW, 6 WX, 7 RWX; 0b1xxx
//! reserved, treated as no access); TCR2_EL1 (PIE bit 1, E0POE bit 2, POE
//! bit 3); Linux `arch/arm64/kvm/at.c` `compute_s1_indirect_permissions`
//! (`pov = poe && !(pp & BIT(3))`: with S1PIE the overlay applies only when
//! bit 3 of the selected PIR_EL1/PIRE0_EL1 entry is 0; R_HJYGR: the PIE
//! value 0b0110 sets WXN) and `compute_s1_overlay_permissions` (R_QXXPC /
//! R_NPBXC: with WXN in effect an overlay that grants X loses W); SCTLR_EL1
//! WXN is bit 19. See also ../shared/ARM-FACTS.md.
//!
//! Overlays only remove permissions: `grants_write == false` means the
//! store faults (overlay permission fault, ESR ISS2.Overlay) whatever the
//! base permissions say. `grants_write == true` does not mean the store
//! succeeds (AP, PAN, stage 2 still apply).

use super::desc::{piindex, poindex};

/// TCR2_EL1.PIE, bit 1: stage-1 permission indirection (FEAT_S1PIE).
pub const TCR2_PIE: u64 = 1 << 1;
/// TCR2_EL1.E0POE, bit 2: overlays for unprivileged accesses (POR_EL0).
pub const TCR2_E0POE: u64 = 1 << 2;
/// TCR2_EL1.POE, bit 3: overlays for privileged accesses (POR_EL1).
pub const TCR2_POE: u64 = 1 << 3;
/// SCTLR_EL1.WXN, bit 19.
pub const SCTLR_WXN: u64 = 1 << 19;

/// Overlay permission bits within a Perm<m> field.
pub const POE_R: u8 = 0b001;
pub const POE_X: u8 = 0b010;
pub const POE_W: u8 = 0b100;
pub const POE_RWX: u8 = 0b111;

/// Bit 3 of a PIR_EL1/PIRE0_EL1 entry: set = overlay not applied.
pub const PIR_NO_OVERLAY: u8 = 0b1000;
/// PIR value whose base permission is RWX with WXN (R_HJYGR).
pub const PIR_RWX_WXN: u8 = 0b0110;

/// Which overlay register an access is checked against.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Privilege {
    /// EL1 accesses (POR_EL1, TCR2_EL1.POE, PIR_EL1).
    Privileged,
    /// EL0 accesses, and LDTR/STTR at EL1 without PSTATE.UAO (POR_EL0,
    /// TCR2_EL1.E0POE, PIRE0_EL1). The caller decides (UAO = 1 makes
    /// STTR privileged).
    Unprivileged,
}

/// The registers the overlay rule reads. With virtual POE these are
/// porwatch's virtual registers; TCR2_EL1 reads as 0 when the guest cannot
/// use it (HCRX_EL2.TCR2En = 0 natively).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct OverlayRegs {
    pub por_el1: u64,
    pub por_el0: u64,
    pub tcr2_el1: u64,
    /// Only read when TCR2_EL1.PIE is set.
    pub pir_el1: u64,
    pub pire0_el1: u64,
    /// SCTLR_EL1.WXN (only read when PIE is off).
    pub wxn: bool,
}

/// The overlay's answer for one access through one leaf descriptor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OverlayVerdict {
    /// The overlay takes part in this access (POE/E0POE set and, with PIE,
    /// the PIR entry's bit 3 clear).
    pub applies: bool,
    /// POIndex of the leaf, bits [62:60].
    pub poindex: u8,
    /// The 4-bit Perm<POIndex> field of the POR register used, as written
    /// (reported even when the overlay does not apply).
    pub perm: u8,
    /// What the overlay grants after the reserved-value and WXN rules
    /// (bits R=1, X=2, W=4); 0b111 when it does not apply.
    pub effective: u8,
    /// The overlay does not forbid a write.
    pub grants_write: bool,
    /// With S1PIE on, the PIR_EL1 (PIRE0_EL1) entry the leaf's PIIndex
    /// selects: bit 3 set, the overlay does not apply; 0b0110, WXN.
    pub pie_entry: Option<u8>,
}

/// Perm<index> of a POR_ELx (or PIR) value; indices above 15 give 0.
#[inline]
pub const fn perm_field(reg: u64, index: u8) -> u8 {
    if index > 15 {
        0
    } else {
        ((reg >> (index as u32 * 4)) & 0xF) as u8
    }
}

/// The overlay rule for `access` through the block or page descriptor
/// `leaf`.
pub const fn verdict(regs: &OverlayRegs, leaf: u64, access: Privilege) -> OverlayVerdict {
    let (por, enable, pir) = match access {
        Privilege::Privileged => (regs.por_el1, TCR2_POE, regs.pir_el1),
        Privilege::Unprivileged => (regs.por_el0, TCR2_E0POE, regs.pire0_el1),
    };
    let po = poindex(leaf);
    let perm = perm_field(por, po);
    let pie = regs.tcr2_el1 & TCR2_PIE != 0;
    let pie_entry = if pie { Some(perm_field(pir, piindex(leaf))) } else { None };
    let (applies, wxn) = match pie_entry {
        Some(ip) => (regs.tcr2_el1 & enable != 0 && ip & PIR_NO_OVERLAY == 0, ip == PIR_RWX_WXN),
        None => (regs.tcr2_el1 & enable != 0, regs.wxn),
    };
    let effective = if !applies {
        POE_RWX
    } else {
        // 0b1xxx is reserved: no access.
        let mut p = if perm & 0b1000 != 0 { 0 } else { perm };
        if wxn && p & POE_X != 0 {
            p &= !POE_W;
        }
        p
    };
    OverlayVerdict { applies, poindex: po, perm, effective, grants_write: effective & POE_W != 0, pie_entry }
}

/// Whether the overlay could deny a write by `access` through *some* leaf
/// descriptor. False when overlays are off for `access`, or when every
/// Perm<0..7> field grants W (not reserved, and not losing W to WXN): then
/// no stage-1 walk is needed to know a write is permitted. Conservative
/// with S1PIE (any PIR entry may set WXN).
pub const fn may_deny_write(regs: &OverlayRegs, access: Privilege) -> bool {
    write_deny_mask(regs, access) != 0
}

/// The POIndex values through which the overlay could deny a write by
/// `access`: bit i set unless every leaf with POIndex i is granted write by
/// [`verdict`]. A superset (exact without S1PIE): with PIE any PIR entry may
/// switch the overlay off or set WXN, so the mask assumes it applies, with
/// WXN. Zero when overlays are off for `access`. The hypervisor's
/// store fast path walks to the leaf and completes the store itself only
/// when its POIndex bit is clear here.
pub const fn write_deny_mask(regs: &OverlayRegs, access: Privilege) -> u8 {
    let (por, enable) = match access {
        Privilege::Privileged => (regs.por_el1, TCR2_POE),
        Privilege::Unprivileged => (regs.por_el0, TCR2_E0POE),
    };
    if regs.tcr2_el1 & enable == 0 {
        return 0;
    }
    let wxn = regs.wxn || regs.tcr2_el1 & TCR2_PIE != 0;
    let mut mask = 0u8;
    let mut i = 0;
    while i < POINDEX_VALUES {
        let p = perm_field(por, i);
        if p & 0b1000 != 0 || p & POE_W == 0 || (wxn && p & POE_X != 0) {
            mask |= 1 << i;
        }
        i += 1;
    }
    mask
}

/// POIndex is 3 bits.
const POINDEX_VALUES: u8 = 8;

/// A store by the guest kernel through `leaf` is a hazard: the overlay in
/// force denies write (privileged access).
#[inline]
pub const fn denies_kernel_write(regs: &OverlayRegs, leaf: u64) -> bool {
    !verdict(regs, leaf, Privilege::Privileged).grants_write
}

/// "rwx"-style name of a 4-bit overlay value: "---", "r--", "--x", "r-x",
/// "-w-", "rw-", "-wx", "rwx"; reserved values (0b1xxx, no access) are
/// "res".
pub const fn perm_name(perm: u8) -> &'static str {
    match perm {
        0 => "---",
        1 => "r--",
        2 => "--x",
        3 => "r-x",
        4 => "-w-",
        5 => "rw-",
        6 => "-wx",
        7 => "rwx",
        _ => "res",
    }
}
