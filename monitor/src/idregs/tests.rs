use super::controls::*;
use super::table;
use super::*;
use crate::sysreg::{self, *};
use proptest::prelude::*;

extern crate std;
use std::string::String;
use std::vec::Vec;

/// ID registers QEMU 10.0.2 and 11.1.3 `-cpu max` report (porwatch trace
/// headers, ../shared/ARM-FACTS.md); other registers zero.
fn qemu10() -> Raw {
    let mut r = Raw::ZERO;
    r.set(ID_AA64PFR0_EL1, 0x1301_0011_2111_0222);
    r.set(ID_AA64PFR1_EL1, 0x0000_0010_0100_0121);
    r.set(ID_AA64DFR0_EL1, 0x1000_0000_1030_560a);
    r.set(ID_AA64ISAR0_EL1, 0x1221_1111_1021_2120);
    r.set(ID_AA64ISAR1_EL1, 0x0111_2111_1021_1502);
    r.set(ID_AA64MMFR0_EL1, 0x2100_0323_1020_1126);
    r.set(ID_AA64MMFR1_EL1, 0x0110_1120_1031_2122);
    r.set(ID_AA64MMFR2_EL1, 0x1221_0111_1201_1011);
    r.set(ID_AA64MMFR3_EL1, 0x1000_0000_0000_0000);
    r
}

fn qemu11() -> Raw {
    let mut r = qemu10();
    r.set(ID_AA64PFR1_EL1, 0x0010_1010_1200_0121);
    r.set(ID_AA64PFR2_EL1, 0x0000_0001_0000_0000); // FPMR
    r.set(ID_AA64ISAR0_EL1, 0x1221_1111_1031_2120);
    r.set(ID_AA64MMFR3_EL1, 0x1000_0000_1100_1111);
    r
}

fn setup(poe: Mode) -> Setup {
    Setup { poe, track: true, fgt: true, por_carrier: false }
}

fn view_of(raw: &Raw, s: &Setup) -> (View, Vec<Deviation>) {
    let mut devs = Vec::new();
    let v = decide(raw, s, |d| devs.push(d));
    (v, devs)
}

fn field(reg: SysRegId, lsb: u8) -> &'static Field {
    table::lookup(FieldRef(reg, lsb)).expect("field in table").1
}

fn gv(v: &View, reg: SysRegId, lsb: u8) -> u8 {
    field(reg, lsb).get(v.get(reg))
}

#[test]
fn table_is_well_formed() {
    let mut seen = Vec::new();
    for reg in table::REGS {
        assert!(sysreg::is_tid3_space(reg.id), "{} outside the TID3 space", reg.name);
        assert!(ALLOCATED_ID_REGS.contains(&reg.id), "{} not allocated", reg.name);
        assert!(!seen.contains(&reg.id), "{} twice", reg.name);
        seen.push(reg.id);
        let mut covered = 0u64;
        for f in reg.fields {
            assert!(f.width >= 1 && f.lsb as u32 + f.width as u32 <= 64, "{}.{}", reg.name, f.name);
            assert_eq!(covered & f.mask(), 0, "{}.{} overlaps", reg.name, f.name);
            covered |= f.mask();
            let dup = reg.fields.iter().filter(|g| g.name == f.name).count();
            assert_eq!(dup, 1, "{}.{} named twice", reg.name, f.name);
        }
    }
    // Every allocated ID register is in the table (a register the
    // architecture defines but porwatch forgot would be hidden whole).
    for id in ALLOCATED_ID_REGS {
        assert!(seen.contains(&id), "{id:?} missing from the table");
    }
}

/// A `Needs` rule may only look at fields computed before it.
#[test]
fn dependencies_come_first() {
    fn deps(rule: &Rule, out: &mut Vec<FieldRef>) {
        match *rule {
            Rule::Needs(d, then) => {
                out.extend_from_slice(d);
                deps(then, out)
            }
            Rule::Tcr2Hw(then) => deps(then, out),
            Rule::Watch { tracked, untracked } => {
                deps(tracked, out);
                deps(untracked, out)
            }
            _ => {}
        }
    }
    let order: Vec<(SysRegId, u8)> =
        table::REGS.iter().flat_map(|r| r.fields.iter().map(move |f| (r.id, f.lsb))).collect();
    for (i, &(id, lsb)) in order.iter().enumerate() {
        let mut d = Vec::new();
        deps(&field(id, lsb).rule, &mut d);
        for FieldRef(did, dlsb) in d {
            let j = order.iter().position(|&x| x == (did, dlsb)).expect("dependency in table");
            assert!(j < i, "{id:?}[{lsb}] depends on a later field {did:?}[{dlsb}]");
        }
    }
    for r in [
        table::PFR0_SVE,
        table::PFR0_EL0,
        table::PFR0_AMU,
        table::PFR1_SME,
        table::PFR1_MTE,
        table::PFR2_FPMR,
        table::DFR0_PMUVER,
        table::MMFR0_FGT,
        table::MMFR1_HCX,
        table::MMFR1_HAFDBS,
        table::MMFR3_TCRX,
        table::MMFR3_SCTLRX,
        table::MMFR3_S1PIE,
        table::MMFR3_S1POE,
    ] {
        assert!(table::lookup(r).is_some(), "{r:?}");
    }
}

