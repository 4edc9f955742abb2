//! AArch64 System register identifiers, the MSR/MRS encoder/decoder, and the
//! encoding-space rules porwatch's trap handlers need.
//!
//! A [`SysRegId`] is the `(op0, op1, CRn, CRm, op2)` tuple packed exactly the
//! way the MSR/MRS instruction carries it in bits `[20:5]` (the same packing
//! as Linux's `sys_reg()` macro shifted down by 5):
//!
//! ```text
//!  15 14 | 13 11 | 10  7 | 6   3 | 2   0
//!   op0  |  op1  |  CRn  |  CRm  |  op2
//! ```
//!
//! Encodings checked against Linux `arch/arm64/tools/sysreg` and
//! `arch/arm64/include/asm/sysreg.h` (`Sysreg NAME op0 op1 CRn CRm op2` lines),
//! which are generated from the Arm ARM (DDI 0487) register descriptions.

/// An AArch64 System register (or System instruction) encoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SysRegId(u16);

// Field positions inside the packed id (= MSR/MRS instruction bits [20:5]).
const OP0_SHIFT: u32 = 14;
const OP1_SHIFT: u32 = 11;
const CRN_SHIFT: u32 = 7;
const CRM_SHIFT: u32 = 3;
const OP2_SHIFT: u32 = 0;
const OP0_MASK: u16 = 0b11;
const OP1_MASK: u16 = 0b111;
const CRN_MASK: u16 = 0b1111;
const CRM_MASK: u16 = 0b1111;
const OP2_MASK: u16 = 0b111;

impl SysRegId {
    /// Builds an id; each field is truncated to its width (never panics).
    #[inline]
    pub const fn new(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        Self(
            ((op0 as u16 & OP0_MASK) << OP0_SHIFT)
                | ((op1 as u16 & OP1_MASK) << OP1_SHIFT)
                | ((crn as u16 & CRN_MASK) << CRN_SHIFT)
                | ((crm as u16 & CRM_MASK) << CRM_SHIFT)
                | ((op2 as u16 & OP2_MASK) << OP2_SHIFT),
        )
    }

    /// The packed 16-bit value (MSR/MRS instruction bits `[20:5]`).
    #[inline]
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Inverse of [`SysRegId::bits`].
    #[inline]
    pub const fn from_bits(bits: u16) -> Self {
        Self(bits)
    }

    #[inline]
    pub const fn op0(self) -> u8 {
        ((self.0 >> OP0_SHIFT) & OP0_MASK) as u8
    }
    #[inline]
    pub const fn op1(self) -> u8 {
        ((self.0 >> OP1_SHIFT) & OP1_MASK) as u8
    }
    #[inline]
    pub const fn crn(self) -> u8 {
        ((self.0 >> CRN_SHIFT) & CRN_MASK) as u8
    }
    #[inline]
    pub const fn crm(self) -> u8 {
        ((self.0 >> CRM_SHIFT) & CRM_MASK) as u8
    }
    #[inline]
    pub const fn op2(self) -> u8 {
        ((self.0 >> OP2_SHIFT) & OP2_MASK) as u8
    }

    /// Rebuilds the id from an EC 0x18 (trapped MSR/MRS/System instruction)
    /// ISS. Layout (Linux `esr.h` `ESR_ELx_SYS64_ISS_*`, Arm ARM ISS encoding
    /// for EC 0b011000): op0 [21:20], op2 [19:17], op1 [16:14], CRn [13:10],
    /// Rt [9:5], CRm [4:1], direction [0].
    #[inline]
    pub const fn from_sys64_iss(iss: u32) -> Self {
        Self::new(
            ((iss >> 20) & 0b11) as u8,
            ((iss >> 14) & 0b111) as u8,
            ((iss >> 10) & 0b1111) as u8,
            ((iss >> 1) & 0b1111) as u8,
            ((iss >> 17) & 0b111) as u8,
        )
    }

    /// The EC 0x18 ISS bits for this id (Rt and direction zero). Inverse of
    /// [`SysRegId::from_sys64_iss`]; useful to build test syndromes.
    #[inline]
    pub const fn to_sys64_iss(self) -> u32 {
        ((self.op0() as u32) << 20)
            | ((self.op2() as u32) << 17)
            | ((self.op1() as u32) << 14)
            | ((self.crn() as u32) << 10)
            | ((self.crm() as u32) << 1)
    }
}

