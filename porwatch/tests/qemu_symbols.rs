//! Symbolization and the hazard report on a real trace: `porwatch run
//! --guest seed --trace-out FILE`, then `porwatch decode --symbols` on it.
//! The images come from scripts/build; missing images fail the test.

mod common;

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_porwatch");

fn porwatch(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("porwatch runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn seed_hazard_report_names_the_functions() {
    let images = common::images();
    let elf = images.join("guests/seed.elf");
    assert!(elf.is_file(), "{} missing: run scripts/build", elf.display());
    let dir = common::tempdir();
    let trace = dir.join("seed.pwt");
    let (images_s, trace_s, elf_s) =
        (images.to_str().unwrap(), trace.to_str().unwrap(), elf.to_str().unwrap());

    // Live run: the guest ELF is the default symbol source.
    let run = porwatch(&["run", "--images", images_s, "--guest", "seed", "--trace-out", trace_s]);
    let out = text(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{}", text(&run.stderr));
    assert!(out.contains("porwatch: HAZARD:"), "{out}");
    assert!(out.contains("<pageattr_pte_entry+"), "{out}");
    assert!(text(&run.stderr).contains("symbols from"), "{}", text(&run.stderr));

    // Offline decode with explicit symbols.
    // `decode` exits 4 on a hazard by default (`run` exited 0 above).
    let o = porwatch(&["decode", "--symbols", elf_s, trace_s]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let start =
        out.find("porwatch: HAZARD: page-table write under an insufficient permission overlay").expect(&out);
    let block: Vec<&str> = out[start..].lines().take(36).collect();
    assert!(block[1].contains("pc=0x") && block[1].contains("<pageattr_pte_entry+0x"), "{block:#?}");
    assert!(block[2].contains("(changed: POIndex 1->0)"), "{block:#?}");
    assert!(block[3].contains("pkey 1 perm r-- under POR_EL1=0x17"), "{block:#?}");
    // The would-be fault decoded like the kernel's mem_abort_decode().
    assert_eq!(block[4].trim(), "Mem abort info:", "{block:#?}");
    assert_eq!(block[5].trim(), "ESR = 0x000000409600004f", "{block:#?}");
    assert_eq!(block[13].trim(), "GCS = 0, Overlay = 1, DirtyBit = 0, Xs = 0", "{block:#?}");
    // The vector's address moves with the guest's code size; its symbol does not.
    assert!(
        block[14].contains("exc_entry irq_el1h (vector 0x") && block[14].contains(" <el1h_64_irq+0x0/"),
        "{block:#?}"
    );
    assert!(block[15].contains("ESR not decoded: an IRQ does not write ESR_EL1"), "{block:#?}");
    assert!(
        block[16].contains("por_write 0x57 -> 0x17 at pc=") && block[16].contains("(at_entry=1)"),
        "{block:#?}"
    );
    assert!(block[17].contains("set by exception-entry code of IRQ #"), "{block:#?}");
    // The call traces: the store's, then the interrupted code's.
    assert_eq!(block[18], "  Call trace:", "{block:#?}");
    assert!(block[19].starts_with("   pageattr_pte_entry+0x"), "{block:#?}");
    assert!(block[22].starts_with("   pgd_free+0x"), "{block:#?}");
    assert!(block[29].starts_with("  Interrupted code (#"), "{block:#?}");
    assert!(block[30].starts_with("   __vunmap_range_noflush+0x"), "{block:#?}");
    assert!(block[35].contains(" hazard ") && block[35].contains("<pageattr_pte_entry+0x"), "{block:#?}");
    assert!(text(&o.stderr).contains("KASLR offset 0x0"), "{}", text(&o.stderr));

    // -v adds file:line from DWARF.
    let o = porwatch(&["decode", "-v", "--symbols", elf_s, trace_s]);
    assert!(text(&o.stdout).contains(".rs:"), "{}", text(&o.stdout));

    // JSON: pc_sym members, no report; --hazards-only keeps the chain, the
    // call traces and the protection audits (first-por, exit).
    let o = porwatch(&["decode", "--json", "--hazards-only", "--symbols", elf_s, trace_s]);
    assert_eq!(o.status.code(), Some(4));
    let lines: Vec<serde_json::Value> =
        text(&o.stdout).lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    let kinds: Vec<&str> = lines.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["audit", "exc_entry", "por_write", "call_trace", "call_trace", "hazard", "audit", "summary"],
        "{}",
        text(&o.stdout)
    );
    assert!(lines[5]["pc_sym"].as_str().unwrap().starts_with("pageattr_pte_entry+0x"));
    assert!(lines[3]["frames_sym"][0]
        .as_str()
        .unwrap()
        .starts_with("walk_kernel_page_table_range_lockless+0x"));
    assert!(lines[2]["pc_sym"].as_str().unwrap().starts_with("kentry_entry_por_msr+0x0/"));

    // --no-fail-on-hazard: exit 0; --fail-on-hazard (the default) is
    // still accepted: exit 4; --counts: one more stderr line.
    let o = porwatch(&["decode", "--no-fail-on-hazard", trace_s]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = porwatch(&["decode", "--fail-on-hazard", "--counts", trace_s]);
    assert_eq!(o.status.code(), Some(4));
    let err = text(&o.stderr);
    let counts = err.lines().last().unwrap();
    assert!(counts.starts_with("porwatch: hazards 1; tables tracked "), "{err}");
    // The default run keeps entries and traps in the flight ring: the
    // count says so instead of counting the transition and its chain copy.
    assert!(counts.contains("; exception entries and traps in the flight ring ("), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn seed_perfetto_export_has_the_hazard_and_por_counter() {
    let images = common::images();
    let dir = common::tempdir();
    let file = dir.join("seed-perfetto.json");
    let run = porwatch(&[
        "run",
        "--images",
        images.to_str().unwrap(),
        "--guest",
        "seed",
        "--perfetto",
        file.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(0), "stderr:\n{}", text(&run.stderr));
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("perfetto file")).unwrap();
    let evs = doc["traceEvents"].as_array().expect("traceEvents");
    let hazard = evs
        .iter()
        .find(|e| e["ph"] == "i" && e["name"].as_str().is_some_and(|n| n.starts_with("hazard")))
        .expect("hazard instant");
    assert!(
        hazard["args"]["pc_sym"].as_str().is_some_and(|s| s.starts_with("pageattr_pte_entry+")),
        "{hazard}"
    );
    assert!(evs.iter().any(|e| e["ph"] == "C" && e["args"]["cpu0 POR_EL1"] == 0x17), "POR_EL1 counter");
    // The seed's IRQ handler never returns (the guest exits first): an instant.
    assert!(evs.iter().any(|e| e["tid"] == 1 && e["name"] == "irq_el1h"), "exception entry");
    assert!(evs.iter().all(|e| e["ph"] == "M" || e["ts"].is_number()));
}

/// `porwatch run --policy fault` (what `scripts/run --policy fault` runs):
/// the report, then the guest dying with the seed's ESR.
#[test]
fn policy_fault_flag_shows_the_report_and_the_seed_esr() {
    let images = common::images();
    let images_s = images.to_str().unwrap();
    let run = porwatch(&["run", "--images", images_s, "--guest", "seed", "--policy", "fault"]);
    let out = text(&run.stdout);
    assert_eq!(run.status.code(), Some(0x0f), "stdout:\n{out}\nstderr:\n{}", text(&run.stderr));
    assert!(
        out.contains("porwatch: HAZARD: page-table write under an insufficient permission overlay"),
        "{out}"
    );
    assert!(out.contains("action=fault_injected"), "{out}");
    assert!(out.contains("seed:   ESR = 0x000000409600004f"), "{out}");
    // Both ways of asking at once is a usage error, not a silent choice.
    let both = porwatch(&["run", "--images", images_s, "--policy", "fault", "--hyp-opt", "policy=report"]);
    assert_ne!(both.status.code(), Some(0));
    assert!(text(&both.stderr).contains("--policy and --hyp-opt policy"), "{}", text(&both.stderr));
}