#[test]
fn field_values() {
    let fp = field(ID_AA64PFR0_EL1, 16);
    assert_eq!(fp.ni(), 0xf);
    assert_eq!(fp.level(0xf), -1);
    assert_eq!(fp.level(1), 1);
    assert!(!fp.implemented(0xf) && fp.implemented(0));
    let sve = field(ID_AA64PFR0_EL1, 32);
    assert_eq!((sve.ni(), sve.mask()), (0, 0xf << 32));
    let fa64 = field(ID_AA64SMFR0_EL1, 63);
    assert_eq!((fa64.mask(), fa64.get(1 << 63), fa64.put(0, 1)), (1 << 63, 1, 1 << 63));
    assert_eq!(pack(ID_AA64PFR1_EL1, 44), ((ID_AA64PFR1_EL1.bits() as u64) << 8) | 44);
    assert_eq!(unpack(pack(ID_AA64PFR1_EL1, 44)), (ID_AA64PFR1_EL1, 44));
}

/// QEMU 11 (virtual POE, page-table watch on): what the guest sees and why.
#[test]
fn qemu11_view() {
    let raw = qemu11();
    let s = setup(Mode::Virtual);
    let (v, devs) = view_of(&raw, &s);
    // Provided: virtual S1POE.
    assert_eq!(gv(&v, ID_AA64MMFR3_EL1, 16), 1);
    // Passed: S1PIE (TCR2 reaches the hardware), TCRX, SCTLRX, FPMR.
    assert_eq!(gv(&v, ID_AA64MMFR3_EL1, 8), 1);
    assert_eq!(gv(&v, ID_AA64MMFR3_EL1, 0), 1);
    assert_eq!(gv(&v, ID_AA64PFR2_EL1, 32), 1);
    // Hidden: GCS, NMI, MTEX, EL2, HAFDBS (tracked), S2PIE; lowered:
    // LSE128, GICv4.1 (QEMU says 1: unchanged), EL1 AArch32, ECV, PARange.
    for (reg, lsb, want, reason) in [
        (ID_AA64PFR1_EL1, 44, 0, Reason::NeedsEl2),
        (ID_AA64PFR1_EL1, 36, 0, Reason::NeedsEl2),
        (ID_AA64PFR1_EL1, 52, 0, Reason::PageTableWatch),
        (ID_AA64PFR0_EL1, 8, 0, Reason::El2Only),
        (ID_AA64PFR0_EL1, 4, 1, Reason::El2Config),
        (ID_AA64MMFR1_EL1, 0, 0, Reason::PageTableWatch),
        (ID_AA64MMFR3_EL1, 12, 0, Reason::El2Only),
        (ID_AA64ISAR0_EL1, 20, 2, Reason::PageTableWatch),
        (ID_AA64MMFR0_EL1, 60, 1, Reason::El2Only),
        (ID_AA64MMFR0_EL1, 0, 5, Reason::El2Config),
        (ID_AA64MMFR3_EL1, 16, 1, Reason::VirtualPoe),
    ] {
        assert_eq!(gv(&v, reg, lsb), want, "{reg:?}[{lsb}]");
        let d = devs.iter().find(|d| d.reg == reg && d.lsb == lsb).expect("a deviation record");
        assert_eq!((d.guest, d.reason), (want as u64, reason), "{d:?}");
        assert_eq!(d.cpu, field(reg, lsb).get(raw.get(reg)) as u64);
    }
    // Passed untouched: FP, AdvSIMD, SVE, SME, BTI, SSBS, PAuth, MTE (1).
    for (reg, lsb) in [
        (ID_AA64PFR0_EL1, 16),
        (ID_AA64PFR0_EL1, 20),
        (ID_AA64PFR0_EL1, 32),
        (ID_AA64PFR1_EL1, 24),
        (ID_AA64PFR1_EL1, 0),
        (ID_AA64PFR1_EL1, 4),
        (ID_AA64PFR1_EL1, 8),
        (ID_AA64ISAR1_EL1, 4),
        (ID_AA64ISAR1_EL1, 24),
    ] {
        assert_eq!(gv(&v, reg, lsb), field(reg, lsb).get(raw.get(reg)), "{reg:?}[{lsb}]");
        assert!(!devs.iter().any(|d| d.reg == reg && d.lsb == lsb));
    }
    // Nothing unknown in what QEMU 11 reports.
    assert!(!devs.iter().any(|d| d.reason == Reason::Unknown), "{devs:#?}");
    // Every deviation really differs, and the view equals the CPU elsewhere.
    for d in &devs {
        assert_ne!(d.cpu, d.guest, "{d:?}");
    }
}

