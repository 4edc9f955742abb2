//! Stage-1 VMSAv8-64 descriptors of the guest's EL1&0 regime, 4 KiB granule,
//! lookup levels -1..=3, with (`ds = true`, FEAT_LPA2, TCR_EL1.DS = 1) and
//! without LPA2.
//!
//! Sources: Arm ARM DDI 0487 "VMSAv8-64 translation table descriptor formats"
//! and TCR_EL1.DS ("Bits[49:48] of translation descriptors hold output
//! address[49:48]. Bits[9:8] of Translation table descriptors hold output
//! address[51:50]"); Linux `arch/arm64/include/asm/pgtable-hwdef.h`
//! (`PTE_ADDR_LOW` = bits [49:12], `PTE_ADDR_HIGH` = 0x3 << 8 shifted by 42,
//! `PTE_PI_IDX_*`, `PTE_PO_IDX_MASK`); Linux `arch/arm64/kvm/at.c`
//! (`desc_to_oa`, and `walk_s1`: a 4 KiB level-0 block is valid only with
//! 52-bit PAs, i.e. DS = 1).
//!
//! Every function is total: any `u64` and any level give an answer.

use crate::pgtable::desc as base;

/// The first lookup level: -1 (52-bit VA with LPA2).
pub const MIN_LEVEL: i8 = -1;
/// The last lookup level (pages).
pub const LAST_LEVEL: i8 = 3;
/// Descriptors in a full 4 KiB table.
pub const ENTRIES: u16 = 512;
/// 4 KiB.
pub const PAGE_SHIFT: u32 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// Bytes per descriptor.
pub const DESC_BYTES: u64 = 8;

/// Valid, bit 0.
pub const VALID: u64 = base::DESC_VALID;
/// Bit 1: table (levels < 3) / page (level 3) when set, block when clear.
pub const TYPE_BIT: u64 = 1 << 1;

/// Address bits without LPA2: [47:12].
pub const ADDR_MASK_48: u64 = base::DESC_OA_MASK;
/// Address bits [49:12] with DS = 1.
pub const ADDR_MASK_LPA2_LO: u64 = 0x0003_FFFF_FFFF_F000;
/// With DS = 1, descriptor bits [9:8] hold address bits [51:50].
pub const ADDR_LPA2_HI_SHIFT: u32 = 8;
pub const ADDR_LPA2_HI_MASK: u64 = 0b11 << ADDR_LPA2_HI_SHIFT;
/// Distance from descriptor bit 8 to address bit 50.
const ADDR_LPA2_HI_TO_OA: u32 = 42;

/// AttrIndx[2:0], bits [4:2].
pub const ATTR_INDX_SHIFT: u32 = 2;
/// NS, bit 5 (ignored in the Non-secure EL1&0 regime).
pub const NS: u64 = 1 << 5;
/// AP[2:1], bits [7:6]. AP[1] (bit 6) = EL0 access, AP[2] (bit 7) = read-only.
pub const AP_SHIFT: u32 = 6;
pub const AP1_USER: u64 = 1 << 6;
pub const AP2_RDONLY: u64 = 1 << 7;
/// SH[1:0], bits [9:8] (only with DS = 0).
pub const SH_SHIFT: u32 = base::SH_SHIFT;
/// AF, bit 10.
pub const AF: u64 = base::DESC_AF;
/// nG, bit 11.
pub const NG: u64 = 1 << 11;
/// GP (BTI guarded page), bit 50.
pub const GP: u64 = 1 << 50;
/// DBM, bit 51.
pub const DBM: u64 = base::DESC_DBM;
/// Contiguous, bit 52.
pub const CONTIG: u64 = base::DESC_CONTIG;
/// PXN, bit 53.
pub const PXN: u64 = 1 << 53;
/// UXN (XN), bit 54.
pub const UXN: u64 = 1 << 54;
/// POIndex[2:0], bits [62:60] of block and page descriptors (FEAT_S1POE;
/// Linux `PTE_PO_IDX_MASK` = GENMASK(62, 60)).
pub const POINDEX_SHIFT: u32 = 60;
pub const POINDEX_MASK: u64 = 0b111 << POINDEX_SHIFT;
/// PIIndex[3:0] bit positions (FEAT_S1PIE; Linux `PTE_PI_IDX_0..3`):
/// PIIndex[0] = bit 6 (AP[1]), [1] = bit 51 (DBM), [2] = bit 53 (PXN),
/// [3] = bit 54 (UXN).
pub const PIINDEX_BITS: [u32; 4] = [6, 51, 53, 54];

