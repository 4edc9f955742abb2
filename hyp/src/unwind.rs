//! Call traces for hazard reports (mechanism; the walk is
//! porwatch_monitor::unwind). Every read of the guest's stack is a guest
//! VA translated with `AT S1E1R` (the guest's own stage 1) and checked to
//! be guest RAM at stage 2, so a bad frame pointer ends the walk and never
//! faults porwatch.
//!
//! Two chains per hazard, each in a `call_trace` record written just
//! before the hazard (which names them, `trace_seq` / `entry_trace_seq`):
//! the store's, from the trapped x29 (noted by pt.rs when a store to a
//! tracked table traps), and the one of the code the cause entry
//! interrupted, from the x29 noted at that entry (the tap notes seq, ELR,
//! x29 and x30 at each entry: four stores; the walk itself happens only at
//! a hazard, while the interrupted frames are still on the stack below the
//! handler's).
use crate::arch::frame::GuestRegs;
use crate::arch::{at, fast_path, percpu, stage2};
use crate::trace_out;
use aarch64_cpu::registers::{Readable, TCR_EL1};
use core::sync::atomic::{AtomicU64, Ordering};
use porwatch_monitor::cpus::MAX_CPUS;
use porwatch_monitor::s1::regime::{TCR_T0SZ_SHIFT, TCR_T1SZ_SHIFT, TCR_TXSZ_MASK};
use porwatch_monitor::unwind::{unwind, StackMem, VaBits, MAX_FRAMES};
use porwatch_trace::{CallTraceOf, Event};

/// x29 (frame pointer) and x30 (link register).
pub const FP: u8 = 29;
pub const LR: u8 = 30;
/// Bytes per frame in `call_trace.frames`.
const FRAME_BYTES: usize = 8;
/// A VA is `64 - TxSZ` bits wide.
const VA_BITS_FROM_TXSZ: u64 = 64;

/// The guest's stack, read by VA.
struct GuestStack;

impl StackMem for GuestStack {
    fn read_u64(&self, va: u64) -> Option<u64> {
        if !va.is_multiple_of(8) {
            return None;
        }
        let pa = stage2::ram_pa(at::va_to_ipa(va)?, 8)?;
        // SAFETY: guest RAM, identity-mapped at EL2, range checked above.
        Some(unsafe { core::ptr::read_volatile(pa as *const u64) })
    }
}

/// A context to unwind from.
#[derive(Clone, Copy)]
struct Context {
    pc: u64,
    fp: u64,
    lr: u64,
}

/// What pt.rs notes for this vCPU, as plain atomics. Only the vCPU
/// itself writes and reads its notes. The latest exception entry's note
/// (its seq, ELR, x29, x30) is in the CPU's fast-path block, where the
/// assembly writes it when it records an entry itself.
struct Notes {
    /// The store that trapped last: PC, x29, x30.
    store: [AtomicU64; 3],
}

static NOTES: [Notes; MAX_CPUS] = [const { Notes { store: [const { AtomicU64::new(0) }; 3] } }; MAX_CPUS];

fn notes() -> &'static Notes {
    &NOTES[percpu::index()]
}

fn put(to: &[AtomicU64; 3], c: Context) {
    to[0].store(c.pc, Ordering::Relaxed);
    to[1].store(c.fp, Ordering::Relaxed);
    to[2].store(c.lr, Ordering::Relaxed);
}

fn get(from: &[AtomicU64; 3]) -> Context {
    Context {
        pc: from[0].load(Ordering::Relaxed),
        fp: from[1].load(Ordering::Relaxed),
        lr: from[2].load(Ordering::Relaxed),
    }
}

/// A store to a tracked table trapped with these registers (pt.rs).
pub fn note_store(regs: &GuestRegs) {
    put(&notes().store, Context { pc: regs.elr, fp: regs.get(FP), lr: regs.get(LR) });
}

/// The tap recorded exception entry `seq`, taken at `elr` with the
/// interrupted code's x29 `fp` and x30 `lr` (a queued entry's, or the
/// trap's registers).
pub fn note_entry(seq: u64, elr: u64, fp: u64, lr: u64) {
    fast_path::set_note_entry([seq, elr, fp, lr]);
}

/// Writes the call traces of a hazard at `pc` whose cause entry is
/// `entry_seq`: returns the seqs of the store's and the entry's
/// `call_trace` records (0: none).
pub fn emit_for_hazard(pc: u64, entry_seq: u64) -> (u64, u64) {
    let n = notes();
    let s = get(&n.store);
    let store = if s.pc == pc { emit(CallTraceOf::Hazard, 0, &s) } else { 0 };
    let [seq, pc, fp, lr] = fast_path::note_entry();
    let entry = if entry_seq != 0 && seq == entry_seq {
        emit(CallTraceOf::ExcEntry, entry_seq, &Context { pc, fp, lr })
    } else {
        0
    };
    (store, entry)
}

/// The VA sizes of the guest's two halves (PAC bits lie above them).
fn va_bits() -> VaBits {
    let tcr = TCR_EL1.get();
    let bits = |shift: u32| (VA_BITS_FROM_TXSZ - ((tcr >> shift) & TCR_TXSZ_MASK)) as u8;
    VaBits { ttbr0: bits(TCR_T0SZ_SHIFT), ttbr1: bits(TCR_T1SZ_SHIFT) }
}

fn emit(of: CallTraceOf, ref_seq: u64, c: &Context) -> u64 {
    let u = unwind(&GuestStack, c.fp, va_bits());
    let mut bytes = [0u8; MAX_FRAMES * FRAME_BYTES];
    for (i, f) in u.frames.iter().enumerate() {
        bytes[i * FRAME_BYTES..(i + 1) * FRAME_BYTES].copy_from_slice(&f.to_le_bytes());
    }
    // Never dropped: the hazard that follows names it.
    trace_out::emit_reliable(Event::CallTrace {
        of: of as u64,
        ref_seq,
        pc: c.pc,
        lr: va_bits().strip(c.lr),
        fp: c.fp,
        end: u.end.code(),
        frames: &bytes[..u.frames.len() * FRAME_BYTES],
    })
}
