//! The rest of the encoding space that can write memory: the load/store
//! classes at bits `[29:24]` = 011V01 (RCPC, MOPS, GCS, MTE tags, LSE128,
//! RCW, LSUI atomics), SYS (DC ZVA, other DC, GCS), SVE and SME.

use super::bits::{bit, field, rn, rs, rt, sext};
use super::decode::gpr;
use super::decode_ldst::simd;
use super::types::{Addressing, Base, Kind, Offset, RegView, SimdRegs, Store, Unsupported};

/// Bits `[29:24]` = 011001 (V = 0) or 011101 (V = 1).
///
/// With bit 21 = 0 the class is chosen by bits `[11:10]`: 00 LDAPUR/STLUR,
/// 01 MOPS, 10 LDIAPP/STILP/LDAPR/STLR (writeback) or LDAPUR/STLUR
/// (SIMD&FP), 11 GCS load/store. With bit 21 = 1: MTE tag stores
/// (size = 11), otherwise LSE128, RCW and LSUI atomics.
#[inline]
pub(super) fn ldst_011x01(insn: u32) -> Result<Store, Unsupported> {
    let v = bit(insn, 26);
    let size = field(insn, 30, 2);
    let opc = field(insn, 22, 2);
    let op4 = field(insn, 10, 2);
    if bit(insn, 21) {
        return Err(if v {
            Unsupported::Unallocated
        } else if size == 3 {
            tags(insn)
        } else {
            atomics_128_rcw_lsui(insn)
        });
    }
    match (op4, v) {
        (0b00, false) => stlur(insn),
        // SETGO* (FEAT_MOPS_GO): size 00, opc 11, Rs = 31, op2<3:2> != 11.
        (0b00, true) => Err(if size == 0 && opc == 3 && rs(insn) == 31 && field(insn, 14, 2) != 3 {
            Unsupported::Mops
        } else {
            Unsupported::Unallocated
        }),
        (0b01, _) => Err(mops(insn)),
        (0b10, false) => rcpc3(insn),
        (0b10, true) => stlur_simd(insn),
        // GCSSTR, GCSSTTR: 11011001 000 11111 000x 11 Rn Rt.
        (_, false) => {
            Err(if insn & 0xFFFF_E000 == 0xD91F_0000 { Unsupported::Gcs } else { Unsupported::Unallocated })
        }
        (_, true) => Err(Unsupported::Unallocated),
    }
}

/// CPYF*, SET* (V = 0), CPY*, SETG* (V = 1): `00 011V01 op1 0 Rs op2 01 Rn
/// Rd`, op1 = 11 for SET* (whose op2<3:2> is P, M or E, never 11). The
/// destination (and the CPY* source) cannot be XZR. Overlapping registers
/// are CONSTRAINED UNPREDICTABLE, so still reported as MOPS.
#[inline]
fn mops(insn: u32) -> Unsupported {
    let set = field(insn, 22, 2) == 3;
    let (d, s) = (rt(insn), rs(insn));
    if field(insn, 30, 2) != 0 || d == 31 || (!set && s == 31) {
        return Unsupported::Unallocated;
    }
    if set && field(insn, 14, 2) == 3 {
        return Unsupported::Unallocated;
    }
    Unsupported::Mops
}

/// STLURB, STLURH, STLUR (W, X) (FEAT_LRCPC2): `size 011001 opc 0 imm9 00`.
#[inline]
fn stlur(insn: u32) -> Result<Store, Unsupported> {
    if field(insn, 22, 2) != 0 {
        return Err(Unsupported::NotAStore); // LDAPUR*, LDAPURS*
    }
    let imm = Offset::Imm(sext(field(insn, 12, 9), 9));
    let size = 1u8 << field(insn, 30, 2);
    let mut st = gpr(Kind::Release { lo_release: false }, size, rt(insn), rn(insn), imm, Addressing::Offset);
    st.release = true;
    Ok(st)
}

/// STLUR (SIMD&FP) (FEAT_LRCPC3): `size 011101 opc 0 imm9 10`; opc 00
/// stores B/H/S/D, opc 10 with size 00 stores Q.
#[inline]
fn stlur_simd(insn: u32) -> Result<Store, Unsupported> {
    let size = field(insn, 30, 2);
    let bytes = match field(insn, 22, 2) {
        0 => 1u8 << size,
        2 if size == 0 => 16,
        1 => return Err(Unsupported::NotAStore), // LDAPUR (SIMD&FP)
        3 if size == 0 => return Err(Unsupported::NotAStore),
        _ => return Err(Unsupported::Unallocated),
    };
    let imm = Offset::Imm(sext(field(insn, 12, 9), 9));
    let t = rt(insn);
    let mut st = gpr(Kind::Plain, bytes, t, rn(insn), imm, Addressing::Offset);
    st.release = true;
    simd(&mut st, SimdRegs::consecutive(t, 1));
    Ok(st)
}

