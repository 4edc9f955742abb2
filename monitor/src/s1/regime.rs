//! The guest's stage-1 EL1&0 translation regime as data: TCR_EL1 and
//! TTBRn_EL1 decoded into one [`Layout`] per half (TTBR0 low addresses,
//! TTBR1 high addresses).
//!
//! Field positions: Arm ARM DDI 0487, D24.2.194 "TCR_EL1" (T0SZ [5:0],
//! EPD0 [7], TG0 [15:14] 00=4K 01=64K 10=16K, T1SZ [21:16], A1 [22],
//! EPD1 [23], TG1 [31:30] 01=16K 10=4K 11=64K, IPS [34:32], AS [36],
//! TBI0/1 [37]/[38], HA [39], HD [40], HPD0/1 [41]/[42], E0PD0/1 [55]/[56],
//! DS [59]) and "TTBR0_EL1" (ASID [63:48], BADDR [47:1], CnP [0]; with DS = 1
//! bits [5:2] hold table address bits [51:48] and tables of fewer than 8
//! entries are aligned to 64 bytes). Start level and TxSZ limits follow
//! Linux `arch/arm64/kvm/at.c` `setup_s1_walk` (AArch64.S1StartLevel(),
//! R_PLCGL, R_YXNYW, R_GTJBY): TxSZ < 16 (DS = 0) or < 12 (DS = 1), or
//! > 48, makes every walk fault at level 0.
//!
//! Only the 4 KiB granule is walked; 16 KiB / 64 KiB halves give
//! [`Unsupported`] so the hypervisor can report a coverage gap.

use super::desc::{level_shift, ENTRIES, PAGE_SHIFT};

pub const TCR_T0SZ_SHIFT: u32 = 0;
pub const TCR_T1SZ_SHIFT: u32 = 16;
pub const TCR_TXSZ_MASK: u64 = 0x3F;
pub const TCR_EPD0: u64 = 1 << 7;
pub const TCR_TG0_SHIFT: u32 = 14;
pub const TCR_A1: u64 = 1 << 22;
pub const TCR_EPD1: u64 = 1 << 23;
pub const TCR_TG1_SHIFT: u32 = 30;
pub const TCR_IPS_SHIFT: u32 = 32;
pub const TCR_AS: u64 = 1 << 36;
pub const TCR_TBI0: u64 = 1 << 37;
pub const TCR_TBI1: u64 = 1 << 38;
pub const TCR_HA: u64 = 1 << 39;
pub const TCR_HD: u64 = 1 << 40;
pub const TCR_HPD0: u64 = 1 << 41;
pub const TCR_HPD1: u64 = 1 << 42;
pub const TCR_E0PD0: u64 = 1 << 55;
pub const TCR_E0PD1: u64 = 1 << 56;
pub const TCR_DS: u64 = 1 << 59;

/// TCR2_EL1.D128, bit 5 (FEAT_D128: 128-bit descriptors, not supported).
pub const TCR2_D128: u64 = 1 << 5;

/// TTBRn_EL1.CnP, bit 0.
pub const TTBR_CNP: u64 = 1 << 0;
/// TTBRn_EL1.ASID, bits [63:48].
pub const TTBR_ASID_SHIFT: u32 = 48;
/// BADDR bits [47:1].
pub const TTBR_BADDR_MASK: u64 = 0x0000_FFFF_FFFF_FFFE;
/// With DS = 1: BADDR[47:6] in place, BADDR[51:48] in bits [5:2].
pub const TTBR_BADDR_MASK_LPA2: u64 = 0x0000_FFFF_FFFF_FFC0;
pub const TTBR_BADDR_HI_SHIFT: u32 = 2;

/// ID_AA64MMFR0_EL1.TGran4, bits [31:28]: 0b0001 = 4 KiB granule with
/// 52-bit addresses (FEAT_LPA2).
pub const MMFR0_TGRAN4_SHIFT: u32 = 28;

/// The largest address any supported configuration produces (52 bits).
pub const MAX_PA_BITS: u8 = 52;

