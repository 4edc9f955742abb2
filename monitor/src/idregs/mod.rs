//! The CPU the guest sees: for every field of every ID register that
//! HCR_EL2.TID3 traps (op0=3, op1=0, CRn=0, CRm 1..=7, AArch32 ones
//! included) whether porwatch passes the CPU's value, lowers it, hides it
//! or provides the feature itself, with the reason; and, derived from the
//! same table, the EL2 (and, after an EL3 entry, EL3) controls that the
//! features it passes need ([`controls`]).
//!
//! Anything the table does not know is hidden: a field it does not list (a
//! nonzero value in a RES0 position) and a register it does not list read
//! as "not implemented", so a newer QEMU or CPU never hands the guest a
//! feature whose EL2 controls porwatch leaves at their trapping or disabled
//! value (the FEAT_FPMR lesson: QEMU 11 added FPMR, porwatch passed the ID
//! field through but not HCRX_EL2.EnFPM, and Linux's first `MSR FPMR`
//! trapped to EL2).
//!
//! Field layouts: Arm ARM DDI 0487 (D24.2 ID registers) as Linux
//! `arch/arm64/tools/sysreg` transcribes it (linux-next, 2025), each rule
//! with the reason it is what it is ([`table`]). Values follow the Arm ARM
//! ID scheme (D19.1.3): unsigned fields grow with the feature and 0 means
//! "not implemented"; signed ones use 0xF (-1) for "not implemented".
//!
//! Pure logic: no registers, no allocation; the hypervisor reads the
//! CPU's values, calls [`decide`] once at boot and keeps the [`View`].

pub mod controls;
pub mod table;
#[cfg(test)]
mod tests;

use crate::sysreg::{self, SysRegId};
use crate::vpoe::Mode;

pub use controls::{Controls, El3Controls, Tcr2Path};

/// Registers in the TID3 space: CRm 1..=7, op2 0..=7.
pub const REGS: usize = 56;

/// The slot of a TID3-space register in a [`Raw`] or [`View`] array.
pub const fn slot(id: SysRegId) -> Option<usize> {
    if sysreg::is_tid3_space(id) {
        Some((id.crm() as usize - 1) * 8 + id.op2() as usize)
    } else {
        None
    }
}

/// The register at slot `i`.
pub const fn slot_id(i: usize) -> SysRegId {
    SysRegId::new(3, 0, 0, (i / 8 + 1) as u8, (i % 8) as u8)
}

/// The CPU's values of the 56 TID3-space encodings (unallocated ones read
/// as zero on the CPU, RAZ).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Raw(pub [u64; REGS]);

impl Raw {
    pub const ZERO: Self = Raw([0; REGS]);

    pub fn get(&self, id: SysRegId) -> u64 {
        slot(id).map_or(0, |i| self.0[i])
    }

    pub fn set(&mut self, id: SysRegId, v: u64) {
        if let Some(i) = slot(id) {
            self.0[i] = v;
        }
    }

    /// The CPU's value of a field the table names (0 if it names none).
    pub fn field(&self, r: FieldRef) -> u8 {
        table::lookup(r).map_or(0, |(_, f)| f.get(self.get(r.0)))
    }
}

/// What the guest reads for each TID3-space encoding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct View(pub [u64; REGS]);

impl View {
    pub const ZERO: Self = View([0; REGS]);

    /// The guest's value of `id` (0 outside the TID3 space).
    pub fn get(&self, id: SysRegId) -> u64 {
        slot(id).map_or(0, |i| self.0[i])
    }

    /// The guest's value of a field named in the [`table`].
    pub fn field(&self, r: FieldRef) -> u8 {
        match table::lookup(r) {
            Some((_, f)) => f.get(self.get(r.0)),
            None => 0,
        }
    }
}

/// A field by register and lowest bit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FieldRef(pub SysRegId, pub u8);

/// How a field's values are ordered (Arm ARM D19.1.3).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sign {
    /// 0 = not implemented, larger = more.
    Unsigned,
    /// All ones (-1) = not implemented, 0 = the base feature, larger = more.
    Signed,
}

