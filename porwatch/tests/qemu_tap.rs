//! The exception-entry tap and virtual POE, end to end: the `exceptions`
//! test kernel (guest-tests/src/bin/exceptions.rs documents the exact
//! sequence it performs) under porwatch, checked against the decoded trace.
mod common;
use common::*;
use porwatch::OwnedRecord;

const POR_DEFAULT: u64 = 0x17;
const POR_PGTABLES: u64 = 0x57;
const TCR2_POE: u64 = 1 << 3;

/// FNV-1a over the words the kernel folds (see its doc comment); computed
/// here independently of the guest.
fn expected_checksum() -> u64 {
    let words: [u64; 7] =
        [0x15 << 32 | 1, 0x3c << 32 | 2, 0x25 << 32 | 0x21, 1 << 63 | 27, 0x15 << 32 | 3, 0x3c << 32 | 4, 6];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        for b in w.to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

fn checksum_line(console: &str) -> String {
    console
        .lines()
        .find(|l| l.starts_with("exceptions: checksum="))
        .unwrap_or_else(|| panic!("no checksum line:\n{console}"))
        .to_string()
}

/// (vector, EC, ESR immediate/DFSC, POR_EL1 at entry) of each exc_entry.
fn entries(o: &Outcome) -> Vec<(String, u64, u64, u64)> {
    o.of_kind("exc_entry")
        .map(|r| {
            let esr = r.get_u64("esr").unwrap();
            let vector = r.get_enum("vector").unwrap().to_string();
            let (ec, key) = if vector.starts_with("irq") { (0, 0) } else { (ec(esr), esr & 0xffff) };
            (vector, ec, if ec == 0x25 { esr & 0x3f } else { key }, r.get_u64("por").unwrap())
        })
        .collect()
}

fn por_writes(o: &Outcome) -> Vec<&OwnedRecord> {
    o.of_kind("por_write").collect()
}

fn run_exceptions(opts: &[&str]) -> Outcome {
    let mut a = args_all("exceptions");
    a.hyp_opts = opts.iter().map(|s| s.to_string()).collect();
    let o = run_guest(a);
    assert_eq!(o.status, 0, "{opts:?}: console:\n{}", o.console);
    assert!(o.console.contains("exceptions: done"), "{opts:?}: console:\n{}", o.console);
    assert!(!o.console.contains("FAIL"), "{opts:?}: console:\n{}", o.console);
    assert!(o.stats.is_clean(), "{opts:?}: {:?}", o.stats);
    o
}

#[test]
fn tap_sees_every_entry_and_por_transition_with_its_cause() {
    let o = run_exceptions(&[]);
    assert_eq!(o.records[0].get_enum("poe_mode"), Some("virtual"));
    assert!(o.console.contains("exceptions: poe=1"));
    let arms: Vec<Option<&str>> = o.of_kind("tap_arm").map(|r| r.get_enum("mechanism")).collect();
    assert_eq!(arms.last(), Some(&Some("trampoline")), "{arms:?}");
    assert_eq!(checksum_line(&o.console), format!("exceptions: checksum={:#018x}", expected_checksum()));

    let e = entries(&o);
    let s = |v: &str| v.to_string();
    assert_eq!(
        e,
        vec![
            (s("sync_el1h"), 0x15, 1, POR_PGTABLES),
            (s("sync_el1h"), 0x3c, 2, POR_PGTABLES),
            (s("sync_el1h"), 0x25, 0x21, POR_PGTABLES),
            (s("irq_el1h"), 0, 0, POR_PGTABLES),
            (s("sync_el1h"), 0x15, 3, POR_DEFAULT),
            (s("sync_el1h"), 0x3c, 4, POR_PGTABLES),
        ]
    );
    let entry_seqs: Vec<u64> = o.of_kind("exc_entry").map(|r| r.seq).collect();

    // TCR2_EL1.POE switched on once, before any POR write.
    let tcr2: Vec<_> = o.of_kind("tcr2_write").collect();
    assert_eq!(tcr2.len(), 1);
    assert_ne!(tcr2[0].get_u64("new").unwrap() & TCR2_POE, 0);

    // Every POR_EL1 change, in order: (old, new, at_entry, entry index).
    let entry_index = |seq: u64| entry_seqs.iter().position(|&s| s == seq);
    let got: Vec<(u64, u64, bool, Option<usize>)> = por_writes(&o)
        .iter()
        .map(|r| {
            assert_eq!(r.get_enum("reg"), Some("por_el1"));
            let at = r.get_u64("at_entry").unwrap() == 1;
            (
                r.get_u64("old").unwrap(),
                r.get_u64("new").unwrap(),
                at,
                entry_index(r.get_u64("entry_seq").unwrap()),
            )
        })
        .collect();
    let (d, p) = (POR_DEFAULT, POR_PGTABLES);
    let want = vec![
        (0, d, false, None),    // a: main sets the default
        (d, p, false, None),    // b: main raises
        (p, d, true, Some(0)),  // #1 SVC entry resets
        (d, p, false, Some(0)), // #1 exit restores
        (p, d, true, Some(1)),  // #2 BRK
        (d, p, false, Some(1)),
        (p, d, true, Some(2)), // #3 data abort
        (d, p, false, Some(2)),
        (p, d, false, Some(2)), // e: main lowers
        (d, p, false, Some(2)), // f: main raises
        (p, d, true, Some(3)),  // #4 IRQ entry resets
        (d, p, false, Some(3)), // #4 exit restores
        (p, d, false, Some(3)), // f: main lowers
        // g: #5's entry code made no change (POR was already the default),
        // so by the documented rule the first change after entry #5 -- its
        // handler's raise -- is attributed to it.
        (d, p, true, Some(4)),
        (p, d, true, Some(5)),  // #6 nested BRK entry resets
        (d, p, false, Some(5)), // #6 exit restores
        (p, d, false, Some(5)), // #5 exit restores the default
    ];
    assert_eq!(got, want, "por_write records");
    // The entry code's writes are made from the guest's vector page (the
    // tap_arm page of its own table), the handler's raise from elsewhere.
    let vector_page = o.of_kind("tap_arm").last().unwrap().get_u64("vbar").unwrap() & !0xfff;
    let pcs: Vec<(bool, Option<usize>, bool)> = por_writes(&o)
        .iter()
        .filter(|r| r.get_u64("at_entry") == Some(1))
        .map(|r| {
            let in_vectors = r.get_u64("pc").unwrap() & !0xfff == vector_page;
            (true, entry_index(r.get_u64("entry_seq").unwrap()), in_vectors)
        })
        .collect();
    assert_eq!(
        pcs,
        vec![
            (true, Some(0), true),
            (true, Some(1), true),
            (true, Some(2), true),
            (true, Some(3), true),
            (true, Some(4), false),
            (true, Some(5), true),
        ]
    );
}

#[test]
fn same_computation_with_the_tap_off() {
    let on = run_exceptions(&[]);
    let off = run_exceptions(&["tap=off"]);
    assert_eq!(off.records[0].get_enum("poe_mode"), Some("none"));
    assert!(off.console.contains("exceptions: poe=0"));
    assert_eq!(off.of_kind("exc_entry").count(), 0);
    assert_eq!(off.of_kind("por_write").count(), 0);
    assert_eq!(checksum_line(&on.console), checksum_line(&off.console));
}

#[test]
fn exception_returns_give_nesting_depth() {
    let o = run_exceptions(&["eret=on"]);
    let depths: Vec<(&str, u64)> = o
        .records
        .iter()
        .filter(|r| r.kind == "exc_entry" || r.kind == "exc_return")
        .map(|r| (r.kind.as_str(), r.get_u64("depth").unwrap()))
        .collect();
    let (en, re) = ("exc_entry", "exc_return");
    assert_eq!(
        depths,
        vec![
            (en, 1),
            (re, 0),
            (en, 1),
            (re, 0),
            (en, 1),
            (re, 0),
            (en, 1),
            (re, 0),
            (en, 1),
            (en, 2),
            (re, 1),
            (re, 0),
        ]
    );
    // Each return goes back to where its exception was taken (+4 for SVC,
    // BRK and the skipped load; the IRQ returns to the interrupted PC).
    assert_eq!(checksum_line(&o.console), format!("exceptions: checksum={:#018x}", expected_checksum()));
}

/// FNV-1a of a register name: the value `por_regs` writes through it
/// (computed here independently of the guest).
fn por_regs_pattern(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

#[test]
fn virtual_poe_fast_path_reaches_every_register() {
    // MRS/MSR POR_EL1, then POR_EL0, through x0..x30 and XZR: reads and
    // same-value writes complete in vectors.S's fast path, changes in the
    // full path.
    let o = run_guest(args_all("por_regs"));
    assert_eq!(o.status, 0, "{}", o.console);
    assert!(o.console.contains("por_regs: ok, 33 POR_EL1 changes, 33 POR_EL0 changes"), "{}", o.console);
    assert!(!o.console.contains("FAIL"), "{}", o.console);
    assert_eq!(o.of_kind("unknown_trap").count(), 0);
    // Exactly the changes, in order, each from the previous value; the
    // write-backs of the same value leave no record.
    let mut regs: Vec<String> = (0..=30).filter(|&n| n != 19 && n != 29).map(|n| format!("x{n}")).collect();
    regs.extend(["x19".into(), "x29".into()]);
    for (reg, salt) in [("por_el1", 0), ("por_el0", 0x5a5a_5a5a_5a5a_5a5a_u64)] {
        let mut want: Vec<u64> = regs.iter().map(|r| por_regs_pattern(r) ^ salt).collect();
        want.push(0); // MSR of XZR
        want.push(por_regs_pattern("bystanders") ^ salt);
        let writes: Vec<_> = por_writes(&o).into_iter().filter(|r| r.get_enum("reg") == Some(reg)).collect();
        let got: Vec<u64> = writes.iter().map(|r| r.get_u64("new").unwrap()).collect();
        assert_eq!(got, want, "{reg}");
        for w in writes.windows(2) {
            assert_eq!(w[1].get_u64("old"), w[0].get_u64("new"), "{reg}: {w:?}");
        }
        assert!(writes.iter().all(|r| r.get_u64("old") != r.get_u64("new")), "{reg}");
    }
}

/// `tap_slots` (guest-tests/src/bin/tap_slots.rs documents the sequence)
/// under `opts`: its console, the vectors of its exc_entry records, and its
/// tap_arm records as (VBAR page offset from kentry's table, mechanism).
fn run_tap_slots(opts: &[&str]) -> (Outcome, Vec<String>, Vec<(i64, String)>) {
    let mut a = args_all("tap_slots");
    a.hyp_opts = opts.iter().map(|s| s.to_string()).collect();
    let o = run_guest(a);
    assert_eq!(o.status, 0, "{opts:?}: console:\n{}", o.console);
    assert!(o.console.contains("tap_slots: done"), "{opts:?}: console:\n{}", o.console);
    assert!(o.stats.is_clean(), "{opts:?}: {:?}", o.stats);
    let vectors = o.of_kind("exc_entry").map(|r| r.get_enum("vector").unwrap().to_string()).collect();
    let arms: Vec<(u64, String)> = o
        .of_kind("tap_arm")
        .map(|r| (r.get_u64("vbar").unwrap(), r.get_enum("mechanism").unwrap().to_string()))
        .collect();
    // The last VBAR_EL1 is kentry's table (the runtime's boot table may come
    // before it).
    let kentry = arms.last().unwrap().0 as i64;
    let arms = arms.into_iter().map(|(v, m)| (v as i64 - kentry, m)).collect();
    (o, vectors, arms)
}

#[test]
fn every_reachable_slot_nested_entries_and_vbar_moves_are_seen() {
    let (o, vectors, arms) = run_tap_slots(&[]);
    let mut want = vec!["sync_el1h", "sync_el1t", "irq_el1t", "irq_el1h", "sync_el0_64", "irq_el0_64"];
    // svc #4 and the nested svc #5 from the vector page, then one SVC per
    // table (alt, full + an IRQ, kentry again).
    want.extend(["sync_el1h", "sync_el1h", "sync_el1h", "sync_el1h", "irq_el1h", "sync_el1h"]);
    assert_eq!(vectors, want, "console:\n{}", o.console);
    // The guest's own view agrees, entry for entry ("sync/el0-64" there).
    let seen: Vec<String> = o
        .console
        .lines()
        .filter_map(|l| l.strip_prefix("tap_slots: seen "))
        .map(|l| l.split(' ').next().unwrap().replace(['/', '-'], "_"))
        .collect();
    assert_eq!(seen, vectors);
    // The nested SVC #5 is an entry of its own, taken from the vector page
    // (the shadow's copy of `kentry_page_svc` ran).
    let entries: Vec<&OwnedRecord> = o.of_kind("exc_entry").collect();
    let nested = entries[7];
    let kentry_page = o.of_kind("tap_arm").last().unwrap().get_u64("vbar").unwrap() & !0xfff;
    assert_eq!(nested.get_u64("esr").unwrap() & 0xffff, 5, "{nested:?}");
    assert_eq!(nested.get_u64("elr").unwrap() & !0xfff, kentry_page, "{nested:?}");
    // VBAR followed: kentry (trampoline), alt (trampoline: B slots), full
    // (no free padding: the execute-never fallback), kentry again.
    let mech: Vec<(i64, &str)> = arms.iter().map(|(d, m)| (*d, m.as_str())).collect();
    assert!(mech.len() >= 4, "{mech:?}");
    let mech = &mech[mech.len() - 4..];
    assert_eq!(mech[0], (0, "trampoline"));
    assert_eq!(mech[1].1, "trampoline");
    assert_eq!(mech[2], (mech[1].0 + 4096, "xn_step"));
    assert_eq!(mech[3], (0, "trampoline"));
}

#[test]
fn the_execute_never_tap_sees_the_same_entries() {
    let (_, on, _) = run_tap_slots(&[]);
    let (_, step, arms) = run_tap_slots(&["tap=step"]);
    assert_eq!(step, on);
    assert!(arms.iter().all(|(_, m)| m == "xn_step"), "{arms:?}");
}

/// The addresses `por_sites` prints: its three POR_EL1 sites and its
/// fresh POR_EL0 stubs.
fn por_sites_addresses(console: &str) -> [u64; 4] {
    let line = console.lines().find(|l| l.starts_with("por_sites: site_read=")).expect("addresses line");
    let mut it = line.split_whitespace().skip(1).map(|w| {
        let hex = w.split('=').nth(1).unwrap().trim_start_matches("0x");
        u64::from_str_radix(hex, 16).unwrap()
    });
    [(); 4].map(|_| it.next().unwrap())
}

/// `por_sites`'s switches per phase (its ROUNDS) and its POR_EL0 stubs' size.
const POR_SITES_ROUNDS: u64 = 400;
const POR_SITES_STUB: u64 = 8;

#[test]
fn patched_por_sites_answer_and_trace_like_unpatched_ones() {
    // guest-tests/src/bin/por_sites.rs: 1201 POR_EL1 and 1201 POR_EL0
    // changes, every read checked, its own code read and rewritten, POR_EL0
    // changed at sites run once each while its read site is patched. With the sites patched (the default) and without, the
    // guest must see the same answers and the trace the same writes.
    let run = |opts: &[&str]| {
        let mut a = args_all("por_sites");
        a.hyp_opts = opts.iter().map(|s| s.to_string()).collect();
        let o = run_guest(a);
        assert_eq!(o.status, 0, "{opts:?}: console:\n{}", o.console);
        assert!(
            o.console.contains("por_sites: ok changes=1201 changes0=1201"),
            "{opts:?}: console:\n{}",
            o.console
        );
        assert!(!o.console.contains("FAIL"), "{opts:?}: {}", o.console);
        assert_eq!(o.of_kind("unknown_trap").count(), 0, "{opts:?}");
        assert!(o.stats.is_clean(), "{opts:?}: {:?}", o.stats);
        o
    };
    let on = run(&[]);
    let off = run(&["por_sites=off"]);
    let [read, write, smc, fresh] = por_sites_addresses(&on.console);
    let is_stub = |pc: u64| (fresh..fresh + POR_SITES_ROUNDS * POR_SITES_STUB).contains(&pc);
    // POR_EL0's read and write follow site_smc's two instructions.
    let (read0, write0) = (smc + 8, smc + 16);

    // Every site was patched; site_smc twice (the guest's rewrite dropped
    // it, its restore made it a site again); nothing given up or refused.
    let states: Vec<(u64, String)> = on
        .of_kind("por_site")
        .map(|r| (r.get_u64("pc").unwrap(), r.get_enum("state").unwrap().into()))
        .collect();
    assert!(states.iter().all(|(_, s)| s == "patched"), "{states:?}");
    // (Some fresh stubs may be patched too: each runs once per phase.)
    let mut pcs: Vec<u64> = states.iter().map(|(pc, _)| *pc).filter(|&pc| !is_stub(pc)).collect();
    pcs.sort();
    assert_eq!(pcs, [read, write, smc, smc, read0, write0], "{states:?}");
    assert_eq!(off.of_kind("por_site").count(), 0);
    // Hidden from the guest while SCXTNUM_EL1/EL0 carry POR_EL1/EL0.
    let carrier =
        |o: &Outcome| o.of_kind("id_field").filter(|r| r.get_enum("reason") == Some("por_carrier")).count();
    assert!(carrier(&on) >= 1);
    assert_eq!(carrier(&off), 0);

    // The same POR_EL1 and POR_EL0 writes, at the sites' PCs, in the same
    // order.
    for (reg, site) in [("por_el1", write), ("por_el0", write0)] {
        let writes = |o: &Outcome| -> Vec<(u64, u64, u64)> {
            por_writes(o)
                .into_iter()
                .filter(|r| r.get_enum("reg") == Some(reg))
                .map(|r| (r.get_u64("pc").unwrap(), r.get_u64("old").unwrap(), r.get_u64("new").unwrap()))
                .collect()
        };
        let (w_on, w_off) = (writes(&on), writes(&off));
        assert_eq!(w_on.len(), 1201, "{reg}");
        assert_eq!(w_on, w_off, "{reg}");
        assert!(w_on.iter().all(|&(pc, _, _)| pc == site || (reg == "por_el0" && is_stub(pc))), "{reg}");
        let stubs = w_on.iter().filter(|&&(pc, _, _)| is_stub(pc)).count() as u64;
        assert_eq!(stubs, if reg == "por_el0" { POR_SITES_ROUNDS } else { 0 }, "{reg}");
    }
}