/// Which translation table base register (and VA half).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Half {
    /// Low addresses; per-process tables.
    Ttbr0,
    /// High addresses; the kernel's tables.
    Ttbr1,
}

impl Half {
    /// The half that translates `va`: bit 55 selects TTBR1 (also with TBI).
    #[inline]
    pub const fn of(va: u64) -> Self {
        if va & (1 << 55) != 0 {
            Half::Ttbr1
        } else {
            Half::Ttbr0
        }
    }
}

/// Translation granule of one half.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Granule {
    K4,
    K16,
    K64,
    /// A reserved TGn encoding (the CPU picks an IMPLEMENTATION DEFINED size).
    Reserved(u8),
}

impl Granule {
    /// TG0 encoding: 00 = 4K, 01 = 64K, 10 = 16K.
    #[inline]
    pub const fn from_tg0(tg: u8) -> Self {
        match tg & 0b11 {
            0b00 => Granule::K4,
            0b01 => Granule::K64,
            0b10 => Granule::K16,
            r => Granule::Reserved(r),
        }
    }

    /// TG1 encoding: 01 = 16K, 10 = 4K, 11 = 64K.
    #[inline]
    pub const fn from_tg1(tg: u8) -> Self {
        match tg & 0b11 {
            0b01 => Granule::K16,
            0b10 => Granule::K4,
            0b11 => Granule::K64,
            r => Granule::Reserved(r),
        }
    }
}

/// Why a half cannot be walked by porwatch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unsupported {
    Granule16K,
    Granule64K,
    /// Reserved TGn value (IMPLEMENTATION DEFINED behaviour).
    GranuleReserved(u8),
    /// TxSZ outside 16..=48 (12..=48 with DS = 1): every access through this
    /// half takes a level-0 translation fault.
    TxSzOutOfRange(u8),
    /// TCR2_EL1.D128 = 1: 128-bit descriptors (VMSAv9-128).
    D128,
}

/// TCR_EL1 fields of one half, as programmed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HalfConfig {
    pub half: Half,
    /// TxSZ, 0..=63.
    pub tsz: u8,
    pub granule: Granule,
    /// EPDn: walks disabled (a TLB miss faults).
    pub epd: bool,
    /// TBIn: top byte ignored.
    pub tbi: bool,
    /// HPDn: hierarchical permissions disabled (also forced by POE/PIE).
    pub hpd: bool,
    /// E0PDn: unprivileged accesses fault.
    pub e0pd: bool,
}

/// TCR_EL1 decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Regime {
    pub tcr: u64,
    pub ttbr0: HalfConfig,
    pub ttbr1: HalfConfig,
    /// Effective DS (FEAT_LPA2 52-bit descriptors).
    pub ds: bool,
    /// IPS, 0..=7.
    pub ips: u8,
    /// A1: the ASID comes from TTBR1_EL1.
    pub a1: bool,
    /// AS: 16-bit ASIDs.
    pub asid16: bool,
    pub ha: bool,
    /// HD (behaves as 0 when HA is 0).
    pub hd: bool,
}

/// Bits [n-1:0] set (all 64 for n >= 64).
#[inline]
pub const fn low_mask(n: u32) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

const fn bit(v: u64, b: u64) -> bool {
    v & b != 0
}

impl Regime {
    /// Decodes `tcr`, taking DS as written. Use [`Regime::from_tcr_lpa2`]
    /// when the CPU may lack FEAT_LPA2 (DS is then RES0, effective 0).
    #[inline]
    pub const fn from_tcr(tcr: u64) -> Self {
        Self::from_tcr_lpa2(tcr, true)
    }

