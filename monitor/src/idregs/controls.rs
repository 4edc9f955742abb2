//! The EL2 and EL3 controls the guest's CPU needs, derived from the same
//! table as its ID registers: a control is set exactly when a field whose
//! rule names it ([`Rule::Enable`]) is implemented in the guest's view.
//!
//! Bit positions: Arm ARM DDI 0487 D24.2 (HCR_EL2, HCRX_EL2, SMCR_EL2,
//! SCR_EL3, CPTR_EL3, TCR2_EL1), as Linux `tools/sysreg` / `kvm_arm.h` and
//! TF-A `arch.h` name them.
use super::{table, Ctl, Raw, Rule, Setup, View, REGS};
use crate::vpoe::Mode;

// HCR_EL2.
pub const HCR_APK: u64 = 1 << 40;
pub const HCR_API: u64 = 1 << 41;
pub const HCR_FIEN: u64 = 1 << 47;
pub const HCR_ENSCXT: u64 = 1 << 53;
pub const HCR_ATA: u64 = 1 << 56;
// HCRX_EL2.
pub const HCRX_MSCEN: u64 = 1 << 11;
pub const HCRX_TCR2EN: u64 = 1 << 14;
pub const HCRX_SCTLR2EN: u64 = 1 << 15;
pub const HCRX_ENFPM: u64 = 1 << 23;
// SMCR_ELx / ZCR_ELx.
pub const SMCR_FA64: u64 = 1 << 31;
pub const SMCR_EZT0: u64 = 1 << 30;
/// LEN = 0xf: the lower EL may use every vector length the CPU has.
pub const VL_LEN_MAX: u64 = 0xf;
// TCR2_EL1.
pub const TCR2_PIE: u64 = 1 << 1;
pub const TCR2_E0POE: u64 = 1 << 2;
pub const TCR2_POE: u64 = 1 << 3;
pub const TCR2_AIE: u64 = 1 << 4;
pub const TCR2_A2: u64 = 1 << 16;
pub const TCR2_FNG0: u64 = 1 << 17;
pub const TCR2_FNG1: u64 = 1 << 18;
// SCR_EL3.
pub const SCR_NS: u64 = 1 << 0;
pub const SCR_HCE: u64 = 1 << 8;
pub const SCR_RW: u64 = 1 << 10;
pub const SCR_APK: u64 = 1 << 16;
pub const SCR_API: u64 = 1 << 17;
pub const SCR_FIEN: u64 = 1 << 21;
pub const SCR_ENSCXT: u64 = 1 << 25;
pub const SCR_ATA: u64 = 1 << 26;
pub const SCR_FGTEN: u64 = 1 << 27;
pub const SCR_HXEN: u64 = 1 << 38;
pub const SCR_ENTP2: u64 = 1 << 41;
pub const SCR_TCR2EN: u64 = 1 << 43;
pub const SCR_SCTLR2EN: u64 = 1 << 44;
pub const SCR_PIEN: u64 = 1 << 45;
pub const SCR_AIEN: u64 = 1 << 46;
pub const SCR_ENFPM: u64 = 1 << 50;
// CPTR_EL3: EZ and ESM enable SVE and SME below EL3 (TFP, TTA, TAM = 0).
pub const CPTR_EL3_EZ: u64 = 1 << 8;
pub const CPTR_EL3_ESM: u64 = 1 << 12;

/// Where the guest's TCR2_EL1 lives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tcr2Path {
    /// The guest has no TCR2_EL1 (no FEAT_TCR2, no virtual POE).
    Absent,
    /// porwatch keeps it: trapped with HCRX_EL2.TCR2En = 0, or UNDEFINED on
    /// a CPU without FEAT_TCR2 and completed at the tap (virtual POE). The
    /// hardware translates as if it were 0.
    Emulated,
    /// The hardware register, HCRX_EL2.TCR2En = 1; under virtual POE every
    /// access traps with FGT (HFGRTR/HFGWTR_EL2.TCR_EL1) so porwatch keeps
    /// POE and E0POE.
    Hardware,
}

