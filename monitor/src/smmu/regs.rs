//! SMMUv3 registers porwatch programs (IHI 0070 chapter 6), their offsets
//! and fields, and the decoded identification registers.

/// Page 0 register offsets.
pub const IDR0: usize = 0x00;
pub const IDR1: usize = 0x04;
pub const IDR5: usize = 0x14;
pub const CR0: usize = 0x20;
pub const CR0ACK: usize = 0x24;
pub const CR1: usize = 0x28;
pub const CR2: usize = 0x2c;
pub const GBPA: usize = 0x44;
pub const IRQ_CTRL: usize = 0x50;
pub const IRQ_CTRLACK: usize = 0x54;
pub const GERROR: usize = 0x60;
pub const GERRORN: usize = 0x64;
/// 64-bit.
pub const STRTAB_BASE: usize = 0x80;
pub const STRTAB_BASE_CFG: usize = 0x88;
/// 64-bit.
pub const CMDQ_BASE: usize = 0x90;
pub const CMDQ_PROD: usize = 0x98;
pub const CMDQ_CONS: usize = 0x9c;
/// 64-bit.
pub const EVENTQ_BASE: usize = 0xa0;
/// Offset of register page 1 (SMMUv3 frames are two 64 KiB pages; QEMU
/// aliases them, hardware does not).
pub const PAGE1: usize = 0x1_0000;
/// The event queue's index registers live in page 1.
pub const EVENTQ_PROD: usize = PAGE1 + 0xa8;
pub const EVENTQ_CONS: usize = PAGE1 + 0xac;
/// Size of the register frame (pages 0 and 1).
pub const FRAME_SIZE: u64 = 0x2_0000;

/// CR0 / CR0ACK bits.
pub const CR0_SMMUEN: u32 = 1 << 0;
pub const CR0_EVENTQEN: u32 = 1 << 2;
pub const CR0_CMDQEN: u32 = 1 << 3;

/// CR1 (attributes of the SMMU's own table and queue accesses): inner and
/// outer Write-Back cacheable, Inner Shareable, as the CPU maps hyp memory.
pub const CR1_QUEUE_IC_SHIFT: u32 = 0;
pub const CR1_QUEUE_OC_SHIFT: u32 = 2;
pub const CR1_QUEUE_SH_SHIFT: u32 = 4;
pub const CR1_TABLE_IC_SHIFT: u32 = 6;
pub const CR1_TABLE_OC_SHIFT: u32 = 8;
pub const CR1_TABLE_SH_SHIFT: u32 = 10;
/// Cacheability field value: Write-Back.
pub const CACHE_WB: u32 = 0b01;
/// Shareability field value: Inner Shareable.
pub const SH_INNER: u32 = 0b11;
/// CR1 value porwatch writes.
pub const CR1_VALUE: u32 = (CACHE_WB << CR1_QUEUE_IC_SHIFT)
    | (CACHE_WB << CR1_QUEUE_OC_SHIFT)
    | (SH_INNER << CR1_QUEUE_SH_SHIFT)
    | (CACHE_WB << CR1_TABLE_IC_SHIFT)
    | (CACHE_WB << CR1_TABLE_OC_SHIFT)
    | (SH_INNER << CR1_TABLE_SH_SHIFT);

/// CR2: RECINVSID (record C_BAD_STREAMID events), PTM (private TLB
/// maintenance: porwatch issues its own invalidations; broadcast TLBIs from
/// the CPU are not relied on).
pub const CR2_RECINVSID: u32 = 1 << 1;
pub const CR2_PTM: u32 = 1 << 2;
pub const CR2_VALUE: u32 = CR2_RECINVSID | CR2_PTM;

/// GBPA: ABORT (transactions are aborted while SMMUEN = 0), UPDATE
/// (write handshake: set with the new value, cleared by the SMMU).
pub const GBPA_ABORT: u32 = 1 << 20;
pub const GBPA_UPDATE: u32 = 1 << 31;

/// GERROR / GERRORN bits porwatch acts on.
pub const GERROR_CMDQ_ERR: u32 = 1 << 0;
pub const GERROR_EVENTQ_ABT_ERR: u32 = 1 << 2;

/// STRTAB_BASE / CMDQ_BASE / EVENTQ_BASE: address bits [51:6] (tables) or
/// [51:5] (queues), and the read/write-allocate hint bit 62.
pub const BASE_ADDR_MASK: u64 = 0x000f_ffff_ffff_ffc0;
pub const QUEUE_ADDR_MASK: u64 = 0x000f_ffff_ffff_ffe0;
pub const BASE_ALLOC_HINT: u64 = 1 << 62;

/// STRTAB_BASE_CFG fields.
pub const STRTAB_LOG2SIZE_SHIFT: u32 = 0;
pub const STRTAB_SPLIT_SHIFT: u32 = 6;
pub const STRTAB_FMT_SHIFT: u32 = 16;

