//! Advanced SIMD structure stores: ST1..ST4 (multiple and single
//! structures, with and without post-index) and STL1 (FEAT_LRCPC3).
//!
//! Layout: `0 Q 0011 0 S P L R Rm opcode[15:12] size[11:10] Rn Rt` where
//! bit 24 (S) selects single structure, bit 23 (P) post-index and bit 22
//! (L) load. Post-index by `Rm = 31` means "by the number of bytes
//! transferred"; any other Rm is a register post-index.

use super::bits::{bit, field, rn, rs, rt};
use super::decode::gpr;
use super::decode_ldst::simd;
use super::types::{Addressing, Extend, Kind, Offset, SimdRegs, Store, Unsupported};

/// Bits `[29:24]` = 00110x with bit 26 (V) set.
#[inline]
pub(super) fn structures(insn: u32) -> Result<Store, Unsupported> {
    if bit(insn, 31) {
        return Err(Unsupported::Unallocated);
    }
    if bit(insn, 22) {
        return Err(Unsupported::NotAStore); // LD1..LD4, LD1R..LD4R, LDAP1
    }
    let q = bit(insn, 30);
    let post = bit(insn, 23);
    let rm = rs(insn);
    let t = rt(insn);
    let size = field(insn, 10, 2);

    let (elem, count) = if !bit(insn, 24) {
        // Multiple structures: bit 21 is 0; without post-index Rm is 0.
        if bit(insn, 21) || (!post && rm != 0) {
            return Err(Unsupported::Unallocated);
        }
        let (regs, selem) = match field(insn, 12, 4) {
            0b0000 => (4, 4), // ST4
            0b0010 => (4, 1), // ST1, four registers
            0b0100 => (3, 3), // ST3
            0b0110 => (3, 1), // ST1, three registers
            0b0111 => (1, 1), // ST1, one register
            0b1000 => (2, 2), // ST2
            0b1010 => (2, 1), // ST1, two registers
            _ => return Err(Unsupported::Unallocated),
        };
        // size:Q = 110 (one-element 64-bit vectors) only exists for ST1.
        if size == 3 && !q && selem != 1 {
            return Err(Unsupported::Unallocated);
        }
        (if q { 16 } else { 8 }, regs)
    } else {
        let r = bit(insn, 21);
        let opcode = field(insn, 13, 3);
        let s = bit(insn, 12);
        if !post && rm != 0 {
            // STL1 {Vt.D}[index], [Xn|SP]: 0 Q 0011010 0 0 00001 100 0 01.
            if !r && rm == 1 && field(insn, 10, 6) == 0b10_0001 {
                let mut st = gpr(Kind::Plain, 8, t, rn(insn), Offset::Imm(0), Addressing::Offset);
                st.release = true;
                simd(&mut st, SimdRegs::consecutive(t, 1));
                return Ok(st);
            }
            return Err(Unsupported::Unallocated);
        }
        // selem = opcode<0>:R + 1; scale = opcode<2:1>.
        let selem = (((opcode & 1) << 1) | r as u32) + 1;
        let elem = match opcode >> 1 {
            0 => 1,
            1 if size & 1 == 0 => 2,
            2 if size == 0 => 4,
            2 if size == 1 && !s => 8,
            // Replicating forms are loads only; the rest is reserved.
            _ => return Err(Unsupported::Unallocated),
        };
        (elem, selem as u8)
    };

    let total = elem as i64 * count as i64;
    let (offset, addressing) = if !post {
        (Offset::Imm(0), Addressing::Offset)
    } else if rm == 31 {
        (Offset::Imm(total), Addressing::PostIndex)
    } else {
        let by_reg = Offset::Reg { rm, extend: Extend::Lsl, shift: 0 };
        (by_reg, Addressing::PostIndex)
    };
    let mut st = gpr(Kind::Plain, elem, t, rn(insn), offset, addressing);
    st.count = count;
    simd(&mut st, SimdRegs::consecutive(t, count));
    Ok(st)
}
