//! FEAT_MOPS memory set and copy (`SET*`, `CPY*`, `CPYF*`): decoding, and
//! one restartable step of the operation, as the hypervisor emulates it when
//! one of these instructions writes a write-protected page-table page.
//!
//! # The architecture's contract
//!
//! A memset or memcpy is three instructions: a prologue (`SETP`, `CPYP`), a
//! main part (`SETM`, `CPYM`) and an epilogue (`SETE`, `CPYE`). Each may do
//! any part of the work; the progress is in the registers: `Xd` the
//! destination, `Xs` the source (copies) or the data byte (sets), `Xn` the
//! size. An instruction that takes an exception leaves the registers
//! describing the work not yet done, and the same instruction, executed
//! again, continues (the Arm ARM's "restartable" rule; Linux's
//! `arm64_mops_reset_regs` relies on it). So the hypervisor emulates one
//! *step* — the bytes of the faulting destination page — updates the
//! registers in the same format, and returns to the *same* instruction,
//! which carries on natively. Stores never land outside guest RAM: the
//! hypervisor translates every address it touches.
//!
//! # Register formats
//!
//! The prologue's inputs: `Xd` = first destination byte, `Xs` = first
//! source byte, `Xn` = bytes to do (sets and forward copies from the start;
//! a backward copy, chosen by the prologue when the source overlaps below
//! the destination, works from the end of `[Xd, Xd + Xn)`). After the
//! prologue the implementation's option is in PSTATE.C (0: option A, 1:
//! option B) and, for option-B copies, the direction in PSTATE.N:
//!
//! | | option A | option B |
//! |---|---|---|
//! | set | `Xd` = end, `Xn` = -remaining | `Xd` = next byte, `Xn` = remaining |
//! | forward copy | `Xd`, `Xs` = ends, `Xn` = -remaining | `Xd`, `Xs` = next bytes, `Xn` = remaining |
//! | backward copy | `Xd`, `Xs` = starts, `Xn` = remaining (positive) | `Xd`, `Xs` = ends (exclusive), `Xn` = remaining, N = 1 |
//!
//! (Arm ARM DDI 0487, "Memory Copy and Memory Set" and rules CNTMJ/MWFQH;
//! QEMU implements option A.)
use super::bits::{bit, field, rn, rs, rt};

/// Which of the three instructions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MopsStage {
    Prologue,
    Main,
    Epilogue,
}

/// A memory set or a memory copy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MopsOp {
    /// `SET*`: the low byte of `Xs` (`data_reg`; 31 = XZR) is stored.
    Set { data_reg: u8 },
    /// `CPY*` (`forward_only = false`, memmove: the prologue may choose a
    /// backward copy) and `CPYF*` (memcpy, always forward). `src_reg` = Xs.
    Copy { src_reg: u8, forward_only: bool },
}

/// A decoded FEAT_MOPS instruction porwatch emulates.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Mops {
    pub op: MopsOp,
    pub stage: MopsStage,
    /// Xd: the destination register.
    pub rd: u8,
    /// Xn: the size register.
    pub rn: u8,
    /// The writes are unprivileged (`SET*T`, `CPY*WT`, `CPY*T`): checked
    /// against POR_EL0, like STTR.
    pub write_unprivileged: bool,
    /// The reads of a copy are unprivileged (`CPY*RT`, `CPY*T`).
    pub read_unprivileged: bool,
}