/// CMDQ_CONS.ERR, bits [30:24]: why the command at CONS was refused.
pub const CMDQ_CONS_ERR_SHIFT: u32 = 24;
pub const CMDQ_CONS_ERR_MASK: u32 = 0x7f << CMDQ_CONS_ERR_SHIFT;

/// Stream table format (STRTAB_BASE_CFG.FMT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamTableFormat {
    /// One array of STEs indexed by StreamID.
    Linear = 0,
    /// Level-1 descriptors, each pointing to an array of STEs.
    TwoLevel = 1,
}

/// IDR0.TTF: which translation table formats the SMMU walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFormats {
    Reserved = 0,
    AArch32Only = 1,
    AArch64Only = 2,
    Both = 3,
}

/// IDR0.TTENDIAN: table endianness the SMMU supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableEndian {
    Mixed = 0,
    Reserved = 1,
    LittleOnly = 2,
    BigOnly = 3,
}

/// What the identification registers say, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// IDR0.S2P: stage 2 implemented.
    pub stage2: bool,
    /// IDR0.S1P: stage 1 implemented.
    pub stage1: bool,
    pub table_formats: TableFormats,
    /// IDR0.COHACC: the SMMU's table, queue and walk accesses are coherent
    /// with the CPU's caches.
    pub coherent: bool,
    /// IDR0.VMID16.
    pub vmid16: bool,
    pub endian: TableEndian,
    /// IDR0.ST_LEVEL = 0b01: 2-level stream tables supported.
    pub two_level_streams: bool,
    /// IDR1.SIDSIZE: StreamID bits.
    pub sid_bits: u8,
    /// IDR1.CMDQS / EVENTQS: log2 of the largest queues.
    pub cmdq_log2_max: u8,
    pub eventq_log2_max: u8,
    /// IDR5.OAS as a number of bits.
    pub oas_bits: u8,
    /// IDR5.OAS field (same encoding as STE.S2PS and VTCR_EL2.PS).
    pub oas_field: u8,
    /// IDR5.GRAN4K.
    pub granule_4k: bool,
}

/// Output address size for an IDR5.OAS / S2PS encoding.
pub const fn oas_bits(field: u8) -> Option<u8> {
    Some(match field {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        6 => 52,
        _ => return None,
    })
}

const fn field(v: u32, shift: u32, bits: u32) -> u32 {
    (v >> shift) & ((1 << bits) - 1)
}

impl Features {
    /// Decodes IDR0, IDR1 and IDR5. A reserved OAS encoding reads as 32
    /// bits (the smallest: nothing above it is assumed to work).
    pub const fn decode(idr0: u32, idr1: u32, idr5: u32) -> Self {
        let oas_field = field(idr5, 0, 3) as u8;
        let (oas_field, oas_bits) = match oas_bits(oas_field) {
            Some(b) => (oas_field, b),
            None => (0, 32),
        };
        Features {
            stage2: field(idr0, 0, 1) == 1,
            stage1: field(idr0, 1, 1) == 1,
            table_formats: match field(idr0, 2, 2) {
                1 => TableFormats::AArch32Only,
                2 => TableFormats::AArch64Only,
                3 => TableFormats::Both,
                _ => TableFormats::Reserved,
            },
            coherent: field(idr0, 4, 1) == 1,
            vmid16: field(idr0, 18, 1) == 1,
            endian: match field(idr0, 21, 2) {
                0 => TableEndian::Mixed,
                2 => TableEndian::LittleOnly,
                3 => TableEndian::BigOnly,
                _ => TableEndian::Reserved,
            },
            two_level_streams: field(idr0, 27, 2) == 1,
            sid_bits: field(idr1, 0, 6) as u8,
            eventq_log2_max: field(idr1, 16, 5) as u8,
            cmdq_log2_max: field(idr1, 21, 5) as u8,
            oas_bits,
            oas_field,
            granule_4k: field(idr5, 4, 1) == 1,
        }
    }

    /// Input address size of stage 2: OAS, or at least 40 bits when
    /// AArch32 tables are supported (IHI 0070 3.4).
    pub const fn ias_bits(&self) -> u8 {
        match self.table_formats {
            TableFormats::AArch32Only | TableFormats::Both if self.oas_bits < 40 => 40,
            _ => self.oas_bits,
        }
    }
}

/// Why porwatch cannot use an SMMU to confine devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// No stage 2 (QEMU's arm-smmuv3 with `stage=1`).
    NoStage2,
    /// It cannot walk AArch64 (VMSAv8-64) tables.
    NoAArch64Tables,
    /// It cannot walk little-endian tables.
    NoLittleEndian,
    /// No 4 KiB granule.
    No4KGranule,
    /// Not coherent with the CPU's caches: porwatch would have to clean
    /// every stage-2 table change to the point of coherency; it does not.
    NotCoherent,
    /// Its input address size cannot use the CPU's stage-2 tables (the
    /// start level would not match).
    Geometry,
    /// Queues smaller than porwatch's.
    SmallQueues,
    /// It did not acknowledge a control register write.
    NoAck,
}

