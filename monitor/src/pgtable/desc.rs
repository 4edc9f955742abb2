//! VMSAv8-64 descriptor bits for the 4 KiB granule, 48-bit output addresses
//! (no FEAT_LPA2 / DS=0), and typed stage-1 (EL2 regime) and stage-2 leaf
//! attributes.
//!
//! Bit positions: Arm ARM DDI 0487 (VMSAv8-64 chapter), "Translation table
//! descriptor formats" and "Memory attribute fields"; cross-checked with Linux
//! `arch/arm64/include/asm/pgtable-hwdef.h` (`PTE_*`, `PMD_SECT_*`,
//! `PTE_S2_MEMATTR`) and `arch/arm64/include/asm/kvm_pgtable.h`
//! (`KVM_PTE_LEAF_ATTR_LO_S1_*`, `KVM_PTE_LEAF_ATTR_LO_S2_*`,
//! `KVM_PTE_LEAF_ATTR_HI_S{1,2}_XN`).

/// Bit 0: descriptor valid.
pub const DESC_VALID: u64 = 1 << 0;
/// Bits [1:0]: descriptor type.
pub const DESC_TYPE_MASK: u64 = 0b11;
/// Block descriptor (levels 1 and 2 with a 4 KiB granule).
pub const DESC_TYPE_BLOCK: u64 = 0b01;
/// Table descriptor (levels 0..=2).
pub const DESC_TYPE_TABLE: u64 = 0b11;
/// Page descriptor (level 3).
pub const DESC_TYPE_PAGE: u64 = 0b11;
/// Output address / next-level table address, bits [47:12].
pub const DESC_OA_MASK: u64 = 0x0000_FFFF_FFFF_F000;

/// Lower attributes [11:2] and upper attributes [63:50] of a leaf.
pub const LEAF_ATTR_LO_MASK: u64 = 0xFFC;
pub const LEAF_ATTR_HI_MASK: u64 = 0xFFFC_0000_0000_0000;
pub const LEAF_ATTR_MASK: u64 = LEAF_ATTR_LO_MASK | LEAF_ATTR_HI_MASK;

// Stage 1 (EL2 regime, HCR_EL2.E2H = 0).
/// AttrIndx[2:0], bits [4:2]: index into MAIR_EL2.
pub const S1_ATTR_INDX_SHIFT: u32 = 2;
pub const S1_ATTR_INDX_MASK: u64 = 0b111 << S1_ATTR_INDX_SHIFT;
/// AP[2:1], bits [7:6]. In the single-EL EL2 regime AP[1] is RES1, so
/// read/write = 0b01 and read-only = 0b11 (KVM `KVM_PTE_LEAF_ATTR_LO_S1_AP_RW`
/// = 1 / `_RO` = 3 for non-VHE EL2).
pub const S1_AP_SHIFT: u32 = 6;
pub const S1_AP_MASK: u64 = 0b11 << S1_AP_SHIFT;
pub const S1_AP_RW: u64 = 0b01;
pub const S1_AP_RO: u64 = 0b11;
/// AP[2]: read-only.
pub const S1_AP2_RDONLY: u64 = 1 << 7;
/// nG, bit 11 (not used in the EL2 regime).
pub const S1_NG: u64 = 1 << 11;
/// XN, bit 54 (UXN in regimes with EL0; the only XN bit at non-VHE EL2).
pub const S1_XN: u64 = 1 << 54;
/// PXN, bit 53 (RES0 in the non-VHE EL2 regime).
pub const S1_PXN: u64 = 1 << 53;
/// GP, bit 50: BTI guarded page.
pub const S1_GP: u64 = 1 << 50;

// Shared lower attributes.
/// SH[1:0], bits [9:8].
pub const SH_SHIFT: u32 = 8;
pub const SH_MASK: u64 = 0b11 << SH_SHIFT;
/// AF, bit 10.
pub const DESC_AF: u64 = 1 << 10;
/// DBM, bit 51.
pub const DESC_DBM: u64 = 1 << 51;
/// Contiguous hint, bit 52.
pub const DESC_CONTIG: u64 = 1 << 52;
/// Software-defined bits [58:55].
pub const DESC_SW_MASK: u64 = 0xF << 55;

