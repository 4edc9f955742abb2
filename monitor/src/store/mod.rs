//! Decoding of a faulting A64 store and the plan to emulate it.
//!
//! porwatch write-protects the guest kernel's stage-1 translation-table
//! pages at stage 2, so every guest instruction that writes one of them
//! traps to EL2 with a Data Abort. ESR_EL2's instruction syndrome (ISV,
//! SAS, SRT, ...) only describes single-register loads and stores without
//! writeback, so the hypervisor reads the instruction word at ELR_EL2 and
//! calls [`decode`]; [`plan`] then turns the decoded [`Store`] plus the
//! trapped registers ([`Regs`]) into a [`Plan`]: what to write where, and
//! which registers change afterwards ([`Plan::register_writes`]).
//!
//! Everything here is pure, total and panic-free on every input: `decode`
//! accepts any `u32`, `plan` any register values (address arithmetic wraps
//! modulo 2^64, as the architecture does).
//!
//! # Coverage
//!
//! [`decode`] returns a [`Store`] for every A64 instruction whose data the
//! hypervisor can emulate, and for the SIMD&FP stores it cannot (see
//! below), in all sizes and addressing modes:
//!
//! * STR/STRB/STRH (immediate: unsigned offset, pre-, post-index;
//!   register offset with LSL/UXTW/SXTW/SXTX), STUR*, STTR* (flagged
//!   [`Kind::Unprivileged`]), STLR*, STLLR* (LORelease), STLUR*
//!   (FEAT_LRCPC2), STLR pre-index and STILP (FEAT_LRCPC3), STP/STNP (W, X),
//!   STGP (an X pair plus the Allocation Tag, [`Store::writes_tag`]);
//! * STXR/STLXR (B, H, W, X) and STXP/STLXP (W, X);
//! * FEAT_LSE: CAS*, CASP*, SWP*, `LD<op>*` and their `ST<op>` aliases;
//! * DC ZVA ([`Kind::ZeroBlock`]);
//! * SIMD&FP: STR/STUR (B, H, S, D, Q), STP/STNP (S, D, Q), ST1..ST4
//!   (multiple and single structures, with post-index), STLUR (SIMD&FP) and
//!   STL1 (FEAT_LRCPC3). These are [`Kind::Simd`] with
//!   [`Store::needs_fp`]: the hypervisor never touches FP/SIMD registers,
//!   so [`plan`] returns [`Plan::StepAndDiff`] and the hypervisor
//!   single-steps the instruction with the page writable, then compares.
//!
//! Every other instruction that writes memory is an
//! `Err(`[`Unsupported`]`)` naming why (MOPS, LS64, MTE tag stores, GCS,
//! LSE128, RCW, LSUI, LSCP's STLP, FP atomics, SVE, SME; DC cache
//! maintenance, which writes no data but can fault with WnR = 1, has its
//! own reason); the hypervisor logs these as coverage gaps. Loads,
//! prefetches and everything that does not write memory are
//! [`Unsupported::NotAStore`]; reserved encodings inside store classes are
//! [`Unsupported::Unallocated`].
//!
//! Encodings follow the Arm ARM (DDI 0487, "Loads and Stores" encoding
//! index and the instruction pages), cross-checked against QEMU's
//! `a64.decode` and LLVM's AArch64 disassembler (every encoding in the tests
//! was produced by LLVM 22's assembler). Bits the Arm ARM marks
//! should-be-one ("(1)", e.g. Rt2 of STXR, Rs/Rt2 of STLR) are ignored, as
//! QEMU and LLVM do: if the CPU executed such an encoding as the store, the
//! hypervisor must emulate it as that store.
//!
//! # Registers and data
//!
//! Register operands are read from one snapshot of the trapped registers,
//! so every value (data, base, offset, compare value) is the value before
//! the instruction. In particular, for pre-/post-index writeback with
//! `Rt == Rn` (or `Rt2 == Rn`; CONSTRAINED UNPREDICTABLE,
//! `Unpredictable_WBOVERLAPST`), porwatch chooses `Constraint_NONE`: the
//! value stored is the pre-writeback base, as QEMU does. The same holds for
//! STXR with `Rs == Rt` or `Rs == Rn` (data and address are the original
//! values, the status is written last).
//!
//! Base register 31 is SP (the hypervisor's [`Regs::sp`] returns SP_EL1 or
//! SP_EL0 per PSTATE.SP); transfer, offset and compare register 31 is
//! XZR/WZR and reads as zero (porwatch forces that, whatever [`Regs::x`]
//! returns). Data is little-endian: the hypervisor must not emulate for a
//! big-endian guest (SCTLR_EL1.EE, or E0E for EL0/unprivileged accesses).
//!
//! # Atomics
//!
//! The hypervisor emulates CAS, CASP, SWP and `LD<op>` on the same physical
//! location with a hardware compare-and-swap loop at EL2 (read the current
//! value, compute the new one with [`ldop_apply`], CAS it in, retry on
//! failure). The memory update therefore stays single-copy atomic with
//! respect to every other observer (other PEs, devices, the table walker's
//! hardware Access-flag/dirty updates), exactly as the trapped instruction
//! would have been. [`Plan::register_writes`] gives the register results
//! (the old value, zero-extended to the register: [`result_value`]).
//!
//! # Exclusives (STXR, STLXR, STXP, STLXP)
//!
//! The guest's LDXR did not trap (stage 2 allows reads), but its STXR does,
//! every time, because the page stays write-protected. The trap itself
//! (exception entry, ERET) may clear the PE's local exclusive monitor, and
//! the hypervisor cannot see the monitor nor the value the LDXR returned.
//! Reporting failure whenever success cannot be proven would therefore fail
//! *every* attempt: the guest's retry loop re-executes LDXR, STXR, traps
//! again, fails again — a livelock.
//!
//! So [`Plan::Exclusive`] is emulated as: read the current memory value
//! `cur`; compare-and-swap `cur -> data` on the same location (single-copy
//! atomic for the access size; a 16-byte CAS for STXP of X registers);
//! on success report status 0 ([`Plan::register_writes`] with
//! `stored = true`), on failure write nothing and report status 1.
//!
//! Why this cannot livelock: the CAS fails only when another agent changed
//! the location between the hypervisor's read and its CAS, i.e. only
//! because a competing write *completed* — system-wide progress, the same
//! guarantee hardware LL/SC gives. The guest's next attempt reloads the new
//! value with LDXR and traps again; it fails again only if yet another
//! write completes in that short window. With porwatch's single vCPU and
//! every guest write to these pages trapped and serialised through EL2,
//! such a window is essentially empty and the first attempt succeeds.
//!
//! What is lost: a write by another agent between the guest's LDXR and the
//! trap is not detected (hardware would have failed the STXR). For
//! translation-table pages on one vCPU the only such writers are the
//! hypervisor itself (e.g. when it performs a hardware AF/dirty update that
//! faulted at stage 2 on the guest's behalf). The hypervisor should close
//! that gap cheaply: remember the location of any such write it makes, and
//! report status 1 without storing for the next trapped exclusive to that
//! location, then forget it. That failure is also guaranteed progress —
//! the guest's retry reloads the updated value and the remembered write is
//! consumed, so the retry succeeds.
//!
//! # DC ZVA
//!
//! [`Plan::ZeroBlock`] zeroes the naturally aligned block containing Xt;
//! the block size comes from [`Regs::zva_block_bytes`] (4 << DCZID_EL0.BS,
//! see [`dczid_block_bytes`]).

