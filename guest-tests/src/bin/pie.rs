//! `pie`: the CPU porwatch gives the guest is coherent, and FEAT_S1PIE works
//! end to end under virtual POE (docs/cpu.md).
//!
//! # Set-up
//!
//! As `pt_store` (`src/mmu.rs`): the image and console identity-mapped, the
//! page-table pool in a linear map (`0xffff_0000_0000_0000 + PA`) with
//! POIndex 1 on table pages, MMU on. Where the guest's ID registers show
//! S1PIE, the MMU is turned on with TCR2_EL1.PIE = 1 and these PIR_EL1
//! entries (PIIndex = descriptor bits {UXN 54, PXN 53, DBM 51, AP[1] 6};
//! the identity map's descriptors select 8 and 12), PIRE0_EL1 = 0:
//!
//! | PIIndex | bits | PIR_EL1 | meaning |
//! |---|---|---|---|
//! | 8 | UXN | 0xE | RWX, no overlay (the kernel image) |
//! | 12 | UXN PXN | 0x5 | RW, overlay applies (data, tables) |
//! | 13 | UXN PXN AP\[1\] | 0xC | RW, overlay-exempt |
//! | 14 | UXN PXN DBM | 0x6 | RW(X) with WXN, overlay applies |
//! | 15 | UXN PXN DBM AP\[1\] | 0x8 | read-only, no overlay |
//!
//! # Checks (`pie: check NAME ok`, `pie: feature NAME ok|absent`, or `FAIL` lines)
//!
//! * `feature NAME`: for every feature the guest's ID registers advertise,
//!   one instruction that needs it runs without an UNDEF (porwatch passes a
//!   feature only with the EL2 controls it needs; QEMU 11's FPMR without
//!   HCRX_EL2.EnFPM was the counterexample): `fpmr` (`MRS FPMR`),
//!   `mops` (`SETP/SETM/SETE`), `sve` (`RDVL`), `sme` (`RDSVL`), `sme2`
//!   (`ZERO {ZT0}` in streaming mode), `lse` (`LDADD`), `pauth` (`MRS
//!   APIAKeyLo_EL1`), `rndr` (`MRS RNDR`), `mte` (`IRG`), `sctlr2` (`MRS
//!   SCTLR2_EL1`), `tcr2` (`MRS TCR2_EL1`), `pir` (`MRS/MSR PIR_EL1`),
//!   `por` (`MRS POR_EL1`). `absent`: not advertised, not run. (A probe
//!   of several instructions that UNDEF ends the run as an unexpected
//!   exception, status 2.)
//! * `tcr2`: TCR2_EL1 := PIE | E0POE | POE | PnCH reads back PIE (only
//!   where S1PIE is advertised), E0POE and POE (virtual POE keeps them): a
//!   bit the guest's CPU lacks does not stick.
//! * Without S1PIE: `pie: S1PIE absent: the PIE checks did not run`, and
//!   nothing below.
//! * `pie_base`: a store through a descriptor whose direct permissions
//!   (AP = EL1 RW) allow it but whose PIIndex (15) selects read-only takes a
//!   stage-1 permission fault without Overlay: PIE reached the hardware.
//! * `overlay`: with POR_EL1 = 0x717 (pkey 0 RWX, pkey 1 R, pkey 2 RWX) and
//!   TCR2_EL1.POE = 1, stores into an L3 table through aliases of it (PTEs
//!   of that same table), each once with `STR` (porwatch's assembly fast
//!   path may take it) and once with `STP` (its Rust path):
//!
//!   | alias | PIIndex | POIndex | porwatch's verdict |
//!   |---|---|---|---|
//!   | `o_r` | 12 (RW_O) | 1 (R) | hazard: the overlay applies and denies write |
//!   | `x_r` | 13 (RW, exempt) | 1 (R) | none: the PIR entry ignores POR |
//!   | `wxn` | 14 (0x6: WXN) | 2 (RWX) | hazard: with WXN the overlay's X removes its W |
//!   | `o_rwx` | 12 (RW_O) | 2 (RWX) | none |
//!
//!   `pie.expect=report` (default, porwatch's report policy): every store
//!   lands, the hazards are porwatch's to report. `pie.expect=fault`
//!   (porwatch.policy=fault): each hazard store takes the overlay permission
//!   fault porwatch injects (ESR ISS2.Overlay, DFSC level-3 permission, FAR
//!   = the store's address) and does not land; the others land.
//!
//! Console: `pie: alias NAME va=VA` for each alias i (0..4 in the table's
//! order; its stores go to VA + 8 * (256 + 4i) with STR and VA + 8 * (258 +
//! 4i) with STP), `pie: hazards=N` (the stores porwatch must report), then
//! `pie: done` or `pie: FAILED`. Exit status 0, 1 on a failed check, 2 on an
//! unexpected exception.
#![no_std]
#![no_main]

