//! `bench`: micro-benchmarks for the costs porwatch adds to what a guest does
//! (exception entry with the tap on, virtual POE accesses).
//!
//! Times N iterations of each operation with CNTVCT_EL0 (ISB before each
//! read). Under `-icount shift=0` with CNTFRQ = 1 GHz one tick is one emulated
//! instruction (EL2's included), so ticks per iteration = instructions per
//! operation. Every loop iteration also runs `subs` + `b.ne` (2 instructions),
//! which is what `empty` measures.
//!
//! | name        | loop body                                             |
//! |-------------|-------------------------------------------------------|
//! | `empty`     | nothing (baseline: the loop itself)                   |
//! | `svc`       | `svc #0`: exception entry at EL1, handler, ERET        |
//! | `por_read`  | `mrs POR_EL1` (only if ID_AA64MMFR3_EL1.S1POE != 0)   |
//! | `por_write` | `msr POR_EL1` (its current value) + `isb` (likewise)  |
//! | `por_change`| `eor` + `msr POR_EL1` (a new value every time) + `isb` (likewise) |
//!
//! The SVC handler is this kernel's own vector table (4 KiB-aligned page
//! `bench_vectors`): slot 0x200 reads ESR_EL1 and ERETs if the class is SVC64
//! (ELR already points after the SVC); anything else prints and exits 1.
//!
//! Command line (`/chosen/bootargs`): `bench.iters=N` (default 10000, N >= 1),
//! `bench.only=NAME` (run one operation), `bench.por=V` (POR_EL1 := V before
//! the operations, when FEAT_S1POE is there: with V = 0x40 the first
//! `por_change` takes pkey 1's write away right after the `svc` flood's last
//! entry, an entry transition porwatch's flight mode streams; the MMU is off,
//! so the overlay restricts nothing). Unknown `bench.*` words fail.
//!
//! Console: `bench: cntfrq=F`, `bench: iters=N poe=0|1`, then per operation
//! `bench: NAME iters=N ticks=T milli_per_iter=M` (M = T * 1000 / N) or
//! `bench: NAME skipped`, then `bench: done`. Exit status 0, or 1 on a bad
//! command line or an unexpected exception.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use porwatch_guest_tests::exceptions::VECTOR_NAMES;
use porwatch_guest_tests::{cmdline, poe, println, smccc, timer, Boot};
use porwatch_monitor::fdt;

const DEFAULT_ITERS: u64 = 10_000;
const EC_SVC64: u64 = 0x15;

global_asm!(
    r#"
.macro BENCH_VBAD kind
    .balign 0x80
    mov     x1, #\kind
    b       bench_bad
.endm

.pushsection .text.bench_vectors, "ax"
.balign 4096
.global bench_vectors
bench_vectors:
    BENCH_VBAD 0
    BENCH_VBAD 1
    BENCH_VBAD 2
    BENCH_VBAD 3
    /* 0x200: synchronous, current EL with SPx */
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mrs     x0, esr_el1
    lsr     x0, x0, #26
    cmp     x0, #{ec_svc}
    b.ne    2f
    ldp     x0, x1, [sp], #16
    eret
2:  mov     x1, #4
    b       bench_bad
    BENCH_VBAD 5
    BENCH_VBAD 6
    BENCH_VBAD 7
    BENCH_VBAD 8
    BENCH_VBAD 9
    BENCH_VBAD 10
    BENCH_VBAD 11
    BENCH_VBAD 12
    BENCH_VBAD 13
    BENCH_VBAD 14
    BENCH_VBAD 15
    .balign 0x800
bench_bad:
    mrs     x0, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    bl      {bad}
    /* Nothing else shares the vector page. */
    .balign 4096
.popsection
"#,
    ec_svc = const EC_SVC64,
    bad = sym bench_unexpected,
);

unsafe extern "C" {
    static bench_vectors: u8;
}

extern "C" fn bench_unexpected(esr: u64, vector: u64, elr: u64, far: u64) -> ! {
    println!(
        "bench: FAIL unexpected exception {} esr={:#x} elr={:#x} far={:#x}",
        VECTOR_NAMES[(vector & 15) as usize],
        esr,
        elr,
        far
    );
    smccc::test_exit(1)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Empty,
    Svc,
    PorRead,
    PorWrite,
    PorChange,
}

const OPS: [(Op, &str); 5] = [
    (Op::Empty, "empty"),
    (Op::Svc, "svc"),
    (Op::PorRead, "por_read"),
    (Op::PorWrite, "por_write"),
    (Op::PorChange, "por_change"),
];