impl Unusable {
    /// Short text for the console.
    pub const fn text(self) -> &'static str {
        match self {
            Unusable::NoStage2 => "no stage 2",
            Unusable::NoAArch64Tables => "no AArch64 table walks",
            Unusable::NoLittleEndian => "no little-endian tables",
            Unusable::No4KGranule => "no 4 KiB granule",
            Unusable::NotCoherent => "not cache coherent",
            Unusable::Geometry => "its address size cannot use the CPU's stage-2 tables",
            Unusable::SmallQueues => "queues too small",
            Unusable::NoAck => "did not acknowledge a control write",
        }
    }
}

/// Checks what porwatch needs, given the queue sizes it wants.
pub const fn check(f: &Features, cmdq_log2: u8, eventq_log2: u8) -> Result<(), Unusable> {
    if !f.stage2 {
        return Err(Unusable::NoStage2);
    }
    if !matches!(f.table_formats, TableFormats::AArch64Only | TableFormats::Both) {
        return Err(Unusable::NoAArch64Tables);
    }
    if !matches!(f.endian, TableEndian::Mixed | TableEndian::LittleOnly) {
        return Err(Unusable::NoLittleEndian);
    }
    if !f.granule_4k {
        return Err(Unusable::No4KGranule);
    }
    if !f.coherent {
        return Err(Unusable::NotCoherent);
    }
    if f.cmdq_log2_max < cmdq_log2 || f.eventq_log2_max < eventq_log2 {
        return Err(Unusable::SmallQueues);
    }
    Ok(())
}

/// Stream table layout porwatch builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamTable {
    pub format: StreamTableFormat,
    /// STRTAB_BASE_CFG.LOG2SIZE: StreamIDs covered.
    pub log2size: u8,
    /// STRTAB_BASE_CFG.SPLIT (2-level only).
    pub split: u8,
}

/// StreamIDs per level-2 array (and the size of a linear table): 2^8, one
/// PCIe bus. Every stream gets the same STE, so with a 2-level table all
/// level-1 descriptors point to one level-2 array of 2^SPLIT STEs: 64 KiB
/// StreamIDs cost 2 KiB of descriptors and 16 KiB of STEs.
pub const STE_SPLIT: u8 = 8;
/// Level-1 descriptors porwatch reserves room for: 2^(16 - SPLIT).
pub const MAX_L1_LOG2: u8 = 16 - STE_SPLIT;

impl StreamTable {
    /// All StreamIDs through one shared level-2 array where 2-level tables
    /// exist; else a linear table of 2^SPLIT entries (higher StreamIDs are
    /// refused with C_BAD_STREAMID, and reported).
    pub const fn choose(f: &Features) -> Self {
        let sid_bits =
            if f.sid_bits > STE_SPLIT + MAX_L1_LOG2 { STE_SPLIT + MAX_L1_LOG2 } else { f.sid_bits };
        if f.two_level_streams && sid_bits > STE_SPLIT {
            StreamTable { format: StreamTableFormat::TwoLevel, log2size: sid_bits, split: STE_SPLIT }
        } else {
            let log2size = if sid_bits < STE_SPLIT { sid_bits } else { STE_SPLIT };
            StreamTable { format: StreamTableFormat::Linear, log2size, split: 0 }
        }
    }

    /// Number of level-1 descriptors (2-level) used.
    pub const fn l1_entries(&self) -> usize {
        match self.format {
            StreamTableFormat::TwoLevel => 1 << (self.log2size - self.split),
            StreamTableFormat::Linear => 0,
        }
    }

    /// Number of STEs used (the linear table, or the shared level-2 array).
    pub const fn ste_entries(&self) -> usize {
        match self.format {
            StreamTableFormat::TwoLevel => 1 << self.split,
            StreamTableFormat::Linear => 1 << self.log2size,
        }
    }

    /// STRTAB_BASE_CFG.
    pub const fn base_cfg(&self) -> u32 {
        ((self.format as u32) << STRTAB_FMT_SHIFT)
            | ((self.split as u32) << STRTAB_SPLIT_SHIFT)
            | ((self.log2size as u32) << STRTAB_LOG2SIZE_SHIFT)
    }
}

/// STRTAB_BASE for a table at `pa` (read-allocate hint set).
pub const fn strtab_base(pa: u64) -> u64 {
    BASE_ALLOC_HINT | (pa & BASE_ADDR_MASK)
}

/// CMDQ_BASE / EVENTQ_BASE for a queue of 2^`log2` entries at `pa`.
pub const fn queue_base(pa: u64, log2: u8) -> u64 {
    BASE_ALLOC_HINT | (pa & QUEUE_ADDR_MASK) | log2 as u64
}
