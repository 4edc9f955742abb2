//! Permission overlays for the guest: which mode porwatch runs in, and the
//! virtual POE state and access decoding used when the CPU has no
//! FEAT_S1POE (QEMU). See docs/tap.md.
use crate::cmdline::PoeMode as PoeOption;
use crate::sysreg::{decode_msr_mrs, SysRegId, POR_EL0, POR_EL1, TCR2_EL1};

/// ID_AA64MMFR3_EL1.S1POE, bits [19:16].
pub const MMFR3_S1POE_SHIFT: u32 = 16;
pub const MMFR3_S1POE_MASK: u64 = 0xf << MMFR3_S1POE_SHIFT;
/// TCR2_EL1.POE (bit 3) and E0POE (bit 2).
pub const TCR2_POE: u64 = 1 << 3;
pub const TCR2_E0POE: u64 = 1 << 2;
/// CPACR_EL1.E0POE (bit 29): EL0 may access POR_EL0.
pub const CPACR_E0POE: u64 = 1 << 29;

/// How porwatch provides FEAT_S1POE.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Not offered: ID_AA64MMFR3_EL1.S1POE reads 0 (the ID-register table,
    /// crate::idregs) and porwatch watches no overlay.
    None,
    /// Emulated: advertised through HCR_EL2.TID3, accesses completed at the
    /// exception-entry tap (needs the tap).
    Virtual,
    /// The CPU's own: POR_EL1 writes trapped (HFGWTR_EL2.nPOR_EL1 = 0),
    /// logged, written through.
    Native,
}

/// Why an explicit `porwatch.poe=` cannot be honoured: the hypervisor
/// refuses to start (exit 78) rather than run in another mode than asked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PoeRefusal {
    /// `native` on a CPU without FEAT_S1POE.
    NoFeature,
    /// `virtual` with `porwatch.tap=off`: virtual POE completes the guest's
    /// accesses at the tap.
    NeedsTap,
}

/// The mode for a CPU with (`hw`) or without FEAT_S1POE, the
/// `porwatch.poe=` option and whether the tap is on. `auto` takes what is
/// possible (native, else virtual, else none); an explicit `native` or
/// `virtual` that cannot be had is refused.
pub fn select_mode(hw: bool, opt: PoeOption, tap: bool) -> Result<Mode, PoeRefusal> {
    match opt {
        PoeOption::Off => Ok(Mode::None),
        PoeOption::Native if hw => Ok(Mode::Native),
        PoeOption::Native => Err(PoeRefusal::NoFeature),
        PoeOption::Virtual if tap => Ok(Mode::Virtual),
        PoeOption::Virtual => Err(PoeRefusal::NeedsTap),
        PoeOption::Auto if hw => Ok(Mode::Native),
        PoeOption::Auto if tap => Ok(Mode::Virtual),
        PoeOption::Auto => Ok(Mode::None),
    }
}

/// True if ID_AA64MMFR3_EL1 says the CPU implements FEAT_S1POE.
pub const fn hw_has_s1poe(mmfr3: u64) -> bool {
    mmfr3 & MMFR3_S1POE_MASK != 0
}

/// ESR_ELx fields of the hardware's overlay permission fault (Arm ARM
/// D24.2.40 ESR_EL1; Linux esr.h): EC [31:26], WnR [6], FnV [10],
/// DFSC [5:0], ISS2.Overlay = ESR bit 38.
const ESR_EC_SHIFT: u32 = 26;
const EC_DABT_CUR: u64 = 0x25;
const ESR_WNR: u64 = 1 << 6;
const ESR_FNV: u64 = 1 << 10;
const ESR_OVERLAY: u64 = 1 << 38;
const DFSC_MASK: u64 = 0x3f;
/// Permission fault, levels 0..3 (0x0c..0x0f); level -1 does not exist.
const DFSC_PERM_L0: u64 = 0x0c;
const DFSC_PERM_L3: u64 = 0x0f;