use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};
use porwatch_guest_tests::exceptions::{expect_sync, Caught};
use porwatch_guest_tests::mmu::{self, Setup, PAGE_SIZE};
use porwatch_guest_tests::{cmdline, poe, println, Boot};
use porwatch_monitor::fdt;

static FAILURES: AtomicU32 = AtomicU32::new(0);

fn fail(args: core::fmt::Arguments) {
    FAILURES.fetch_add(1, Ordering::Relaxed);
    println!("pie: FAIL {}", args);
}

fn check(name: &str, ok: bool) {
    if ok {
        println!("pie: check {} ok", name);
    } else {
        fail(format_args!("check {}", name));
    }
}

/// An ID register field as the guest reads it (porwatch's view).
fn id_field(reg: u64, lsb: u32) -> u64 {
    (reg >> lsb) & 0xf
}

macro_rules! mrs {
    ($enc:literal) => {{
        let v: u64;
        unsafe { asm!(concat!("mrs {}, ", $enc), out(reg) v, options(nomem, nostack)) };
        v
    }};
}

/// The guest's ID registers (each read traps to porwatch).
struct Ids {
    pfr0: u64,
    pfr1: u64,
    pfr2: u64,
    isar0: u64,
    isar1: u64,
    isar2: u64,
    mmfr3: u64,
    smfr0: u64,
}

impl Ids {
    fn read() -> Self {
        Ids {
            pfr0: mrs!("id_aa64pfr0_el1"),
            pfr1: mrs!("id_aa64pfr1_el1"),
            pfr2: mrs!("s3_0_c0_c4_2"),
            isar0: mrs!("id_aa64isar0_el1"),
            isar1: mrs!("id_aa64isar1_el1"),
            isar2: mrs!("s3_0_c0_c6_2"),
            mmfr3: mrs!("s3_0_c0_c7_3"),
            smfr0: mrs!("s3_0_c0_c4_5"),
        }
    }
    fn s1pie(&self) -> bool {
        id_field(self.mmfr3, 8) != 0
    }
    fn s1poe(&self) -> bool {
        id_field(self.mmfr3, 16) != 0
    }
    fn tcrx(&self) -> bool {
        id_field(self.mmfr3, 0) != 0
    }
}

// --- Feature probes: one instruction each that UNDEFs (or traps to EL2)
// unless the feature is really usable at EL1.

// CPACR_EL1: FPEN [21:20], ZEN [17:16], SMEN [25:24] = 0b11 (no EL1/EL0 trap).
const CPACR_FPEN: u64 = 3 << 20;
const CPACR_ZEN: u64 = 3 << 16;
const CPACR_SMEN: u64 = 3 << 24;
/// SMCR_EL1.EZT0 (bit 30): ZT0 accessible; LEN = 0xf.
const SMCR_EL1_EZT0_LEN: u64 = 1 << 30 | 0xf;

/// CPACR_EL1.E0POE (bit 29): kept virtually by porwatch (the CPU has no
/// FEAT_S1POE); reads merge it into the hardware value (vectors.S
/// completes them, sysreg.rs the writes).
const CPACR_E0POE: u64 = 1 << 29;