/// Bits `[29:24]` = 011001, bit 21 = 0, op4 = 10 (FEAT_LRCPC3 and FEAT_LSCP).
///
/// * STILP / LDIAPP: `1 sz 011001 0 L 0 Rt2 000 o 10 Rn Rt`; `o = 0` is
///   pre-index by -(2 * datasize/8) (STILP) / post-index (LDIAPP).
/// * STLR / LDAPR writeback: `1 sz 011001 1 L 0 000000000 10 Rn Rt`; STLR
///   is pre-index by -(datasize/8).
/// * STLP / LDAP / LDAPP (FEAT_LSCP): `11 011001 0 L 0 Rt2 01x1 10`;
///   not verified against an Arm ARM, so reported as a gap.
#[inline]
fn rcpc3(insn: u32) -> Result<Store, Unsupported> {
    let size = field(insn, 30, 2);
    let l = bit(insn, 22);
    if size < 2 {
        return Err(Unsupported::Unallocated);
    }
    let bytes = 1u8 << size;
    let (t, n) = (rt(insn), rn(insn));
    if bit(insn, 23) {
        // LDAPR (post-index), STLR (pre-index).
        if field(insn, 12, 9) != 0 {
            return Err(Unsupported::Unallocated);
        }
        if l {
            return Err(Unsupported::NotAStore);
        }
        let off = Offset::Imm(-(bytes as i64));
        let mut st = gpr(Kind::Release { lo_release: false }, bytes, t, n, off, Addressing::PreIndex);
        st.release = true;
        return Ok(st);
    }
    match field(insn, 12, 4) {
        // STILP (pre-index, offset) / LDIAPP (post-index, offset).
        0b0000 | 0b0001 => {
            if l {
                return Err(Unsupported::NotAStore);
            }
            let (off, addressing) = if bit(insn, 12) {
                (Offset::Imm(0), Addressing::Offset)
            } else {
                (Offset::Imm(-2 * bytes as i64), Addressing::PreIndex)
            };
            let mut st = gpr(Kind::Release { lo_release: false }, bytes, t, n, off, addressing);
            st.count = 2;
            st.rt2 = Some(field(insn, 16, 5) as u8);
            st.release = true;
            Ok(st)
        }
        // STLP (FEAT_LSCP); LDAP, LDAPP are loads.
        0b0101 if size == 3 && !l => Err(Unsupported::Lscp),
        0b0101 | 0b0111 if size == 3 && l => Err(Unsupported::NotAStore),
        _ => Err(Unsupported::Unallocated),
    }
}

/// MTE tag stores, `11011001 opc 1 imm9 op4 Rn Rt`: opc 00 STZGM (op4 00) /
/// STG, 01 LDG (op4 00) / STZG, 10 STGM (op4 00) / ST2G, 11 LDGM (op4 00) /
/// STZ2G. The multi-granule forms need imm9 = 0.
#[inline]
fn tags(insn: u32) -> Unsupported {
    let opc = field(insn, 22, 2);
    if field(insn, 10, 2) != 0 {
        return Unsupported::MemoryTags; // STG, STZG, ST2G, STZ2G
    }
    match opc {
        1 => Unsupported::NotAStore, // LDG
        _ if field(insn, 12, 9) != 0 => Unsupported::Unallocated,
        3 => Unsupported::NotAStore,  // LDGM
        _ => Unsupported::MemoryTags, // STZGM, STGM
    }
}

/// Bits `[31:30]` != 11, `[29:24]` = 011001, bit 21 = 1: FEAT_LSE128 (SWPP,
/// LDCLRP, LDSETP), FEAT_THE (RCWCASP, RCWSWPP, RCWCLRP, RCWSETP, RCWCAS
/// and the RCWS* forms) and FEAT_LSUI (`LDT<op>`, SWPT). Fields: size
/// `[31:30]` (00 or 01), o3 `[15]`, opc `[14:12]`, op4 `[11:10]`.
#[inline]
fn atomics_128_rcw_lsui(insn: u32) -> Unsupported {
    let size = field(insn, 30, 2);
    let o3opc = field(insn, 12, 4);
    let (t, s) = (rt(insn), rs(insn));
    if size > 1 {
        return Unsupported::Unallocated;
    }
    match field(insn, 10, 2) {
        // 128-bit forms transfer Rt and Rt2 (bits [20:16]), neither XZR.
        0b00 if t == 31 || s == 31 => Unsupported::Unallocated,
        // LDCLRP (0001), LDSETP (0011), SWPP (1000): size 00 only.
        0b00 => match o3opc {
            0b0001 | 0b0011 | 0b1000 if size == 0 => Unsupported::Lse128,
            0b1001..=0b1011 => Unsupported::Rcw,
            _ => Unsupported::Unallocated,
        },
        // LDTADD (0000), LDTCLR (0001), LDTSET (0011), SWPT (1000).
        0b01 => match o3opc {
            0b0000 | 0b0001 | 0b0011 | 0b1000 => Unsupported::Lsui,
            _ => Unsupported::Unallocated,
        },
        // RCW(S)CAS (10), RCW(S)CASP (11, even Rs and Rt).
        0b10 if o3opc == 0 => Unsupported::Rcw,
        0b11 if o3opc == 0 && (t | s) & 1 == 0 => Unsupported::Rcw,
        _ => Unsupported::Unallocated,
    }
}

