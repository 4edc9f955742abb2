//! Guest RAM under porwatch: one range from the RAM base, porwatch at the
//! top (monitor/src/layout.rs), for the machine's default 1 GiB, sizes
//! above 2 GiB up to the largest supported, and a refusal (exit 78, the
//! reason on the console) above that. The `hello` kernel prints the
//! `/memory` ranges it was given; `hostile` probes just above them.
mod common;
use common::*;
use porwatch::run::RunArgs;
use porwatch_monitor::layout::MAX_GUEST_RAM;

const RAM_BASE: u64 = 0x4000_0000;
const GIB: u64 = 1 << 30;

/// "hello: memory A..B" lines.
fn guest_memory(console: &str) -> Vec<(u64, u64)> {
    console
        .lines()
        .filter_map(|l| l.strip_prefix("hello: memory "))
        .map(|r| {
            let (a, b) = r.split_once("..").unwrap();
            let p = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap();
            (p(a), p(b))
        })
        .collect()
}

fn with_ram(guest: &str, gib: u64) -> RunArgs {
    let mut a = args(guest);
    a.qemu_args = vec!["-m".into(), format!("{gib}G")];
    a
}

/// hello sees exactly one RAM range, from the RAM base to porwatch, which
/// ends at the top of RAM; the trace's `guest_ram`, `hyp` and `guest_dtb`
/// regions say the same.
fn assert_one_range_porwatch_on_top(o: &Outcome, ram_size: u64) {
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    assert!(o.console.contains("hello: done"), "console:\n{}", o.console);
    let header = &o.records[0];
    let (hyp_base, hyp_size) = (header.get_u64("hyp_base").unwrap(), header.get_u64("hyp_size").unwrap());
    assert_eq!(hyp_base + hyp_size, RAM_BASE + ram_size, "porwatch ends at the top of RAM");
    assert_eq!(guest_memory(&o.console), [(RAM_BASE, hyp_base)], "console:\n{}", o.console);
    let region = |kind: &str| -> Vec<(u64, u64)> {
        o.of_kind("mem_region")
            .filter(|r| r.get_enum("kind") == Some(kind))
            .map(|r| (r.get_u64("base").unwrap(), r.get_u64("size").unwrap()))
            .collect()
    };
    assert_eq!(region("guest_ram"), [(RAM_BASE, hyp_base - RAM_BASE)]);
    assert_eq!(region("hyp"), [(hyp_base, hyp_size)]);
    // The guest's device tree lies where QEMU loaded porwatch (RAM base +
    // 2 MiB), inside guest RAM.
    let dtb = region("guest_dtb");
    assert_eq!(dtb.len(), 1);
    assert_eq!(dtb[0].0, RAM_BASE + (2 << 20));
    assert_eq!(o.one("guest_start").get_u64("dtb"), Some(dtb[0].0));
    assert!(o.console.contains(&format!("dtb at {:#x}", dtb[0].0)));
}

#[test]
fn default_1gib_is_one_range_with_porwatch_at_the_top() {
    let o = run_guest(args("hello"));
    assert_one_range_porwatch_on_top(&o, GIB);
    // Stage-2 tables for 1 GiB: 2 MiB, plus the image: porwatch takes a
    // few MiB of the top, not more.
    assert!(o.records[0].get_u64("hyp_size").unwrap() <= 8 << 20);
}

#[test]
fn ram_above_2gib_up_to_the_maximum_is_one_range() {
    for gib in [3, MAX_GUEST_RAM / GIB] {
        let o = run_guest(with_ram("hello", gib));
        assert_one_range_porwatch_on_top(&o, gib * GIB);
    }
}

/// More RAM than porwatch supports is refused before QEMU starts, with the
/// limit (the hyp refuses the same plan at boot for other launchers:
/// porwatch_monitor::layout's unit tests).
#[test]
fn more_ram_than_supported_is_refused_with_the_reason() {
    let gib = MAX_GUEST_RAM / GIB + 1;
    let e = porwatch::run::run(&with_ram("hello", gib), Box::new(std::io::sink()), Box::new(std::io::sink()))
        .err()
        .expect("refused");
    let want =
        format!("{} MiB of guest RAM is more than porwatch supports ({} MiB", gib << 10, MAX_GUEST_RAM >> 20);
    assert!(format!("{e:#}").contains(&want), "want {want:?}: {e:#}");
}

/// hostile finds porwatch right above `/memory` and gets synchronous
/// external aborts there, with more RAM too.
#[test]
fn hostile_finds_porwatch_above_the_end_of_ram() {
    let o = run_guest(with_ram("hostile", 3));
    // 81: hostile's IMPLEMENTATION DEFINED register access gets an UNDEF.
    assert_eq!(o.status, porwatch::exit_status::RunStatus::GuestUndef.code(), "console:\n{}", o.console);
    assert!(o.console.contains("hostile: 0 check(s) failed"), "console:\n{}", o.console);
    let hyp_base = o.records[0].get_u64("hyp_base").unwrap();
    assert!(
        o.console.contains(&format!("hostile: write-hyp-memory: ok (addr={hyp_base:#x}")),
        "{}",
        o.console
    );
    let aborts: Vec<_> = o.of_kind("unknown_trap").filter(|r| r.get_u64("far") == Some(hyp_base)).collect();
    assert_eq!(aborts.len(), 2, "a write and a read of porwatch's memory");
    assert!(aborts.iter().all(|r| r.get_enum("action") == Some("abort_injected")));
}

/// FNV-1a over little-endian 64-bit words, then tail bytes (hello's
/// `memory_checksum`).
fn word_checksum(data: &[u8]) -> u64 {
    const PRIME: u64 = 0x100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        h = (h ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(PRIME);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    h
}

/// With 160 MiB of RAM and a 77 MiB initrd, QEMU puts the initrd at RAM
/// base + 80 MiB and its device tree right after it, in the top 2 MiB:
/// porwatch cannot have the top, so it goes just below the initrd. Neither
/// is overwritten (hello checksums the initrd it finds through /chosen,
/// and its device tree parses), and the guest's RAM is all of RAM but
/// porwatch (two ranges here, truthfully).
#[test]
fn what_qemu_placed_at_the_top_is_kept() {
    let dir = tempdir();
    let initrd = dir.join("initrd.bin");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..77usize << 20)
        .map(|_| {
            // xorshift64: incompressible, deterministic.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&initrd, &data).unwrap();
    let mut a = args("hello");
    a.initrd = Some(initrd);
    a.qemu_args = vec!["-m".into(), "160M".into()];
    let o = run_guest(a);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    let (initrd_start, initrd_end) = (RAM_BASE + (80 << 20), RAM_BASE + (157 << 20));
    let want =
        format!("hello: initrd {initrd_start:#x}..{initrd_end:#x} checksum={:#018x}", word_checksum(&data));
    assert!(o.console.contains(&want), "want {want:?}; console:\n{}", o.console);
    let header = &o.records[0];
    let (hyp_base, hyp_size) = (header.get_u64("hyp_base").unwrap(), header.get_u64("hyp_size").unwrap());
    let loader_dtb = o.one("hyp_boot").get_u64("dtb").unwrap();
    assert!(loader_dtb >= initrd_end, "QEMU's DTB follows the initrd: {loader_dtb:#x}");
    assert_eq!(hyp_base + hyp_size, initrd_start, "porwatch just below the initrd");
    let ram_end = RAM_BASE + (160 << 20);
    assert_eq!(guest_memory(&o.console), [(RAM_BASE, hyp_base), (initrd_start, ram_end)]);
}