    /// Decodes `tcr`; DS counts only if `lpa2` (the CPU has FEAT_LPA2 for
    /// the 4 KiB granule, see [`lpa2_4k`]).
    #[inline]
    pub const fn from_tcr_lpa2(tcr: u64, lpa2: bool) -> Self {
        let ha = bit(tcr, TCR_HA);
        Self {
            tcr,
            ttbr0: HalfConfig {
                half: Half::Ttbr0,
                tsz: ((tcr >> TCR_T0SZ_SHIFT) & TCR_TXSZ_MASK) as u8,
                granule: Granule::from_tg0(((tcr >> TCR_TG0_SHIFT) & 0b11) as u8),
                epd: bit(tcr, TCR_EPD0),
                tbi: bit(tcr, TCR_TBI0),
                hpd: bit(tcr, TCR_HPD0),
                e0pd: bit(tcr, TCR_E0PD0),
            },
            ttbr1: HalfConfig {
                half: Half::Ttbr1,
                tsz: ((tcr >> TCR_T1SZ_SHIFT) & TCR_TXSZ_MASK) as u8,
                granule: Granule::from_tg1(((tcr >> TCR_TG1_SHIFT) & 0b11) as u8),
                epd: bit(tcr, TCR_EPD1),
                tbi: bit(tcr, TCR_TBI1),
                hpd: bit(tcr, TCR_HPD1),
                e0pd: bit(tcr, TCR_E0PD1),
            },
            ds: lpa2 && bit(tcr, TCR_DS),
            ips: ((tcr >> TCR_IPS_SHIFT) & 0b111) as u8,
            a1: bit(tcr, TCR_A1),
            asid16: bit(tcr, TCR_AS),
            ha,
            hd: ha && bit(tcr, TCR_HD),
        }
    }

    /// Output address size from IPS: 32, 36, 40, 42, 44, 48; 0b110 and
    /// 0b111 are 52 bits with DS = 1 (4 KiB), else 48. The hypervisor
    /// should also cap it at the CPU's PARange.
    #[inline]
    pub const fn oa_bits(&self) -> u8 {
        match self.ips {
            0 => 32,
            1 => 36,
            2 => 40,
            3 => 42,
            4 => 44,
            5 => 48,
            _ => {
                if self.ds {
                    52
                } else {
                    48
                }
            }
        }
    }

    #[inline]
    pub const fn half(&self, h: Half) -> &HalfConfig {
        match h {
            Half::Ttbr0 => &self.ttbr0,
            Half::Ttbr1 => &self.ttbr1,
        }
    }

    /// The walkable layout of half `h`, or why porwatch cannot walk it.
    /// A half disabled by EPDn still has a layout (`enabled == false`): its
    /// tables exist in memory and the guest may edit them.
    pub const fn layout(&self, h: Half) -> Result<Layout, Unsupported> {
        let c = self.half(h);
        match c.granule {
            Granule::K4 => {}
            Granule::K16 => return Err(Unsupported::Granule16K),
            Granule::K64 => return Err(Unsupported::Granule64K),
            Granule::Reserved(r) => return Err(Unsupported::GranuleReserved(r)),
        }
        let min = if self.ds { 12 } else { 16 };
        if c.tsz < min || c.tsz > 48 {
            return Err(Unsupported::TxSzOutOfRange(c.tsz));
        }
        let ia_bits = 64 - c.tsz;
        // AArch64.S1StartLevel(): 3 - ((ia_bits - 1) - pgshift) / stride.
        let start_level = 3 - ((ia_bits as u32 - 1 - PAGE_SHIFT) / 9) as i8;
        Ok(Layout {
            half: h,
            ia_bits,
            start_level,
            ds: self.ds,
            oa_bits: self.oa_bits(),
            enabled: !c.epd,
            tbi: c.tbi,
        })
    }
}

/// True if ID_AA64MMFR0_EL1 says the 4 KiB granule supports 52-bit
/// addresses (TGran4 = 0b0001), i.e. TCR_EL1.DS is writable.
#[inline]
pub const fn lpa2_4k(mmfr0: u64) -> bool {
    (mmfr0 >> MMFR0_TGRAN4_SHIFT) & 0xF == 0b0001
}

/// Rejects TCR2_EL1 settings porwatch cannot walk (D128).
#[inline]
pub const fn check_tcr2(tcr2: u64) -> Result<(), Unsupported> {
    if tcr2 & TCR2_D128 != 0 {
        Err(Unsupported::D128)
    } else {
        Ok(())
    }
}