/// What `por_change` flips in POR_EL1 each time: pkey 1's W (0x17 <-> 0x57,
/// the kpkeys default and page-table levels).
const POR_CHANGE_BITS: u64 = 0x40;

/// Ticks for `n` (>= 1) iterations of `op`.
fn measure(op: Op, n: u64) -> u64 {
    let t0 = timer::cntvct();
    unsafe {
        match op {
            Op::Empty => asm!(
                "2: subs {n}, {n}, #1",
                "b.ne 2b",
                n = inout(reg) n => _,
                options(nomem, nostack)
            ),
            Op::Svc => asm!(
                "2: svc #0",
                "subs x9, x9, #1",
                "b.ne 2b",
                inout("x9") n => _,
                clobber_abi("C")
            ),
            Op::PorRead => asm!(
                "2: mrs {t}, s3_0_c10_c2_4",
                "subs {n}, {n}, #1",
                "b.ne 2b",
                n = inout(reg) n => _,
                t = out(reg) _,
                options(nomem, nostack)
            ),
            Op::PorWrite => {
                let v = poe::read_por_el1();
                asm!(
                    "2: msr s3_0_c10_c2_4, {v}",
                    "isb",
                    "subs {n}, {n}, #1",
                    "b.ne 2b",
                    n = inout(reg) n => _,
                    v = in(reg) v,
                    options(nostack)
                )
            }
            Op::PorChange => {
                let v = poe::read_por_el1();
                asm!(
                    "2: eor {v}, {v}, #{bits}",
                    "msr s3_0_c10_c2_4, {v}",
                    "isb",
                    "subs {n}, {n}, #1",
                    "b.ne 2b",
                    n = inout(reg) n => _,
                    v = inout(reg) v => _,
                    bits = const POR_CHANGE_BITS,
                    options(nostack)
                )
            }
        }
    }
    timer::cntvct().wrapping_sub(t0)
}

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    let mut plat = fdt::Platform::new();
    if fdt::discover(boot.dtb, &mut plat).is_err() {
        println!("bench: FAIL cannot parse the device tree");
        return 1;
    }
    let args = plat.chosen.bootargs.unwrap_or("");
    let mut iters = DEFAULT_ITERS;
    let mut only: Option<&str> = None;
    let mut por: Option<u64> = None;
    for (k, v) in cmdline::words(args, "bench.") {
        match (k, v) {
            ("bench.iters", Some(v)) => match cmdline::parse_u64(v) {
                Some(n) if n >= 1 => iters = n,
                _ => {
                    println!("bench: FAIL bad bench.iters={:?} (want N >= 1)", v);
                    return 1;
                }
            },
            ("bench.only", Some(v)) if OPS.iter().any(|(_, name)| *name == v) => only = Some(v),
            ("bench.por", Some(v)) => match cmdline::parse_u64(v) {
                Some(n) => por = Some(n),
                None => {
                    println!("bench: FAIL bad bench.por={:?} (want a POR_EL1 value)", v);
                    return 1;
                }
            },
            _ => {
                println!(
                    "bench: FAIL unknown option {}{}{} (bench.iters=N, bench.por=V, bench.only={})",
                    k,
                    if v.is_some() { "=" } else { "" },
                    v.unwrap_or(""),
                    "empty|svc|por_read|por_write|por_change"
                );
                return 1;
            }
        }
    }

    let vbar = &raw const bench_vectors as u64;
    unsafe { asm!("msr vbar_el1, {}", "isb", in(reg) vbar, options(nostack)) };
    let poe = poe::s1poe_present();
    println!("bench: cntfrq={}", timer::cntfrq());
    println!("bench: iters={} poe={}", iters, poe as u8);
    if let Some(v) = por.filter(|_| poe) {
        // SAFETY: FEAT_S1POE is there (`poe`).
        unsafe { poe::write_por_el1(v) };
        println!("bench: por={:#x}", v);
    }

    for (op, name) in OPS {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        if matches!(op, Op::PorRead | Op::PorWrite | Op::PorChange) && !poe {
            println!("bench: {} skipped", name);
            continue;
        }
        let ticks = measure(op, iters);
        let milli = ticks as u128 * 1000 / iters as u128;
        println!("bench: {} iters={} ticks={} milli_per_iter={}", name, iters, ticks, milli);
    }
    println!("bench: done");
    0
}