// Table descriptor hierarchical attributes (ignored when HPD/POE/PIE).
/// PXNTable, bit 59.
pub const PXN_TABLE: u64 = 1 << 59;
/// UXNTable, bit 60.
pub const UXN_TABLE: u64 = 1 << 60;
/// APTable[1:0], bits [62:61].
pub const AP_TABLE_SHIFT: u32 = 61;
/// NSTable, bit 63.
pub const NS_TABLE: u64 = 1 << 63;

/// Input-address shift of one entry at `level`: 48, 39, 30, 21, 12 for
/// levels -1..=3. Levels outside -1..=3 are clamped.
#[inline]
pub const fn level_shift(level: i8) -> u32 {
    let l = if level < MIN_LEVEL {
        MIN_LEVEL
    } else if level > LAST_LEVEL {
        LAST_LEVEL
    } else {
        level
    };
    PAGE_SHIFT + 9 * ((LAST_LEVEL - l) as u32)
}

/// Bytes mapped by one entry at `level` (512 GiB at level 0, 1 GiB at
/// level 1, 2 MiB at level 2, 4 KiB at level 3; 256 TiB at level -1).
#[inline]
pub const fn level_size(level: i8) -> u64 {
    1 << level_shift(level)
}

/// What a descriptor is at a given level.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Bit 0 clear: translation fault.
    Invalid,
    /// Points at a next-level table (levels -1..=2).
    Table,
    /// A block: levels 1 and 2, and level 0 with DS = 1.
    Block,
    /// A page (level 3, type 0b11).
    Page,
    /// Valid but not allowed here (a block at level -1, or at level 0 without
    /// DS; type 0b01 at level 3; a level outside -1..=3): translation fault.
    Reserved,
}

/// True where the 4 KiB granule allows block descriptors: levels 1 and 2,
/// and level 0 (512 GiB) with DS = 1 (Linux kvm/at.c `walk_s1`:
/// `valid_block = level == 1 || level == 2 || (wi->pa52bit && level == 0)`).
#[inline]
pub const fn block_allowed(level: i8, ds: bool) -> bool {
    level == 1 || level == 2 || (level == 0 && ds)
}

#[inline]
pub const fn is_valid(desc: u64) -> bool {
    desc & VALID != 0
}

/// Classifies `desc` found at `level`.
#[inline]
pub const fn kind(desc: u64, level: i8, ds: bool) -> Kind {
    if !is_valid(desc) {
        return Kind::Invalid;
    }
    let bit1 = desc & TYPE_BIT != 0;
    if level < MIN_LEVEL || level > LAST_LEVEL {
        Kind::Reserved
    } else if level == LAST_LEVEL {
        if bit1 {
            Kind::Page
        } else {
            Kind::Reserved
        }
    } else if bit1 {
        Kind::Table
    } else if block_allowed(level, ds) {
        Kind::Block
    } else {
        Kind::Reserved
    }
}

/// A valid table descriptor at `level` (-1..=2).
#[inline]
pub const fn is_table(desc: u64, level: i8) -> bool {
    level >= MIN_LEVEL && level < LAST_LEVEL && desc & 0b11 == 0b11
}

/// A block or page descriptor at `level`.
#[inline]
pub const fn is_leaf(desc: u64, level: i8, ds: bool) -> bool {
    matches!(kind(desc, level, ds), Kind::Block | Kind::Page)
}