/// EL2 settings for the guest.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Controls {
    /// HCR_EL2 bits the passed features need.
    pub hcr: u64,
    /// HCRX_EL2 (written only with FEAT_HCX).
    pub hcrx: u64,
    /// ZCR_EL2 to write (SVE passed).
    pub zcr_el2: Option<u64>,
    /// SMCR_EL2 to write (SME passed).
    pub smcr_el2: Option<u64>,
    pub tcr2: Tcr2Path,
    /// TCR2_EL1 bits a guest write puts in the hardware register.
    pub tcr2_hw: u64,
    /// TCR2_EL1 bits the guest can set and read back: the hardware ones
    /// and, under virtual POE, POE and E0POE.
    pub tcr2_guest: u64,
}

impl Controls {
    /// Nothing enabled (before the view is computed).
    pub const NONE: Self = Self {
        hcr: 0,
        hcrx: 0,
        zcr_el2: None,
        smcr_el2: None,
        tcr2: Tcr2Path::Absent,
        tcr2_hw: 0,
        tcr2_guest: 0,
    };
}

/// SCR_EL3 and friends for an EL3 entry (porwatch's own needs included).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct El3Controls {
    pub scr: u64,
    pub cptr: u64,
    /// ZCR_EL3 / SMCR_EL3 to write (SVE / SME passed).
    pub zcr: Option<u64>,
    pub smcr: Option<u64>,
}

/// The control list and threshold of `rule` as it applies under `setup`.
fn enable_of(rule: &Rule, setup: &Setup) -> Option<(&'static [Ctl], u8)> {
    match *rule {
        Rule::Enable(ctls, min) => Some((ctls, min)),
        Rule::Needs(_, then) | Rule::Tcr2Hw(then) | Rule::Carrier(_, then) => enable_of(then, setup),
        Rule::Watch { tracked, untracked } => enable_of(if setup.track { tracked } else { untracked }, setup),
        _ => None,
    }
}

/// Every control the guest's view needs.
pub fn needed<'a>(view: &'a View, setup: &'a Setup) -> impl Iterator<Item = Ctl> + 'a {
    table::REGS
        .iter()
        .flat_map(move |reg| {
            reg.fields.iter().filter_map(move |f| {
                let (ctls, min) = enable_of(&f.rule, setup)?;
                let v = f.get(view.get(reg.id));
                (f.implemented(v) && f.level(v) >= f.level(min)).then_some(ctls)
            })
        })
        .flatten()
        .copied()
}

/// The EL2 controls for the guest's `view` of CPU `raw` under `setup`.
pub fn controls(raw: &Raw, view: &View, setup: &Setup) -> Controls {
    let tcr2 = setup.tcr2_path(raw.field(table::MMFR3_TCRX) != 0);
    let mut c = Controls {
        hcr: 0,
        hcrx: if tcr2 == Tcr2Path::Hardware { HCRX_TCR2EN } else { 0 },
        zcr_el2: None,
        smcr_el2: None,
        tcr2,
        tcr2_hw: 0,
        tcr2_guest: 0,
    };
    let mut smcr = 0;
    for ctl in needed(view, setup) {
        match ctl {
            Ctl::PAuth => c.hcr |= HCR_API | HCR_APK,
            Ctl::MteTags => c.hcr |= HCR_ATA,
            Ctl::Scxtnum => c.hcr |= HCR_ENSCXT,
            Ctl::RasFaultInjection => c.hcr |= HCR_FIEN,
            Ctl::Fpmr => c.hcrx |= HCRX_ENFPM,
            Ctl::Mops => c.hcrx |= HCRX_MSCEN,
            Ctl::Sctlr2 => c.hcrx |= HCRX_SCTLR2EN,
            Ctl::Sve => c.zcr_el2 = Some(VL_LEN_MAX),
            Ctl::Sme => smcr |= VL_LEN_MAX,
            Ctl::SmeZt0 => smcr |= SMCR_EZT0,
            Ctl::SmeFa64 => smcr |= SMCR_FA64,
            Ctl::Pie => c.tcr2_hw |= TCR2_PIE,
            Ctl::Aie => c.tcr2_hw |= TCR2_AIE,
            Ctl::Asid2 => c.tcr2_hw |= TCR2_A2 | TCR2_FNG0 | TCR2_FNG1,
        }
    }
    if view.field(table::PFR1_SME) != 0 {
        c.smcr_el2 = Some(smcr);
    }
    if setup.por_carrier {
        // The guest does not see SCXTNUM, but porwatch's carrier sites
        // read and write SCXTNUM_EL1 at EL1.
        c.hcr |= HCR_ENSCXT;
    }
    let overlays = TCR2_POE | TCR2_E0POE;
    match (tcr2, setup.poe) {
        (Tcr2Path::Absent, _) => c.tcr2_hw = 0,
        (Tcr2Path::Emulated, _) => {
            c.tcr2_hw = 0;
            c.tcr2_guest = overlays;
        }
        (Tcr2Path::Hardware, Mode::Native) => {
            c.tcr2_hw |= overlays;
            c.tcr2_guest = c.tcr2_hw;
        }
        (Tcr2Path::Hardware, Mode::Virtual) => c.tcr2_guest = c.tcr2_hw | overlays,
        (Tcr2Path::Hardware, Mode::None) => c.tcr2_guest = c.tcr2_hw,
    }
    c
}

