//! `plan()`, `effective_address()` and `Plan::register_writes()` with
//! concrete register values.

use super::*;

fn plan_of(insn: u32, regs: &TestRegs) -> Plan {
    let s = store(insn);
    let p = plan(&s, regs);
    // The plan's address is always the effective address, except that DC
    // ZVA aligns it down.
    if s.kind != Kind::ZeroBlock {
        assert_eq!(p.addr(), effective_address(&s, regs), "{insn:#010x}");
    }
    p
}

/// `(addr, bytes, writeback)` of a `Plan::Write`.
fn write(p: Plan) -> (u64, Vec<u8>, Option<(u8, u64)>) {
    match p {
        Plan::Write { addr, len, unit, data, writeback, tag: None } => {
            assert!(unit.is_power_of_two() && unit <= len && len % unit == 0);
            (addr, data[..len].to_vec(), writeback)
        }
        other => panic!("not a plain write: {other:?}"),
    }
}

const V: u64 = 0x1122_3344_5566_7788;

#[test]
fn unsigned_offset_store() {
    // str x0, [x1, #32760]
    let r = TestRegs::new().with(0, V).with(1, 0x4000_0000);
    let (addr, data, wb) = write(plan_of(0xf93ffc20, &r));
    assert_eq!(addr, 0x4000_0000 + 32760);
    assert_eq!(data, V.to_le_bytes());
    assert_eq!(wb, None);
}

#[test]
fn sizes_truncate_the_register() {
    let r = TestRegs::new().with(0, V).with(4, V).with(6, V).with(2, V);
    // str w2, [x3, #16380]
    assert_eq!(write(plan_of(0xb93ffc62, &r)).1, [0x88, 0x77, 0x66, 0x55]);
    // strh w4, [x5, #8190]
    assert_eq!(write(plan_of(0x793ffca4, &r)).1, [0x88, 0x77]);
    // strb w6, [x7, #4095]
    assert_eq!(write(plan_of(0x393ffce6, &r)).1, [0x88]);
}

#[test]
fn pre_and_post_index_writeback() {
    // str x1, [x2, #-256]!
    let r = TestRegs::new().with(1, V).with(2, 0x1000);
    let (addr, _, wb) = write(plan_of(0xf8100c41, &r));
    assert_eq!((addr, wb), (0xF00, Some((2, 0xF00))));
    // str x1, [x2, #255]!
    let (addr, _, wb) = write(plan_of(0xf80ffc41, &r));
    assert_eq!((addr, wb), (0x10FF, Some((2, 0x10FF))));
    // strh w1, [x2], #-256: the access is at the old base.
    let (addr, data, wb) = write(plan_of(0x78100441, &r));
    assert_eq!((addr, wb), (0x1000, Some((2, 0xF00))));
    assert_eq!(data, [0x88, 0x77]);
    // strb w1, [x2], #255
    let (addr, _, wb) = write(plan_of(0x380ff441, &r));
    assert_eq!((addr, wb), (0x1000, Some((2, 0x10FF))));
}

#[test]
fn address_arithmetic_wraps() {
    // str x1, [x2, #-256]! with x2 = 0: wraps below zero.
    let r = TestRegs::new().with(2, 0);
    let (addr, _, wb) = write(plan_of(0xf8100c41, &r));
    assert_eq!((addr, wb), (u64::MAX - 255, Some((2, u64::MAX - 255))));
    // str x0, [x1, #32760] with x1 near the top: wraps above.
    let r = TestRegs::new().with(1, u64::MAX - 7);
    assert_eq!(write(plan_of(0xf93ffc20, &r)).0, 32752);
}

#[test]
fn sp_base_and_sp_writeback() {
    // str x3, [sp], #16
    let r = TestRegs::new().with(3, V).with_sp(0xFFFF_0000_0000_1000);
    let p = plan_of(0xf80107e3, &r);
    let (addr, data, wb) = write(p);
    assert_eq!((addr, wb), (0xFFFF_0000_0000_1000, Some((31, 0xFFFF_0000_0000_1010))));
    assert_eq!(data, V.to_le_bytes());
    let w = p.register_writes(0, false);
    assert_eq!(w.as_slice(), [RegWrite { dest: Dest::Sp, value: 0xFFFF_0000_0000_1010 }]);
    // stp x29, x30, [sp, #-16]!
    let r = TestRegs::new().with_sp(0x8000);
    let (addr, _, wb) = write(plan_of(0xa9bf7bfd, &r));
    assert_eq!((addr, wb), (0x7FF0, Some((31, 0x7FF0))));
}