/// One walkable (4 KiB granule) half of the regime.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Layout {
    pub half: Half,
    /// Input address bits, 64 - TxSZ (16..=52).
    pub ia_bits: u8,
    /// Initial lookup level, -1..=3 (-1: 52-bit VA with DS = 1).
    pub start_level: i8,
    /// DS = 1: LPA2 descriptor format.
    pub ds: bool,
    /// Output address bits (from IPS).
    pub oa_bits: u8,
    /// EPDn = 0.
    pub enabled: bool,
    /// TBIn = 1.
    pub tbi: bool,
}

impl Layout {
    /// Number of lookup levels (5 for level -1 .. 3).
    #[inline]
    pub const fn levels(&self) -> u8 {
        let n = 4 - self.start_level as i16;
        if n < 0 {
            0
        } else {
            n as u8
        }
    }

    /// Descriptors in the root table (2..=512).
    #[inline]
    pub const fn root_entries(&self) -> u16 {
        let shift = level_shift(self.start_level);
        let bits = (self.ia_bits as u32).saturating_sub(shift);
        if bits >= 9 {
            ENTRIES
        } else {
            1 << bits
        }
    }

    /// Bytes of the root table.
    #[inline]
    pub const fn root_bytes(&self) -> u64 {
        self.root_entries() as u64 * 8
    }

    /// Alignment of the root table: its size, at least 64 bytes with DS = 1.
    #[inline]
    pub const fn root_align(&self) -> u64 {
        let b = self.root_bytes();
        if self.ds && b < 64 {
            64
        } else {
            b
        }
    }

    /// The root table's address for a TTBR BADDR (low alignment bits, RES0,
    /// treated as zero; bits above 52 dropped).
    #[inline]
    pub const fn root_table(&self, baddr: u64) -> u64 {
        baddr & !(self.root_align() - 1) & low_mask(MAX_PA_BITS as u32)
    }

    /// Inclusive VA range this half translates.
    #[inline]
    pub const fn va_range(&self) -> (u64, u64) {
        let size_mask = low_mask(self.ia_bits as u32);
        match self.half {
            Half::Ttbr0 => (0, size_mask),
            Half::Ttbr1 => (!size_mask, u64::MAX),
        }
    }

    /// `va` with the top byte replaced by copies of bit 55 when TBI is set.
    #[inline]
    pub const fn untag(&self, va: u64) -> u64 {
        if self.tbi {
            (((va << 8) as i64) >> 8) as u64
        } else {
            va
        }
    }

    /// True if `va` (after TBI) lies in this half's range.
    #[inline]
    pub const fn contains(&self, va: u64) -> bool {
        let va = self.untag(va);
        let (lo, hi) = self.va_range();
        va >= lo && va <= hi
    }

    /// Index of `va`'s entry in its table at `level`.
    #[inline]
    pub const fn index(&self, va: u64, level: i8) -> u16 {
        let mask =
            if level == self.start_level { self.root_entries() as u64 - 1 } else { ENTRIES as u64 - 1 };
        ((va >> level_shift(level)) & mask) as u16
    }

    /// Entries of a table at `level` of this layout.
    #[inline]
    pub const fn entries_at(&self, level: i8) -> u16 {
        if level == self.start_level {
            self.root_entries()
        } else {
            ENTRIES
        }
    }

    /// True if `addr` does not fit the output address size.
    #[inline]
    pub const fn oa_too_large(&self, addr: u64) -> bool {
        self.oa_bits < 64 && (addr >> self.oa_bits) != 0
    }
}

/// TTBRn_EL1 decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ttbr(pub u64);

impl Ttbr {
    /// ASID, bits [63:48] (only [55:48] count unless TCR_EL1.AS).
    #[inline]
    pub const fn asid(self, asid16: bool) -> u16 {
        let a = (self.0 >> TTBR_ASID_SHIFT) as u16;
        if asid16 {
            a
        } else {
            a & 0xFF
        }
    }

    #[inline]
    pub const fn cnp(self) -> bool {
        self.0 & TTBR_CNP != 0
    }