/// Why the guest reads a value other than the CPU's (trace `id_field.reason`;
/// the trace's `ID_REASON_NAMES` lists the same names in this order).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Reason {
    /// Not in porwatch's table: a field in a reserved position or a
    /// register it does not know (a newer architecture than the table).
    Unknown = 0,
    /// Describes EL2, EL3 or stage 2, which belong to porwatch (no nested
    /// virtualization).
    El2Only = 1,
    /// The feature needs EL2 work porwatch does not do (its controls stay
    /// at their trapping or disabled value).
    NeedsEl2 = 2,
    /// The page-table watch cannot follow it (hardware descriptor updates,
    /// 128-bit descriptors, instructions that write descriptors which the
    /// store emulation does not decode).
    PageTableWatch = 3,
    /// Provided by porwatch: virtual POE.
    VirtualPoe = 4,
    /// FEAT_S1POE not provided (`porwatch.poe=off`, or virtual POE without
    /// the tap).
    PoeOff = 5,
    /// Needs the guest's TCR2_EL1 in the hardware, which porwatch keeps
    /// virtual here (virtual POE without fine-grained traps).
    Tcr2Virtual = 6,
    /// Fixed by porwatch's EL2 configuration (EL1 is AArch64, the stage-2
    /// IPA size).
    El2Config = 7,
    /// Depends on a feature the guest does not see.
    Depends = 8,
    /// Its register serves porwatch as the carrier of patched POR_EL1
    /// sites (por_sites.rs): SCXTNUM_EL1 of FEAT_CSV2_2.
    PorCarrier = 9,
}

impl Reason {
    /// Names, indexed by the discriminant (the trace's enum names).
    pub const NAMES: [&'static str; 10] = [
        "unknown",
        "el2_only",
        "needs_el2_support",
        "page_table_watch",
        "virtual_poe",
        "poe_not_provided",
        "tcr2_virtual",
        "el2_config",
        "depends",
        "por_carrier",
    ];

    pub const fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// A control porwatch sets for a feature it passes to the guest
/// ([`controls`] maps each to its EL2 and EL3 register bits).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ctl {
    /// Pointer authentication: HCR_EL2.{API, APK}; SCR_EL3.{API, APK}.
    PAuth,
    /// FEAT_MTE2 tag access: HCR_EL2.ATA; SCR_EL3.ATA.
    MteTags,
    /// SCXTNUM_ELx (FEAT_CSV2_2, CSV2_1p2): HCR_EL2.EnSCXT; SCR_EL3.EnSCXT.
    Scxtnum,
    /// Error-record fault injection (FEAT_RASv1p1): HCR_EL2.FIEN; SCR_EL3.FIEN.
    RasFaultInjection,
    /// FPMR (FEAT_FPMR): HCRX_EL2.EnFPM; SCR_EL3.EnFPM.
    Fpmr,
    /// CPY*/SET* (FEAT_MOPS) at EL1/EL0: HCRX_EL2.MSCEn.
    Mops,
    /// SCTLR2_EL1 (FEAT_SCTLR2): HCRX_EL2.SCTLR2En; SCR_EL3.SCTLR2En.
    Sctlr2,
    /// SVE: CPTR_EL2.TZ = 0 and ZCR_EL2.LEN = max; CPTR_EL3.EZ, ZCR_EL3.
    Sve,
    /// SME: CPTR_EL2.TSM = 0 and SMCR_EL2.LEN = max; CPTR_EL3.ESM,
    /// SMCR_EL3, SCR_EL3.EnTP2.
    Sme,
    /// SME2's ZT0: SMCR_EL2.EZT0; SMCR_EL3.EZT0.
    SmeZt0,
    /// FEAT_SME_FA64: SMCR_EL2.FA64; SMCR_EL3.FA64.
    SmeFa64,
    /// FEAT_S1PIE: TCR2_EL1.PIE reaches the hardware; SCR_EL3.PIEn.
    Pie,
    /// FEAT_AIE: TCR2_EL1.AIE reaches the hardware; SCR_EL3.AIEn.
    Aie,
    /// FEAT_ASID2: TCR2_EL1.{A2, FNG0, FNG1} reach the hardware.
    Asid2,
}