/// The FPMR lesson, as a rule: EnFPM is set exactly when FPMR is passed.
#[test]
fn el2_enables_follow_the_view() {
    let s = setup(Mode::Virtual);
    let with = qemu11();
    let (v, _) = view_of(&with, &s);
    let c = controls(&with, &v, &s);
    assert_ne!(c.hcrx & HCRX_ENFPM, 0);
    let mut without = with;
    without.set(ID_AA64PFR2_EL1, 0);
    let (v, _) = view_of(&without, &s);
    assert_eq!(controls(&without, &v, &s).hcrx & HCRX_ENFPM, 0);

    // Each Enable rule's control, on and off.
    type Check = fn(&Controls) -> bool;
    let cases: [(SysRegId, u8, u8, Check); 9] = [
        (ID_AA64ISAR2_EL1, 16, 1, |c| c.hcrx & HCRX_MSCEN != 0),
        (ID_AA64MMFR3_EL1, 4, 1, |c| c.hcrx & HCRX_SCTLR2EN != 0),
        (ID_AA64ISAR1_EL1, 4, 1, |c| c.hcr & (HCR_API | HCR_APK) == HCR_API | HCR_APK),
        (ID_AA64PFR1_EL1, 8, 2, |c| c.hcr & HCR_ATA != 0),
        (ID_AA64PFR0_EL1, 56, 2, |c| c.hcr & HCR_ENSCXT != 0),
        (ID_AA64PFR0_EL1, 28, 2, |c| c.hcr & HCR_FIEN != 0),
        (ID_AA64PFR0_EL1, 32, 1, |c| c.zcr_el2 == Some(VL_LEN_MAX)),
        (ID_AA64PFR1_EL1, 24, 1, |c| c.smcr_el2.is_some_and(|v| v & 0xf == VL_LEN_MAX)),
        (ID_AA64PFR2_EL1, 32, 1, |c| c.hcrx & HCRX_ENFPM != 0),
    ];
    for (reg, lsb, on, check) in cases {
        let f = field(reg, lsb);
        let mut raw = Raw::ZERO;
        raw.set(reg, f.put(0, on));
        let (v, _) = view_of(&raw, &s);
        assert!(check(&controls(&raw, &v, &s)), "{reg:?}[{lsb}] = {on}: control not set");
        if on > 1 {
            raw.set(reg, f.put(0, on - 1));
            let (v, _) = view_of(&raw, &s);
            assert!(!check(&controls(&raw, &v, &s)), "{reg:?}[{lsb}] = {}: control set", on - 1);
        }
        let (v, _) = view_of(&Raw::ZERO, &s);
        assert!(!check(&controls(&Raw::ZERO, &v, &s)), "{reg:?}[{lsb}] absent: control set");
    }

    // SME2 (SMEver 1) needs SMCR_EL2.EZT0, FA64 needs SMCR_EL2.FA64.
    let mut raw = Raw::ZERO;
    raw.set(ID_AA64PFR1_EL1, 2 << 24);
    raw.set(ID_AA64SMFR0_EL1, 1 << 63 | 1 << 56);
    let (v, _) = view_of(&raw, &s);
    assert_eq!(controls(&raw, &v, &s).smcr_el2, Some(SMCR_FA64 | SMCR_EZT0 | VL_LEN_MAX));
    // ... but not without SME: the SMFR0 fields depend on it.
    raw.set(ID_AA64PFR1_EL1, 0);
    let (v, devs) = view_of(&raw, &s);
    assert_eq!(v.get(ID_AA64SMFR0_EL1), 0);
    assert!(devs.iter().filter(|d| d.reg == ID_AA64SMFR0_EL1).all(|d| d.reason == Reason::Depends));
    assert_eq!(devs.iter().filter(|d| d.reg == ID_AA64SMFR0_EL1).count(), 2);
    assert_eq!(controls(&raw, &v, &s).smcr_el2, None);
}