/// DC operations that are cache maintenance by VA or set/way: `(op1, CRm,
/// op2 bitmap)` for `SYS #op1, C7, Cm, #op2, Xt` (from the Arm ARM system
/// instruction tables, including the MTE tag and PoE/PoPA variants).
const DC_MAINTENANCE: [(u32, u32, u8); 12] = [
    (0, 6, 0b0111_1110),  // IVAC, ISW, IGVAC, IGSW, IGDVAC, IGDSW
    (0, 10, 0b0101_0100), // CSW, CGSW, CGDSW
    (0, 14, 0b0101_0100), // CISW, CIGSW, CIGDSW
    (0, 15, 0b0010_0010), // CIVAPS, CIGDVAPS
    (3, 10, 0b0010_1010), // CVAC, CGVAC, CGDVAC
    (3, 11, 0b1000_0011), // CVAOC, CVAU, CGDVAOC
    (3, 12, 0b0010_1010), // CVAP, CGVAP, CGDVAP
    (3, 13, 0b0010_1010), // CVADP, CGVADP, CGDVADP
    (3, 14, 0b0010_1010), // CIVAC, CIGVAC, CIGDVAC
    (3, 15, 0b1000_0001), // CIVAOC, CIGDVAOC
    (4, 14, 0b1000_0001), // CIPAE, CIGDPAE
    (6, 14, 0b0010_0010), // CIPAPA, CIGDPAPA
];

/// Branches, exception generation and system (op0 = 101x): only SYS and
/// SYSL with CRn = 7 can write memory.
///
/// `SYS #op1, C7, Cm, #op2, Xt` = `1101 0101 0000 1 op1 0111 CRm op2 Rt`.
#[inline]
pub(super) fn system(insn: u32) -> Result<Store, Unsupported> {
    // SYS (L = 0) and SYSL (L = 1): bits [31:22] = 1101010100, op0 = 01.
    if insn & 0xFFD8_0000 != 0xD508_0000 || field(insn, 12, 4) != 7 {
        return Err(Unsupported::NotAStore);
    }
    let op1 = field(insn, 16, 3);
    let crm = field(insn, 8, 4);
    let op2 = field(insn, 5, 3);
    let t = rt(insn);
    if bit(insn, 21) {
        // SYSL: GCSSS2 writes a cap token; GCSPOPM only reads.
        return Err(if (op1, crm, op2) == (3, 7, 3) { Unsupported::Gcs } else { Unsupported::NotAStore });
    }
    match (op1, crm, op2) {
        // DC ZVA, Xt.
        (3, 4, 1) => Ok(Store {
            kind: Kind::ZeroBlock,
            size: 0,
            count: 0,
            rt: t,
            rt2: None,
            view: RegView::X,
            base: Base::X(t),
            offset: Offset::Imm(0),
            addressing: Addressing::Offset,
            acquire: false,
            release: false,
            needs_fp: false,
            writes_tag: false,
        }),
        // DC GVA, DC GZVA, DC ZGBVA, DC GBVA.
        (3, 4, 3 | 4 | 5 | 7) => Err(Unsupported::MemoryTags),
        // GCSPUSHM, GCSSS1; GCSPUSHX (Rt = 31).
        (3, 7, 0 | 2) => Err(Unsupported::Gcs),
        (0, 7, 4) if t == 31 => Err(Unsupported::Gcs),
        _ => {
            let dc =
                DC_MAINTENANCE.iter().any(|&(o1, m, ops)| o1 == op1 && m == crm && (ops >> op2) & 1 != 0);
            Err(if dc { Unsupported::CacheMaintenance } else { Unsupported::NotAStore })
        }
    }
}

/// SVE (op0 = 0010): every allocated encoding with bits `[31:29]` = 111 is a
/// store (contiguous, non-temporal, multi-register, scatter, STR Zt/Pt).
#[inline]
pub(super) fn sve(insn: u32) -> Result<Store, Unsupported> {
    Err(if field(insn, 29, 3) == 0b111 { Unsupported::Sve } else { Unsupported::NotAStore })
}

/// Bits `[31:21]` of the SME store encodings: SME2 multi-vector contiguous
/// ST1*/STNT1* (`1010000x0x1`), ZA tile-slice ST1B/H/W/D (`11100000xx1`),
/// STR ZA / STR ZT0 (`11100001001`) and ST1Q (`11100001111`).
const SME_STORES: [u32; 10] = [0x501, 0x503, 0x509, 0x50B, 0x701, 0x703, 0x705, 0x707, 0x709, 0x70F];

/// SME (op0 = 0000 with bit 31 set).
#[inline]
pub(super) fn sme(insn: u32) -> Result<Store, Unsupported> {
    let key = field(insn, 21, 11);
    Err(if SME_STORES.contains(&key) { Unsupported::Sme } else { Unsupported::NotAStore })
}