// Stage 2.
/// MemAttr[3:0], bits [5:2] (HCR_EL2.FWB = 0 encoding).
pub const S2_MEMATTR_SHIFT: u32 = 2;
pub const S2_MEMATTR_MASK: u64 = 0xF << S2_MEMATTR_SHIFT;
/// MemAttr: Device-nGnRnE.
pub const S2_MEMATTR_DEVICE_NGNRNE: u8 = 0b0000;
/// MemAttr: Device-nGnRE.
pub const S2_MEMATTR_DEVICE_NGNRE: u8 = 0b0001;
/// MemAttr: Normal, Outer and Inner Non-cacheable.
pub const S2_MEMATTR_NORMAL_NC: u8 = 0b0101;
/// MemAttr: Normal, Outer and Inner Write-Back Cacheable.
pub const S2_MEMATTR_NORMAL_WB: u8 = 0b1111;
/// S2AP[1:0], bits [7:6]: bit 6 = read, bit 7 = write.
pub const S2AP_SHIFT: u32 = 6;
pub const S2AP_MASK: u64 = 0b11 << S2AP_SHIFT;
pub const S2AP_R: u64 = 1 << 6;
pub const S2AP_W: u64 = 1 << 7;
/// XN[1:0], bits [54:53] (FEAT_XNX; without it bit 53 is RES0 and bit 54
/// is XN).
pub const S2_XN_SHIFT: u32 = 53;
pub const S2_XN_MASK: u64 = 0b11 << S2_XN_SHIFT;

/// Bits a live leaf may change without break-before-make (Arm ARM DDI 0487,
/// "Translation table entry update" / break-before-make requirements:
/// permission, access flag, DBM and software bits; not the output address,
/// memory type, shareability, or descriptor type).
pub const NO_BBM_CHANGE_MASK: u64 = S1_AP_MASK | DESC_AF | DESC_DBM | S2_XN_MASK | DESC_SW_MASK;

/// Shareability, SH[1:0].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Shareability {
    NonShareable = 0b00,
    OuterShareable = 0b10,
    InnerShareable = 0b11,
}

impl Shareability {
    #[inline]
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0b10 => Shareability::OuterShareable,
            0b11 => Shareability::InnerShareable,
            // 0b01 is reserved (CONSTRAINED UNPREDICTABLE); report as non-shareable.
            _ => Shareability::NonShareable,
        }
    }
}

/// Stage-1 EL2 access permission.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum S1Ap {
    ReadWrite,
    ReadOnly,
}

/// Stage-1 leaf attributes for the non-VHE EL2 regime.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct S1Attrs {
    /// MAIR_EL2 index (see `regs::MAIR_IDX_*`), 0..=7.
    pub attr_index: u8,
    pub ap: S1Ap,
    pub sh: Shareability,
    pub af: bool,
    pub xn: bool,
}

impl S1Attrs {
    /// Normal WB memory, read/write, never executable.
    pub const NORMAL_RW: Self = Self {
        attr_index: super::regs::MAIR_IDX_NORMAL,
        ap: S1Ap::ReadWrite,
        sh: Shareability::InnerShareable,
        af: true,
        xn: true,
    };
    /// Normal WB memory, read-only, executable (hypervisor text).
    pub const NORMAL_RX: Self = Self {
        attr_index: super::regs::MAIR_IDX_NORMAL,
        ap: S1Ap::ReadOnly,
        sh: Shareability::InnerShareable,
        af: true,
        xn: false,
    };
    /// Normal WB memory, read-only, never executable.
    pub const NORMAL_RO: Self = Self {
        attr_index: super::regs::MAIR_IDX_NORMAL,
        ap: S1Ap::ReadOnly,
        sh: Shareability::InnerShareable,
        af: true,
        xn: true,
    };
    /// Device-nGnRE, read/write, never executable.
    pub const DEVICE_RW: Self = Self {
        attr_index: super::regs::MAIR_IDX_DEVICE_NGNRE,
        ap: S1Ap::ReadWrite,
        sh: Shareability::NonShareable,
        af: true,
        xn: true,
    };

