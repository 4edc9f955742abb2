//! Exclusives, ordered stores, compare-and-swap and the FEAT_LSE atomic
//! memory operations: decoding, and the pure arithmetic of `LD<op>`.

use super::bits::{bit, field, rn, rs, rt, rt2};
use super::decode::gpr;
use super::types::{Addressing, Kind, Offset, Store, Unsupported};

/// The `LD<op>`/`ST<op>` operation (the `opc` field, bits `[14:12]`, with
/// `o3 = 0`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AtomicOp {
    /// `old + operand`.
    Add,
    /// `old & !operand`.
    Clr,
    /// `old ^ operand`.
    Eor,
    /// `old | operand`.
    Set,
    /// Signed maximum at the access size.
    Smax,
    /// Signed minimum at the access size.
    Smin,
    /// Unsigned maximum at the access size.
    Umax,
    /// Unsigned minimum at the access size.
    Umin,
}

impl AtomicOp {
    /// From `opc` (bits `[14:12]`).
    #[inline]
    pub const fn from_opc(opc: u32) -> Self {
        match opc & 7 {
            0 => AtomicOp::Add,
            1 => AtomicOp::Clr,
            2 => AtomicOp::Eor,
            3 => AtomicOp::Set,
            4 => AtomicOp::Smax,
            5 => AtomicOp::Smin,
            6 => AtomicOp::Umax,
            _ => AtomicOp::Umin,
        }
    }
}

/// All-ones over an access of `len` bytes (1, 2, 4; anything else is
/// treated as 8).
#[inline]
const fn mask(len: usize) -> u64 {
    match len {
        1 => 0xFF,
        2 => 0xFFFF,
        4 => 0xFFFF_FFFF,
        _ => u64::MAX,
    }
}

/// The value a register receives from a `len`-byte access that returned
/// `old`: zero-extended (CAS, SWP and `LD<op>` write `ZeroExtend(data)` to
/// Ws/Wt/Xs/Xt; writing a W register clears bits `[63:32]`). `len` other than
/// 1, 2 or 4 means 8.
#[inline]
pub const fn result_value(old: u64, len: usize) -> u64 {
    old & mask(len)
}

/// Sign-extends the low `len` bytes of `value` (1, 2, 4; otherwise the
/// value is taken as 64-bit).
#[inline]
pub const fn sign_extend(value: u64, len: usize) -> i64 {
    match len {
        1 => value as u8 as i8 as i64,
        2 => value as u16 as i16 as i64,
        4 => value as u32 as i32 as i64,
        _ => value as i64,
    }
}

/// The new memory value of `LD<op>`/`ST<op>`: `op(old, operand)` computed at the
/// access size `len` (1, 2, 4 or 8 bytes; anything else is treated as 8).
/// Both inputs are truncated to the access size first, SMAX/SMIN compare
/// them as signed `len`-byte integers, UMAX/UMIN as unsigned, and the result
/// is zero-extended.
#[inline]
pub const fn ldop_apply(op: AtomicOp, old: u64, operand: u64, len: usize) -> u64 {
    let m = mask(len);
    let a = old & m;
    let b = operand & m;
    let r = match op {
        AtomicOp::Add => a.wrapping_add(b),
        AtomicOp::Clr => a & !b,
        AtomicOp::Eor => a ^ b,
        AtomicOp::Set => a | b,
        AtomicOp::Smax => {
            if sign_extend(a, len) >= sign_extend(b, len) {
                a
            } else {
                b
            }
        }
        AtomicOp::Smin => {
            if sign_extend(a, len) <= sign_extend(b, len) {
                a
            } else {
                b
            }
        }
        AtomicOp::Umax => {
            if a >= b {
                a
            } else {
                b
            }
        }
        AtomicOp::Umin => {
            if a <= b {
                a
            } else {
                b
            }
        }
    };
    r & m
}

/// A base-register-only access (`[Xn|SP]`).
const NO_OFFSET: Offset = Offset::Imm(0);