fn cpacr_e0poe_round_trip() {
    let before: u64 = mrs!("cpacr_el1");
    let mut ok = true;
    for want in [before | CPACR_E0POE, before & !CPACR_E0POE, before | CPACR_E0POE] {
        unsafe { asm!("msr cpacr_el1, {}", "isb", in(reg) want, options(nostack)) };
        let got: u64 = mrs!("cpacr_el1");
        if got != want {
            fail(format_args!("cpacr_e0poe: wrote {:#x}, read back {:#x}", want, got));
            ok = false;
        }
    }
    unsafe { asm!("msr cpacr_el1, {}", "isb", in(reg) before, options(nostack)) };
    check("cpacr_e0poe", ok);
}

fn probe_fpmr() {
    let _ = mrs!("s3_3_c4_c4_2"); // FPMR
}

fn probe_mops() {
    let mut buf = [0xa5u8; 64];
    unsafe {
        asm!(
            ".arch_extension mops",
            "setp [{d}]!, {n}!, {v}",
            "setm [{d}]!, {n}!, {v}",
            "sete [{d}]!, {n}!, {v}",
            d = inout(reg) buf.as_mut_ptr() => _,
            n = inout(reg) buf.len() => _,
            v = in(reg) 0u64,
            options(nostack)
        )
    };
    if buf.iter().any(|&b| b != 0) {
        fail(format_args!("mops: SET did not clear the buffer"));
    }
}

/// ZCR_EL1.LEN asking for the longest vector length (the CPU gives the
/// longest it has up to it, and EL2 may cap it with ZCR_EL2).
const ZCR_LEN_MAX: u64 = 0xf;

fn probe_sve() {
    let vl: u64;
    unsafe {
        asm!(
            "mrs {t}, cpacr_el1",
            "orr {t}, {t}, {zen}",
            "msr cpacr_el1, {t}",
            "isb",
            ".arch_extension sve",
            // ZCR_EL1 (S3_0_C1_C2_0): the longest vector length.
            "msr s3_0_c1_c2_0, {len}",
            "isb",
            "rdvl {vl}, #1",
            t = out(reg) _,
            vl = out(reg) vl,
            zen = in(reg) CPACR_ZEN | CPACR_FPEN,
            len = in(reg) ZCR_LEN_MAX,
            options(nostack)
        )
    };
    println!("pie: sve vl={} bytes", vl);
}

fn probe_sme() {
    unsafe {
        asm!(
            "mrs {t}, cpacr_el1",
            "orr {t}, {t}, {smen}",
            "msr cpacr_el1, {t}",
            "isb",
            ".arch_extension sme",
            "rdsvl {t}, #1",
            t = out(reg) _,
            smen = in(reg) CPACR_SMEN | CPACR_FPEN,
            options(nostack)
        )
    };
}

fn probe_sme2() {
    unsafe {
        asm!(
            "msr s3_0_c1_c2_6, {smcr}", // SMCR_EL1
            "isb",
            ".arch_extension sme2",
            "smstart za",
            "zero {{zt0}}",
            "smstop za",
            smcr = in(reg) SMCR_EL1_EZT0_LEN,
            options(nostack)
        )
    };
}

fn probe_lse() {
    let mut word = 1u64;
    let old: u64;
    unsafe {
        asm!(
            ".arch_extension lse",
            "ldadd {v}, {old}, [{p}]",
            v = in(reg) 2u64,
            old = out(reg) old,
            p = in(reg) &mut word as *mut u64,
            options(nostack)
        )
    };
    if (old, word) != (1, 3) {
        fail(format_args!("lse: LDADD gave old={} new={}", old, word));
    }
}

fn probe_pauth() {
    let _ = mrs!("s3_0_c2_c1_0"); // APIAKeyLo_EL1
}

fn probe_rndr() {
    let _ = mrs!("s3_3_c2_c4_0"); // RNDR
}

fn probe_mte() {
    unsafe { asm!(".arch_extension memtag", "irg {0}, {0}", inout(reg) 0x1000u64 => _, options(nostack)) };
}