/// Native POE: is `esr_el1` (seen at a synchronous exception entry) the
/// CPU's overlay permission fault on a write by EL1 with a valid FAR? Such
/// a write to a tracked table is a hazard the hardware caught first.
pub const fn is_overlay_write_fault(esr_el1: u64) -> bool {
    let dfsc = esr_el1 & DFSC_MASK;
    (esr_el1 >> ESR_EC_SHIFT) & 0x3f == EC_DABT_CUR
        && esr_el1 & ESR_OVERLAY != 0
        && esr_el1 & ESR_WNR != 0
        && esr_el1 & ESR_FNV == 0
        && dfsc >= DFSC_PERM_L0
        && dfsc <= DFSC_PERM_L3
}

/// A register virtual POE provides.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VReg {
    PorEl1,
    PorEl0,
    Tcr2El1,
}

impl VReg {
    pub fn of(id: SysRegId) -> Option<Self> {
        match id {
            POR_EL1 => Some(VReg::PorEl1),
            POR_EL0 => Some(VReg::PorEl0),
            TCR2_EL1 => Some(VReg::Tcr2El1),
            _ => None,
        }
    }
}

/// A guest MSR/MRS of a virtual register, decoded from the instruction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Access {
    pub reg: VReg,
    /// Xt; 31 is XZR.
    pub rt: u8,
    pub is_read: bool,
}

/// Decodes `insn` if it is an MSR/MRS of POR_EL1, POR_EL0 or TCR2_EL1.
/// `tcr2_native`: the CPU has FEAT_TCR2, so TCR2_EL1 traps to EL2 instead
/// of UNDEFing and is not emulated here.
pub fn decode_access(insn: u32, tcr2_native: bool) -> Option<Access> {
    let (id, rt, is_read) = decode_msr_mrs(insn)?;
    let reg = VReg::of(id)?;
    if reg == VReg::Tcr2El1 && tcr2_native {
        return None;
    }
    Some(Access { reg, rt, is_read })
}

/// Which accesses the architecture allows, by exception level of the
/// access: POR_EL1 and TCR2_EL1 only from EL1; POR_EL0 from EL1, and from
/// EL0 only with CPACR_EL1.E0POE set.
pub fn permitted(reg: VReg, from_el0: bool, cpacr_e0poe: bool) -> bool {
    match reg {
        VReg::PorEl1 | VReg::Tcr2El1 => !from_el0,
        VReg::PorEl0 => !from_el0 || cpacr_e0poe,
    }
}

/// The virtual registers of one vCPU. Reset values: POR_ELx and TCR2_EL1
/// reset to UNKNOWN architecturally; porwatch uses 0 (no access through
/// overlays, overlays disabled), as KVM does.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct VirtPoe {
    pub por_el1: u64,
    pub por_el0: u64,
    pub tcr2_el1: u64,
    pub cpacr_e0poe: bool,
}

impl VirtPoe {
    pub const fn new() -> Self {
        Self { por_el1: 0, por_el0: 0, tcr2_el1: 0, cpacr_e0poe: false }
    }

    pub fn get(&self, r: VReg) -> u64 {
        match r {
            VReg::PorEl1 => self.por_el1,
            VReg::PorEl0 => self.por_el0,
            VReg::Tcr2El1 => self.tcr2_el1,
        }
    }