mod atomic;
mod bits;
mod decode;
mod decode_ldst;
mod decode_other;
mod decode_simd;
mod effect;
mod mops;
mod plan;
mod types;

#[cfg(test)]
mod tests;

pub use atomic::{ldop_apply, result_value, sign_extend, AtomicOp};
pub use decode::decode;
pub use effect::{descriptor_after, page_parts, PagePart, PAGE_BYTES};
pub use mops::{decode_mops, mops_step, Mops, MopsFill, MopsOp, MopsRegs, MopsStage, MopsStep};
pub use plan::{
    dczid_block_bytes, effective_address, plan, Dest, Plan, RegWrite, RegWrites, MAX_WRITE_BYTES,
};
pub use types::{Addressing, Base, Extend, Kind, Offset, RegView, SimdRegs, Store, Unsupported};

/// The trapped guest's registers, as [`plan`] needs them.
pub trait Regs {
    /// General-purpose register `n` (0..=30). 31 means XZR: implementations
    /// should return 0, and porwatch never asks for it anyway.
    fn x(&self, n: u8) -> u64;
    /// The guest's current stack pointer: SP_EL1 or SP_EL0 per PSTATE.SP.
    fn sp(&self) -> u64;
    /// The DC ZVA block size in bytes, `4 << DCZID_EL0.BS` (the hypervisor
    /// reads DCZID_EL0 once; [`dczid_block_bytes`] does the arithmetic).
    /// [`plan`] clamps it to a power of two in 4..=2048.
    fn zva_block_bytes(&self) -> u64;
}

impl<R: Regs + ?Sized> Regs for &R {
    #[inline]
    fn x(&self, n: u8) -> u64 {
        (**self).x(n)
    }
    #[inline]
    fn sp(&self) -> u64 {
        (**self).sp()
    }
    #[inline]
    fn zva_block_bytes(&self) -> u64 {
        (**self).zva_block_bytes()
    }
}