/// Decodes `insn` as a memory set or copy porwatch can emulate. `None` for
/// everything else, including the tag-setting `SETG*` (they also write
/// Allocation Tags) and encodings whose registers overlap (CONSTRAINED
/// UNPREDICTABLE): those stay [`super::Unsupported::Mops`].
///
/// Encoding: `00 011 o0 01 op1 0 Rs op2 01 Rn Rd`. `op1` = 11 is a set
/// (`o0` = 1: SETG), with `op2<3:2>` the stage, `op2<0>` T (unprivileged),
/// `op2<1>` N (non-temporal); otherwise a copy (`o0` = 0: CPYF), `op1` the
/// stage, `op2<0>` WT, `op2<1>` RT, `op2<2>` WN, `op2<3>` RN.
pub fn decode_mops(insn: u32) -> Option<Mops> {
    const FIXED_MASK: u32 = 0xFB20_0C00;
    const FIXED: u32 = 0x1900_0400;
    if insn & FIXED_MASK != FIXED {
        return None;
    }
    let tagged_or_move = bit(insn, 26);
    let op1 = field(insn, 22, 2);
    let op2 = field(insn, 12, 4);
    let (d, s, n) = (rt(insn), rs(insn), rn(insn));
    let stage = |v: u32| match v {
        0 => Some(MopsStage::Prologue),
        1 => Some(MopsStage::Main),
        2 => Some(MopsStage::Epilogue),
        _ => None,
    };
    let m = if op1 == 3 {
        if tagged_or_move {
            return None; // SETG*: also sets Allocation Tags.
        }
        Mops {
            op: MopsOp::Set { data_reg: s },
            stage: stage(op2 >> 2)?,
            rd: d,
            rn: n,
            write_unprivileged: op2 & 1 != 0,
            read_unprivileged: false,
        }
    } else {
        if s == 31 {
            return None;
        }
        Mops {
            op: MopsOp::Copy { src_reg: s, forward_only: !tagged_or_move },
            stage: stage(op1)?,
            rd: d,
            rn: n,
            write_unprivileged: op2 & 1 != 0,
            read_unprivileged: op2 & 2 != 0,
        }
    };
    // Xd and Xn can never be XZR; overlapping registers are CONSTRAINED
    // UNPREDICTABLE.
    let overlap = d == n || (s != 31 && (s == d || s == n));
    (d != 31 && n != 31 && !overlap).then_some(m)
}

/// The registers a step reads: Xd, Xs (source address, or data; 0 for
/// XZR), Xn, and PSTATE.NZCV (SPSR bits [31:28]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MopsRegs {
    pub xd: u64,
    pub xs: u64,
    pub xn: u64,
    pub nzcv: u8,
}

/// PSTATE.N and PSTATE.C in [`MopsRegs::nzcv`].
const NZCV_N: u8 = 0b1000;
const NZCV_C: u8 = 0b0010;

/// What one step writes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MopsFill {
    /// Every byte is this value.
    Byte(u8),
    /// The bytes come from `len` bytes at this source VA (lowest address).
    CopyFrom(u64),
}

/// One step: `len` bytes at destination VA `dst` (lowest address), all in
/// one destination page and one source page, then the registers as they
/// must be for the same instruction to continue.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MopsStep {
    pub dst: u64,
    pub len: u64,
    pub fill: MopsFill,
    /// The bytes are done from the highest address down (a backward copy).
    pub backward: bool,
    pub xd: u64,
    pub xs: u64,
    pub xn: u64,
}

/// Largest size a prologue honours (the Arm ARM saturates Xn): CPYF and
/// SET at 2^63 - 1, CPY at 2^55 - 1 (QEMU's choice too).
const MAX_SET_OR_CPYF: u64 = i64::MAX as u64;
const MAX_CPY: u64 = 0x007F_FFFF_FFFF_FFFF;

/// Bytes from `a` to the end of its `page`-sized page.
fn to_page_end(a: u64, page: u64) -> u64 {
    page - (a & (page - 1))
}

/// Bytes from the start of `a`'s page up to and including `a`.
fn from_page_start(a: u64, page: u64) -> u64 {
    (a & (page - 1)) + 1
}

/// How much work is left, and where, in one format.
enum Work {
    /// Forward from `dst`/`src`, `rem` bytes.
    Forward { dst: u64, src: u64, rem: u64 },
    /// Backward: the region `[end - rem, end)` (and the source's), done
    /// from its top.
    Backward { dst_end: u64, src_end: u64, rem: u64 },
}