fn probe_sctlr2() {
    let _ = mrs!("s3_0_c1_c0_3"); // SCTLR2_EL1
}

fn probe_tcr2() {
    let _ = unsafe { poe::read_tcr2_el1() };
}

fn probe_pir() {
    let v = mrs!("s3_0_c10_c2_3"); // PIR_EL1
    unsafe { asm!("msr s3_0_c10_c2_3, {}", "isb", in(reg) v, options(nostack)) };
}

fn probe_por() {
    let _ = unsafe { poe::read_por_el1() };
}

fn features(ids: &Ids) {
    let sme = id_field(ids.pfr1, 24) != 0;
    let probes: [(&str, bool, fn()); 13] = [
        ("fpmr", id_field(ids.pfr2, 32) != 0, probe_fpmr),
        ("mops", id_field(ids.isar2, 16) != 0, probe_mops),
        ("sve", id_field(ids.pfr0, 32) != 0, probe_sve),
        ("sme", sme, probe_sme),
        ("sme2", sme && (ids.smfr0 >> 56) & 0xf != 0, probe_sme2),
        ("lse", id_field(ids.isar0, 20) >= 2, probe_lse),
        (
            "pauth",
            id_field(ids.isar1, 4) | id_field(ids.isar1, 8) | id_field(ids.isar2, 12) != 0,
            probe_pauth,
        ),
        ("rndr", id_field(ids.isar0, 60) != 0, probe_rndr),
        ("mte", id_field(ids.pfr1, 8) != 0, probe_mte),
        ("sctlr2", id_field(ids.mmfr3, 4) != 0, probe_sctlr2),
        ("tcr2", ids.tcrx() || ids.s1poe(), probe_tcr2),
        ("pir", ids.s1pie(), probe_pir),
        ("por", ids.s1poe(), probe_por),
    ];
    for (name, advertised, probe) in probes {
        if !advertised {
            println!("pie: feature {} absent", name);
            continue;
        }
        match expect_sync(probe) {
            None => println!("pie: feature {} ok", name),
            Some(c) => fail(format_args!(
                "feature {}: advertised but the instruction raised esr={:#x} at {:#x}",
                name, c.esr, c.elr
            )),
        }
    }
}

// --- S1PIE.

const TCR2_PNCH: u64 = 1 << 0;
const TCR2_PIE: u64 = 1 << 1;
const PIINDEX_DBM: u64 = 1 << 51;
/// PIR_EL1 entries, by PIIndex (table in the module docs).
const PIR_EL1: u64 = 0xE << (4 * 8) | 0x5 << (4 * 12) | 0xC << (4 * 13) | 0x6 << (4 * 14) | 0x8 << (4 * 15);
/// Page-table level: pkey 1 RW. Checks: pkey 0 RWX, pkey 1 R, pkey 2 RWX.
const POR_SETUP: u64 = 0x757;
const POR_CHECKS: u64 = 0x717;
/// The subtree's L0/L1/L2 indices (TTBR1), as pt_store.
const L0_INDEX: usize = 0x1c0;
const L1_INDEX: usize = 3;
const L2_INDEX: usize = 5;
/// Alias PTE indices in the L3 table, and where the stores go: alias i
/// stores into PTE `TARGETS + 4i` (STR) and `TARGETS + 4i + 2` (STP, two
/// PTEs).
const ALIAS_BASE: usize = 1;
const TARGETS: usize = 256;
/// A stored value: even, never a valid descriptor.
const VALUE: u64 = 0x5a5a_0000_0000_1000;

/// Where the L3 table's PTE `i` maps: the subtree's VA of page `i`.
fn page_va(i: usize) -> u64 {
    mmu::LINEAR_MAP_BASE
        | (L0_INDEX as u64) << 39
        | (L1_INDEX as u64) << 30
        | (L2_INDEX as u64) << 21
        | (i as u64) << 12
}

struct Alias {
    name: &'static str,
    /// Descriptor bits selecting the PIIndex (on top of UXN | PXN).
    pi_bits: u64,
    pkey: u64,
    hazard: bool,
}

