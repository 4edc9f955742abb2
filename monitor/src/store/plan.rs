//! From a decoded [`Store`] and the trapped registers to what the
//! hypervisor must do: [`Plan`].

use super::atomic::{result_value, AtomicOp};
use super::types::{Addressing, Base, Extend, Kind, Offset, Store};
use super::Regs;

/// Size of [`Plan::Write::data`]: the largest store porwatch emulates is
/// 16 bytes (STP/STGP/CASP of X registers); the array leaves room for 32.
pub const MAX_WRITE_BYTES: usize = 32;

/// What the hypervisor must do for a trapped store.
///
/// Addresses are guest virtual addresses as the instruction computed them
/// (FAR_EL2 holds one of the addresses in `addr .. addr + len`, see
/// [`Plan::contains`]); data and values are little-endian.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Plan {
    /// Write `data[..len]` at `addr` (plain, release, unprivileged stores
    /// and pairs), then apply `writeback` (register number as in Rn: 31 is
    /// SP). `tag` (STGP only): also set the Allocation Tag of the 16-byte
    /// granule at `addr` to this value (bits `[59:56]` of the address).
    ///
    /// `unit` is the single-copy atomicity the instruction guarantees: each
    /// naturally aligned `unit`-byte part of the write must be done by one
    /// access (an 8-byte descriptor must never be written byte by byte: the
    /// table walker may read it concurrently). It is the element size, or
    /// 16 for STILP of X registers; wider aligned accesses are also correct.
    Write {
        addr: u64,
        len: usize,
        unit: usize,
        data: [u8; MAX_WRITE_BYTES],
        writeback: Option<(u8, u64)>,
        tag: Option<u8>,
    },
    /// STXR/STLXR/STXP/STLXP: compare-and-swap the value currently in memory
    /// with `data[..len]` (see the module documentation) as one single-copy
    /// atomic `len`-byte access; `status_reg` (31 = discard) receives 0 on
    /// success, 1 on failure. No writeback.
    Exclusive { addr: u64, len: usize, data: [u8; MAX_WRITE_BYTES], status_reg: u8 },
    /// CAS/CASP: atomically, if the `len` bytes at `addr` equal `expected`,
    /// write `new`. `len` is 1, 2, 4, 8, or 8/16 for CASP of W/X registers
    /// (low register at the lower address). The old value goes to
    /// `result_reg` (and `result_reg2` = the next register for CASP).
    Cas { addr: u64, len: usize, expected: u128, new: u128, result_reg: u8, result_reg2: Option<u8> },
    /// SWP: atomically write `new`, the old value goes to `result_reg`.
    Swp { addr: u64, len: usize, new: u64, result_reg: u8 },
    /// `LD<op>`/`ST<op>`: atomically `mem = ldop_apply(op, mem, operand, len)`;
    /// the old value goes to `result_reg` (31 = discard, `ST<op>`).
    LdOp { addr: u64, len: usize, op: AtomicOp, operand: u64, result_reg: u8 },
    /// DC ZVA: zero `len` bytes at `addr` (aligned down to the block).
    ZeroBlock { addr: u64, len: usize },
    /// SIMD&FP store: single-step it with the page writable and compare the
    /// `len` bytes at `addr` before and after.
    StepAndDiff { addr: u64, len: usize },
}

/// A general-purpose register destination.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dest {
    /// X0..X30.
    X(u8),
    /// The guest's current SP (base writeback only).
    Sp,
}

/// One register update after the memory access.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RegWrite {
    pub dest: Dest,
    pub value: u64,
}

/// Up to two register updates, in the order to apply them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RegWrites {
    items: [RegWrite; 2],
    len: u8,
}

impl RegWrites {
    const NONE: RegWrites = RegWrites { items: [RegWrite { dest: Dest::Sp, value: 0 }; 2], len: 0 };

    /// Appends a write to GPR `n`, dropping writes to XZR (31).
    #[inline]
    fn push_x(&mut self, n: u8, value: u64) {
        if n < 31 {
            self.push(Dest::X(n), value);
        }
    }

    #[inline]
    fn push(&mut self, dest: Dest, value: u64) {
        if let Some(slot) = self.items.get_mut(self.len as usize) {
            *slot = RegWrite { dest, value };
            self.len += 1;
        }
    }

    /// The writes.
    #[inline]
    pub fn as_slice(&self) -> &[RegWrite] {
        let n = (self.len as usize).min(self.items.len());
        &self.items[..n]
    }

