//! The CPU porwatch gives its guest (docs/cpu.md): every feature the guest
//! sees works, the trace says what was hidden and why, and FEAT_S1PIE works
//! end to end (the `pie` test kernel, guest-tests/src/bin/pie.rs).
//!
//! The S1PIE checks need a CPU with S1PIE (QEMU >= 11, `-cpu max`). On
//! QEMU 10 the kernel checks what it can (every advertised feature usable,
//! TCR2_EL1 keeping no PIE bit) and says the PIE checks did not run; these
//! tests then assert that the CPU (trace header) indeed lacks S1PIE, so
//! nothing is skipped that could have run.
mod common;
use common::*;
use porwatch::OwnedRecord;
use porwatch_monitor::sysreg::{ID_AA64MMFR3_EL1, ID_AA64PFR1_EL1};

/// ID_AA64MMFR3_EL1.S1PIE [11:8], ID_AA64PFR1_EL1.GCS [47:44].
const S1PIE_SHIFT: u32 = 8;
const GCS_SHIFT: u32 = 44;
/// The kernel's aliases in order; their stores go to VA + 8 * (256 + 4i)
/// (STR) and VA + 8 * (258 + 4i) (STP).
/// (name, hazard, POIndex, its POR_EL1 permission, hazard.pir: S1PIE on |
/// the PIR entry).
const ALIASES: [(&str, bool, u64, u64, u64); 4] = [
    ("o_r", true, 1, 0x1, 0x15),
    ("x_r", false, 1, 0x1, 0x1c),
    ("wxn", true, 2, 0x7, 0x16),
    ("o_rwx", false, 2, 0x7, 0x15),
];
const FEATURES: [&str; 13] =
    ["fpmr", "mops", "sve", "sme", "sme2", "lse", "pauth", "rndr", "mte", "sctlr2", "tcr2", "pir", "por"];

fn run_pie(fault: bool) -> Outcome {
    let mut a = args("pie");
    if fault {
        a.hyp_opts = vec!["policy=fault".into()];
        a.append = Some("pie.expect=fault".into());
    }
    run_guest(a)
}

fn header_u64(o: &Outcome, name: &str) -> u64 {
    o.records[0].get_u64(name).unwrap_or_else(|| panic!("header.{name}"))
}

fn alias_va(console: &str, name: &str) -> u64 {
    let prefix = format!("pie: alias {name} va=0x");
    let line = console
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{prefix}\n{console}"));
    u64::from_str_radix(line.trim(), 16).unwrap()
}

fn hazards(o: &Outcome) -> Vec<&OwnedRecord> {
    o.of_kind("hazard").collect()
}