#[test]
fn tcr2_paths_and_s1pie() {
    let raw = qemu11();
    // Virtual POE with FGT: TCR2 in the hardware, PIE passed, POE virtual.
    let s = setup(Mode::Virtual);
    let (v, _) = view_of(&raw, &s);
    let c = controls(&raw, &v, &s);
    assert_eq!(c.tcr2, Tcr2Path::Hardware);
    assert_ne!(c.hcrx & HCRX_TCR2EN, 0);
    assert_eq!(c.tcr2_hw, TCR2_PIE | TCR2_AIE);
    assert_eq!(c.tcr2_guest, TCR2_PIE | TCR2_AIE | TCR2_POE | TCR2_E0POE);
    // Without FGT porwatch cannot trap TCR2_EL1 while the hardware uses
    // it: TCR2 stays virtual and S1PIE (and AIE) are hidden.
    let s = Setup { fgt: false, ..s };
    let (v, devs) = view_of(&raw, &s);
    let c = controls(&raw, &v, &s);
    assert_eq!((c.tcr2, c.hcrx & HCRX_TCR2EN, c.tcr2_hw), (Tcr2Path::Emulated, 0, 0));
    assert_eq!(gv(&v, ID_AA64MMFR3_EL1, 8), 0);
    let d = devs.iter().find(|d| d.reg == ID_AA64MMFR3_EL1 && d.lsb == 8).unwrap();
    assert_eq!(d.reason, Reason::Tcr2Virtual);
    // Native POE: the hardware register whole, POE included.
    let mut fvp = raw;
    fvp.set(ID_AA64MMFR3_EL1, raw.get(ID_AA64MMFR3_EL1) | 1 << 16);
    let s = setup(Mode::Native);
    let (v, _) = view_of(&fvp, &s);
    let c = controls(&fvp, &v, &s);
    assert_eq!(c.tcr2, Tcr2Path::Hardware);
    assert_eq!(c.tcr2_hw, TCR2_PIE | TCR2_AIE | TCR2_POE | TCR2_E0POE);
    assert_eq!(gv(&v, ID_AA64MMFR3_EL1, 16), 1);
    // QEMU 10 (no FEAT_TCR2): emulated at the tap, only the overlay bits.
    let raw = qemu10();
    let s = setup(Mode::Virtual);
    let (v, _) = view_of(&raw, &s);
    let c = controls(&raw, &v, &s);
    assert_eq!((c.tcr2, c.hcrx, c.tcr2_hw, c.tcr2_guest), (Tcr2Path::Emulated, 0, 0, TCR2_POE | TCR2_E0POE));
    // POE off, no TCR2: nothing.
    let s = setup(Mode::None);
    let (v, devs) = view_of(&raw, &s);
    assert_eq!(controls(&raw, &v, &s).tcr2, Tcr2Path::Absent);
    assert_eq!(gv(&v, ID_AA64MMFR3_EL1, 16), 0);
    assert!(!devs.iter().any(|d| d.reason == Reason::PoeOff)); // the CPU has none either
    let (_, devs) = view_of(&fvp, &s);
    assert!(devs.iter().any(|d| d.reason == Reason::PoeOff));
}

#[test]
fn the_watch_hides_hafdbs() {
    let raw = qemu11(); // HAFDBS = 2 (DBM)
    let (v, _) = view_of(&raw, &setup(Mode::Virtual));
    assert_eq!(gv(&v, ID_AA64MMFR1_EL1, 0), 0);
    let untracked = Setup { track: false, ..setup(Mode::Virtual) };
    let (v, devs) = view_of(&raw, &untracked);
    assert_eq!(gv(&v, ID_AA64MMFR1_EL1, 0), 2);
    assert!(!devs.iter().any(|d| d.reg == ID_AA64MMFR1_EL1 && d.lsb == 0));
    // HAFT (3) is lowered to DBM when untracked.
    let mut haft = raw;
    haft.set(ID_AA64MMFR1_EL1, (raw.get(ID_AA64MMFR1_EL1) & !0xf) | 3);
    let (v, _) = view_of(&haft, &untracked);
    assert_eq!(gv(&v, ID_AA64MMFR1_EL1, 0), 2);
}

