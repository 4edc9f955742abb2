//! `ldop_apply`, `result_value` and `sign_extend`.

use super::*;
use AtomicOp::*;

#[test]
fn bitwise_and_add_wrap_at_the_access_size() {
    assert_eq!(ldop_apply(Add, 0xFF, 1, 1), 0);
    assert_eq!(ldop_apply(Add, 0xFFFF, 2, 2), 1);
    assert_eq!(ldop_apply(Add, 0xFFFF_FFFF, 1, 4), 0);
    assert_eq!(ldop_apply(Add, u64::MAX, 2, 8), 1);
    // Inputs wider than the access are truncated first.
    assert_eq!(ldop_apply(Add, 0x1_0000_0001, 0x1_0000_0001, 4), 2);
    assert_eq!(ldop_apply(Clr, 0b1111, 0b0101, 1), 0b1010);
    assert_eq!(ldop_apply(Clr, 0xFFFF, 0xFF00_00FF, 2), 0xFF00);
    assert_eq!(ldop_apply(Eor, 0xF0F0, 0xFFFF, 2), 0x0F0F);
    assert_eq!(ldop_apply(Set, 0x8000_0000_0000_0000, 1, 8), 0x8000_0000_0000_0001);
    assert_eq!(ldop_apply(Set, 0, 0x100, 1), 0);
}

#[test]
fn signed_min_max_use_the_access_size() {
    // Byte: 0x80 = -128 < 0x7F = 127.
    assert_eq!(ldop_apply(Smax, 0x80, 0x7F, 1), 0x7F);
    assert_eq!(ldop_apply(Smin, 0x80, 0x7F, 1), 0x80);
    // A 64-bit view would say the opposite for 0xFF vs 0x01 at byte size.
    assert_eq!(ldop_apply(Smax, 0xFF, 0x01, 1), 0x01);
    assert_eq!(ldop_apply(Smin, 0xFF, 0x01, 1), 0xFF);
    assert_eq!(ldop_apply(Smax, 0x8000, 0x7FFF, 2), 0x7FFF);
    assert_eq!(ldop_apply(Smin, 0xFFFF, 0, 2), 0xFFFF);
    assert_eq!(ldop_apply(Smax, 0x8000_0000, 0x7FFF_FFFF, 4), 0x7FFF_FFFF);
    assert_eq!(ldop_apply(Smin, 0x8000_0000, 0x7FFF_FFFF, 4), 0x8000_0000);
    assert_eq!(ldop_apply(Smax, i64::MIN as u64, i64::MAX as u64, 8), i64::MAX as u64);
    assert_eq!(ldop_apply(Smin, i64::MIN as u64, i64::MAX as u64, 8), i64::MIN as u64);
    // Upper garbage in the operand does not change the signed view.
    assert_eq!(ldop_apply(Smax, 0x01, 0xFFFF_FF80, 1), 0x01);
    assert_eq!(ldop_apply(Smin, 0x01, 0xFFFF_FF80, 1), 0x80);
    // Equal values.
    assert_eq!(ldop_apply(Smax, 5, 5, 4), 5);
}

#[test]
fn unsigned_min_max_use_the_access_size() {
    assert_eq!(ldop_apply(Umax, 0x80, 0x7F, 1), 0x80);
    assert_eq!(ldop_apply(Umin, 0x80, 0x7F, 1), 0x7F);
    assert_eq!(ldop_apply(Umax, 0x1_0000, 0xFFFF, 2), 0xFFFF);
    assert_eq!(ldop_apply(Umin, 0x1_0000, 0xFFFF, 2), 0);
    assert_eq!(ldop_apply(Umax, 0xFFFF_FFFF, 0, 4), 0xFFFF_FFFF);
    assert_eq!(ldop_apply(Umin, u64::MAX, 1, 8), 1);
    assert_eq!(ldop_apply(Umax, u64::MAX, 1, 8), u64::MAX);
}

#[test]
fn odd_lengths_are_treated_as_64_bit() {
    for len in [0, 3, 5, 9, 16, usize::MAX] {
        assert_eq!(ldop_apply(Add, u64::MAX, 1, len), 0);
        assert_eq!(result_value(u64::MAX, len), u64::MAX);
        assert_eq!(sign_extend(u64::MAX, len), -1);
    }
}

#[test]
fn zero_and_sign_extension() {
    assert_eq!(result_value(0xFFFF_FFFF_FFFF_FF80, 1), 0x80);
    assert_eq!(result_value(0xFFFF_FFFF_FFFF_8000, 2), 0x8000);
    assert_eq!(result_value(0xFFFF_FFFF_8000_0000, 4), 0x8000_0000);
    assert_eq!(result_value(0x8000_0000_0000_0000, 8), 0x8000_0000_0000_0000);
    assert_eq!(sign_extend(0x80, 1), -128);
    assert_eq!(sign_extend(0x7F, 1), 127);
    assert_eq!(sign_extend(0x1_8000, 2), -32768);
    assert_eq!(sign_extend(0xFFFF_FFFF, 4), -1);
    assert_eq!(sign_extend(0x7FFF_FFFF, 4), i32::MAX as i64);
}

#[test]
fn opc_mapping_matches_the_encoding() {
    let ops = [Add, Clr, Eor, Set, Smax, Smin, Umax, Umin];
    for (opc, op) in ops.into_iter().enumerate() {
        assert_eq!(AtomicOp::from_opc(opc as u32), op);
        // LD<op> x0, x1, [x2] with opc in bits [14:12].
        let insn = 0xf8200041 | ((opc as u32) << 12);
        assert_eq!(store(insn).kind, Kind::LdOp { op, result_reg: 1 });
    }
}

/// A reference model for LD<op>: i128 arithmetic on sign/zero-extended
/// values, checked exhaustively for bytes.
#[test]
fn byte_ops_match_a_reference_model() {
    for a in 0u64..256 {
        for b in 0u64..256 {
            let (sa, sb) = (a as u8 as i8 as i128, b as u8 as i8 as i128);
            let pick = |x: bool| if x { a } else { b };
            assert_eq!(ldop_apply(Add, a, b, 1), (a + b) & 0xFF);
            assert_eq!(ldop_apply(Smax, a, b, 1), pick(sa >= sb));
            assert_eq!(ldop_apply(Smin, a, b, 1), pick(sa <= sb));
            assert_eq!(ldop_apply(Umax, a, b, 1), a.max(b));
            assert_eq!(ldop_apply(Umin, a, b, 1), a.min(b));
        }
    }
}