// ---------------------------------------------------------------------------
// MSR/MRS (register) instruction encoding.
// Arm ARM DDI 0487 A64 instruction descriptions "MRS" / "MSR (register)":
//   31..22 = 0b1101010100, 21 = L (1 = MRS/read), 20 = 1 (op0<1>),
//   19 = o0 (op0<0>), 18..16 op1, 15..12 CRn, 11..8 CRm, 7..5 op2, 4..0 Rt.
// Reference value: `insn & 0xFFDF_FFE0 == 0xD518_A280` is MSR/MRS POR_EL1.
// ---------------------------------------------------------------------------

/// Bits that are fixed for every MSR/MRS (register) instruction.
pub const MSR_MRS_FIXED_MASK: u32 = 0xFFD0_0000;
/// Value of [`MSR_MRS_FIXED_MASK`] bits for MSR/MRS (register).
pub const MSR_MRS_FIXED_VALUE: u32 = 0xD510_0000;
/// The L (read) bit: set for MRS, clear for MSR.
pub const MSR_MRS_L_BIT: u32 = 1 << 21;
const MSR_MRS_SYSREG_SHIFT: u32 = 5;
const MSR_MRS_SYSREG_MASK: u32 = 0xFFFF;
const MSR_MRS_RT_MASK: u32 = 0x1F;

/// Decodes an MSR (register) or MRS instruction word.
///
/// Returns `(register, Rt, is_read)`; `is_read` is true for MRS. Any other
/// instruction (including MSR (immediate), SYS/SYSL, hints, MSRR/MRRS)
/// returns `None`.
#[inline]
pub fn decode_msr_mrs(insn: u32) -> Option<(SysRegId, u8, bool)> {
    if insn & MSR_MRS_FIXED_MASK != MSR_MRS_FIXED_VALUE {
        return None;
    }
    let id = SysRegId::from_bits(((insn >> MSR_MRS_SYSREG_SHIFT) & MSR_MRS_SYSREG_MASK) as u16);
    let rt = (insn & MSR_MRS_RT_MASK) as u8;
    Some((id, rt, insn & MSR_MRS_L_BIT != 0))
}

/// Encodes `MRS Xrt, <id>` (`is_read`) or `MSR <id>, Xrt`.
///
/// `None` when `id.op0() < 2` (those encodings are SYS/SYSL/MSR (immediate),
/// not register moves) or `rt > 31`.
#[inline]
pub fn encode_msr_mrs(id: SysRegId, rt: u8, is_read: bool) -> Option<u32> {
    if id.op0() < 2 || rt > 31 {
        return None;
    }
    let l = if is_read { MSR_MRS_L_BIT } else { 0 };
    Some(
        MSR_MRS_FIXED_VALUE
            | l
            | ((id.bits() as u32) << MSR_MRS_SYSREG_SHIFT)
            | (rt as u32 & MSR_MRS_RT_MASK),
    )
}

// ---------------------------------------------------------------------------
// Encoding-space rules.
// ---------------------------------------------------------------------------

/// The feature-ID space: op0=3, op1=0, CRn=0, CRm 0..=7.
///
/// CRm=0 holds MIDR/MPIDR/REVIDR (not trapped by TID3; MIDR/MPIDR are
/// virtualised through VPIDR_EL2/VMPIDR_EL2, REVIDR by TID1). CRm 1..=7 is
/// "ID group 3", see [`is_tid3_space`].
#[inline]
pub const fn is_id_space(id: SysRegId) -> bool {
    id.op0() == 3 && id.op1() == 0 && id.crn() == 0 && id.crm() <= 7
}

/// The encodings HCR_EL2.TID3 traps from AArch64 EL1: op0=3, op1=0, CRn=0,
/// CRm 1..=7, any op2 ("ID group 3" — HCR_EL2.TID3 traps every MRS in this
/// range, allocated or not; KVM `sys_regs.c` `ID_UNALLOCATED(crm, op2)`,
/// QEMU `access_aa64_tid3`).
#[inline]
pub const fn is_tid3_space(id: SysRegId) -> bool {
    is_id_space(id) && id.crm() >= 1
}