/// What porwatch does with a field.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Rule {
    /// The CPU's value; the feature needs nothing from EL2 (or only traps
    /// porwatch leaves off for every guest, e.g. CPTR_EL2.TFP).
    Pass,
    /// The CPU's value, with the controls set when the guest's value is at
    /// least `min` (e.g. FPMR: HCRX_EL2.EnFPM).
    Enable(&'static [Ctl], u8),
    /// At most this value (the CPU's if lower).
    Max(u8, Reason),
    /// "Not implemented" (0, or all ones for a signed field).
    Hide(Reason),
    /// This value whatever the CPU says (only where porwatch provides or
    /// describes the feature itself).
    Fixed(u8, Reason),
    /// `then`, if every field in `deps` is implemented in the guest's view
    /// (computed before this one); else hidden ([`Reason::Depends`]).
    Needs(&'static [FieldRef], &'static Rule),
    /// `then` if the guest's TCR2_EL1 reaches the hardware; else hidden
    /// ([`Reason::Tcr2Virtual`]).
    Tcr2Hw(&'static Rule),
    /// `tracked` while the page-table watch is on, `untracked` otherwise.
    Watch { tracked: &'static Rule, untracked: &'static Rule },
    /// ID_AA64MMFR3_EL1.S1POE: by POE mode (virtual: 1; native: the CPU's;
    /// none: hidden).
    S1Poe,
    /// At most this value while porwatch uses SCXTNUM_EL1 as its POR_EL1
    /// carrier ([`Reason::PorCarrier`]), else `then`.
    Carrier(u8, &'static Rule),
}

/// One field of an ID register.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Field {
    pub name: &'static str,
    pub lsb: u8,
    pub width: u8,
    pub sign: Sign,
    pub rule: Rule,
}

impl Field {
    pub const fn mask(&self) -> u64 {
        (if self.width >= 64 { u64::MAX } else { (1u64 << self.width) - 1 }) << self.lsb
    }

    pub const fn get(&self, reg: u64) -> u8 {
        ((reg & self.mask()) >> self.lsb) as u8
    }

    pub const fn put(&self, reg: u64, v: u8) -> u64 {
        (reg & !self.mask()) | (((v as u64) << self.lsb) & self.mask())
    }

    /// The "not implemented" value.
    pub const fn ni(&self) -> u8 {
        match self.sign {
            Sign::Unsigned => 0,
            Sign::Signed => (self.mask() >> self.lsb) as u8,
        }
    }

    /// `v` as an ordered number (signed fields sign-extended).
    pub const fn level(&self, v: u8) -> i16 {
        match self.sign {
            Sign::Unsigned => v as i16,
            Sign::Signed => {
                let top = 1u8 << (self.width - 1);
                if v & top != 0 {
                    v as i16 - (1i16 << self.width)
                } else {
                    v as i16
                }
            }
        }
    }

    /// Whether `v` means the feature is implemented.
    pub const fn implemented(&self, v: u8) -> bool {
        v != self.ni()
    }
}

/// An ID register the table knows.
#[derive(Clone, Copy, Debug)]
pub struct Reg {
    pub id: SysRegId,
    pub name: &'static str,
    /// Every field; bits not covered are RES0 in the architecture the table
    /// describes.
    pub fields: &'static [Field],
}

impl Reg {
    /// Bits no field covers.
    pub fn reserved(&self) -> u64 {
        !self.fields.iter().fold(0, |m, f| m | f.mask())
    }
}

/// What the guest's view depends on besides the CPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Setup {
    pub poe: Mode,
    /// The page-table watch is on.
    pub track: bool,
    /// The CPU has FEAT_FGT (porwatch traps TCR2_EL1 with it under virtual
    /// POE, so the guest's TCR2_EL1 can reach the hardware).
    pub fgt: bool,
    /// SCXTNUM_EL1 carries POR_EL1 for patched sites (por_sites.rs): FEAT_CSV2_2
    /// is hidden and HCR_EL2.EnSCXT set for porwatch itself.
    pub por_carrier: bool,
}

