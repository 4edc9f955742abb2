//! `por_regs`: POR_EL1, then POR_EL0, through every general-purpose
//! register. Under virtual POE, porwatch completes `MRS Xt, POR_EL1/0` and a
//! same-value `MSR POR_EL1/0, Xt` from EL1 in its assembly fast path
//! (hyp/src/arch/vectors.S, `vpoe_undef`), which must find Xt by number
//! without disturbing any other register. For each Xt this kernel writes a
//! value unique to it (a change: the full path, one por_write record), reads
//! it back into Xt, writes Xt back (no change: no record) and reads it
//! again; one more check keeps x0-x5 and x30 (the registers the fast path
//! borrows) live across a read. It prints how many changes it made to each,
//! for the host test to compare with the trace.
#![no_std]
#![no_main]

use core::arch::asm;
use porwatch_guest_tests::{poe, println, Boot};

/// A value for the register named `name` (FNV-1a of the name).
fn pattern(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// Xt = each register the compiler lets an asm operand name.
macro_rules! through {
    ($por:tt, $write:path, $read:path, $salt:expr, $fails:ident, $changes:ident, $($r:tt),* $(,)?) => {$(
        let want = pattern($r) ^ $salt;
        unsafe { $write(want) };
        $changes += 1;
        let got: u64;
        unsafe { asm!(concat!("mrs ", $r, ", ", $por), out($r) got, options(nomem, nostack)) };
        unsafe { asm!(concat!("msr ", $por, ", ", $r), "isb", in($r) got, options(nostack)) };
        let back = unsafe { $read() };
        if got != want || back != want {
            println!("por_regs: FAIL {}: read {:#x}, after write-back {:#x}, expected {:#x}", $r, got, back, want);
            $fails += 1;
        }
    )*};
}

/// Xt = x19 or x29 (reserved by LLVM: saved and restored around the access).
macro_rules! through_reserved {
    ($por:tt, $write:path, $read:path, $salt:expr, $fails:ident, $changes:ident, $r:tt) => {{
        let want = pattern($r) ^ $salt;
        unsafe { $write(want) };
        $changes += 1;
        let got: u64;
        unsafe {
            asm!(
                concat!("mov {s}, ", $r),
                concat!("mrs ", $r, ", ", $por),
                concat!("mov {g}, ", $r),
                concat!("msr ", $por, ", ", $r),
                "isb",
                concat!("mov ", $r, ", {s}"),
                s = out(reg) _,
                g = out(reg) got,
                options(nostack),
            )
        };
        let back = unsafe { $read() };
        if got != want || back != want {
            println!("por_regs: FAIL {}: read {:#x}, after write-back {:#x}, expected {:#x}", $r, got, back, want);
            $fails += 1;
        }
    }};
}

/// One register (`$por`: its encoding, a literal) through every Xt, XZR and
/// the bystander check; `$salt` keeps its values apart from the other's.
macro_rules! pass {
    ($por:tt, $write:path, $read:path, $salt:expr, $fails:ident, $changes:ident) => {{
        through!(
            $por, $write, $read, $salt, $fails, $changes, "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8",
            "x9", "x10", "x11", "x12", "x13", "x14", "x15", "x16", "x17", "x18", "x20", "x21", "x22", "x23",
            "x24", "x25", "x26", "x27", "x28", "x30"
        );
        through_reserved!($por, $write, $read, $salt, $fails, $changes, "x19");
        through_reserved!($por, $write, $read, $salt, $fails, $changes, "x29");

        // XZR (Rt = 31): a read is discarded, a write stores 0 (a change).
        unsafe { asm!(concat!("mrs xzr, ", $por), options(nomem, nostack)) };
        unsafe { asm!(concat!("msr ", $por, ", xzr"), "isb", options(nostack)) };
        $changes += 1;
        let zero = unsafe { $read() };
        if zero != 0 {
            println!("por_regs: FAIL xzr: {} = {:#x} after MSR of XZR", $por, zero);
            $fails += 1;
        }

        // The registers the fast path borrows survive a read into another one.
        let want = pattern("bystanders") ^ $salt;
        unsafe { $write(want) };
        $changes += 1;
        let ins: [u64; 7] = core::array::from_fn(|i| pattern("in") ^ i as u64);
        let mut outs = [0u64; 7];
        let got: u64;
        unsafe {
            asm!(
                concat!("mrs x9, ", $por),
                inout("x0") ins[0] => outs[0],
                inout("x1") ins[1] => outs[1],
                inout("x2") ins[2] => outs[2],
                inout("x3") ins[3] => outs[3],
                inout("x4") ins[4] => outs[4],
                inout("x5") ins[5] => outs[5],
                inout("x30") ins[6] => outs[6],
                out("x9") got,
                options(nomem, nostack),
            )
        };
        if got != want || outs != ins {
            println!("por_regs: FAIL bystanders: x9 = {:#x} (expected {:#x}), x0-x5,x30 {:x?}", got, want, outs);
            $fails += 1;
        }
    }};
}

/// The values POR_EL0's pass writes: POR_EL1's, XOR this.
const EL0_SALT: u64 = 0x5a5a_5a5a_5a5a_5a5a;

#[unsafe(no_mangle)]
fn test_main(_boot: &Boot) -> u32 {
    if !poe::s1poe_present() {
        println!("por_regs: FAIL no FEAT_S1POE advertised (run with the tap on)");
        return 1;
    }
    let (mut fails, mut changes, mut changes0) = (0u32, 0u32, 0u32);
    pass!("s3_0_c10_c2_4", poe::write_por_el1, poe::read_por_el1, 0, fails, changes);
    pass!("s3_3_c10_c2_4", poe::write_por_el0, poe::read_por_el0, EL0_SALT, fails, changes0);
    if fails == 0 {
        println!("por_regs: ok, {} POR_EL1 changes, {} POR_EL0 changes", changes, changes0);
    }
    fails
}
