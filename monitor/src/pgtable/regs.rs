//! Translation-control register values: VTCR_EL2 (stage 2), TCR_EL2 (EL2
//! stage 1, HCR_EL2.E2H = 0 layout) and MAIR_EL2.
//!
//! Field layouts: Arm ARM DDI 0487 register descriptions "VTCR_EL2" and
//! "TCR_EL2"; Linux
//! `arch/arm64/include/asm/kvm_arm.h` (`VTCR_EL2_*`, `TCR_EL2_*`) and
//! `pgtable-hwdef.h` (`TCR_T0SZ`, `TCR_IRGN0_*`, `TCR_ORGN0_*`, `TCR_SH0_*`,
//! `TCR_TG0_*`).
//!
//! | field  | bits    | VTCR_EL2 | TCR_EL2 |
//! |--------|---------|----------|---------|
//! | T0SZ   | [5:0]   | yes      | yes     |
//! | SL0    | [7:6]   | yes      | —       |
//! | IRGN0  | [9:8]   | yes      | yes     |
//! | ORGN0  | [11:10] | yes      | yes     |
//! | SH0    | [13:12] | yes      | yes     |
//! | TG0    | [15:14] | yes      | yes     |
//! | PS     | [18:16] | yes      | yes     |
//! | RES1   | 23      | —        | yes     |
//! | RES1   | 31      | yes      | yes     |

use super::Regime;

pub const TCR_T0SZ_SHIFT: u32 = 0;
pub const TCR_T0SZ_MASK: u64 = 0x3F;
/// VTCR_EL2.SL0, bits [7:6]. For 4 KiB: 0 → start level 2, 1 → level 1,
/// 2 → level 0 (kvm_arm.h: SL0 = TGRAN_SL0_BASE(4K)=2 − entry level).
pub const VTCR_SL0_SHIFT: u32 = 6;
pub const VTCR_SL0_MASK: u64 = 0b11 << VTCR_SL0_SHIFT;
pub const VTCR_SL0_BASE_4K: u8 = 2;
pub const TCR_IRGN0_SHIFT: u32 = 8;
pub const TCR_ORGN0_SHIFT: u32 = 10;
/// IRGN0/ORGN0 = 0b01: Normal, Write-Back Read-Allocate Write-Allocate.
pub const TCR_RGN_WBWA: u64 = 0b01;
pub const TCR_SH0_SHIFT: u32 = 12;
/// SH0 = 0b11: Inner Shareable.
pub const TCR_SH_INNER: u64 = 0b11;
pub const TCR_TG0_SHIFT: u32 = 14;
/// TG0 = 0b00: 4 KiB granule.
pub const TCR_TG0_4K: u64 = 0b00;
/// PS, bits [18:16] (same encoding as ID_AA64MMFR0_EL1.PARange).
pub const TCR_PS_SHIFT: u32 = 16;
pub const TCR_PS_MASK: u64 = 0b111 << TCR_PS_SHIFT;
/// TCR_EL2 RES1 bits 31 and 23 (kvm_arm.h `TCR_EL2_RES1`).
pub const TCR_EL2_RES1: u64 = (1 << 31) | (1 << 23);
/// VTCR_EL2 RES1 bit 31 (kvm_arm.h `VTCR_EL2_RES1`).
pub const VTCR_EL2_RES1: u64 = 1 << 31;

/// Largest PARange/PS encoding usable with a 4 KiB granule and 48-bit
/// descriptors (DS = 0): 0b101 = 48 bits. Larger reported ranges (52-bit
/// FEAT_LPA, 56-bit) are clamped to it.
pub const PA_RANGE_MAX_4K: u8 = 0b101;

// MAIR_EL2 attribute encodings (Linux asm/memory.h MAIR_ATTR_*) and the
// indices porwatch's EL2 stage-1 descriptors use (AttrIndx).
pub const MAIR_ATTR_DEVICE_NGNRNE: u8 = 0x00;
pub const MAIR_ATTR_DEVICE_NGNRE: u8 = 0x04;
pub const MAIR_ATTR_NORMAL_NC: u8 = 0x44;
pub const MAIR_ATTR_NORMAL_WB: u8 = 0xFF;
pub const MAIR_IDX_NORMAL: u8 = 0;
pub const MAIR_IDX_DEVICE_NGNRE: u8 = 1;
pub const MAIR_IDX_DEVICE_NGNRNE: u8 = 2;
pub const MAIR_IDX_NORMAL_NC: u8 = 3;
/// MAIR_EL2 value matching the `MAIR_IDX_*` constants.
pub const MAIR_EL2_VALUE: u64 = ((MAIR_ATTR_NORMAL_WB as u64) << (8 * MAIR_IDX_NORMAL as u32))
    | ((MAIR_ATTR_DEVICE_NGNRE as u64) << (8 * MAIR_IDX_DEVICE_NGNRE as u32))
    | ((MAIR_ATTR_DEVICE_NGNRNE as u64) << (8 * MAIR_IDX_DEVICE_NGNRNE as u32))
    | ((MAIR_ATTR_NORMAL_NC as u64) << (8 * MAIR_IDX_NORMAL_NC as u32));

/// Physical address size for an ID_AA64MMFR0_EL1.PARange / PS encoding:
/// 0→32, 1→36, 2→40, 3→42, 4→44, 5→48, 6→52, 7→56 bits. Reserved
/// values (>7) return `None`.
#[inline]
pub const fn pa_range_bits(pa_range_field: u8) -> Option<u32> {
    Some(match pa_range_field {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        6 => 52,
        7 => 56,
        _ => return None,
    })
}