/// ID_AA64PFR0_EL1.CSV2 and ID_AA64PFR1_EL1.CSV2_frac values from which
/// SCXTNUM_ELx exist (FEAT_CSV2_2, or FEAT_CSV2_1p2).
const CSV2_2: u8 = 2;
const CSV2_1: u8 = 1;
const CSV2_FRAC_1P2: u8 = 2;

/// Whether the CPU implements SCXTNUM_EL1 (the POR_EL1 carrier).
pub fn has_scxtnum(raw: &Raw) -> bool {
    let csv2 = raw.field(table::PFR0_CSV2);
    csv2 >= CSV2_2 || (csv2 == CSV2_1 && raw.field(table::PFR1_CSV2_FRAC) >= CSV2_FRAC_1P2)
}

impl Setup {
    /// How the guest's TCR2_EL1 is provided on a CPU with (`tcrx`) or
    /// without FEAT_TCR2.
    pub const fn tcr2_path(&self, tcrx: bool) -> Tcr2Path {
        match (tcrx, self.poe) {
            (true, Mode::Virtual) if self.fgt => Tcr2Path::Hardware,
            (true, Mode::Virtual) => Tcr2Path::Emulated,
            (true, _) => Tcr2Path::Hardware,
            (false, Mode::Virtual) => Tcr2Path::Emulated,
            (false, _) => Tcr2Path::Absent,
        }
    }
}

/// A field (or a group of unknown bits) the guest reads differently from
/// the CPU: one `id_field` trace record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Deviation {
    pub reg: SysRegId,
    pub lsb: u8,
    pub width: u8,
    pub cpu: u64,
    pub guest: u64,
    pub reason: Reason,
}

impl Deviation {
    /// The trace's `id_field.field`: register encoding << 8 | lowest bit.
    pub const fn packed(&self) -> u64 {
        pack(self.reg, self.lsb)
    }
}

/// `id_field.field`: the register's MSR/MRS encoding (bits [20:5] of the
/// instruction, [`SysRegId::bits`]) shifted left by 8, or'ed with the
/// field's lowest bit.
pub const fn pack(reg: SysRegId, lsb: u8) -> u64 {
    ((reg.bits() as u64) << 8) | lsb as u64
}

/// Inverse of [`pack`].
pub const fn unpack(v: u64) -> (SysRegId, u8) {
    (SysRegId::from_bits((v >> 8) as u16), (v & 0xff) as u8)
}

/// Applies `rule` to the CPU's value `cpu` of field `f`; returns the
/// guest's value and, when it differs, why.
fn apply(rule: &Rule, f: &Field, cpu: u8, raw: &Raw, view: &View, setup: &Setup) -> (u8, Option<Reason>) {
    match *rule {
        Rule::Pass | Rule::Enable(..) => (cpu, None),
        Rule::Max(max, reason) => {
            if f.level(cpu) > f.level(max) {
                (max, Some(reason))
            } else {
                (cpu, None)
            }
        }
        Rule::Hide(reason) => (f.ni(), Some(reason)),
        Rule::Fixed(v, reason) => (v, Some(reason)),
        Rule::Needs(deps, then) => {
            let ok = deps.iter().all(|&d| match table::lookup(d) {
                Some((_, df)) => df.implemented(view.field(d)),
                None => false,
            });
            if ok {
                apply(then, f, cpu, raw, view, setup)
            } else {
                (f.ni(), Some(Reason::Depends))
            }
        }
        Rule::Tcr2Hw(then) => {
            let tcrx = raw.field(table::MMFR3_TCRX) != 0;
            if setup.tcr2_path(tcrx) == Tcr2Path::Hardware {
                apply(then, f, cpu, raw, view, setup)
            } else {
                (f.ni(), Some(Reason::Tcr2Virtual))
            }
        }
        Rule::Watch { tracked, untracked } => {
            apply(if setup.track { tracked } else { untracked }, f, cpu, raw, view, setup)
        }
        Rule::Carrier(max, then) => {
            if setup.por_carrier && f.level(cpu) > f.level(max) {
                (max, Some(Reason::PorCarrier))
            } else {
                apply(then, f, cpu, raw, view, setup)
            }
        }
        Rule::S1Poe => match setup.poe {
            Mode::Virtual => (1, Some(Reason::VirtualPoe)),
            Mode::Native => (cpu, None),
            Mode::None => (f.ni(), Some(Reason::PoeOff)),
        },
    }
}