/// A newer CPU: a nonzero value in a field the table does not know, or in
/// a register it does not know, is hidden and reported.
#[test]
fn unknown_future_fields_are_hidden() {
    let s = setup(Mode::Virtual);
    let mut raw = qemu11();
    // ID_AA64PFR2_EL1 [27:24] and [63:60] are RES0 in the table.
    raw.set(ID_AA64PFR2_EL1, raw.get(ID_AA64PFR2_EL1) | 1 << 24 | 3 << 60);
    // ID_AA64MMFR3_EL1 [51:48] likewise.
    raw.set(ID_AA64MMFR3_EL1, raw.get(ID_AA64MMFR3_EL1) | 2 << 48);
    // A register the table does not know: op2 = 3 of CRm = 4 (reserved).
    let future = SysRegId::new(3, 0, 0, 4, 3);
    raw.set(future, 0x11);
    let (v, devs) = view_of(&raw, &s);
    assert_eq!(v.get(ID_AA64PFR2_EL1), 1 << 32, "only FPMR survives");
    assert_eq!(v.get(ID_AA64MMFR3_EL1) >> 48 & 0xf, 0);
    assert_eq!(v.get(future), 0);
    let unknown: Vec<_> = devs.iter().filter(|d| d.reason == Reason::Unknown).collect();
    assert_eq!(unknown.len(), 4, "{unknown:#?}");
    assert!(unknown.contains(&&Deviation {
        reg: ID_AA64PFR2_EL1,
        lsb: 24,
        width: 4,
        cpu: 1,
        guest: 0,
        reason: Reason::Unknown
    }));
    assert!(unknown.iter().any(|d| d.reg == ID_AA64PFR2_EL1 && d.lsb == 60 && d.cpu == 3));
    assert!(unknown.iter().any(|d| d.reg == ID_AA64MMFR3_EL1 && d.lsb == 48 && d.cpu == 2));
    assert!(unknown.iter().any(|d| d.reg == future && d.width == 64 && d.cpu == 0x11));
    // And its controls stay off: nothing to enable for what the table
    // does not know.
    let c = controls(&raw, &v, &s);
    let (v0, _) = view_of(&qemu11(), &s);
    assert_eq!(c, controls(&qemu11(), &v0, &s));
}

/// The POR_EL1 carrier (por_sites.rs): SCXTNUM hidden from the guest
/// (CSV2 at most 1, CSV2_frac at most 1, reason por_carrier), yet
/// HCR_EL2.EnSCXT set for porwatch's carrier sites.
#[test]
fn the_por_carrier_hides_scxtnum_but_enables_it() {
    let raw = qemu11();
    assert!(has_scxtnum(&raw));
    let s = Setup { por_carrier: true, ..setup(Mode::Virtual) };
    let (v, devs) = view_of(&raw, &s);
    assert_eq!(v.field(table::PFR0_CSV2), 1);
    assert!(devs
        .iter()
        .any(|d| d.reg == ID_AA64PFR0_EL1 && d.lsb == 56 && d.guest == 1 && d.reason == Reason::PorCarrier));
    assert_ne!(controls(&raw, &v, &s).hcr & HCR_ENSCXT, 0);
    // Without the carrier, CSV2 passes (QEMU's 3).
    let (v, devs) = view_of(&raw, &setup(Mode::Virtual));
    assert_eq!(v.field(table::PFR0_CSV2), raw.field(table::PFR0_CSV2));
    assert!(!devs.iter().any(|d| d.reason == Reason::PorCarrier));
    // CSV2 = 1 with CSV2_frac = 2 (CSV2_1p2) has SCXTNUM too; frac is lowered.
    let mut r = Raw::ZERO;
    r.set(ID_AA64PFR0_EL1, 1 << 56);
    r.set(ID_AA64PFR1_EL1, 2 << 32);
    assert!(has_scxtnum(&r));
    let (v, _) = view_of(&r, &s);
    assert_eq!((v.field(table::PFR0_CSV2), v.field(table::PFR1_CSV2_FRAC)), (1, 1));
    r.set(ID_AA64PFR1_EL1, 1 << 32);
    assert!(!has_scxtnum(&r));
}