/// What both policies share: a clean run, every feature the guest was
/// shown usable, and for the CPU's S1PIE either the full checks or an
/// honest "did not run".
fn check_common(o: &Outcome) -> bool {
    assert!(!o.timed_out, "timed out:\n{}", o.console);
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    assert!(o.stats.is_clean(), "{:?}", o.stats);
    assert!(o.console.contains("pie: done"), "console:\n{}", o.console);
    assert!(!o.console.contains("FAIL"), "console:\n{}", o.console);
    for f in FEATURES {
        let ok = o.console.contains(&format!("pie: feature {f} ok"));
        let absent = o.console.contains(&format!("pie: feature {f} absent"));
        assert!(ok ^ absent, "feature {f}: console:\n{}", o.console);
    }
    // SVE works and EL2 does not shorten it: porwatch leaves SVE trapped
    // until the guest's first use (CPTR_EL2.TZ, docs/cpu.md), and the
    // longest vector length is QEMU max's 2048 bits.
    if o.console.contains("pie: feature sve ok") {
        assert!(o.console.contains("pie: sve vl=256 bytes"), "console:\n{}", o.console);
    }
    assert!(o.console.contains("pie: check tcr2 ok"), "console:\n{}", o.console);
    assert!(o.console.contains("pie: check cpacr_e0poe ok"), "console:\n{}", o.console);
    assert_eq!(o.of_kind("unknown_trap").count(), 0);
    // The trace names every field the guest reads differently, and the
    // guest's ID_AA64MMFR3_EL1 (printed by the kernel) is the CPU's with
    // those records applied.
    let cpu_mmfr3 = header_u64(o, "id_aa64mmfr3");
    let guest_mmfr3 = guest_id_value(&o.records, ID_AA64MMFR3_EL1, cpu_mmfr3);
    assert!(o.console.contains(&format!("pie: id_aa64mmfr3={guest_mmfr3:#x} ")), "console:\n{}", o.console);
    let reasons: Vec<&str> = o.of_kind("id_field").map(|r| r.get_enum("reason").unwrap()).collect();
    assert!(!reasons.contains(&"unknown"), "{reasons:?}");
    assert!(!reasons.contains(&"tcr2_virtual"), "TCR2_EL1 reaches the hardware on QEMU: {reasons:?}");
    // QEMU 11's GCS is hidden (porwatch does not emulate PSTATE.EXLOCK),
    // and the trace says so.
    let cpu_pfr1 = header_u64(o, "id_aa64pfr1");
    if cpu_pfr1 >> GCS_SHIFT & 0xf != 0 {
        let gcs = porwatch_monitor::idregs::pack(ID_AA64PFR1_EL1, GCS_SHIFT as u8);
        let r =
            o.of_kind("id_field").find(|r| r.get_u64("field") == Some(gcs)).expect("a GCS id_field record");
        assert_eq!((r.get_u64("guest"), r.get_enum("reason")), (Some(0), Some("needs_el2_support")));
    }
    let s1pie = cpu_mmfr3 >> S1PIE_SHIFT & 0xf != 0;
    if s1pie {
        // Passed: the guest sees it, no record hides it.
        assert_eq!(guest_mmfr3 >> S1PIE_SHIFT & 0xf, cpu_mmfr3 >> S1PIE_SHIFT & 0xf);
        for c in ["pie_base", "o_r", "x_r", "wxn", "o_rwx"] {
            assert!(o.console.contains(&format!("pie: check {c} ok")), "{c}: console:\n{}", o.console);
        }
        // The guest's TCR2_EL1 with PIE (bit 1), kept by porwatch with POE.
        assert!(o.of_kind("tcr2_write").any(|r| r.get_u64("new").unwrap() & 0b1010 == 0b1010));
    } else {
        assert!(
            o.console.contains("pie: S1PIE absent: the PIE checks did not run"),
            "console:\n{}",
            o.console
        );
        assert_eq!(hazards(o).len(), 0);
        eprintln!("qemu_cpu: this CPU has no FEAT_S1PIE (QEMU < 11): the S1PIE checks did not run");
    }
    s1pie
}

/// Report policy: porwatch reports a hazard exactly where the overlay
/// applies under PIE (and lets the store land).
#[test]
fn pie_report() {
    let o = run_pie(false);
    if !check_common(&o) {
        return;
    }
    assert!(o.console.contains("pie: hazards=4"), "console:\n{}", o.console);
    let hz = hazards(&o);
    let mut want = Vec::new();
    for (i, (name, hazard, pkey, perm, pir)) in ALIASES.iter().enumerate() {
        let va = alias_va(&o.console, name);
        for target in [256 + 4 * i as u64, 258 + 4 * i as u64] {
            let at = va + 8 * target;
            let found: Vec<_> = hz.iter().filter(|h| h.get_u64("va") == Some(at)).collect();
            assert_eq!(found.len(), *hazard as usize, "{name} at {at:#x}: {found:#?}");
            if let Some(h) = found.first() {
                assert_eq!(h.get_u64("poindex"), Some(*pkey), "{h:?}");
                assert_eq!(h.get_u64("perm"), Some(*perm), "{h:?}");
                assert_eq!(h.get_u64("por"), Some(0x717), "{h:?}");
                assert_eq!(h.get_u64("pir"), Some(*pir), "{h:?}");
                assert_eq!(h.get_enum("action"), Some("performed"), "{h:?}");
                want.push(at);
            }
        }
    }
    assert_eq!(hz.len(), want.len(), "{hz:#?}");
}

/// Fault policy: the guest itself takes the overlay fault exactly where the
/// overlay applies under PIE (the kernel checks ESR, FAR and that the store
/// did not land).
#[test]
fn pie_fault() {
    let o = run_pie(true);
    if !check_common(&o) {
        return;
    }
    let hz = hazards(&o);
    assert_eq!(hz.len(), 4, "{hz:#?}");
    for h in hz {
        assert_eq!(h.get_enum("action"), Some("fault_injected"), "{h:?}");
    }
}