/// The guest's view of the TID3 space for a CPU (`raw`) and set-up;
/// `on_deviation` is called for every field whose value the guest reads
/// differently (hidden, lowered, raised), in table order, then for unknown
/// bits and registers.
pub fn decide(raw: &Raw, setup: &Setup, mut on_deviation: impl FnMut(Deviation)) -> View {
    let mut view = View::ZERO;
    let mut known = [false; REGS];
    for reg in table::REGS {
        let Some(i) = slot(reg.id) else { continue };
        known[i] = true;
        let cpu_reg = raw.0[i];
        let mut v = 0u64;
        for f in reg.fields {
            let cpu = f.get(cpu_reg);
            let (g, reason) = apply(&f.rule, f, cpu, raw, &view, setup);
            v = f.put(v, g);
            view.0[i] = v; // later fields may depend on earlier ones
            if let (Some(reason), true) = (reason, g != cpu) {
                on_deviation(Deviation {
                    reg: reg.id,
                    lsb: f.lsb,
                    width: f.width,
                    cpu: cpu as u64,
                    guest: g as u64,
                    reason,
                });
            }
        }
        view.0[i] = v;
        // Bits in reserved positions: a feature newer than the table.
        let unknown = cpu_reg & reg.reserved();
        for nibble in 0..16u8 {
            let bits = (unknown >> (nibble * 4)) & 0xf;
            if bits != 0 {
                on_deviation(Deviation {
                    reg: reg.id,
                    lsb: nibble * 4,
                    width: 4,
                    cpu: bits,
                    guest: 0,
                    reason: Reason::Unknown,
                });
            }
        }
    }
    // Registers the table does not know (allocated or not): RAZ.
    for (i, &cpu) in raw.0.iter().enumerate() {
        if !known[i] && cpu != 0 {
            on_deviation(Deviation {
                reg: slot_id(i),
                lsb: 0,
                width: 64,
                cpu,
                guest: 0,
                reason: Reason::Unknown,
            });
        }
    }
    view
}

/// The name of a packed `id_field.field`: "ID_AA64PFR1_EL1.GCS [47:44]"
/// for a field of the table, "ID_AA64PFR2_EL1 [27:24]" for unknown bits
/// (reported a nibble at a time), "S3_0_C0_C4_3" for a register the table
/// does not know (reported whole).
pub fn describe(packed: u64, out: &mut impl core::fmt::Write) -> core::fmt::Result {
    let (id, lsb) = unpack(packed);
    let Some(reg) = table::REGS.iter().find(|r| r.id == id) else {
        return write!(out, "S{}_{}_C{}_C{}_{}", id.op0(), id.op1(), id.crn(), id.crm(), id.op2());
    };
    out.write_str(reg.name)?;
    let (width, named) = match reg.fields.iter().find(|f| f.lsb == lsb) {
        Some(f) => {
            write!(out, ".{}", f.name)?;
            (f.width, true)
        }
        None => (4, false),
    };
    let hi = (lsb as u32 + width as u32 - 1).min(63);
    match (named, width) {
        (true, 1) => write!(out, " [{lsb}]"),
        _ => write!(out, " [{hi}:{lsb}]"),
    }
}