/// The set-up that passes the most: what SCR_EL3 must allow before the
/// command line is known (EL3 cannot be revisited from EL2; each feature is
/// still gated by its EL2 control).
pub fn widest_setup(raw: &Raw) -> Setup {
    let s1poe = raw.field(table::MMFR3_S1POE) != 0;
    // No carrier: CSV2_2 passes, so SCR_EL3.EnSCXT is set when the CPU has it.
    Setup {
        poe: if s1poe { Mode::Native } else { Mode::Virtual },
        track: false,
        fgt: true,
        por_carrier: false,
    }
}

/// SCR_EL3, CPTR_EL3, ZCR_EL3 and SMCR_EL3 for dropping from EL3 to
/// porwatch at EL2: NS, HCE, RW; what porwatch itself uses (FGT, HCX,
/// TCR2_ELx, PIR/POR); and the EL3 side of every control the guest may need.
pub fn el3_controls(raw: &Raw) -> El3Controls {
    let setup = widest_setup(raw);
    let view = super::decide(raw, &setup, |_| {});
    let nz = |r: super::FieldRef| raw.field(r) != 0;
    let mut scr = SCR_NS | SCR_HCE | SCR_RW;
    if nz(table::MMFR0_FGT) {
        scr |= SCR_FGTEN;
    }
    if nz(table::MMFR1_HCX) {
        scr |= SCR_HXEN;
    }
    if nz(table::MMFR3_TCRX) {
        scr |= SCR_TCR2EN;
    }
    if nz(table::MMFR3_S1PIE) || nz(table::MMFR3_S1POE) {
        scr |= SCR_PIEN;
    }
    let mut e = El3Controls { scr, cptr: 0, zcr: None, smcr: None };
    let mut smcr = 0;
    for ctl in needed(&view, &setup) {
        match ctl {
            Ctl::PAuth => e.scr |= SCR_API | SCR_APK,
            Ctl::MteTags => e.scr |= SCR_ATA,
            Ctl::Scxtnum => e.scr |= SCR_ENSCXT,
            Ctl::RasFaultInjection => e.scr |= SCR_FIEN,
            Ctl::Fpmr => e.scr |= SCR_ENFPM,
            Ctl::Sctlr2 => e.scr |= SCR_SCTLR2EN,
            Ctl::Sve => {
                e.cptr |= CPTR_EL3_EZ;
                e.zcr = Some(VL_LEN_MAX);
            }
            Ctl::Sme => {
                e.cptr |= CPTR_EL3_ESM;
                e.scr |= SCR_ENTP2;
                smcr |= VL_LEN_MAX;
            }
            Ctl::SmeZt0 => smcr |= SMCR_EZT0,
            Ctl::SmeFa64 => smcr |= SMCR_FA64,
            Ctl::Aie => e.scr |= SCR_AIEN,
            // Gated by TCR2En/PIEn above.
            Ctl::Mops | Ctl::Pie | Ctl::Asid2 => {}
        }
    }
    if e.cptr & CPTR_EL3_ESM != 0 {
        e.smcr = Some(smcr);
    }
    e
}

const _: () = assert!(REGS == 56);
