//! Properties: decode and plan never panic; encoder round trips; address
//! computation against an independent reference model.

use super::*;
use proptest::prelude::*;
use std::vec;

fn regs_from(x: [u64; 31], sp: u64, zva: u64) -> TestRegs {
    TestRegs { x, sp, zva }
}

/// Decodes `insn` and, for stores, plans it and checks the invariants that
/// hold for every decoded store.
fn exercise(insn: u32, r: &TestRegs) -> bool {
    let Ok(s) = decode(insn) else {
        return false;
    };
    assert!(!canon(&s).contains("<bad>"), "{insn:#010x}: {s:?}");
    let p = plan(&s, r);
    match (s.kind, p) {
        (Kind::ZeroBlock, Plan::ZeroBlock { addr, len }) => {
            assert!(len.is_power_of_two() && (4..=2048).contains(&len));
            assert_eq!(addr % len as u64, 0);
            assert!(p.contains(effective_address(&s, r)));
        }
        (Kind::Simd { regs }, Plan::StepAndDiff { addr, len }) => {
            assert!(s.needs_fp && len == s.len() && len > 0 && len <= 64);
            assert_eq!(addr, effective_address(&s, r));
            assert!((1..=4).contains(&regs.len()));
        }
        (_, Plan::StepAndDiff { .. }) => panic!("{insn:#010x}: only SIMD is stepped"),
        (_, p) => {
            assert!(!s.needs_fp, "{insn:#010x}");
            assert_eq!(p.addr(), effective_address(&s, r), "{insn:#010x}");
            assert_eq!(p.len(), s.len(), "{insn:#010x}");
            assert!(matches!(p.len(), 1 | 2 | 4 | 8 | 16), "{insn:#010x}");
            if let Plan::Write { writeback, .. } = p {
                assert_eq!(writeback.is_some(), s.addressing.writes_back());
            } else {
                assert_eq!(s.addressing, Addressing::Offset);
            }
            assert!(p.register_writes(u128::MAX, false).len() <= 2);
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn any_word_decodes_and_plans_without_panicking(
        insn in any::<u32>(),
        x in proptest::array::uniform31(any::<u64>()),
        sp in any::<u64>(),
        zva in any::<u64>(),
    ) {
        exercise(insn, &regs_from(x, sp, zva));
    }

    /// Random words inside the load/store group, where the stores are.
    #[test]
    fn load_store_words_decode_and_plan_without_panicking(
        raw in any::<u32>(),
        x in proptest::array::uniform31(any::<u64>()),
        sp in any::<u64>(),
    ) {
        // op0 = x1x0: bit 27 set, bit 25 clear.
        let insn = (raw | 1 << 27) & !(1 << 25);
        exercise(insn, &regs_from(x, sp, 64));
    }
}

/// A deterministic sweep of 2^22 words spread over the whole space.
#[test]
fn sweep_never_panics() {
    let r = TestRegs::new();
    let mut stores = 0u32;
    let mut w = 0x0123_4567u32;
    for i in 0..(1u32 << 22) {
        // A full-period LCG mod 2^32, plus every low 12-bit pattern in turn.
        w = w.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let insn = (w & !0xFFF) | (i & 0xFFF);
        if exercise(insn, &r) {
            stores += 1;
        }
    }
    // Roughly a tenth of the encoding space decodes as a store.
    assert!(stores > 100_000, "{stores}");
}

// ---------------------------------------------------------------------------
// Round trips through a tiny encoder and a reference address model.
// ---------------------------------------------------------------------------

/// `(base + offset) mod 2^64` on unbounded integers.
fn model_add(base: u64, offset: i128) -> u64 {
    (base as i128 + offset).rem_euclid(1i128 << 64) as u64
}

fn base_of(r: &TestRegs, rn: u32) -> u64 {
    if rn == 31 {
        r.sp
    } else {
        r.x[rn as usize]
    }
}

fn xzr(r: &TestRegs, n: u32) -> u64 {
    if n == 31 {
        0
    } else {
        r.x[n as usize]
    }
}

fn le(v: u64, bytes: usize) -> Vec<u8> {
    v.to_le_bytes()[..bytes].to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

    /// STR (immediate, unsigned offset): `size 111001 00 imm12 Rn Rt`.
    #[test]
    fn str_unsigned_offset(size in 0u32..4, imm12 in 0u32..4096, rn in 0u32..32, rt in 0u32..32,
                           x in proptest::array::uniform31(any::<u64>()), sp in any::<u64>()) {
        let r = regs_from(x, sp, 64);
        let insn = size << 30 | 0b111001 << 24 | imm12 << 10 | rn << 5 | rt;
        let s = store(insn);
        let bytes = 1usize << size;
        prop_assert_eq!(s.offset, Offset::Imm((imm12 as i64) << size));
        prop_assert_eq!(s.base, if rn == 31 { Base::Sp } else { Base::X(rn as u8) });
        let want = model_add(base_of(&r, rn), (imm12 as i128) << size);
        match plan(&s, &r) {
            Plan::Write { addr, len, unit, data, writeback: None, tag: None } => {
                prop_assert_eq!(addr, want);
                prop_assert_eq!(unit, bytes);
                prop_assert_eq!(data[..len].to_vec(), le(xzr(&r, rt), bytes));
            }
            p => prop_assert!(false, "{:?}", p),
        }
    }

    /// STUR / STR pre-index / STR post-index / STTR: `size 111000 00 0 imm9 op4`.
    #[test]
    fn str_imm9(size in 0u32..4, op4 in 0u32..4, imm9 in -256i32..256, rn in 0u32..32, rt in 0u32..32,
                x in proptest::array::uniform31(any::<u64>()), sp in any::<u64>()) {
        let r = regs_from(x, sp, 64);
        let insn = size << 30 | 0b111000 << 24 | ((imm9 as u32) & 0x1FF) << 12 | op4 << 10 | rn << 5 | rt;
        let s = store(insn);
        let base = base_of(&r, rn);
        let moved = model_add(base, imm9 as i128);
        let (addr_want, wb_want, kind) = match op4 {
            0 => (moved, None, Kind::Plain),
            1 => (base, Some((rn as u8, moved)), Kind::Plain),
            2 => (moved, None, Kind::Unprivileged),
            _ => (moved, Some((rn as u8, moved)), Kind::Plain),
        };
        prop_assert_eq!(s.kind, kind);
        match plan(&s, &r) {
            Plan::Write { addr, len, data, writeback, .. } => {
                prop_assert_eq!(addr, addr_want);
                prop_assert_eq!(writeback, wb_want);
                // The data is the register before the instruction, even when
                // Rt == Rn with writeback.
                prop_assert_eq!(data[..len].to_vec(), le(xzr(&r, rt), 1 << size));
            }
            p => prop_assert!(false, "{:?}", p),
        }
    }

    /// STR (register): `size 111000 00 1 Rm option S 10 Rn Rt`.
    #[test]
    fn str_register(size in 0u32..4, opt in prop::sample::select(vec![0b010u32, 0b011, 0b110, 0b111]),
                    sbit in 0u32..2, rm in 0u32..32, rn in 0u32..32, rt in 0u32..32,
                    x in proptest::array::uniform31(any::<u64>()), sp in any::<u64>()) {
        let r = regs_from(x, sp, 64);
        let insn = size << 30 | 0b111000 << 24 | 1 << 21 | rm << 16 | opt << 13 | sbit << 12 | 0b10 << 10 | rn << 5 | rt;
        let s = store(insn);
        let m = xzr(&r, rm);
        let ext: i128 = match opt {
            0b010 => (m & 0xFFFF_FFFF) as i128,
            0b110 => (m as u32 as i32) as i128,
            _ => m as i64 as i128,
        };
        let shift = if sbit == 1 { size } else { 0 };
        let want = model_add(base_of(&r, rn), ext << shift);
        prop_assert_eq!(effective_address(&s, &r), want);
        prop_assert_eq!(plan(&s, &r).addr(), want);
    }

    /// STP/STNP/STGP (general-purpose): `opc 101 0 op2 0 imm7 Rt2 Rn Rt`.
    #[test]
    fn stp_gpr(opc in prop::sample::select(vec![0u32, 1, 2]), op2 in 0u32..4, imm7 in -64i32..64,
               rt in 0u32..32, rt2 in 0u32..32, rn in 0u32..32,
               x in proptest::array::uniform31(any::<u64>()), sp in any::<u64>()) {
        prop_assume!(!(opc == 1 && op2 == 0)); // no STGP no-allocate form
        let r = regs_from(x, sp, 64);
        let insn = opc << 30 | 0b101 << 27 | op2 << 23 | ((imm7 as u32) & 0x7F) << 15 | rt2 << 10 | rn << 5 | rt;
        let s = store(insn);
        let (each, scale) = match opc { 0 => (4usize, 2), 1 => (8, 4), _ => (8, 3) };
        let base = base_of(&r, rn);
        let moved = model_add(base, (imm7 as i128) << scale);
        let (addr_want, wb_want) = match op2 {
            1 => (base, Some((rn as u8, moved))),
            3 => (moved, Some((rn as u8, moved))),
            _ => (moved, None),
        };
        match plan(&s, &r) {
            Plan::Write { addr, len, unit, data, writeback, tag } => {
                prop_assert_eq!(unit, each);
                prop_assert_eq!(addr, addr_want);
                prop_assert_eq!(writeback, wb_want);
                prop_assert_eq!(len, 2 * each);
                let mut want = le(xzr(&r, rt), each);
                want.extend(le(xzr(&r, rt2), each));
                prop_assert_eq!(data[..len].to_vec(), want);
                prop_assert_eq!(tag.is_some(), opc == 1);
            }
            p => prop_assert!(false, "{:?}", p),
        }
    }

    /// LD<op> with every op, size, A/R and register: the decoded operation
    /// and the plan's operand match the fields.
    #[test]
    fn ldop_fields(size in 0u32..4, a in 0u32..2, rbit in 0u32..2, opc in 0u32..8,
                   rs in 0u32..32, rt in 0u32..32, rn in 0u32..32,
                   x in proptest::array::uniform31(any::<u64>()), sp in any::<u64>()) {
        let r = regs_from(x, sp, 64);
        let insn = size << 30 | 0b111000 << 24 | a << 23 | rbit << 22 | 1 << 21 | rs << 16 | opc << 12 | rn << 5 | rt;
        let s = store(insn);
        prop_assert_eq!(s.kind, Kind::LdOp { op: AtomicOp::from_opc(opc), result_reg: rt as u8 });
        prop_assert_eq!((s.acquire, s.release), (a == 1, rbit == 1));
        match plan(&s, &r) {
            Plan::LdOp { addr, len, operand, .. } => {
                prop_assert_eq!(addr, base_of(&r, rn));
                prop_assert_eq!(len, 1 << size);
                prop_assert_eq!(operand, result_value(xzr(&r, rs), 1 << size));
            }
            p => prop_assert!(false, "{:?}", p),
        }
    }
}