const ALIASES: [Alias; 4] = [
    Alias { name: "o_r", pi_bits: 0, pkey: 1, hazard: true },
    Alias { name: "x_r", pi_bits: mmu::AP_EL0, pkey: 1, hazard: false },
    Alias { name: "wxn", pi_bits: PIINDEX_DBM, pkey: 2, hazard: true },
    Alias { name: "o_rwx", pi_bits: 0, pkey: 2, hazard: false },
];
/// The read-only alias (PIIndex 15), after the others.
const RO_ALIAS: usize = ALIAS_BASE + ALIASES.len();

fn str_x(p: u64, v: u64) {
    unsafe { (p as *mut u64).write_volatile(v) };
}

fn stp_x(p: u64, v: u64) {
    unsafe { asm!("stp {v}, {v}, [{p}]", v = in(reg) v, p = in(reg) p, options(nostack)) };
}

fn read(p: u64) -> u64 {
    unsafe { (p as *const u64).read_volatile() }
}

fn barrier() {
    unsafe { asm!("dsb ishst", "isb", options(nostack)) };
}

fn set_por(v: u64) {
    unsafe { poe::write_por_el1(v) };
}

/// TCR2_EL1 := `v`, read back.
fn tcr2_round_trip(v: u64) -> u64 {
    unsafe {
        poe::write_tcr2_el1(v);
        poe::read_tcr2_el1()
    }
}

/// ESR of the overlay permission fault porwatch injects (or the CPU raises)
/// for a store at EL1 to a level-3 page: EC 0x25, WnR, DFSC 0x0f, ISS2
/// bit 6 (ESR bit 38) = Overlay.
fn is_fault(c: &Caught, overlay: bool) -> bool {
    c.ec() == 0x25 && c.fsc() == 0x0f && c.esr & (1 << 6) != 0 && (c.esr >> 38 & 1 != 0) == overlay
}

fn s1pie_checks(l3: u64, expect_fault: bool) -> u32 {
    set_por(POR_CHECKS);
    // A store PIE forbids although the direct permissions allow it.
    let ro = page_va(RO_ALIAS);
    let target = ro + 8 * (TARGETS - 1) as u64;
    match expect_sync(|| str_x(target, VALUE)) {
        Some(c) if is_fault(&c, false) && c.far == target => check("pie_base", true),
        other => fail(format_args!("pie_base: expected a stage-1 permission fault, got {:?}", other)),
    }
    let mut hazards = 0;
    for (i, a) in ALIASES.iter().enumerate() {
        let va = page_va(ALIAS_BASE + i);
        println!("pie: alias {} va={:#x}", a.name, va);
        let mut ok = true;
        for (target, stp) in [(TARGETS + 4 * i, false), (TARGETS + 4 * i + 2, true)] {
            let p = va + 8 * target as u64;
            let before = read(mmu::desc_va(l3, target));
            let caught = expect_sync(|| if stp { stp_x(p, VALUE) } else { str_x(p, VALUE) });
            let landed = read(mmu::desc_va(l3, target)) == VALUE
                && (!stp || read(mmu::desc_va(l3, target + 1)) == VALUE);
            let want_fault = a.hazard && expect_fault;
            let good = match &caught {
                Some(c) => want_fault && is_fault(c, true) && c.far == p && !landed && before == 0,
                None => !want_fault && landed,
            };
            if !good {
                ok = false;
                fail(format_args!(
                    "alias {} ({}): caught {:?}, landed {}, expected {}",
                    a.name,
                    if stp { "stp" } else { "str" },
                    caught,
                    landed,
                    if want_fault { "the overlay fault" } else { "the store to land" }
                ));
            }
            hazards += a.hazard as u32;
        }
        check(a.name, ok);
    }
    set_por(POR_SETUP);
    hazards
}