    /// The base address field: bits [47:1] (DS = 0); bits [47:6] plus
    /// bits [51:48] from TTBR bits [5:2] (DS = 1).
    #[inline]
    pub const fn baddr(self, ds: bool) -> u64 {
        if ds {
            (self.0 & TTBR_BADDR_MASK_LPA2) | (((self.0 >> TTBR_BADDR_HI_SHIFT) & 0xF) << 48)
        } else {
            self.0 & TTBR_BADDR_MASK
        }
    }

    /// The root table address under `layout` (aligned as the walker does).
    #[inline]
    pub const fn table(self, layout: &Layout) -> u64 {
        layout.root_table(self.baddr(layout.ds))
    }

    /// Encodes a TTBR value (for tests and fixtures).
    #[inline]
    pub const fn encode(table: u64, asid: u16, ds: bool) -> u64 {
        let lo = if ds {
            (table & TTBR_BADDR_MASK_LPA2) | (((table >> 48) & 0xF) << TTBR_BADDR_HI_SHIFT)
        } else {
            table & TTBR_BADDR_MASK
        };
        lo | ((asid as u64) << TTBR_ASID_SHIFT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TCR_EL1 fields for a 4 KiB / 4 KiB configuration.
    fn tcr(t0sz: u64, t1sz: u64, ds: bool) -> u64 {
        t0sz | (t1sz << 16) | (0b10 << 30) | (0b101 << 32) | if ds { TCR_DS } else { 0 }
    }

    #[test]
    fn linux_48bit() {
        // Linux 6.1 defconfig: T0SZ = T1SZ = 16, TG1 = 4K, IPS = 48 bits,
        // A1, AS, TBI0, HA/HD.
        let v = tcr(16, 16, false) | TCR_A1 | TCR_AS | TCR_TBI0 | TCR_HA | TCR_HD;
        let r = Regime::from_tcr(v);
        assert!(r.a1 && r.asid16 && r.ha && r.hd && !r.ds);
        assert_eq!(r.oa_bits(), 48);
        let l0 = r.layout(Half::Ttbr0).unwrap();
        let l1 = r.layout(Half::Ttbr1).unwrap();
        for l in [l0, l1] {
            assert_eq!((l.ia_bits, l.start_level, l.levels()), (48, 0, 4));
            assert_eq!(l.root_entries(), 512);
            assert!(l.enabled);
        }
        assert!(l0.tbi && !l1.tbi);
        assert_eq!(l0.va_range(), (0, 0x0000_FFFF_FFFF_FFFF));
        assert_eq!(l1.va_range(), (0xFFFF_0000_0000_0000, u64::MAX));
        assert!(l0.contains(0x0000_7FFF_F000_0000));
        assert!(l0.contains(0x5A00_7FFF_F000_0000)); // tagged, TBI0
        assert!(!l0.contains(0x0001_0000_0000_0000));
        assert!(l1.contains(0xFFFF_8000_0000_0000));
        assert!(!l1.contains(0x5AFF_8000_0000_0000)); // no TBI1
        assert!(!l1.contains(0xFFFE_FFFF_FFFF_FFFF));
        assert_eq!(l1.index(0xFFFF_8000_4020_1000, 0), 256);
        assert_eq!(l1.index(0xFFFF_8000_4020_1000, 1), 1);
        assert_eq!(l1.index(0xFFFF_8000_4020_1000, 2), 1);
        assert_eq!(l1.index(0xFFFF_8000_4020_1000, 3), 1);
    }

    #[test]
    fn start_levels_by_txsz() {
        let cases: &[(u64, bool, i8, u16)] = &[
            (16, false, 0, 512),
            (17, false, 0, 256),
            (24, false, 0, 2),
            (25, false, 1, 512), // 39-bit VA, 3 levels
            (33, false, 1, 2),
            (34, false, 2, 512),
            (39, false, 2, 16),
            (42, false, 2, 2),
            (43, false, 3, 512),
            (48, false, 3, 16), // FEAT_TTST smallest
            (12, true, -1, 16), // 52-bit VA, 5 levels
            (15, true, -1, 2),
            (16, true, 0, 512), // DS = 1 but 48-bit VA: 4 levels
        ];
        for &(tsz, ds, sl, n) in cases {
            let r = Regime::from_tcr(tcr(tsz, tsz, ds));
            for h in [Half::Ttbr0, Half::Ttbr1] {
                let l = r.layout(h).unwrap();
                assert_eq!((l.start_level, l.root_entries()), (sl, n), "tsz {tsz} ds {ds}");
                assert_eq!(l.ia_bits as u64, 64 - tsz);
            }
        }
    }

    #[test]
    fn lpa2_52bit() {
        let r = Regime::from_tcr(tcr(12, 12, true) | (0b110 << 32));
        assert!(r.ds);
        assert_eq!(r.oa_bits(), 52);
        let l1 = r.layout(Half::Ttbr1).unwrap();
        assert_eq!((l1.ia_bits, l1.start_level, l1.levels()), (52, -1, 5));
        assert_eq!(l1.va_range().0, 0xFFF0_0000_0000_0000);
        assert_eq!(l1.index(0xFFF8_0000_0000_0000, -1), 8);
        assert_eq!(l1.root_bytes(), 128);
        // Without FEAT_LPA2 DS is RES0: T1SZ = 12 is then out of range.
        let r = Regime::from_tcr_lpa2(tcr(12, 12, true), false);
        assert!(!r.ds);
        assert_eq!(r.layout(Half::Ttbr1), Err(Unsupported::TxSzOutOfRange(12)));
        assert_eq!(r.oa_bits(), 48);
    }

    #[test]
    fn txsz_limits_and_granules() {
        let r = Regime::from_tcr(tcr(15, 49, false));
        assert_eq!(r.layout(Half::Ttbr0), Err(Unsupported::TxSzOutOfRange(15)));
        assert_eq!(r.layout(Half::Ttbr1), Err(Unsupported::TxSzOutOfRange(49)));
        let r = Regime::from_tcr(tcr(11, 63, true));
        assert_eq!(r.layout(Half::Ttbr0), Err(Unsupported::TxSzOutOfRange(11)));
        // TG0: 01 = 64K, 10 = 16K, 11 reserved; TG1: 01 = 16K, 11 = 64K, 00 reserved.
        let base = tcr(16, 16, false) & !(0b11 << 30);
        let r = Regime::from_tcr(base | (0b01 << 14) | (0b01 << 30));
        assert_eq!(r.layout(Half::Ttbr0), Err(Unsupported::Granule64K));
        assert_eq!(r.layout(Half::Ttbr1), Err(Unsupported::Granule16K));
        let r = Regime::from_tcr(base | (0b10 << 14) | (0b11 << 30));
        assert_eq!(r.layout(Half::Ttbr0), Err(Unsupported::Granule16K));
        assert_eq!(r.layout(Half::Ttbr1), Err(Unsupported::Granule64K));
        let r = Regime::from_tcr(base | (0b11 << 14));
        assert_eq!(r.layout(Half::Ttbr0), Err(Unsupported::GranuleReserved(3)));
        assert_eq!(r.layout(Half::Ttbr1), Err(Unsupported::GranuleReserved(0)));
        assert_eq!(check_tcr2(TCR2_D128 | 0b1110), Err(Unsupported::D128));
        assert_eq!(check_tcr2(0b1110), Ok(()));
    }

    #[test]
    fn epd_hpd_and_other_bits() {
        let r = Regime::from_tcr(tcr(16, 16, false) | TCR_EPD0 | TCR_HPD1 | TCR_E0PD0 | TCR_HD);
        let l0 = r.layout(Half::Ttbr0).unwrap();
        let l1 = r.layout(Half::Ttbr1).unwrap();
        assert!(!l0.enabled && l1.enabled);
        assert!(r.ttbr0.epd && !r.ttbr1.epd);
        assert!(!r.ttbr0.hpd && r.ttbr1.hpd);
        assert!(r.ttbr0.e0pd && !r.ttbr1.e0pd);
        assert!(!r.hd, "HD behaves as 0 without HA");
        let r = Regime::from_tcr(tcr(16, 16, false) | TCR_EPD1 | TCR_HPD0 | TCR_TBI1);
        assert!(!r.layout(Half::Ttbr1).unwrap().enabled);
        assert!(r.layout(Half::Ttbr1).unwrap().tbi);
        assert!(r.ttbr0.hpd);
    }

    #[test]
    fn ips_values() {
        let want = [32, 36, 40, 42, 44, 48, 48, 48];
        for (ips, &w) in want.iter().enumerate() {
            let r = Regime::from_tcr(tcr(16, 16, false) & !(0b111 << 32) | ((ips as u64) << 32));
            assert_eq!(r.oa_bits(), w);
        }
        let r = Regime::from_tcr(tcr(16, 16, true) | (0b111 << 32));
        assert_eq!(r.oa_bits(), 52);
    }

    #[test]
    fn ttbr_fields() {
        let t = Ttbr(0xABCD_0000_4123_4001);
        assert_eq!(t.asid(true), 0xABCD);
        assert_eq!(t.asid(false), 0xCD);
        assert!(t.cnp());
        assert_eq!(t.baddr(false), 0x4123_4000);
        // DS = 1: bits [5:2] are address bits [51:48].
        let v = Ttbr::encode(0x000F_0000_4123_4000, 7, true);
        assert_eq!(v & 0x3C, 0xF << 2);
        assert_eq!(Ttbr(v).baddr(true), 0x000F_0000_4123_4000);
        assert_eq!(Ttbr(v).asid(true), 7);
        assert_eq!(Ttbr(0x0000_0000_4000_0000 | (0b1010 << 2)).baddr(true), 0x000A_0000_4000_0000);
        assert_eq!(Ttbr(Ttbr::encode(0x4123_4000, 0, false)).baddr(false), 0x4123_4000);
    }

    #[test]
    fn root_alignment() {
        // 48-bit: a full page; stray low bits are treated as zero.
        let l = Regime::from_tcr(tcr(16, 16, false)).layout(Half::Ttbr1).unwrap();
        assert_eq!(Ttbr(0x4000_0F80).table(&l), 0x4000_0000);
        // 40-bit VA: a 2-entry level-0 root, 16-byte aligned without DS.
        let l = Regime::from_tcr(tcr(24, 24, false)).layout(Half::Ttbr0).unwrap();
        assert_eq!(l.root_align(), 16);
        assert_eq!(l.root_table(0x4000_0F90), 0x4000_0F90);
        assert_eq!(l.root_table(0x4000_0F98), 0x4000_0F90);
        // 49-bit VA with DS: a 2-entry level -1 root aligned to 64 bytes.
        let l = Regime::from_tcr(tcr(15, 15, true)).layout(Half::Ttbr0).unwrap();
        assert_eq!((l.start_level, l.root_entries(), l.root_align()), (-1, 2, 64));
        assert_eq!(l.root_table(0x4000_0F90), 0x4000_0F80);
        // 52-bit: 16 entries, 128 bytes.
        let l = Regime::from_tcr(tcr(12, 12, true)).layout(Half::Ttbr1).unwrap();
        assert_eq!(l.root_table(0x4000_0FC0), 0x4000_0F80);
    }

    #[test]
    fn half_selection_and_tbi_untag() {
        assert_eq!(Half::of(0xFFFF_0000_0000_0000), Half::Ttbr1);
        assert_eq!(Half::of(0x0080_0000_0000_0000), Half::Ttbr1); // bit 55
        assert_eq!(Half::of(0xFF7F_FFFF_FFFF_FFFF), Half::Ttbr0);
        let l1 = Regime::from_tcr(tcr(16, 16, false) | TCR_TBI1).layout(Half::Ttbr1).unwrap();
        assert_eq!(l1.untag(0x12FF_8000_0000_0000), 0xFFFF_8000_0000_0000);
        assert!(l1.contains(0x12FF_8000_0000_0000));
    }

    #[test]
    fn mmfr0_lpa2() {
        assert!(lpa2_4k(0x1 << 28));
        assert!(!lpa2_4k(0x0));
        assert!(!lpa2_4k(0xF << 28));
    }
}