    #[inline]
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<'a> IntoIterator for &'a RegWrites {
    type Item = &'a RegWrite;
    type IntoIter = core::slice::Iter<'a, RegWrite>;
    #[inline]
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl Plan {
    /// The (lowest) address accessed.
    #[inline]
    pub const fn addr(&self) -> u64 {
        match *self {
            Plan::Write { addr, .. }
            | Plan::Exclusive { addr, .. }
            | Plan::Cas { addr, .. }
            | Plan::Swp { addr, .. }
            | Plan::LdOp { addr, .. }
            | Plan::ZeroBlock { addr, .. }
            | Plan::StepAndDiff { addr, .. } => addr,
        }
    }

    /// Bytes accessed.
    #[inline]
    pub const fn len(&self) -> usize {
        match *self {
            Plan::Write { len, .. }
            | Plan::Exclusive { len, .. }
            | Plan::Cas { len, .. }
            | Plan::Swp { len, .. }
            | Plan::LdOp { len, .. }
            | Plan::ZeroBlock { len, .. }
            | Plan::StepAndDiff { len, .. } => len,
        }
    }

    /// True when nothing is accessed (never for a decoded store).
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `va` lies in `addr .. addr + len` (wrapping at 2^64): the
    /// cross-check against FAR_EL2, which reports the faulting part of the
    /// access (for a pair or a page-crossing store not necessarily `addr`).
    /// The caller masks tag bits first when TBI applies.
    #[inline]
    pub const fn contains(&self, va: u64) -> bool {
        (va.wrapping_sub(self.addr()) as u128) < self.len() as u128
    }

    /// The register updates to apply after the memory access.
    ///
    /// `old` is the value the access read (for CAS/CASP, SWP and `LD<op>`;
    /// little-endian, low register's half in the low bits for CASP);
    /// `stored` is whether an exclusive store was performed. Writes to XZR
    /// are dropped. [`Plan::Write`] gives its writeback; ZeroBlock and
    /// StepAndDiff give none (the single step updates registers itself).
    #[inline]
    pub fn register_writes(&self, old: u128, stored: bool) -> RegWrites {
        let mut w = RegWrites::NONE;
        match *self {
            Plan::Write { writeback, .. } => {
                if let Some((n, value)) = writeback {
                    let dest = if n == 31 { Dest::Sp } else { Dest::X(n) };
                    w.push(dest, value);
                }
            }
            Plan::Exclusive { status_reg, .. } => w.push_x(status_reg, u64::from(!stored)),
            Plan::Cas { len, result_reg, result_reg2, .. } => match result_reg2 {
                Some(r2) => {
                    let half = len / 2;
                    let lo = result_value(old as u64, half);
                    let hi = result_value((old >> ((half as u32).wrapping_mul(8) & 127)) as u64, half);
                    w.push_x(result_reg, lo);
                    w.push_x(r2, hi);
                }
                None => w.push_x(result_reg, result_value(old as u64, len)),
            },
            Plan::Swp { len, result_reg, .. } | Plan::LdOp { len, result_reg, .. } => {
                w.push_x(result_reg, result_value(old as u64, len))
            }
            Plan::ZeroBlock { .. } | Plan::StepAndDiff { .. } => {}
        }
        w
    }
}

/// GPR `n` with 31 read as XZR.
#[inline]
fn xr(regs: &impl Regs, n: u8) -> u64 {
    if n < 31 {
        regs.x(n)
    } else {
        0
    }
}

#[inline]
fn base_value(regs: &impl Regs, base: Base) -> u64 {
    match base {
        Base::Sp => regs.sp(),
        Base::X(n) => xr(regs, n),
    }
}

/// The offset as a 64-bit two's complement value (ExtendReg + LSL).
#[inline]
fn offset_value(regs: &impl Regs, offset: Offset) -> u64 {
    match offset {
        Offset::Imm(imm) => imm as u64,
        Offset::Reg { rm, extend, shift } => {
            let m = xr(regs, rm);
            let v = match extend {
                Extend::Uxtw => m as u32 as u64,
                Extend::Sxtw => m as u32 as i32 as i64 as u64,
                Extend::Lsl | Extend::Sxtx => m,
            };
            v.wrapping_shl(u32::from(shift))
        }
    }
}

/// The updated base for pre-/post-index: base + offset (wrapping).
#[inline]
fn indexed(s: &Store, regs: &impl Regs) -> u64 {
    base_value(regs, s.base).wrapping_add(offset_value(regs, s.offset))
}

/// The address the store accesses first: `base + offset` for offset and
/// pre-index addressing, `base` for post-index (wrapping modulo 2^64). For
/// DC ZVA this is Xt itself, before alignment to the block.
#[inline]
pub fn effective_address(s: &Store, regs: &impl Regs) -> u64 {
    match s.addressing {
        Addressing::PostIndex => base_value(regs, s.base),
        Addressing::Offset | Addressing::PreIndex => indexed(s, regs),
    }
}

/// The DC ZVA block size in bytes for a DCZID_EL0 value: `4 << BS`.
#[inline]
pub const fn dczid_block_bytes(dczid: u64) -> u64 {
    4 << (dczid & 0xF)
}

/// An element size for GPR data: the encoded size rounded down to 1, 2, 4
/// or 8 (decoded stores already have one of these).
#[inline]
const fn elem(size: u8) -> usize {
    match size {
        0..=1 => 1,
        2..=3 => 2,
        4..=7 => 4,
        _ => 8,
    }
}

/// All-ones over `e` bytes (1, 2, 4, 8).
#[inline]
const fn mask(e: usize) -> u64 {
    result_value(u64::MAX, e)
}

/// Copies the low `e` bytes of `value` (little-endian) to `data[at..]`.
#[inline]
fn put(data: &mut [u8; MAX_WRITE_BYTES], at: usize, value: u64, e: usize) {
    for (d, b) in data.iter_mut().skip(at).zip(value.to_le_bytes().iter().take(e)) {
        *d = *b;
    }
}

/// The GPR data of a plain or exclusive store: `rt`, then `rt2` for pairs.
#[inline]
fn gpr_data(s: &Store, regs: &impl Regs) -> ([u8; MAX_WRITE_BYTES], usize) {
    let e = elem(s.size);
    let mut data = [0u8; MAX_WRITE_BYTES];
    put(&mut data, 0, xr(regs, s.rt), e);
    if s.count >= 2 {
        put(&mut data, e, xr(regs, s.rt2.unwrap_or(31)), e);
        (data, 2 * e)
    } else {
        (data, e)
    }
}

/// The next register of a CASP pair (XZR after X30).
#[inline]
const fn next(n: u8) -> u8 {
    if n < 31 {
        n + 1
    } else {
        31
    }
}

/// Plans the emulation of `s` with the trapped registers `regs`.
///
/// Total for any `Store` (values not produced by [`super::decode`] are
/// normalised: GPR element sizes are rounded down to 1, 2, 4 or 8 and at
/// most two elements are written).
#[inline]
pub fn plan(s: &Store, regs: &impl Regs) -> Plan {
    let addr = effective_address(s, regs);
    if s.needs_fp {
        return Plan::StepAndDiff { addr, len: s.len() };
    }
    match s.kind {
        Kind::Simd { .. } => Plan::StepAndDiff { addr, len: s.len() },
        Kind::ZeroBlock => {
            let block = regs.zva_block_bytes().clamp(4, 2048);
            let block = 1u64 << (63 - block.leading_zeros());
            Plan::ZeroBlock { addr: addr & !(block - 1), len: block as usize }
        }
        Kind::Plain | Kind::Release { .. } | Kind::Unprivileged => {
            let (data, len) = gpr_data(s, regs);
            // STILP is one single-copy atomic access of both registers.
            let unit = if matches!(s.kind, Kind::Release { .. }) { len } else { elem(s.size) };
            let writeback = match s.base {
                Base::X(n) if n >= 31 => None,
                base if s.addressing.writes_back() => Some((base.number(), indexed(s, regs))),
                _ => None,
            };
            let tag = if s.writes_tag { Some(((addr >> 56) & 0xF) as u8) } else { None };
            Plan::Write { addr, len, unit, data, writeback, tag }
        }
        Kind::Exclusive { status_reg } => {
            let (data, len) = gpr_data(s, regs);
            Plan::Exclusive { addr, len, data, status_reg }
        }
        Kind::Cas { compare_reg } => {
            let e = elem(s.size);
            let m = mask(e);
            if s.count >= 2 {
                let shift = (e as u32 * 8) & 127;
                let pair = |a: u8, b: u8| (xr(regs, a) & m) as u128 | ((xr(regs, b) & m) as u128) << shift;
                let rt2 = s.rt2.unwrap_or(next(s.rt));
                Plan::Cas {
                    addr,
                    len: 2 * e,
                    expected: pair(compare_reg, next(compare_reg)),
                    new: pair(s.rt, rt2),
                    result_reg: compare_reg,
                    result_reg2: Some(next(compare_reg)),
                }
            } else {
                Plan::Cas {
                    addr,
                    len: e,
                    expected: (xr(regs, compare_reg) & m) as u128,
                    new: (xr(regs, s.rt) & m) as u128,
                    result_reg: compare_reg,
                    result_reg2: None,
                }
            }
        }
        Kind::Swp { result_reg } => {
            let e = elem(s.size);
            Plan::Swp { addr, len: e, new: xr(regs, s.rt) & mask(e), result_reg }
        }
        Kind::LdOp { op, result_reg } => {
            let e = elem(s.size);
            Plan::LdOp { addr, len: e, op, operand: xr(regs, s.rt) & mask(e), result_reg }
        }
    }
}