#[test]
fn xzr_source_stores_zero() {
    // str xzr, [sp, #8]: TestRegs panics if asked for register 31.
    let r = TestRegs::new().with_sp(0x100);
    let (addr, data, _) = write(plan_of(0xf90007ff, &r));
    assert_eq!((addr, data), (0x108, [0u8; 8].to_vec()));
    // str xzr, [x0, #-1]!
    let (_, data, wb) = write(plan_of(0xf81ffc1f, &r));
    assert_eq!(data, [0u8; 8]);
    assert_eq!(wb, Some((0, r.x[0] - 1)));
    // stp xzr, xzr, [x0]
    assert_eq!(write(plan_of(0xa9007c1f, &r)).1, [0u8; 16]);
    // sturb wzr, [x30, #1]
    assert_eq!(write(plan_of(0x380013df, &r)).1, [0]);
}

#[test]
fn writeback_with_rt_equal_rn_stores_the_old_base() {
    // str x5, [x5, #8]!  (Constraint_NONE: the pre-writeback value.)
    let r = TestRegs::new().with(5, 0x2000);
    let (addr, data, wb) = write(plan_of(0xf8008ca5, &r));
    assert_eq!((addr, wb), (0x2008, Some((5, 0x2008))));
    assert_eq!(data, 0x2000u64.to_le_bytes());
    // str x5, [x5], #-8
    let (addr, data, wb) = write(plan_of(0xf81f84a5, &r));
    assert_eq!((addr, wb), (0x2000, Some((5, 0x1FF8))));
    assert_eq!(data, 0x2000u64.to_le_bytes());
    // stp x1, x2, [x1, #16]!
    let r = TestRegs::new().with(1, 0x3000).with(2, V);
    let (addr, data, wb) = write(plan_of(0xa9810821, &r));
    assert_eq!((addr, wb), (0x3010, Some((1, 0x3010))));
    assert_eq!(data[..8], 0x3000u64.to_le_bytes());
    assert_eq!(data[8..], V.to_le_bytes());
    // stp x2, x1, [x1], #16
    let (addr, data, wb) = write(plan_of(0xa8810422, &r));
    assert_eq!((addr, wb), (0x3000, Some((1, 0x3010))));
    assert_eq!(data[8..], 0x3000u64.to_le_bytes());
}

#[test]
fn register_offsets_extend_and_shift() {
    let base = 0x10_0000u64;
    // Wm = 0x8000_0004 with garbage in the upper half.
    let m = 0xDEAD_BEEF_8000_0004u64;
    let r = TestRegs::new().with(1, base).with(2, m);
    let ea = |insn: u32| effective_address(&store(insn), &r);
    // str x0, [x1, x2]
    assert_eq!(ea(0xf8226820), base.wrapping_add(m));
    // str x0, [x1, x2, lsl #3]
    assert_eq!(ea(0xf8227820), base.wrapping_add(m << 3));
    // str x0, [x1, w2, uxtw]
    assert_eq!(ea(0xf8224820), base + 0x8000_0004);
    // str x0, [x1, w2, uxtw #3]
    assert_eq!(ea(0xf8225820), base + (0x8000_0004u64 << 3));
    // str x0, [x1, w2, sxtw]: 0x8000_0004 is negative as a W value.
    assert_eq!(ea(0xf822c820), base.wrapping_sub(0x7FFF_FFFC));
    // str x0, [x1, w2, sxtw #3]
    assert_eq!(ea(0xf822d820), base.wrapping_sub(0x7FFF_FFFCu64 << 3));
    // str x0, [x1, x2, sxtx]
    assert_eq!(ea(0xf822e820), base.wrapping_add(m));
    // str x0, [x1, x2, sxtx #3]
    assert_eq!(ea(0xf822f820), base.wrapping_add(m << 3));
    // strh w0, [x1, w2, sxtw #1]
    assert_eq!(ea(0x7822d820), base.wrapping_sub(0x7FFF_FFFC * 2));
    // strb w0, [x1, x2, lsl #0], strb w0, [x1, w2, uxtw], strb w0, [x1, x2, sxtx]
    assert_eq!(ea(0x38227820), base.wrapping_add(m));
    assert_eq!(ea(0x38224820), base + 0x8000_0004);
    assert_eq!(ea(0x3822e820), base.wrapping_add(m));
    // str x0, [x1, xzr]
    assert_eq!(ea(0xf83f6820), base);
    // str w0, [sp, x2, lsl #2] (negative Xm)
    let r = TestRegs::new().with(2, (-3i64) as u64).with_sp(0x1000);
    assert_eq!(effective_address(&store(0xb8227be0), &r), 0x1000 - 12);
}