/// The PS encoding and PA size porwatch uses for a reported PARange:
/// clamped to 48 bits (4 KiB granule, DS = 0); reserved encodings are
/// treated as 48 bits too.
#[inline]
pub const fn effective_pa_range(pa_range_field: u8) -> (u8, u32) {
    let field = if pa_range_field > PA_RANGE_MAX_4K { PA_RANGE_MAX_4K } else { pa_range_field };
    match pa_range_bits(field) {
        Some(bits) => (field, bits),
        None => (PA_RANGE_MAX_4K, 48),
    }
}

#[inline]
const fn walk_attrs(t0sz: u8, pa_range_field: u8) -> u64 {
    ((t0sz as u64 & TCR_T0SZ_MASK) << TCR_T0SZ_SHIFT)
        | (TCR_RGN_WBWA << TCR_IRGN0_SHIFT)
        | (TCR_RGN_WBWA << TCR_ORGN0_SHIFT)
        | (TCR_SH_INNER << TCR_SH0_SHIFT)
        | (TCR_TG0_4K << TCR_TG0_SHIFT)
        | ((pa_range_field as u64) << TCR_PS_SHIFT)
}

/// Stage-2 geometry for a 4 KiB granule: the number of concatenated tables
/// at `start_level` for an `ipa_bits` input range, or `None` when the pair
/// is inconsistent (Arm ARM pseudocode `AArch64.S2InconsistentSL`:
/// `sl_min_iasize = levels*9 + 12 + 1`, `sl_max_iasize = sl_min + 8 + 4`;
/// plus T0SZ in 16..=39, i.e. 25..=48 bits, for DS = 0). That gives:
/// start level 0: 40..=48 bits; level 1: 31..=43 (2..16 tables above 39);
/// level 2: 25..=34 (2..16 tables above 30).
#[inline]
pub const fn stage2_concat(ipa_bits: u32, start_level: u8) -> Option<u8> {
    let (min, max) = match start_level {
        0 => (40, 48),
        1 => (31, 43),
        2 => (25, 34),
        _ => return None,
    };
    if ipa_bits < min || ipa_bits > max {
        return None;
    }
    // Bits a single table resolves at this level: shift(level) + 9.
    let single = super::level_shift(start_level) + super::BITS_PER_LEVEL;
    if ipa_bits > single {
        Some(1 << (ipa_bits - single))
    } else {
        Some(1)
    }
}

/// VTCR_EL2 for a stage-2 IPA space of `ipa_bits` with a 4 KiB granule.
///
/// Returns `(vtcr, start_level, concatenated_tables)`. Start level 0 is
/// used only above 43 bits; 40..=43 bits start at level 1 with 2..16
/// concatenated tables (as KVM does); 31..=39 start at level 1; 25..=30 at
/// level 2. Fields: T0SZ = 64 − ipa_bits, SL0, IRGN0/ORGN0 = WBWA,
/// SH0 = Inner, TG0 = 4K, PS = PA range (clamped to 48 bits), RES1 bit 31.
/// VS (16-bit VMID), HA/HD and DS are left 0.
///
/// `None` if `ipa_bits` is outside 25..=48 or larger than the PA size
/// (the IPA space must fit in PS).
///
/// `vtcr_el2(32, 2)` = `(0x8002_3560, 1, 1)`; `vtcr_el2(40, 2)` =
/// `(0x8002_3558, 1, 2)`.
#[inline]
pub const fn vtcr_el2(ipa_bits: u32, pa_range_field: u8) -> Option<(u64, u8, u8)> {
    let (ps, pa_bits) = effective_pa_range(pa_range_field);
    if ipa_bits > pa_bits {
        return None;
    }
    let start_level = if ipa_bits > 43 {
        0
    } else if ipa_bits > 30 {
        1
    } else {
        2
    };
    let concat = match stage2_concat(ipa_bits, start_level) {
        Some(c) => c,
        None => return None,
    };
    let t0sz = (64 - ipa_bits) as u8;
    let sl0 = (VTCR_SL0_BASE_4K - start_level) as u64;
    Some((VTCR_EL2_RES1 | walk_attrs(t0sz, ps) | (sl0 << VTCR_SL0_SHIFT), start_level, concat))
}

/// TCR_EL2 (E2H = 0 layout) for porwatch's identity-mapped EL2 stage 1:
/// T0SZ = 64 − PA size (clamped to 48 bits), IRGN0/ORGN0 = WBWA,
/// SH0 = Inner, TG0 = 4K, PS = PA range, RES1 bits 31 and 23; TBI, HA,
/// HD, HPD left 0.
#[inline]
pub const fn tcr_el2(pa_range_field: u8) -> u64 {
    let (ps, pa_bits) = effective_pa_range(pa_range_field);
    TCR_EL2_RES1 | walk_attrs((64 - pa_bits) as u8, ps)
}

/// The regime matching [`tcr_el2`] for the same PA range.
#[inline]
pub const fn stage1_el2_regime(pa_range_field: u8) -> Regime {
    let (_, pa_bits) = effective_pa_range(pa_range_field);
    Regime::Stage1El2 { t0sz: (64 - pa_bits) as u8 }
}

/// The regime matching [`vtcr_el2`] for the same inputs.
#[inline]
pub const fn stage2_regime(ipa_bits: u32, pa_range_field: u8) -> Option<Regime> {
    match vtcr_el2(ipa_bits, pa_range_field) {
        Some((_, start_level, concat)) => {
            Some(Regime::Stage2 { t0sz: (64 - ipa_bits) as u8, start_level, concat })
        }
        None => None,
    }
}