#[test]
fn el3_controls_from_the_table() {
    let mut raw = qemu11();
    raw.set(ID_AA64PFR1_EL1, raw.get(ID_AA64PFR1_EL1) | 2 << 8); // MTE2
    let e = el3_controls(&raw);
    for bit in [SCR_NS, SCR_HCE, SCR_RW, SCR_FGTEN, SCR_HXEN, SCR_TCR2EN, SCR_PIEN, SCR_SCTLR2EN] {
        assert_ne!(e.scr & bit, 0, "{bit:#x}");
    }
    for bit in [SCR_API | SCR_APK, SCR_ENFPM, SCR_ATA, SCR_ENTP2, SCR_AIEN, SCR_ENSCXT, SCR_FIEN] {
        assert_eq!(e.scr & bit, bit, "{bit:#x}");
    }
    assert_eq!(e.cptr, CPTR_EL3_EZ | CPTR_EL3_ESM);
    assert_eq!((e.zcr, e.smcr.map(|v| v & 0xf)), (Some(VL_LEN_MAX), Some(VL_LEN_MAX)));
    // GCS (hidden) gets no SCR_EL3.GCSEn (bit 39); nothing unknown either.
    assert_eq!(e.scr & 1 << 39, 0);
    // A bare v8.0 CPU: just NS | HCE | RW.
    let e = el3_controls(&Raw::ZERO);
    assert_eq!((e.scr, e.cptr, e.zcr, e.smcr), (SCR_NS | SCR_HCE | SCR_RW, 0, None, None));
}

#[test]
fn describes_fields() {
    let mut s = String::new();
    describe(pack(ID_AA64PFR1_EL1, 44), &mut s).unwrap();
    assert_eq!(s, "ID_AA64PFR1_EL1.GCS [47:44]");
    s.clear();
    describe(pack(ID_AA64PFR2_EL1, 24), &mut s).unwrap();
    assert_eq!(s, "ID_AA64PFR2_EL1 [27:24]");
    s.clear();
    describe(pack(ID_AA64SMFR0_EL1, 63), &mut s).unwrap();
    assert_eq!(s, "ID_AA64SMFR0_EL1.FA64 [63]");
    s.clear();
    describe(pack(SysRegId::new(3, 0, 0, 4, 3), 0), &mut s).unwrap();
    assert_eq!(s, "S3_0_C0_C4_3");
    assert_eq!(Reason::NAMES.len(), Reason::PorCarrier as usize + 1);
    assert_eq!(Reason::PageTableWatch.name(), "page_table_watch");
}

fn any_setup() -> impl Strategy<Value = Setup> {
    (0..3u8, any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(m, track, fgt, por_carrier)| Setup {
        poe: [Mode::None, Mode::Virtual, Mode::Native][m as usize],
        track,
        fgt,
        por_carrier,
    })
}

proptest! {
    /// For any CPU: the guest never sees more than the CPU has (except
    /// what porwatch provides or fixes), nothing in reserved positions or
    /// unknown registers, and every difference is reported exactly once.
    #[test]
    fn view_never_exceeds_the_cpu(regs in proptest::collection::vec(any::<u64>(), REGS), s in any_setup()) {
        let mut raw = Raw::ZERO;
        raw.0.copy_from_slice(&regs);
        let (v, devs) = view_of(&raw, &s);
        for reg in table::REGS {
            prop_assert_eq!(v.get(reg.id) & reg.reserved(), 0);
            for f in reg.fields {
                let (c, g) = (f.get(raw.get(reg.id)), f.get(v.get(reg.id)));
                let raised = matches!(f.rule, Rule::Fixed(..) | Rule::S1Poe);
                if !raised {
                    prop_assert!(g == c || g == f.ni() || f.level(g) < f.level(c),
                        "{}.{} cpu {} guest {}", reg.name, f.name, c, g);
                }
                let n = devs.iter().filter(|d| d.reg == reg.id && d.lsb == f.lsb && d.width == f.width).count();
                prop_assert_eq!(n, (g != c) as usize, "{}.{}", reg.name, f.name);
            }
        }
        for i in 0..REGS {
            let id = slot_id(i);
            if !table::REGS.iter().any(|r| r.id == id) {
                prop_assert_eq!(v.get(id), 0);
            }
        }
        // Every control in the derived set is one the view implies.
        let c = controls(&raw, &v, &s);
        prop_assert_eq!(c.hcrx & HCRX_ENFPM != 0, v.field(table::PFR2_FPMR) != 0);
        prop_assert_eq!(c.tcr2_hw & TCR2_PIE != 0, v.field(table::MMFR3_S1PIE) != 0);
        prop_assert_eq!(c.hcrx & HCRX_TCR2EN != 0, c.tcr2 == Tcr2Path::Hardware);
    }
}