fn test_s1pie(expect_fault: bool) -> u32 {
    // Table pages come from the pool and get pkey 1 in the linear map.
    let mut tables = [0u64; 3];
    for t in tables.iter_mut() {
        *t = mmu::pool_alloc().expect("page-table pool exhausted");
        let pte = mmu::lm_pte(*t);
        str_x(pte.va(), (pte.desc & !mmu::POINDEX_MASK) | mmu::pkey_bits(1));
        mmu::flush_tlb_page(mmu::lm_va(*t));
    }
    let [l1, l2, l3] = tables;
    let (_, root) = mmu::roots();
    str_x(mmu::desc_va(root, L0_INDEX), l1 | mmu::DESC_TABLE);
    str_x(mmu::desc_va(l1, L1_INDEX), l2 | mmu::DESC_TABLE);
    str_x(mmu::desc_va(l2, L2_INDEX), l3 | mmu::DESC_TABLE);
    // The L3 table maps itself: one alias per row of the table above, then
    // the read-only one.
    let base = (l3 & mmu::OA_MASK) | mmu::PROT_DATA;
    for (i, a) in ALIASES.iter().enumerate() {
        str_x(mmu::desc_va(l3, ALIAS_BASE + i), base | a.pi_bits | mmu::pkey_bits(a.pkey));
    }
    str_x(mmu::desc_va(l3, RO_ALIAS), base | mmu::AP_EL0 | PIINDEX_DBM);
    barrier();
    s1pie_checks(l3, expect_fault)
}

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    let mut plat = fdt::Platform::new();
    if fdt::discover(boot.dtb, &mut plat).is_err() {
        println!("pie: FAIL cannot parse the device tree");
        return 1;
    }
    let expect_fault = match cmdline::value(plat.chosen.bootargs.unwrap_or(""), "pie.expect") {
        None | Some("report") => false,
        Some("fault") => true,
        Some(v) => {
            println!("pie: FAIL bad pie.expect={:?} (report or fault)", v);
            return 1;
        }
    };
    let ids = Ids::read();
    println!(
        "pie: id_aa64mmfr3={:#x} s1pie={} s1poe={} tcrx={} expect={}",
        ids.mmfr3,
        ids.s1pie() as u8,
        ids.s1poe() as u8,
        ids.tcrx() as u8,
        if expect_fault { "fault" } else { "report" }
    );
    if !ids.s1poe() {
        println!("pie: FAIL no FEAT_S1POE (porwatch provides it virtually on QEMU)");
        return 1;
    }

    let mut s = Setup::new();
    s.identity_image();
    s.identity(boot.dtb_addr as u64, boot.dtb.len() as u64, mmu::PROT_RODATA);
    if let Some(u) = plat.console() {
        s.identity(u.regs.base, PAGE_SIZE, mmu::PROT_DEVICE);
    }
    s.linear_map();
    // The guest's TCR2_EL1 keeps exactly what its CPU has: PIE where S1PIE
    // is advertised, the overlay bits (virtual POE), never PnCH (FEAT_THE,
    // not given to the guest).
    let overlays = poe::TCR2_POE | poe::TCR2_E0POE;
    let want = overlays | if ids.s1pie() { TCR2_PIE } else { 0 };
    if ids.s1pie() {
        unsafe {
            asm!("msr s3_0_c10_c2_3, {}", "msr s3_0_c10_c2_2, xzr", "isb", in(reg) PIR_EL1, options(nostack))
        };
    }
    let got = tcr2_round_trip(TCR2_PIE | overlays | TCR2_PNCH);
    if got != want {
        fail(format_args!("tcr2: read back {:#x}, expected {:#x}", got, want));
    } else {
        check("tcr2", true);
    }
    cpacr_e0poe_round_trip();
    set_por(POR_SETUP);
    s.enable();

    features(&ids);

    let hazards = if ids.s1pie() {
        test_s1pie(expect_fault)
    } else {
        println!("pie: S1PIE absent: the PIE checks did not run");
        0
    };
    println!("pie: hazards={}", hazards);
    let failures = FAILURES.load(Ordering::Relaxed);
    println!("pie: {}", if failures == 0 { "done" } else { "FAILED" });
    (failures != 0) as u32
}