/// Arm ARM rule for unallocated ID encodings: within op0=3, op1=0, CRn=0,
/// CRm 1..=7 (any op2) every encoding not allocated to a register is
/// reserved *RAZ* (reads as zero, so software probing future ID registers
/// sees "not implemented"). Unallocated encodings with CRm=0 are not in
/// that space and are UNDEFINED. (Linux KVM `sys_regs.c`: "architecturally
/// unallocated cpufeature ID register with encoding Op0=3, Op1=0, CRn=0,
/// CRm=crm, Op2=op2 (1 <= crm < 8, 0 <= Op2 < 8)" → `raz_visibility`.)
///
/// Returns true when `id` is in that space and is *not* one of the
/// allocated registers in [`ALLOCATED_ID_REGS`].
#[inline]
pub fn is_unallocated_raz(id: SysRegId) -> bool {
    is_tid3_space(id) && !ALLOCATED_ID_REGS.contains(&id)
}

/// IMPLEMENTATION DEFINED register space: op0=3, CRn=11 or 15 (any op1,
/// CRm, op2). EL1 accesses here are what HCR_EL2.TIDCP traps.
#[inline]
pub const fn is_impdef(id: SysRegId) -> bool {
    id.op0() == 3 && (id.crn() == 11 || id.crn() == 15)
}

// ---------------------------------------------------------------------------
// Named registers (Linux arch/arm64/tools/sysreg / asm/sysreg.h).
// ---------------------------------------------------------------------------