    /// The leaf attribute bits (no type, no address).
    #[inline]
    pub const fn bits(self) -> u64 {
        let ap = match self.ap {
            S1Ap::ReadWrite => S1_AP_RW,
            S1Ap::ReadOnly => S1_AP_RO,
        };
        ((self.attr_index as u64 & 0b111) << S1_ATTR_INDX_SHIFT)
            | (ap << S1_AP_SHIFT)
            | ((self.sh as u64) << SH_SHIFT)
            | if self.af { DESC_AF } else { 0 }
            | if self.xn { S1_XN } else { 0 }
    }

    /// Decodes the attributes of a stage-1 leaf descriptor.
    #[inline]
    pub const fn from_desc(desc: u64) -> Self {
        Self {
            attr_index: ((desc & S1_ATTR_INDX_MASK) >> S1_ATTR_INDX_SHIFT) as u8,
            ap: if desc & S1_AP2_RDONLY != 0 { S1Ap::ReadOnly } else { S1Ap::ReadWrite },
            sh: Shareability::from_bits(((desc & SH_MASK) >> SH_SHIFT) as u8),
            af: desc & DESC_AF != 0,
            xn: desc & S1_XN != 0,
        }
    }
}

/// Stage-2 access permission, S2AP[1:0].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum S2Ap {
    None = 0b00,
    ReadOnly = 0b01,
    WriteOnly = 0b10,
    ReadWrite = 0b11,
}

impl S2Ap {
    #[inline]
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0b00 => S2Ap::None,
            0b01 => S2Ap::ReadOnly,
            0b10 => S2Ap::WriteOnly,
            _ => S2Ap::ReadWrite,
        }
    }
}

/// Stage-2 execute-never, XN[1:0] (FEAT_XNX encoding; `NoExec` = 0b10 is
/// also the plain "XN bit 54 set" of implementations without FEAT_XNX).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum S2Xn {
    /// Executable at EL1 and EL0.
    Exec = 0b00,
    /// Not executable at EL1, executable at EL0 (FEAT_XNX only).
    NoExecEl1 = 0b01,
    /// Not executable at any EL.
    NoExec = 0b10,
    /// Executable at EL1, not at EL0 (FEAT_XNX only).
    NoExecEl0 = 0b11,
}

impl S2Xn {
    #[inline]
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0b00 => S2Xn::Exec,
            0b01 => S2Xn::NoExecEl1,
            0b10 => S2Xn::NoExec,
            _ => S2Xn::NoExecEl0,
        }
    }
}

/// Stage-2 leaf attributes (HCR_EL2.FWB = 0).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct S2Attrs {
    /// MemAttr[3:0], e.g. [`S2_MEMATTR_NORMAL_WB`].
    pub mem_attr: u8,
    pub s2ap: S2Ap,
    pub sh: Shareability,
    pub af: bool,
    pub xn: S2Xn,
}

impl S2Attrs {
    /// Guest RAM: Normal WB, RW, inner shareable, AF, executable. A page
    /// descriptor's low 12 bits are `0x7FF`.
    pub const NORMAL_RW: Self = Self {
        mem_attr: S2_MEMATTR_NORMAL_WB,
        s2ap: S2Ap::ReadWrite,
        sh: Shareability::InnerShareable,
        af: true,
        xn: S2Xn::Exec,
    };
    /// Guest RAM made read-only (low bits `0x77F` for a page).
    pub const NORMAL_RO: Self = Self { s2ap: S2Ap::ReadOnly, ..Self::NORMAL_RW };
    /// Device MMIO: Device-nGnRE, RW, AF, never executable (low bits `0x4C7`
    /// for a page, `0x4C5` for a block, plus bit 54).
    pub const DEVICE_RW: Self = Self {
        mem_attr: S2_MEMATTR_DEVICE_NGNRE,
        s2ap: S2Ap::ReadWrite,
        sh: Shareability::NonShareable,
        af: true,
        xn: S2Xn::NoExec,
    };

