//! The "Loads and Stores" group (op0 = x1x0): dispatch on bits `[29:28]`,
//! single-register stores and register pairs.

use super::bits::{bit, field, rn, rs, rt, rt2, sext};
use super::decode::{gpr, log2};
use super::types::{Addressing, Extend, Kind, Offset, RegView, SimdRegs, Store, Unsupported};
use super::{atomic, decode_other, decode_simd};

/// Decodes an instruction of the loads-and-stores group.
#[inline]
pub(super) fn decode(insn: u32) -> Result<Store, Unsupported> {
    match field(insn, 28, 2) {
        // 001V 0x: exclusives/ordered/CAS (V = 0), SIMD structures (V = 1).
        0b00 => {
            if bit(insn, 26) {
                decode_simd::structures(insn)
            } else if bit(insn, 24) {
                atomic::lsui_exclusive(insn)
            } else {
                atomic::exclusive(insn)
            }
        }
        // 011V 0x: LDR (literal) and PRFM (literal) when bit 24 = 0;
        // RCPC, MOPS, GCS, MTE tags, LSE128, RCW and LSUI atomics otherwise.
        0b01 => {
            if bit(insn, 24) {
                decode_other::ldst_011x01(insn)
            } else {
                Err(Unsupported::NotAStore)
            }
        }
        0b10 => pair(insn),
        _ => single(insn),
    }
}

/// Bytes stored by a single-register load/store class instruction with
/// `size` `[31:30]`, `V` `[26]` and `opc` `[23:22]`, or why it is not a store.
#[inline]
fn store_size(insn: u32) -> Result<u8, Unsupported> {
    let size = field(insn, 30, 2);
    let opc = field(insn, 22, 2);
    match (bit(insn, 26), opc) {
        (false, 0) | (true, 0) => Ok(1 << size),
        // STR Qt: size = 00, opc = 10.
        (true, 2) if size == 0 => Ok(16),
        (true, 2) => Err(Unsupported::Unallocated),
        // LDR*, LDRS*, PRFM, PRFUM.
        _ => Err(Unsupported::NotAStore),
    }
}

/// Bits `[29:27]` = 111: single register, immediate or register offset, and
/// the atomic memory operations.
#[inline]
fn single(insn: u32) -> Result<Store, Unsupported> {
    let v = bit(insn, 26);
    let unsigned_imm = bit(insn, 24);
    if !unsigned_imm && bit(insn, 21) {
        match field(insn, 10, 2) {
            0b00 => return atomic::amo(insn),
            0b10 => {} // register offset
            // LDRAA/LDRAB (V = 0); nothing with V = 1.
            _ => return Err(if v { Unsupported::Unallocated } else { Unsupported::NotAStore }),
        }
    }
    let size = store_size(insn)?;
    let mut kind = Kind::Plain;
    let (offset, addressing) = if unsigned_imm {
        // STR (immediate, unsigned offset): imm12 scaled by the size.
        let imm = (field(insn, 10, 12) as i64) << log2(size);
        (Offset::Imm(imm), Addressing::Offset)
    } else if !bit(insn, 21) {
        let imm = Offset::Imm(sext(field(insn, 12, 9), 9));
        match field(insn, 10, 2) {
            0b00 => (imm, Addressing::Offset),    // STUR
            0b01 => (imm, Addressing::PostIndex), // STR post-index
            0b11 => (imm, Addressing::PreIndex),  // STR pre-index
            _ => {
                // STTR: general-purpose registers only.
                if v {
                    return Err(Unsupported::Unallocated);
                }
                kind = Kind::Unprivileged;
                (imm, Addressing::Offset)
            }
        }
    } else {
        // STR (register): option<1> = 0 is UNDEFINED.
        let extend = match field(insn, 13, 3) {
            0b010 => Extend::Uxtw,
            0b011 => Extend::Lsl,
            0b110 => Extend::Sxtw,
            0b111 => Extend::Sxtx,
            _ => return Err(Unsupported::Unallocated),
        };
        let shift = if bit(insn, 12) { log2(size) } else { 0 };
        let offset = Offset::Reg { rm: rs(insn), extend, shift };
        (offset, Addressing::Offset)
    };
    let t = rt(insn);
    let mut st = gpr(kind, size, t, rn(insn), offset, addressing);
    if v {
        simd(&mut st, SimdRegs::consecutive(t, 1));
    }
    Ok(st)
}

/// Marks `st` as a SIMD&FP store of `regs`.
#[inline]
pub(super) fn simd(st: &mut Store, regs: SimdRegs) {
    st.kind = Kind::Simd { regs };
    st.view = RegView::V;
    st.needs_fp = true;
}

/// Bits `[29:27]` = 101: STP, STNP, STGP (and SIMD&FP STP/STNP).
///
/// Fields: opc `[31:30]`, V `[26]`, op2 `[24:23]` (00 no-allocate offset,
/// 01 post-index, 10 offset, 11 pre-index), L `[22]`, imm7 `[21:15]`.
#[inline]
fn pair(insn: u32) -> Result<Store, Unsupported> {
    if bit(insn, 22) {
        return Err(Unsupported::NotAStore); // LDP, LDNP, LDPSW, LDTP, LDTNP
    }
    let op2 = field(insn, 23, 2);
    let v = bit(insn, 26);
    let (size, tag) = match (v, field(insn, 30, 2)) {
        (false, 0) => (4, false),
        (false, 2) => (8, false),
        // STGP (post, offset, pre); no no-allocate form.
        (false, 1) if op2 != 0 => (8, true),
        (false, 1) => return Err(Unsupported::Unallocated),
        // STTP, STTNP (FEAT_LSUI), general-purpose and SIMD&FP.
        (_, 3) => return Err(Unsupported::Lsui),
        (true, 0) => (4, false),
        (true, 1) => (8, false),
        // (true, 2): Q registers (field() is 2 bits, nothing else remains).
        (_, _) => (16, false),
    };
    let addressing = match op2 {
        0b01 => Addressing::PostIndex,
        0b11 => Addressing::PreIndex,
        _ => Addressing::Offset,
    };
    // STGP scales by the 16-byte tag granule.
    let scale = if tag { 4 } else { log2(size) };
    let imm = sext(field(insn, 15, 7), 7) << scale;
    let (t, t2) = (rt(insn), rt2(insn));
    let mut st = gpr(Kind::Plain, size, t, rn(insn), Offset::Imm(imm), addressing);
    st.count = 2;
    st.rt2 = Some(t2);
    st.writes_tag = tag;
    if tag {
        st.view = RegView::X;
    }
    if v {
        simd(&mut st, SimdRegs::pair(t, t2));
    }
    Ok(st)
}