/// Shorthand for the const tables below.
const fn r(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> SysRegId {
    SysRegId::new(op0, op1, crn, crm, op2)
}

// Identification, CRm=0.
pub const MIDR_EL1: SysRegId = r(3, 0, 0, 0, 0);
pub const MPIDR_EL1: SysRegId = r(3, 0, 0, 0, 5);
pub const REVIDR_EL1: SysRegId = r(3, 0, 0, 0, 6);
pub const CCSIDR_EL1: SysRegId = r(3, 1, 0, 0, 0);
pub const CLIDR_EL1: SysRegId = r(3, 1, 0, 0, 1);
pub const AIDR_EL1: SysRegId = r(3, 1, 0, 0, 7);
pub const CSSELR_EL1: SysRegId = r(3, 2, 0, 0, 0);
pub const CTR_EL0: SysRegId = r(3, 3, 0, 0, 1);
pub const DCZID_EL0: SysRegId = r(3, 3, 0, 0, 7);

// AArch32 ID registers as seen from AArch64 (CRm 1..=3).
pub const ID_PFR0_EL1: SysRegId = r(3, 0, 0, 1, 0);
pub const ID_PFR1_EL1: SysRegId = r(3, 0, 0, 1, 1);
pub const ID_DFR0_EL1: SysRegId = r(3, 0, 0, 1, 2);
pub const ID_AFR0_EL1: SysRegId = r(3, 0, 0, 1, 3);
pub const ID_MMFR0_EL1: SysRegId = r(3, 0, 0, 1, 4);
pub const ID_MMFR1_EL1: SysRegId = r(3, 0, 0, 1, 5);
pub const ID_MMFR2_EL1: SysRegId = r(3, 0, 0, 1, 6);
pub const ID_MMFR3_EL1: SysRegId = r(3, 0, 0, 1, 7);
pub const ID_ISAR0_EL1: SysRegId = r(3, 0, 0, 2, 0);
pub const ID_ISAR1_EL1: SysRegId = r(3, 0, 0, 2, 1);
pub const ID_ISAR2_EL1: SysRegId = r(3, 0, 0, 2, 2);
pub const ID_ISAR3_EL1: SysRegId = r(3, 0, 0, 2, 3);
pub const ID_ISAR4_EL1: SysRegId = r(3, 0, 0, 2, 4);
pub const ID_ISAR5_EL1: SysRegId = r(3, 0, 0, 2, 5);
pub const ID_MMFR4_EL1: SysRegId = r(3, 0, 0, 2, 6);
pub const ID_ISAR6_EL1: SysRegId = r(3, 0, 0, 2, 7);
pub const MVFR0_EL1: SysRegId = r(3, 0, 0, 3, 0);
pub const MVFR1_EL1: SysRegId = r(3, 0, 0, 3, 1);
pub const MVFR2_EL1: SysRegId = r(3, 0, 0, 3, 2);
pub const ID_PFR2_EL1: SysRegId = r(3, 0, 0, 3, 4);
pub const ID_DFR1_EL1: SysRegId = r(3, 0, 0, 3, 5);
pub const ID_MMFR5_EL1: SysRegId = r(3, 0, 0, 3, 6);

// AArch64 ID registers (CRm 4..=7).
pub const ID_AA64PFR0_EL1: SysRegId = r(3, 0, 0, 4, 0);
pub const ID_AA64PFR1_EL1: SysRegId = r(3, 0, 0, 4, 1);
pub const ID_AA64PFR2_EL1: SysRegId = r(3, 0, 0, 4, 2);
pub const ID_AA64ZFR0_EL1: SysRegId = r(3, 0, 0, 4, 4);
pub const ID_AA64SMFR0_EL1: SysRegId = r(3, 0, 0, 4, 5);
pub const ID_AA64FPFR0_EL1: SysRegId = r(3, 0, 0, 4, 7);
pub const ID_AA64DFR0_EL1: SysRegId = r(3, 0, 0, 5, 0);
pub const ID_AA64DFR1_EL1: SysRegId = r(3, 0, 0, 5, 1);
pub const ID_AA64DFR2_EL1: SysRegId = r(3, 0, 0, 5, 2);
pub const ID_AA64AFR0_EL1: SysRegId = r(3, 0, 0, 5, 4);
pub const ID_AA64AFR1_EL1: SysRegId = r(3, 0, 0, 5, 5);
pub const ID_AA64ISAR0_EL1: SysRegId = r(3, 0, 0, 6, 0);
pub const ID_AA64ISAR1_EL1: SysRegId = r(3, 0, 0, 6, 1);
pub const ID_AA64ISAR2_EL1: SysRegId = r(3, 0, 0, 6, 2);
pub const ID_AA64ISAR3_EL1: SysRegId = r(3, 0, 0, 6, 3);
pub const ID_AA64MMFR0_EL1: SysRegId = r(3, 0, 0, 7, 0);
pub const ID_AA64MMFR1_EL1: SysRegId = r(3, 0, 0, 7, 1);
pub const ID_AA64MMFR2_EL1: SysRegId = r(3, 0, 0, 7, 2);
pub const ID_AA64MMFR3_EL1: SysRegId = r(3, 0, 0, 7, 3);
pub const ID_AA64MMFR4_EL1: SysRegId = r(3, 0, 0, 7, 4);

/// Every allocated register in the TID3 space (CRm 1..=7) as of the Arm ARM
/// that Linux 6.x's `tools/sysreg` describes. Anything else in that space
/// is reserved RAZ (see [`is_unallocated_raz`]).
pub const ALLOCATED_ID_REGS: [SysRegId; 42] = [
    ID_PFR0_EL1,
    ID_PFR1_EL1,
    ID_DFR0_EL1,
    ID_AFR0_EL1,
    ID_MMFR0_EL1,
    ID_MMFR1_EL1,
    ID_MMFR2_EL1,
    ID_MMFR3_EL1,
    ID_ISAR0_EL1,
    ID_ISAR1_EL1,
    ID_ISAR2_EL1,
    ID_ISAR3_EL1,
    ID_ISAR4_EL1,
    ID_ISAR5_EL1,
    ID_MMFR4_EL1,
    ID_ISAR6_EL1,
    MVFR0_EL1,
    MVFR1_EL1,
    MVFR2_EL1,
    ID_PFR2_EL1,
    ID_DFR1_EL1,
    ID_MMFR5_EL1,
    ID_AA64PFR0_EL1,
    ID_AA64PFR1_EL1,
    ID_AA64PFR2_EL1,
    ID_AA64ZFR0_EL1,
    ID_AA64SMFR0_EL1,
    ID_AA64FPFR0_EL1,
    ID_AA64DFR0_EL1,
    ID_AA64DFR1_EL1,
    ID_AA64DFR2_EL1,
    ID_AA64AFR0_EL1,
    ID_AA64AFR1_EL1,
    ID_AA64ISAR0_EL1,
    ID_AA64ISAR1_EL1,
    ID_AA64ISAR2_EL1,
    ID_AA64ISAR3_EL1,
    ID_AA64MMFR0_EL1,
    ID_AA64MMFR1_EL1,
    ID_AA64MMFR2_EL1,
    ID_AA64MMFR3_EL1,
    ID_AA64MMFR4_EL1,
];

// EL1 system control and translation.
pub const SCTLR_EL1: SysRegId = r(3, 0, 1, 0, 0);
pub const ACTLR_EL1: SysRegId = r(3, 0, 1, 0, 1);
pub const CPACR_EL1: SysRegId = r(3, 0, 1, 0, 2);
pub const SCTLR2_EL1: SysRegId = r(3, 0, 1, 0, 3);
pub const ZCR_EL1: SysRegId = r(3, 0, 1, 2, 0);
pub const SMCR_EL1: SysRegId = r(3, 0, 1, 2, 6);
pub const TTBR0_EL1: SysRegId = r(3, 0, 2, 0, 0);
pub const TTBR1_EL1: SysRegId = r(3, 0, 2, 0, 1);
pub const TCR_EL1: SysRegId = r(3, 0, 2, 0, 2);
pub const TCR2_EL1: SysRegId = r(3, 0, 2, 0, 3);
pub const AFSR0_EL1: SysRegId = r(3, 0, 5, 1, 0);
pub const AFSR1_EL1: SysRegId = r(3, 0, 5, 1, 1);
pub const ESR_EL1: SysRegId = r(3, 0, 5, 2, 0);
pub const FAR_EL1: SysRegId = r(3, 0, 6, 0, 0);
pub const PAR_EL1: SysRegId = r(3, 0, 7, 4, 0);
pub const MAIR_EL1: SysRegId = r(3, 0, 10, 2, 0);
pub const PIRE0_EL1: SysRegId = r(3, 0, 10, 2, 2);
pub const PIR_EL1: SysRegId = r(3, 0, 10, 2, 3);
/// FEAT_S1POE permission overlay register for EL1 accesses.
pub const POR_EL1: SysRegId = r(3, 0, 10, 2, 4);
/// FEAT_S1POE permission overlay register for EL0 accesses.
pub const POR_EL0: SysRegId = r(3, 3, 10, 2, 4);
pub const AMAIR_EL1: SysRegId = r(3, 0, 10, 3, 0);
pub const VBAR_EL1: SysRegId = r(3, 0, 12, 0, 0);
pub const CONTEXTIDR_EL1: SysRegId = r(3, 0, 13, 0, 1);
pub const TPIDR_EL1: SysRegId = r(3, 0, 13, 0, 4);
/// FEAT_CSV2_2 software context number (porwatch's POR_EL1 carrier:
/// por_sites.rs).
pub const SCXTNUM_EL1: SysRegId = r(3, 0, 13, 0, 7);
/// FEAT_CSV2_2 software context number for EL0 (porwatch's POR_EL0
/// carrier).
pub const SCXTNUM_EL0: SysRegId = r(3, 3, 13, 0, 7);
pub const CNTKCTL_EL1: SysRegId = r(3, 0, 14, 1, 0);

// Debug (op0 = 2).
pub const MDCCINT_EL1: SysRegId = r(2, 0, 0, 2, 0);
pub const MDSCR_EL1: SysRegId = r(2, 0, 0, 2, 2);
pub const OSLAR_EL1: SysRegId = r(2, 0, 1, 0, 4);
pub const OSLSR_EL1: SysRegId = r(2, 0, 1, 1, 4);
pub const OSDLR_EL1: SysRegId = r(2, 0, 1, 3, 4);
pub const DBGPRCR_EL1: SysRegId = r(2, 0, 1, 4, 4);

/// DBGBVR<n>_EL1 (n = 0..=15; higher bits of `n` are dropped).
#[inline]
pub const fn dbgbvr_el1(n: u8) -> SysRegId {
    r(2, 0, 0, n, 4)
}
/// DBGBCR<n>_EL1.
#[inline]
pub const fn dbgbcr_el1(n: u8) -> SysRegId {
    r(2, 0, 0, n, 5)
}
/// DBGWVR<n>_EL1.
#[inline]
pub const fn dbgwvr_el1(n: u8) -> SysRegId {
    r(2, 0, 0, n, 6)
}
/// DBGWCR<n>_EL1.
#[inline]
pub const fn dbgwcr_el1(n: u8) -> SysRegId {
    r(2, 0, 0, n, 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let id = SysRegId::new(3, 5, 12, 9, 6);
        assert_eq!((id.op0(), id.op1(), id.crn(), id.crm(), id.op2()), (3, 5, 12, 9, 6));
        assert_eq!(SysRegId::from_bits(id.bits()), id);
        // Fields are truncated, never panics.
        let t = SysRegId::new(0xFF, 0xFF, 0xFF, 0xFF, 0xFF);
        assert_eq!(t.bits(), 0xFFFF);
    }

    #[test]
    fn por_el1_reference_instruction() {
        // MSR POR_EL1, X0 = 0xD518A280 (brief's reference value).
        let (id, rt, read) = decode_msr_mrs(0xD518_A280).unwrap();
        assert_eq!(id, POR_EL1);
        assert_eq!(rt, 0);
        assert!(!read);
        // MRS X5, POR_EL1
        let mrs = 0xD518_A280 | MSR_MRS_L_BIT | 5;
        assert_eq!(decode_msr_mrs(mrs), Some((POR_EL1, 5, true)));
        assert_eq!(mrs & 0xFFDF_FFE0, 0xD518_A280);
        assert_eq!(encode_msr_mrs(POR_EL1, 0, false), Some(0xD518_A280));
        assert_eq!(encode_msr_mrs(POR_EL1, 5, true), Some(mrs));
    }

    #[test]
    fn known_encodings() {
        // Cross-checked with `llvm-mc -triple=aarch64 -show-encoding`.
        assert_eq!(encode_msr_mrs(ID_AA64PFR0_EL1, 0, true), Some(0xD538_0400));
        assert_eq!(encode_msr_mrs(ID_AA64MMFR0_EL1, 0, true), Some(0xD538_0700));
        assert_eq!(encode_msr_mrs(SCTLR_EL1, 0, true), Some(0xD538_1000));
        assert_eq!(encode_msr_mrs(TTBR0_EL1, 0, false), Some(0xD518_2000));
        assert_eq!(encode_msr_mrs(TCR_EL1, 1, false), Some(0xD518_2041));
        assert_eq!(encode_msr_mrs(MAIR_EL1, 0, true), Some(0xD538_A200));
        assert_eq!(encode_msr_mrs(VBAR_EL1, 0, false), Some(0xD518_C000));
        assert_eq!(encode_msr_mrs(MDSCR_EL1, 0, true), Some(0xD530_0240));
        assert_eq!(encode_msr_mrs(OSLAR_EL1, 0, false), Some(0xD510_1080));
        assert_eq!(encode_msr_mrs(POR_EL0, 0, true), Some(0xD53B_A280));
        assert_eq!(encode_msr_mrs(MIDR_EL1, 0, true), Some(0xD538_0000));
        assert_eq!(encode_msr_mrs(OSDLR_EL1, 0, true), Some(0xD530_1380));
        assert_eq!(encode_msr_mrs(CPACR_EL1, 0, true), Some(0xD538_1040));
        assert_eq!(encode_msr_mrs(ID_AA64SMFR0_EL1, 0, true), Some(0xD538_04A0));
        assert_eq!(encode_msr_mrs(ID_AA64ZFR0_EL1, 0, true), Some(0xD538_0480));
        assert_eq!(encode_msr_mrs(ID_AA64FPFR0_EL1, 0, true), Some(0xD538_04E0));
        assert_eq!(encode_msr_mrs(ID_AA64ISAR3_EL1, 0, true), Some(0xD538_0660));
        assert_eq!(encode_msr_mrs(ID_AA64MMFR4_EL1, 0, true), Some(0xD538_0780));
        assert_eq!(encode_msr_mrs(ID_MMFR5_EL1, 0, true), Some(0xD538_03C0));
        assert_eq!(encode_msr_mrs(ID_MMFR4_EL1, 0, true), Some(0xD538_02C0));
        assert_eq!(encode_msr_mrs(MVFR2_EL1, 0, true), Some(0xD538_0340));
    }

    #[test]
    fn decoder_rejects_non_msr_mrs() {
        // NOP, MSR DAIFSet,#2 (immediate), DC CIVAC (SYS), RET, BRK #0
        for insn in [0xD503_201F, 0xD503_42DF, 0xD50B_7E20, 0xD65F_03C0, 0xD420_0000] {
            assert_eq!(decode_msr_mrs(insn), None, "{insn:#x}");
        }
        assert_eq!(encode_msr_mrs(SysRegId::new(1, 3, 7, 14, 1), 0, false), None);
        assert_eq!(encode_msr_mrs(POR_EL1, 32, false), None);
    }

    #[test]
    fn decoder_round_trips_all_register_encodings() {
        for bits in 0x8000u16..=0xFFFF {
            let id = SysRegId::from_bits(bits);
            for (rt, read) in [(0, false), (30, true), (31, false)] {
                let insn = encode_msr_mrs(id, rt, read).unwrap();
                assert_eq!(decode_msr_mrs(insn), Some((id, rt, read)));
            }
        }
    }

    #[test]
    fn sys64_iss_round_trip() {
        for id in [POR_EL1, POR_EL0, ID_AA64MMFR3_EL1, OSDLR_EL1, SysRegId::new(1, 3, 7, 14, 1)] {
            assert_eq!(SysRegId::from_sys64_iss(id.to_sys64_iss()), id);
        }
        // ISS for MRS X3, ID_AA64PFR0_EL1: op0=3 op2=0 op1=0 CRn=0 Rt=3 CRm=4 dir=1
        let iss = (3 << 20) | (3 << 5) | (4 << 1) | 1;
        assert_eq!(SysRegId::from_sys64_iss(iss), ID_AA64PFR0_EL1);
    }

    #[test]
    fn id_space_rules() {
        assert!(is_id_space(MIDR_EL1));
        assert!(!is_tid3_space(MIDR_EL1));
        assert!(is_tid3_space(ID_AA64PFR0_EL1));
        assert!(is_tid3_space(ID_PFR0_EL1));
        assert!(!is_id_space(CTR_EL0));
        assert!(!is_id_space(SCTLR_EL1));
        assert!(!is_id_space(SysRegId::new(3, 0, 0, 8, 0)));
        // Allocated registers are not RAZ-reserved.
        for id in ALLOCATED_ID_REGS {
            assert!(is_tid3_space(id));
            assert!(!is_unallocated_raz(id));
        }
        // Holes: 3,3 / 3,7 / 4,3 / 4,6 / 5,3 / 5,6 / 5,7 / 6,4..7 / 7,5..7
        for (crm, op2) in
            [(3, 3), (3, 7), (4, 3), (4, 6), (5, 3), (5, 6), (5, 7), (6, 4), (6, 7), (7, 5), (7, 7)]
        {
            assert!(is_unallocated_raz(SysRegId::new(3, 0, 0, crm, op2)), "{crm},{op2}");
        }
        // CRm=0 unallocated is not RAZ space.
        assert!(!is_unallocated_raz(SysRegId::new(3, 0, 0, 0, 1)));
        // Exactly 56 - 42 = 14 RAZ holes in CRm 1..=7.
        let holes = (1..=7u8)
            .flat_map(|crm| (0..8u8).map(move |op2| SysRegId::new(3, 0, 0, crm, op2)))
            .filter(|&id| is_unallocated_raz(id))
            .count();
        assert_eq!(holes, 14);
    }

    #[test]
    fn impdef_space() {
        assert!(is_impdef(SysRegId::new(3, 0, 15, 2, 0)));
        assert!(is_impdef(SysRegId::new(3, 1, 11, 0, 2))); // e.g. Cortex-A L2CTLR_EL1
        assert!(!is_impdef(SysRegId::new(2, 0, 15, 0, 0)));
        assert!(!is_impdef(POR_EL1));
    }

    #[test]
    fn debug_register_helpers() {
        assert_eq!(dbgbvr_el1(0), SysRegId::new(2, 0, 0, 0, 4));
        assert_eq!(dbgwcr_el1(15), SysRegId::new(2, 0, 0, 15, 7));
        assert_eq!(dbgbcr_el1(3).crm(), 3);
        assert_eq!(dbgwvr_el1(2).op2(), 6);
    }
}