    /// The leaf attribute bits (no type, no address).
    #[inline]
    pub const fn bits(self) -> u64 {
        ((self.mem_attr as u64 & 0xF) << S2_MEMATTR_SHIFT)
            | ((self.s2ap as u64) << S2AP_SHIFT)
            | ((self.sh as u64) << SH_SHIFT)
            | if self.af { DESC_AF } else { 0 }
            | ((self.xn as u64) << S2_XN_SHIFT)
    }

    /// Decodes the attributes of a stage-2 leaf descriptor.
    #[inline]
    pub const fn from_desc(desc: u64) -> Self {
        Self {
            mem_attr: ((desc & S2_MEMATTR_MASK) >> S2_MEMATTR_SHIFT) as u8,
            s2ap: S2Ap::from_bits(((desc & S2AP_MASK) >> S2AP_SHIFT) as u8),
            sh: Shareability::from_bits(((desc & SH_MASK) >> SH_SHIFT) as u8),
            af: desc & DESC_AF != 0,
            xn: S2Xn::from_bits(((desc & S2_XN_MASK) >> S2_XN_SHIFT) as u8),
        }
    }
}

/// Leaf attributes for either regime.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Attrs {
    Stage1(S1Attrs),
    Stage2(S2Attrs),
}

impl From<S1Attrs> for Attrs {
    #[inline]
    fn from(a: S1Attrs) -> Self {
        Attrs::Stage1(a)
    }
}

impl From<S2Attrs> for Attrs {
    #[inline]
    fn from(a: S2Attrs) -> Self {
        Attrs::Stage2(a)
    }
}

impl Attrs {
    #[inline]
    pub const fn bits(self) -> u64 {
        match self {
            Attrs::Stage1(a) => a.bits(),
            Attrs::Stage2(a) => a.bits(),
        }
    }
}

// ---------------------------------------------------------------------------
// Descriptor encode/decode helpers.
// ---------------------------------------------------------------------------

#[inline]
pub const fn is_valid(desc: u64) -> bool {
    desc & DESC_VALID != 0
}

/// A table descriptor (only possible at levels 0..=2).
#[inline]
pub const fn is_table(desc: u64, level: u8) -> bool {
    level < 3 && desc & DESC_TYPE_MASK == DESC_TYPE_TABLE
}

/// A block descriptor (levels 1 and 2 with a 4 KiB granule, DS = 0).
#[inline]
pub const fn is_block(desc: u64, level: u8) -> bool {
    (level == 1 || level == 2) && desc & DESC_TYPE_MASK == DESC_TYPE_BLOCK
}

/// A page descriptor (level 3).
#[inline]
pub const fn is_page(desc: u64, level: u8) -> bool {
    level == 3 && desc & DESC_TYPE_MASK == DESC_TYPE_PAGE
}

/// A block or page descriptor.
#[inline]
pub const fn is_leaf(desc: u64, level: u8) -> bool {
    is_block(desc, level) || is_page(desc, level)
}

/// Output address (or next-level table address), bits [47:12].
#[inline]
pub const fn output_address(desc: u64) -> u64 {
    desc & DESC_OA_MASK
}

/// A table descriptor pointing at `table_pa` (no hierarchical attributes).
#[inline]
pub const fn table_desc(table_pa: u64) -> u64 {
    (table_pa & DESC_OA_MASK) | DESC_TYPE_TABLE
}

/// A page (level 3) or block (levels 1..=2) descriptor.
#[inline]
pub const fn leaf_desc(pa: u64, attr_bits: u64, level: u8) -> u64 {
    let ty = if level == 3 { DESC_TYPE_PAGE } else { DESC_TYPE_BLOCK };
    (pa & DESC_OA_MASK) | (attr_bits & LEAF_ATTR_MASK) | ty
}

/// Replaces S2AP in a stage-2 leaf.
#[inline]
pub const fn with_s2ap(desc: u64, ap: S2Ap) -> u64 {
    (desc & !S2AP_MASK) | ((ap as u64) << S2AP_SHIFT)
}

/// Replaces XN[1:0] in a stage-2 leaf.
#[inline]
pub const fn with_s2xn(desc: u64, xn: S2Xn) -> u64 {
    (desc & !S2_XN_MASK) | ((xn as u64) << S2_XN_SHIFT)
}