/// The address field of any descriptor, 4 KiB aligned: bits [47:12]
/// (DS = 0) or bits [49:12] plus bits [51:50] from descriptor bits [9:8]
/// (DS = 1; kvm/at.c `desc_to_oa`).
#[inline]
pub const fn address(desc: u64, ds: bool) -> u64 {
    if ds {
        (desc & ADDR_MASK_LPA2_LO) | ((desc & ADDR_LPA2_HI_MASK) << ADDR_LPA2_HI_TO_OA)
    } else {
        desc & ADDR_MASK_48
    }
}

/// The next-level table address of a table descriptor.
#[inline]
pub const fn table_address(desc: u64, ds: bool) -> u64 {
    address(desc, ds)
}

/// The next-level table `desc` points at, if it is a valid table
/// descriptor at `level`.
#[inline]
pub const fn next_table(desc: u64, level: i8, ds: bool) -> Option<u64> {
    if is_valid(desc) && is_table(desc, level) {
        Some(table_address(desc, ds))
    } else {
        None
    }
}

/// The output address of a block or page descriptor at `level` (the base
/// of the block: bits below the block size are cleared).
#[inline]
pub const fn output_address(desc: u64, level: i8, ds: bool) -> u64 {
    address(desc, ds) & !(level_size(level) - 1)
}

/// POIndex, bits [62:60] of a block or page descriptor.
#[inline]
pub const fn poindex(desc: u64) -> u8 {
    ((desc & POINDEX_MASK) >> POINDEX_SHIFT) as u8
}

/// PIIndex[3:0] = {UXN (54), PXN (53), DBM (51), AP[1] (6)}.
#[inline]
pub const fn piindex(desc: u64) -> u8 {
    let mut i = 0;
    let mut out = 0u8;
    while i < 4 {
        out |= (((desc >> PIINDEX_BITS[i]) & 1) as u8) << i;
        i += 1;
    }
    out
}

/// AP[2:1], bits [7:6]: 0b00 EL1 RW, 0b01 EL1+EL0 RW, 0b10 EL1 RO,
/// 0b11 EL1+EL0 RO.
#[inline]
pub const fn ap(desc: u64) -> u8 {
    ((desc >> AP_SHIFT) & 0b11) as u8
}

#[inline]
pub const fn uxn(desc: u64) -> bool {
    desc & UXN != 0
}

#[inline]
pub const fn pxn(desc: u64) -> bool {
    desc & PXN != 0
}

#[inline]
pub const fn af(desc: u64) -> bool {
    desc & AF != 0
}

#[inline]
pub const fn attr_index(desc: u64) -> u8 {
    ((desc >> ATTR_INDX_SHIFT) & 0b111) as u8
}

/// SH[1:0] of a block or page descriptor; `None` with DS = 1, where bits
/// [9:8] are address bits and shareability comes from TCR_EL1.SHn.
#[inline]
pub const fn sh(desc: u64, ds: bool) -> Option<u8> {
    if ds {
        None
    } else {
        Some(((desc >> SH_SHIFT) & 0b11) as u8)
    }
}

/// Encodes `addr` (4 KiB aligned) into a descriptor's address bits.
#[inline]
pub const fn encode_address(addr: u64, ds: bool) -> u64 {
    if ds {
        (addr & ADDR_MASK_LPA2_LO) | ((addr >> ADDR_LPA2_HI_TO_OA) & ADDR_LPA2_HI_MASK)
    } else {
        addr & ADDR_MASK_48
    }
}

/// A table descriptor pointing at `table` (no hierarchical attributes).
#[inline]
pub const fn make_table(table: u64, ds: bool) -> u64 {
    encode_address(table, ds) | 0b11
}