#[test]
fn pairs_lay_out_low_register_first() {
    let r = TestRegs::new().with(0, V).with(1, 0xAABB_CCDD_EEFF_0011).with(2, 0x800);
    // stp w0, w1, [x2, #-256]
    let (addr, data, wb) = write(plan_of(0x29200440, &r));
    assert_eq!((addr, wb), (0x700, None));
    assert_eq!(data, [0x88, 0x77, 0x66, 0x55, 0x11, 0x00, 0xFF, 0xEE]);
    // stp x0, x1, [x2], #-512
    let (addr, data, wb) = write(plan_of(0xa8a00440, &r));
    assert_eq!((addr, wb), (0x800, Some((2, 0x600))));
    assert_eq!(data[..8], V.to_le_bytes());
    assert_eq!(data[8..], 0xAABB_CCDD_EEFF_0011u64.to_le_bytes());
    // stnp x0, x1, [x2, #-512]
    let (addr, data, wb) = write(plan_of(0xa8200440, &r));
    assert_eq!((addr, data.len(), wb), (0x600, 16, None));
}

#[test]
fn stgp_writes_the_pair_and_the_address_tag() {
    // stgp x0, x1, [x2, #-1024]!  with a tagged base (tag 0xA).
    let r = TestRegs::new().with(0, 1).with(1, 2).with(2, 0x0A00_0000_0000_1000);
    let p = plan_of(0x69a00440, &r);
    let Plan::Write { addr, len, unit, data, writeback, tag } = p else { panic!("{p:?}") };
    assert_eq!(unit, 8);
    assert_eq!(addr, 0x0A00_0000_0000_0C00);
    assert_eq!(len, 16);
    assert_eq!(data[..16], [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(writeback, Some((2, 0x0A00_0000_0000_0C00)));
    assert_eq!(tag, Some(0xA));
    // stgp x0, x1, [x2], #1008: post-index, tag from the old base.
    let r = r.with(2, 0x0300_0000_0000_2000);
    match plan_of(0x689f8440, &r) {
        Plan::Write { addr, writeback, tag, .. } => {
            assert_eq!((addr, tag), (0x0300_0000_0000_2000, Some(3)));
            assert_eq!(writeback, Some((2, 0x0300_0000_0000_2000 + 1008)));
        }
        p => panic!("{p:?}"),
    }
}

#[test]
fn release_forms_with_writeback() {
    // stlr x0, [x1, #-8]!
    let r = TestRegs::new().with(0, V).with(1, 0x5000);
    let (addr, data, wb) = write(plan_of(0xd9800820, &r));
    assert_eq!((addr, wb), (0x4FF8, Some((1, 0x4FF8))));
    assert_eq!(data, V.to_le_bytes());
    // stlr w0, [sp, #-4]!
    let r = r.with_sp(0x100);
    let (addr, data, wb) = write(plan_of(0x99800be0, &r));
    assert_eq!((addr, data.len(), wb), (0xFC, 4, Some((31, 0xFC))));
    // stilp x0, x1, [x2, #-16]!
    let r = TestRegs::new().with(0, 1).with(1, 2).with(2, 0x6000);
    let (addr, data, wb) = write(plan_of(0xd9010840, &r));
    assert_eq!((addr, wb), (0x5FF0, Some((2, 0x5FF0))));
    assert_eq!((data[0], data[8], data.len()), (1, 2, 16));
    // stilp x0, x1, [x2]
    let (addr, _, wb) = write(plan_of(0xd9011840, &r));
    assert_eq!((addr, wb), (0x6000, None));
    // stlr w0, [x1, #255] (STLUR)
    let (addr, _, wb) = write(plan_of(0x990ff020, &r.clone().with(1, 0x100)));
    assert_eq!((addr, wb), (0x1FF, None));
}

#[test]
fn exclusives() {
    // stxr w0, x1, [x2]
    let r = TestRegs::new().with(1, V).with(2, 0x7000);
    let p = plan_of(0xc8007c41, &r);
    let Plan::Exclusive { addr, len, data, status_reg } = p else { panic!("{p:?}") };
    assert_eq!((addr, len, status_reg), (0x7000, 8, 0));
    assert_eq!(data[..8], V.to_le_bytes());
    let ok = p.register_writes(0, true);
    assert_eq!(ok.as_slice(), [RegWrite { dest: Dest::X(0), value: 0 }]);
    let failed = p.register_writes(0, false);
    assert_eq!(failed.as_slice(), [RegWrite { dest: Dest::X(0), value: 1 }]);
    // stxrb wzr, w4, [x5]: status discarded.
    let p = plan_of(0x081f7ca4, &r);
    assert_eq!(p.len(), 1);
    assert!(p.register_writes(0, true).is_empty());
    // stlxr w1, w1, [x1]: data and address are the original X1.
    let r = TestRegs::new().with(1, 0x8000);
    match plan_of(0x8801fc21, &r) {
        Plan::Exclusive { addr, len, data, status_reg } => {
            assert_eq!((addr, len, status_reg), (0x8000, 4, 1));
            assert_eq!(data[..4], [0x00, 0x80, 0, 0]);
        }
        p => panic!("{p:?}"),
    }
    // stlxp w0, x1, x2, [x3]: 16 bytes, X1 first.
    let r = TestRegs::new().with(1, 1).with(2, 2).with(3, 0x9000);
    let p = plan_of(0xc8208861, &r);
    match p {
        Plan::Exclusive { addr, len, data, .. } => {
            assert_eq!((addr, len, data[0], data[8]), (0x9000, 16, 1, 2));
        }
        p => panic!("{p:?}"),
    }
    // stxp w0, w1, w2, [sp]: 8 bytes.
    assert_eq!(plan_of(0x88200be1, &r).len(), 8);
}

#[test]
fn cas_and_casp() {
    // casb w0, w1, [x2]: compare and new truncated to a byte.
    let r = TestRegs::new().with(0, 0x1234_5678).with(1, 0xFFFF_FF9A).with(2, 0xA000);
    let p = plan_of(0x08a07c41, &r);
    assert_eq!(
        p,
        Plan::Cas { addr: 0xA000, len: 1, expected: 0x78, new: 0x9A, result_reg: 0, result_reg2: None }
    );
    // The old byte is zero-extended into W0/X0.
    let w = p.register_writes(0xFFFF_FFFF_FFFF_FF80, false);
    assert_eq!(w.as_slice(), [RegWrite { dest: Dest::X(0), value: 0x80 }]);
    // cas x0, x1, [x2]
    let r = TestRegs::new().with(0, V).with(1, !V).with(2, 0xA008);
    assert_eq!(
        plan_of(0xc8a07c41, &r),
        Plan::Cas {
            addr: 0xA008,
            len: 8,
            expected: V as u128,
            new: !V as u128,
            result_reg: 0,
            result_reg2: None
        }
    );
    // casal w0, w1, [x2]: 32-bit, result zero-extended.
    let p = plan_of(0x88e0fc41, &r);
    assert_eq!(p.len(), 4);
    assert_eq!(
        p.register_writes(0xFFFF_FFFF_8765_4321, true).as_slice(),
        [RegWrite { dest: Dest::X(0), value: 0x8765_4321 }]
    );
    // caspa w0, w1, w2, w3, [sp]: W(s+1):W(s), low register first in memory.
    let r = TestRegs::new()
        .with(0, 0xAAAA_0000_1111_1111)
        .with(1, 0x2222_2222)
        .with(2, 0x3333_3333)
        .with(3, 0xBBBB_0000_4444_4444)
        .with_sp(0xB000);
    let p = plan_of(0x08607fe2, &r);
    assert_eq!(
        p,
        Plan::Cas {
            addr: 0xB000,
            len: 8,
            expected: 0x2222_2222_1111_1111,
            new: 0x4444_4444_3333_3333,
            result_reg: 0,
            result_reg2: Some(1)
        }
    );
    assert_eq!(
        p.register_writes(0x5555_5555_6666_6666, false).as_slice(),
        [
            RegWrite { dest: Dest::X(0), value: 0x6666_6666 },
            RegWrite { dest: Dest::X(1), value: 0x5555_5555 }
        ]
    );
    // casp x0, x1, x2, x3, [x4]: 128-bit.
    let r = TestRegs::new().with(0, 1).with(1, 2).with(2, 3).with(3, 4).with(4, 0xC000);
    let p = plan_of(0x48207c82, &r);
    assert_eq!(
        p,
        Plan::Cas {
            addr: 0xC000,
            len: 16,
            expected: (2u128 << 64) | 1,
            new: (4u128 << 64) | 3,
            result_reg: 0,
            result_reg2: Some(1)
        }
    );
    let old = (u64::MAX as u128) << 64 | 7;
    assert_eq!(
        p.register_writes(old, false).as_slice(),
        [RegWrite { dest: Dest::X(0), value: 7 }, RegWrite { dest: Dest::X(1), value: u64::MAX }]
    );
    // caspl x30, xzr, x28, x29, [x4]: the second compare register is XZR
    // (reads 0, its result is dropped).
    let r = TestRegs::new().with(30, 9).with(28, 5).with(29, 6).with(4, 0xD000);
    let p = plan_of(0x483efc9c, &r);
    assert_eq!(
        p,
        Plan::Cas {
            addr: 0xD000,
            len: 16,
            expected: 9,
            new: (6u128 << 64) | 5,
            result_reg: 30,
            result_reg2: Some(31)
        }
    );
    assert_eq!(
        p.register_writes((1u128 << 64) | 2, false).as_slice(),
        [RegWrite { dest: Dest::X(30), value: 2 }]
    );
}

#[test]
fn swp_and_ldop() {
    // swph w0, w1, [x2]
    let r = TestRegs::new().with(0, 0xFFFF_1234).with(2, 0xE000);
    let p = plan_of(0x78208041, &r);
    assert_eq!(p, Plan::Swp { addr: 0xE000, len: 2, new: 0x1234, result_reg: 1 });
    assert_eq!(
        p.register_writes(0xFFFF_FFFF_FFFF_ABCD, false).as_slice(),
        [RegWrite { dest: Dest::X(1), value: 0xABCD }]
    );
    // swpal w0, wzr, [x2]: result discarded.
    assert!(plan_of(0xb8e0805f, &r).register_writes(5, false).is_empty());
    // ldsmax x0, x1, [x2]
    let r = TestRegs::new().with(0, (-5i64) as u64).with(2, 0xE008);
    let p = plan_of(0xf8204041, &r);
    assert_eq!(
        p,
        Plan::LdOp { addr: 0xE008, len: 8, op: AtomicOp::Smax, operand: (-5i64) as u64, result_reg: 1 }
    );
    // staddb w0, [sp]: operand truncated to a byte, no register result.
    let r = TestRegs::new().with(0, 0x1FF).with_sp(0xF000);
    let p = plan_of(0x382003ff, &r);
    assert_eq!(p, Plan::LdOp { addr: 0xF000, len: 1, op: AtomicOp::Add, operand: 0xFF, result_reg: 31 });
    assert!(p.register_writes(0x12, false).is_empty());
    // ldadda x0, xzr, [x1]: acquire with a discarded result.
    assert!(plan_of(0xf8a0003f, &r).register_writes(1, false).is_empty());
}

#[test]
fn dc_zva_aligns_to_the_block() {
    let mut r = TestRegs::new().with(0, 0x1234_5678);
    assert_eq!(plan_of(0xd50b7420, &r), Plan::ZeroBlock { addr: 0x1234_5640, len: 64 });
    r.zva = 2048;
    assert_eq!(plan_of(0xd50b7420, &r), Plan::ZeroBlock { addr: 0x1234_5000, len: 2048 });
    // Out-of-range or odd sizes are clamped to a power of two in 4..=2048.
    for (bytes, len) in [(0, 4), (3, 4), (100, 64), (4096, 2048), (u64::MAX, 2048)] {
        r.zva = bytes;
        assert_eq!(plan_of(0xd50b7420, &r).len(), len, "{bytes}");
    }
    // dc zva, xzr zeroes the block at address 0 (XZR, not SP).
    r.zva = 64;
    let r = r.with_sp(0x9999);
    assert_eq!(plan_of(0xd50b743f, &r), Plan::ZeroBlock { addr: 0, len: 64 });
    assert!(plan_of(0xd50b743f, &r).register_writes(0, true).is_empty());
    assert_eq!(dczid_block_bytes(4), 64);
    assert_eq!(dczid_block_bytes(9), 2048);
    assert_eq!(dczid_block_bytes(0x10 | 4), 64); // DZP ignored
}

#[test]
fn simd_stores_are_stepped() {
    let r = TestRegs::new().with(0, 0x1_0000).with(2, 0x2_0000).with(3, 0x40).with_sp(0x3_0000);
    // str q31, [sp, #-256]!
    assert_eq!(plan_of(0x3c900fff, &r), Plan::StepAndDiff { addr: 0x2_FF00, len: 16 });
    // stp q0, q1, [x2], #1008: post-index accesses the old base.
    assert_eq!(plan_of(0xac9f8440, &r), Plan::StepAndDiff { addr: 0x2_0000, len: 32 });
    // st1 {v0.16b, v1.16b}, [x0], #32
    assert_eq!(plan_of(0x4c9fa000, &r), Plan::StepAndDiff { addr: 0x1_0000, len: 32 });
    // st1 {v0.8b}, [x0], x3
    assert_eq!(plan_of(0x0c837000, &r), Plan::StepAndDiff { addr: 0x1_0000, len: 8 });
    // st1 {v30.2d, v31.2d, v0.2d, v1.2d}, [sp]
    assert_eq!(plan_of(0x4c002ffe, &r), Plan::StepAndDiff { addr: 0x3_0000, len: 64 });
    // No register writes: the single step does them.
    assert!(plan_of(0x4c9fa000, &r).register_writes(0, true).is_empty());
}

#[test]
fn far_cross_check() {
    let r = TestRegs::new().with(0, 1).with(1, 2).with(2, u64::MAX - 7);
    // stp x0, x1, [x2]... via stgp x0, x1, [x2]: 16 bytes across the top.
    let p = plan_of(0x69000440, &r);
    assert!(p.contains(u64::MAX - 7));
    assert!(p.contains(u64::MAX));
    assert!(p.contains(7));
    assert!(!p.contains(8));
    assert!(!p.contains(u64::MAX - 8));
}

#[test]
fn plan_is_total_on_hand_made_stores() {
    let r = TestRegs::new();
    let mut s = store(0xa9bf7bfd);
    for (size, count, rt, rt2) in [(0, 0, 0, None), (200, 200, 255, Some(255)), (3, 9, 31, None)] {
        s.size = size;
        s.count = count;
        s.rt = rt;
        s.rt2 = rt2;
        for kind in [
            Kind::Plain,
            Kind::Exclusive { status_reg: 255 },
            Kind::Cas { compare_reg: 255 },
            Kind::Swp { result_reg: 255 },
            Kind::LdOp { op: AtomicOp::Smin, result_reg: 255 },
            Kind::ZeroBlock,
        ] {
            s.kind = kind;
            s.base = Base::X(200);
            s.offset = Offset::Reg { rm: 255, extend: Extend::Sxtw, shift: 255 };
            let p = plan(&s, &r);
            assert!(p.len() <= 2048);
            let _ = p.register_writes(u128::MAX, true);
        }
    }
}

#[test]
fn single_copy_atomicity_unit() {
    let r = TestRegs::new();
    let unit = |insn: u32| match plan_of(insn, &r) {
        Plan::Write { unit, len, .. } => (unit, len),
        p => panic!("{p:?}"),
    };
    assert_eq!(unit(0xf93ffc20), (8, 8)); // str x0, [x1, #32760]
    assert_eq!(unit(0x793ffca4), (2, 2)); // strh w4, [x5, #8190]
    assert_eq!(unit(0x29200440), (4, 8)); // stp w0, w1, [x2, #-256]
    assert_eq!(unit(0xa91f8440), (8, 16)); // stp x0, x1, [x2, #504]
    assert_eq!(unit(0xd9011840), (16, 16)); // stilp x0, x1, [x2]
    assert_eq!(unit(0x99800be0), (4, 4)); // stlr w0, [sp, #-4]!
}
