//! Instruction-word field extraction. All callers pass constant positions;
//! the helpers are total for any `lo < 32` and `width <= 32`.

/// `width` bits of `insn` starting at bit `lo`.
#[inline(always)]
pub(super) const fn field(insn: u32, lo: u32, width: u32) -> u32 {
    ((insn as u64 >> (lo & 31)) & ((1u64 << (width & 63)) - 1)) as u32
}

/// Bit `n` of `insn`.
#[inline(always)]
pub(super) const fn bit(insn: u32, n: u32) -> bool {
    (insn >> (n & 31)) & 1 != 0
}

/// A 5-bit register field at `lo`.
#[inline(always)]
pub(super) const fn reg(insn: u32, lo: u32) -> u8 {
    field(insn, lo, 5) as u8
}

/// Sign-extends the low `width` bits of `value` (1..=32).
#[inline(always)]
pub(super) const fn sext(value: u32, width: u32) -> i64 {
    let shift = 64 - (width & 63);
    ((value as u64) << (shift & 63)) as i64 >> (shift & 63)
}

/// Rt, bits `[4:0]`.
#[inline(always)]
pub(super) const fn rt(insn: u32) -> u8 {
    reg(insn, 0)
}

/// Rn, bits `[9:5]`.
#[inline(always)]
pub(super) const fn rn(insn: u32) -> u8 {
    reg(insn, 5)
}

/// Rt2, bits `[14:10]`.
#[inline(always)]
pub(super) const fn rt2(insn: u32) -> u8 {
    reg(insn, 10)
}

/// Rs / Rm, bits `[20:16]`.
#[inline(always)]
pub(super) const fn rs(insn: u32) -> u8 {
    reg(insn, 16)
}