/// A block (levels 0..=2) or page (level 3) descriptor for `oa` with
/// attribute bits `attrs` (address and type bits in `attrs` are dropped;
/// with DS = 0 bits [9:8] of `attrs` are kept as SH).
#[inline]
pub const fn make_leaf(oa: u64, level: i8, attrs: u64, ds: bool) -> u64 {
    let addr_bits = if ds { ADDR_MASK_LPA2_LO | ADDR_LPA2_HI_MASK } else { ADDR_MASK_48 };
    let ty = if level == LAST_LEVEL { 0b11 } else { 0b01 };
    encode_address(oa & !(level_size(level) - 1), ds) | (attrs & !addr_bits & !0b11) | ty
}

/// A decoded descriptor, for reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Desc {
    pub raw: u64,
    pub level: i8,
    pub kind: Kind,
    /// Next-level table (Table) or output address (Block, Page); 0 otherwise.
    pub address: u64,
    pub poindex: u8,
    pub piindex: u8,
    pub ap: u8,
    pub uxn: bool,
    pub pxn: bool,
    pub af: bool,
}

impl Desc {
    #[inline]
    pub const fn decode(raw: u64, level: i8, ds: bool) -> Self {
        let kind = kind(raw, level, ds);
        let address = match kind {
            Kind::Table => table_address(raw, ds),
            Kind::Block | Kind::Page => output_address(raw, level, ds),
            Kind::Invalid | Kind::Reserved => 0,
        };
        Self {
            raw,
            level,
            kind,
            address,
            poindex: poindex(raw),
            piindex: piindex(raw),
            ap: ap(raw),
            uxn: uxn(raw),
            pxn: pxn(raw),
            af: af(raw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_geometry() {
        assert_eq!(level_shift(-1), 48);
        assert_eq!(level_shift(0), 39);
        assert_eq!(level_shift(1), 30);
        assert_eq!(level_shift(2), 21);
        assert_eq!(level_shift(3), 12);
        // Clamped, never a shift overflow.
        assert_eq!(level_shift(-100), 48);
        assert_eq!(level_shift(100), 12);
        assert_eq!(level_size(0), 512 << 30);
        assert_eq!(level_size(1), 1 << 30);
        assert_eq!(level_size(2), 2 << 20);
        assert_eq!(level_size(3), 4096);
    }

    #[test]
    fn kinds_per_level_without_lpa2() {
        let t = 0x4000_1003;
        let b = 0x4000_0001;
        for l in -1..=2 {
            assert_eq!(kind(t, l, false), Kind::Table, "level {l}");
        }
        assert_eq!(kind(t, 3, false), Kind::Page);
        assert_eq!(kind(b, -1, false), Kind::Reserved);
        assert_eq!(kind(b, 0, false), Kind::Reserved);
        assert_eq!(kind(b, 1, false), Kind::Block);
        assert_eq!(kind(b, 2, false), Kind::Block);
        assert_eq!(kind(b, 3, false), Kind::Reserved);
        assert_eq!(kind(0x4000_1002, 2, false), Kind::Invalid);
        assert_eq!(kind(0, 0, false), Kind::Invalid);
        assert_eq!(kind(t, 4, false), Kind::Reserved);
        assert_eq!(kind(t, -2, false), Kind::Reserved);
        assert!(!is_table(t, 3) && is_table(t, -1) && !is_table(t, -2));
    }

    #[test]
    fn kinds_per_level_with_lpa2() {
        let b = 0x4000_0001;
        // DS = 1 adds 512 GiB level-0 blocks; level -1 never has blocks.
        assert_eq!(kind(b, -1, true), Kind::Reserved);
        assert_eq!(kind(b, 0, true), Kind::Block);
        assert_eq!(kind(b, 1, true), Kind::Block);
        assert_eq!(kind(b, 3, true), Kind::Reserved);
        assert!(block_allowed(0, true) && !block_allowed(0, false));
        assert!(!block_allowed(-1, true) && !block_allowed(3, true));
    }

    #[test]
    fn addresses_without_lpa2() {
        // Bits [49:48] are RES0 and [9:8] are SH with DS = 0: not address.
        let d = 0x0003_8000_1234_5000 | 0x300 | 0b11;
        assert_eq!(table_address(d, false), 0x0000_8000_1234_5000);
        assert_eq!(output_address(d | 0x1F_F000, 2, false), 0x0000_8000_1220_0000);
        assert_eq!(sh(d, false), Some(0b11));
    }

    #[test]
    fn addresses_with_lpa2() {
        // OA[51:50] in bits [9:8], OA[49:48] in place.
        let pa = 0x000F_0000_8765_4000u64;
        let d = make_table(pa, true);
        assert_eq!(d & ADDR_LPA2_HI_MASK, 0b11 << 8);
        assert_eq!(d & (0b11 << 48), 0b11 << 48);
        assert_eq!(table_address(d, true), pa);
        assert_eq!(next_table(d, 0, true), Some(pa));
        assert_eq!(next_table(d, 3, true), None);
        assert_eq!(sh(d, true), None);
        // A level-0 block: OA bits below 512 GiB cleared.
        let blk = make_leaf(0x000A_8000_0000_0000, 0, AF, true);
        assert_eq!(kind(blk, 0, true), Kind::Block);
        assert_eq!(output_address(blk, 0, true), 0x000A_8000_0000_0000);
        assert_eq!(encode_address(0x0004_0000_0000_0000, true), 0b01 << 8);
        assert_eq!(address(0b10 << 8, true), 0x0008_0000_0000_0000);
    }

    #[test]
    fn seed_pte() {
        // The seed's faulting PTE: pte=10e80008ffbbb707 (48-bit VA, DS = 0).
        let pte = 0x10e8_0008_ffbb_b707u64;
        let d = Desc::decode(pte, 3, false);
        assert_eq!(d.kind, Kind::Page);
        assert_eq!(d.address, 0x0008_ffbb_b000);
        assert_eq!(d.poindex, 1); // pkey 1 = KPKEYS_PKEY_PGTABLES
        assert!(d.uxn && d.pxn && d.af);
        assert_eq!(d.ap, 0b00); // EL1 RW
        assert_eq!(attr_index(pte), 1);
        // The level-2 table descriptor above it: pmd=18000008ff82f403.
        let pmd = 0x1800_0008_ff82_f403u64;
        assert_eq!(next_table(pmd, 2, false), Some(0x0008_ff82_f000));
    }

    #[test]
    fn poindex_and_piindex() {
        for i in 0..8u64 {
            assert_eq!(poindex(i << 60), i as u8);
        }
        assert_eq!(poindex(1 << 63), 0); // bit 63 is not POIndex
        assert_eq!(poindex(1 << 59), 0);
        assert_eq!(piindex(0), 0);
        assert_eq!(piindex(AP1_USER), 0b0001);
        assert_eq!(piindex(DBM), 0b0010);
        assert_eq!(piindex(PXN), 0b0100);
        assert_eq!(piindex(UXN), 0b1000);
        assert_eq!(piindex(UXN | PXN | DBM | AP1_USER), 0b1111);
        // Neighbouring bits do not leak in.
        assert_eq!(piindex(AP2_RDONLY | (1 << 52) | (1 << 50) | (1 << 59)), 0);
    }

    #[test]
    fn permission_fields() {
        let d = AP2_RDONLY | AP1_USER | UXN;
        assert_eq!(ap(d), 0b11);
        assert!(uxn(d) && !pxn(d) && !af(d));
        assert_eq!(ap(AP1_USER), 0b01);
    }

    #[test]
    fn make_leaf_keeps_attributes_only() {
        let attrs = AF | UXN | PXN | (1 << 60) | 0xFFFF_F000 | 0b11;
        let l = make_leaf(0x4020_0000, 2, attrs, false);
        assert_eq!(kind(l, 2, false), Kind::Block);
        assert_eq!(output_address(l, 2, false), 0x4020_0000);
        assert_eq!(poindex(l), 1);
        let p = make_leaf(0x4020_1000, 3, AF, true);
        assert_eq!(kind(p, 3, true), Kind::Page);
    }
}