    /// Writes `v`; returns the old value.
    pub fn set(&mut self, r: VReg, v: u64) -> u64 {
        let slot = match r {
            VReg::PorEl1 => &mut self.por_el1,
            VReg::PorEl0 => &mut self.por_el0,
            VReg::Tcr2El1 => &mut self.tcr2_el1,
        };
        core::mem::replace(slot, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysreg::encode_msr_mrs;

    #[test]
    fn overlay_write_faults() {
        // The seed's ESR: EC 0x25, IL, ISS2 Overlay, WnR, level-3 permission.
        assert!(is_overlay_write_fault(0x0000_0040_9600_004f));
        assert!(is_overlay_write_fault(0x0000_0040_9600_004c)); // level 0
        assert!(!is_overlay_write_fault(0x0000_0000_9600_004f)); // no Overlay: base permissions
        assert!(!is_overlay_write_fault(0x0000_0040_9600_000f)); // a read
        assert!(!is_overlay_write_fault(0x0000_0040_9200_004f)); // EC 0x24: from EL0
        assert!(!is_overlay_write_fault(0x0000_0040_9600_044f)); // FnV: FAR not valid
        assert!(!is_overlay_write_fault(0x0000_0040_9600_0047)); // translation fault
        assert!(!is_overlay_write_fault(0x0000_0040_9600_0050)); // external abort
    }

    #[test]
    fn mode_selection() {
        use PoeOption::*;
        assert_eq!(select_mode(false, Auto, true), Ok(Mode::Virtual));
        assert_eq!(select_mode(false, Auto, false), Ok(Mode::None));
        assert_eq!(select_mode(true, Auto, true), Ok(Mode::Native));
        assert_eq!(select_mode(true, Auto, false), Ok(Mode::Native));
        assert_eq!(select_mode(true, Virtual, true), Ok(Mode::Virtual));
        assert_eq!(select_mode(false, Virtual, true), Ok(Mode::Virtual));
        assert_eq!(select_mode(true, Native, false), Ok(Mode::Native));
        assert_eq!(select_mode(true, Off, true), Ok(Mode::None));
        assert_eq!(select_mode(false, Off, false), Ok(Mode::None));
        // Explicit requests that cannot be met are refused, not downgraded.
        assert_eq!(select_mode(true, Virtual, false), Err(PoeRefusal::NeedsTap));
        assert_eq!(select_mode(false, Virtual, false), Err(PoeRefusal::NeedsTap));
        assert_eq!(select_mode(false, Native, true), Err(PoeRefusal::NoFeature));
        assert_eq!(select_mode(false, Native, false), Err(PoeRefusal::NoFeature));
    }

    #[test]
    fn mmfr3_values() {
        // QEMU 10.0 and 11.1 as seen (ARM-FACTS.md); FVP with S1POE.
        assert!(!hw_has_s1poe(0x1000_0000_0000_0000));
        assert!(!hw_has_s1poe(0x1000_0000_1100_1111));
        assert!(hw_has_s1poe(0x1000_0000_1111_1111));
    }

    #[test]
    fn decodes_the_virtual_registers_only() {
        // msr por_el1, x1 / mrs x2, por_el1 / mrs x30, por_el0 / msr tcr2_el1, xzr
        let msr_por = 0xD518_A281;
        assert_eq!(decode_access(msr_por, false), Some(Access { reg: VReg::PorEl1, rt: 1, is_read: false }));
        let mrs_por = encode_msr_mrs(POR_EL1, 2, true).unwrap();
        assert_eq!(decode_access(mrs_por, false), Some(Access { reg: VReg::PorEl1, rt: 2, is_read: true }));
        let mrs_por0 = encode_msr_mrs(POR_EL0, 30, true).unwrap();
        assert_eq!(decode_access(mrs_por0, false).unwrap().reg, VReg::PorEl0);
        let msr_tcr2 = encode_msr_mrs(TCR2_EL1, 31, false).unwrap();
        assert_eq!(
            decode_access(msr_tcr2, false),
            Some(Access { reg: VReg::Tcr2El1, rt: 31, is_read: false })
        );
        assert_eq!(decode_access(msr_tcr2, true), None);
        // Other registers and non-MSR instructions are not ours.
        let msr_vbar = encode_msr_mrs(crate::sysreg::VBAR_EL1, 0, false).unwrap();
        assert_eq!(decode_access(msr_vbar, false), None);
        assert_eq!(decode_access(0xD503_201F, false), None); // nop
        assert_eq!(decode_access(0, false), None);
    }

    #[test]
    fn permissions_and_state() {
        assert!(permitted(VReg::PorEl1, false, false));
        assert!(!permitted(VReg::PorEl1, true, true));
        assert!(!permitted(VReg::Tcr2El1, true, true));
        assert!(permitted(VReg::PorEl0, true, true));
        assert!(!permitted(VReg::PorEl0, true, false));
        let mut v = VirtPoe::default();
        assert_eq!(v.set(VReg::PorEl1, 0x17), 0);
        assert_eq!(v.set(VReg::PorEl1, 0x57), 0x17);
        assert_eq!(v.get(VReg::PorEl1), 0x57);
        assert_eq!(v.get(VReg::PorEl0), 0);
    }
}