/// The step the hypervisor performs for `m` with registers `r`, in
/// `page`-byte pages (a power of two). `None` when there is nothing to do
/// (a zero size) or the registers are not in a format this instruction can
/// have (the CPU would raise a MOPS exception; porwatch leaves that to it).
pub fn mops_step(m: &Mops, r: &MopsRegs, page: u64) -> Option<MopsStep> {
    if page == 0 || !page.is_power_of_two() {
        return None;
    }
    let option_b = r.nzcv & NZCV_C != 0;
    let (is_set, forward_only) = match m.op {
        MopsOp::Set { .. } => (true, true),
        MopsOp::Copy { forward_only, .. } => (false, forward_only),
    };
    let work = match m.stage {
        MopsStage::Prologue => {
            let max = if is_set || forward_only { MAX_SET_OR_CPYF } else { MAX_CPY };
            let rem = r.xn.min(max);
            // memmove: backward when the source starts below the
            // destination and overlaps it (forward otherwise: for
            // non-overlapping copies the direction is IMPLEMENTATION
            // DEFINED).
            let backward = !is_set && !forward_only && r.xs < r.xd && r.xs.wrapping_add(rem) > r.xd;
            if backward {
                Work::Backward { dst_end: r.xd.wrapping_add(rem), src_end: r.xs.wrapping_add(rem), rem }
            } else {
                Work::Forward { dst: r.xd, src: r.xs, rem }
            }
        }
        MopsStage::Main | MopsStage::Epilogue => {
            if option_b {
                if !is_set && r.nzcv & NZCV_N != 0 {
                    if forward_only {
                        return None;
                    }
                    Work::Backward { dst_end: r.xd, src_end: r.xs, rem: r.xn }
                } else {
                    Work::Forward { dst: r.xd, src: r.xs, rem: r.xn }
                }
            } else if (r.xn as i64) < 0 {
                let rem = r.xn.wrapping_neg();
                Work::Forward { dst: r.xd.wrapping_add(r.xn), src: r.xs.wrapping_add(r.xn), rem }
            } else if is_set || forward_only {
                // Option A keeps a forward operation's size negative; a
                // positive one is the other option's format.
                return None;
            } else {
                Work::Backward {
                    dst_end: r.xd.wrapping_add(r.xn),
                    src_end: r.xs.wrapping_add(r.xn),
                    rem: r.xn,
                }
            }
        }
    };
    let data = MopsFill::Byte(r.xs as u8);
    let step = match work {
        Work::Forward { rem: 0, .. } | Work::Backward { rem: 0, .. } => return None,
        Work::Forward { dst, src, rem } => {
            let mut len = rem.min(to_page_end(dst, page));
            if !is_set {
                len = len.min(to_page_end(src, page));
            }
            let fill = if is_set { data } else { MopsFill::CopyFrom(src) };
            let (xd, xs, xn) = match (m.stage, option_b) {
                (MopsStage::Prologue, _) | (_, true) => {
                    (dst.wrapping_add(len), if is_set { r.xs } else { src.wrapping_add(len) }, rem - len)
                }
                // Option A: only the (negative) size moves.
                (_, false) => (r.xd, r.xs, r.xn.wrapping_add(len)),
            };
            MopsStep { dst, len, fill, backward: false, xd, xs, xn }
        }
        Work::Backward { dst_end, src_end, rem } => {
            let top_d = dst_end.wrapping_sub(1);
            let top_s = src_end.wrapping_sub(1);
            let len = rem.min(from_page_start(top_d, page)).min(from_page_start(top_s, page));
            let dst = dst_end.wrapping_sub(len);
            let src = src_end.wrapping_sub(len);
            let (xd, xs) = match (m.stage, option_b) {
                (MopsStage::Main | MopsStage::Epilogue, true) => (dst, src),
                // The prologue's input format and option A keep the starts.
                _ => (r.xd, r.xs),
            };
            MopsStep { dst, len, fill: MopsFill::CopyFrom(src), backward: true, xd, xs, xn: rem - len }
        }
    };
    Some(step)
}