/// Bits `[29:24]` = 001000: load/store exclusive register and pair, load/store
/// ordered, compare and swap (pair).
///
/// Fields: size `[31:30]`, o2 `[23]`, L `[22]`, o1 `[21]`, Rs `[20:16]`, o0 `[15]`,
/// Rt2 `[14:10]`. For CAS/CASP, L is acquire and o0 release; for the others
/// L = 1 is a load and o0 is release (STLXR, STLR) / not-LORelease.
#[inline]
pub(super) fn exclusive(insn: u32) -> Result<Store, Unsupported> {
    let size = field(insn, 30, 2);
    let o2 = bit(insn, 23);
    let l = bit(insn, 22);
    let o1 = bit(insn, 21);
    let o0 = bit(insn, 15);
    let (s, t, n) = (rs(insn), rt(insn), rn(insn));
    let bytes = 1u8 << size;
    // CAS and CASP have a fixed Rt2 = 11111 (not should-be-one).
    if o1 && (o2 || size < 2) && rt2(insn) != 31 {
        return Err(Unsupported::Unallocated);
    }
    match (o2, o1) {
        // STXR, STLXR (Rt2 should-be-one, ignored).
        (false, false) => {
            if l {
                return Err(Unsupported::NotAStore); // LDXR, LDAXR
            }
            let mut st = gpr(Kind::Exclusive { status_reg: s }, bytes, t, n, NO_OFFSET, Addressing::Offset);
            st.release = o0;
            Ok(st)
        }
        // STXP, STLXP: size<1> = 1, sz = size<0>.
        (false, true) if size >= 2 => {
            if l {
                return Err(Unsupported::NotAStore); // LDXP, LDAXP
            }
            let each = 4u8 << (size & 1);
            let mut st = gpr(Kind::Exclusive { status_reg: s }, each, t, n, NO_OFFSET, Addressing::Offset);
            st.count = 2;
            st.rt2 = Some(rt2(insn));
            st.release = o0;
            Ok(st)
        }
        // CASP, CASPA, CASPL, CASPAL: size<1> = 0, sz = size<0>; Rs and Rt
        // must be even (UNDEFINED otherwise in current Arm ARMs).
        (false, true) => {
            if s & 1 != 0 || t & 1 != 0 {
                return Err(Unsupported::Unallocated);
            }
            let each = 4u8 << (size & 1);
            let mut st = gpr(Kind::Cas { compare_reg: s }, each, t, n, NO_OFFSET, Addressing::Offset);
            st.count = 2;
            st.rt2 = Some(t + 1);
            st.acquire = l;
            st.release = o0;
            Ok(st)
        }
        // STLR (o0 = 1), STLLR (o0 = 0); Rs and Rt2 should-be-one.
        (true, false) => {
            if l {
                return Err(Unsupported::NotAStore); // LDAR, LDLAR
            }
            let mut st = gpr(Kind::Release { lo_release: !o0 }, bytes, t, n, NO_OFFSET, Addressing::Offset);
            st.release = true;
            Ok(st)
        }
        // CAS, CASA, CASL, CASAL (B, H, W, X).
        (true, true) => {
            let mut st = gpr(Kind::Cas { compare_reg: s }, bytes, t, n, NO_OFFSET, Addressing::Offset);
            st.acquire = l;
            st.release = o0;
            Ok(st)
        }
    }
}

/// Bits `[29:24]` = 001001: FEAT_LSUI unprivileged exclusives and
/// compare-and-swap (STTXR, STLTXR, LDTXR, CAST, CASPT and their
/// acquire/release forms).
#[inline]
pub(super) fn lsui_exclusive(insn: u32) -> Result<Store, Unsupported> {
    let size = field(insn, 30, 2);
    let o2 = bit(insn, 23);
    let l = bit(insn, 22);
    if bit(insn, 21) {
        return Err(Unsupported::Unallocated);
    }
    match (o2, l) {
        // CAST* (size 11) and CASPT* (size 01, even registers).
        (true, _) if size == 3 || (size == 1 && (rs(insn) | rt(insn)) & 1 == 0) => Err(Unsupported::Lsui),
        (true, _) => Err(Unsupported::Unallocated),
        // LDTXR, LDATXR.
        (false, true) => Err(Unsupported::NotAStore),
        // STTXR, STLTXR (W, X).
        (false, false) if size >= 2 => Err(Unsupported::Lsui),
        (false, false) => Err(Unsupported::Unallocated),
    }
}

/// Atomic memory operations: bits `[29:24]` = 111V00, bit 21 = 1, bits
/// `[11:10]` = 00. Fields: size `[31:30]`, A `[23]`, R `[22]`, Rs `[20:16]`,
/// o3 `[15]`, opc `[14:12]`.
#[inline]
pub(super) fn amo(insn: u32) -> Result<Store, Unsupported> {
    let size = field(insn, 30, 2);
    let a = bit(insn, 23);
    let r = bit(insn, 22);
    let o3 = bit(insn, 15);
    let opc = field(insn, 12, 3);
    let (s, t, n) = (rs(insn), rt(insn), rn(insn));
    if bit(insn, 26) {
        // FEAT_LSFE: LDFADD/LDFMAX/LDFMIN/LDFMAXNM/LDFMINNM (and BF16),
        // STF<op> aliases have o3 = 1, A = 0, Rt = 31.
        let valid_op = matches!(opc, 0 | 4..=7);
        return Err(if valid_op && (!o3 || (!a && t == 31)) {
            Unsupported::FpAtomic
        } else {
            Unsupported::Unallocated
        });
    }
    let kind = if !o3 {
        // LDADD..LDUMIN; ST<op> when Rt = 31.
        Kind::LdOp { op: AtomicOp::from_opc(opc), result_reg: t }
    } else {
        match opc {
            0 => Kind::Swp { result_reg: t },
            // RCWCLR, RCWSWP, RCWSET (size 00) and RCWS* (size 01);
            // ST64B, ST64BV0, ST64BV (size 11, A = R = 0).
            1..=3 => {
                // ST64B* transfer X(t)..X(t+7): Rt even and below 24;
                // ST64B has Rs = 11111.
                let ls64 = !a && !r && t & 1 == 0 && t < 24 && (opc != 1 || s == 31);
                return Err(match size {
                    0 | 1 => Unsupported::Rcw,
                    3 if ls64 => Unsupported::Ls64,
                    _ => Unsupported::Unallocated,
                });
            }
            // LDAPR*, LD64B.
            4 if a && !r => return Err(Unsupported::NotAStore),
            5 if size == 3 && !a && !r => return Err(Unsupported::NotAStore),
            _ => return Err(Unsupported::Unallocated),
        }
    };
    let mut st = gpr(kind, 1u8 << size, s, n, NO_OFFSET, Addressing::Offset);
    st.acquire = a;
    st.release = r;
    Ok(st)
}
