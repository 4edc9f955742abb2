//! What part of the guest's address space a VA belongs to, for grouping
//! the audit's findings: Linux's arm64 kernel layout for the TTBR1 half,
//! "user" for TTBR0 under such a kernel, plain 1 GiB VA ranges otherwise.
//!
//! The layout is `arch/arm64/include/asm/memory.h` (unchanged from 5.11 to
//! 6.19 apart from the modules size), for a 4 KiB granule, without KASAN,
//! with `STRUCT_PAGE_MAX_SHIFT` = 6 (a struct page of at most 64 bytes):
//!
//! | region | from | to |
//! |---|---|---|
//! | linear map | `PAGE_OFFSET` = -2^VA_BITS | `PAGE_END` = -2^(VA_BITS_MIN - 1) |
//! | modules, kernel image, vmalloc | `PAGE_END` | `VMALLOC_END` = `VMEMMAP_START` - 256 MiB |
//! | fixmap (and guard pages) | `VMALLOC_END` | `VMEMMAP_START` = -2^(VA_BITS - 6) |
//! | vmemmap | `VMEMMAP_START` | `VMEMMAP_END` = `VMEMMAP_START` + (`PAGE_END` - `PAGE_OFFSET`) / 64 |
//! | PCI I/O | `VMEMMAP_END` + 8 MiB | + 16 MiB |
//!
//! `VA_BITS_MIN` is 48 for a 52-bit kernel, else VA_BITS. The kernel image
//! lies in the vmalloc range (at `KIMAGE_VADDR` plus the KASLR offset); the
//! reader knows where from the guest's symbols (`_text`..`_end`), and
//! otherwise from VBAR_EL1 (the kernel's vectors are in its text).

use crate::s1::Half;

/// A part of the guest's address space.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub enum Region {
    /// The kernel's linear map of RAM.
    Linear,
    /// The kernel image (text, data, and the tables it holds).
    KernelImage,
    /// Modules and vmalloc (ioremap, vmap stacks, ...).
    Vmalloc,
    /// The fixmap (early ioremap, text patching) and its guard pages.
    Fixmap,
    /// The struct page array.
    Vmemmap,
    /// PCI I/O space.
    PciIo,
    /// The rest of the kernel half.
    KernelOther,
    /// The TTBR0 half of a Linux-like guest.
    User,
    /// A guest without Linux's layout: the 1 GiB range holding the VA.
    VaRange(u64),
}

/// Size of the plain VA ranges.
pub const VA_RANGE: u64 = 1 << 30;

impl Region {
    /// A short name: `linear map`, `kernel image`, ..., `VA 0x40000000`.
    pub fn name(&self) -> &'static str {
        match self {
            Region::Linear => "linear map",
            Region::KernelImage => "kernel image",
            Region::Vmalloc => "vmalloc/modules",
            Region::Fixmap => "fixmap",
            Region::Vmemmap => "vmemmap",
            Region::PciIo => "PCI I/O",
            Region::KernelOther => "kernel (other)",
            Region::User => "user",
            Region::VaRange(_) => "VA range",
        }
    }
}

const SZ_8M: u64 = 8 << 20;
const SZ_16M: u64 = 16 << 20;
const SZ_256M: u64 = 256 << 20;
/// log2 of the largest struct page (`STRUCT_PAGE_MAX_SHIFT`).
const STRUCT_PAGE_MAX_SHIFT: u32 = 6;
const PAGE_SHIFT: u32 = 12;

/// Linux's arm64 VA layout for one TTBR1 size.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LinuxLayout {
    pub va_bits: u8,
    /// The kernel image `[start, end)`, when known.
    pub kimage: Option<(u64, u64)>,
    pub page_offset: u64,
    pub page_end: u64,
    pub vmalloc_end: u64,
    pub vmemmap_start: u64,
    pub vmemmap_end: u64,
    pub pci_io_start: u64,
}

/// `-(2^bits)` as an address.
const fn neg_pow2(bits: u32) -> u64 {
    (1u64 << bits).wrapping_neg()
}

impl LinuxLayout {
    /// The layout of a kernel with `va_bits` TTBR1 VA bits (36..=52).
    pub const fn new(va_bits: u8, kimage: Option<(u64, u64)>) -> Option<Self> {
        if va_bits < 36 || va_bits > 52 {
            return None;
        }
        let bits = va_bits as u32;
        let min = if bits > 48 { 48 } else { bits };
        let page_offset = neg_pow2(bits);
        let page_end = neg_pow2(min - 1);
        let vmemmap_start = neg_pow2(bits - (PAGE_SHIFT - STRUCT_PAGE_MAX_SHIFT));
        let vmemmap_end = vmemmap_start
            .wrapping_add(page_end.wrapping_sub(page_offset) >> (PAGE_SHIFT - STRUCT_PAGE_MAX_SHIFT));
        Some(Self {
            va_bits,
            kimage,
            page_offset,
            page_end,
            vmalloc_end: vmemmap_start.wrapping_sub(SZ_256M),
            vmemmap_start,
            vmemmap_end,
            pci_io_start: vmemmap_end.wrapping_add(SZ_8M),
        })
    }

    /// The region of `va` (either half).
    pub fn region(&self, va: u64) -> Region {
        if Half::of(va) == Half::Ttbr0 {
            return Region::User;
        }
        if let Some((lo, hi)) = self.kimage {
            if va >= lo && va < hi {
                return Region::KernelImage;
            }
        }
        if va < self.page_offset {
            Region::KernelOther
        } else if va < self.page_end {
            Region::Linear
        } else if va < self.vmalloc_end {
            Region::Vmalloc
        } else if va < self.vmemmap_start {
            Region::Fixmap
        } else if va < self.vmemmap_end {
            Region::Vmemmap
        } else if va >= self.pci_io_start && va - self.pci_io_start < SZ_16M {
            Region::PciIo
        } else {
            Region::KernelOther
        }
    }

    /// The region of a table whose valid entries translate `[lo, hi]`: the
    /// kernel image if the range touches it (a PMD or PUD covering the
    /// image also covers vmalloc), else the region of `lo`.
    pub fn table_region(&self, lo: u64, hi: u64) -> Region {
        if let Some((a, b)) = self.kimage {
            if lo < b && hi >= a {
                return Region::KernelImage;
            }
        }
        self.region(lo)
    }
}

/// The region of a VA in a guest without Linux's layout.
pub const fn va_range(va: u64) -> Region {
    Region::VaRange(va & !(VA_RANGE - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_48_bit_layout() {
        let l = LinuxLayout::new(48, None).unwrap();
        assert_eq!(l.page_offset, 0xffff_0000_0000_0000);
        assert_eq!(l.page_end, 0xffff_8000_0000_0000);
        assert_eq!(l.vmemmap_start, 0xffff_fc00_0000_0000);
        assert_eq!(l.vmemmap_end, 0xffff_fe00_0000_0000);
        assert_eq!(l.vmalloc_end, 0xffff_fbff_f000_0000);
        assert_eq!(l.pci_io_start, 0xffff_fe00_0080_0000);
        assert_eq!(l.region(0xffff_0000_4403_2198), Region::Linear);
        assert_eq!(l.region(0xffff_8000_8000_0000), Region::Vmalloc, "KIMAGE_VADDR without symbols");
        // FIXADDR_TOP = VMEMMAP_START - 32 MiB: the fixmap sits just below.
        assert_eq!(l.region(0xffff_fbff_fdff_f000), Region::Fixmap);
        assert_eq!(l.region(0xffff_fc00_0110_0000), Region::Vmemmap);
        assert_eq!(l.region(0xffff_fe00_0080_0000), Region::PciIo);
        assert_eq!(l.region(0xffff_fe00_0000_0000), Region::KernelOther, "the 8 MiB gap");
        assert_eq!(l.region(0xffff_ffff_ffff_f000), Region::KernelOther);
        assert_eq!(l.region(0x0000_aaaa_0000_0000), Region::User);
        let k = LinuxLayout::new(48, Some((0xffff_8000_8000_0000, 0xffff_8000_8200_0000))).unwrap();
        assert_eq!(k.region(0xffff_8000_8100_0000), Region::KernelImage);
        assert_eq!(k.region(0xffff_8000_8200_0000), Region::Vmalloc);
        // A PMD table over the image's GiB reaches into vmalloc: still the image's.
        assert_eq!(k.table_region(0xffff_8000_4000_0000, 0xffff_8000_7fff_ffff), Region::Vmalloc);
        assert_eq!(k.table_region(0xffff_8000_8000_0000, 0xffff_8000_bfff_ffff), Region::KernelImage);
    }

    #[test]
    fn linux_52_and_39_bit_layouts() {
        // 52-bit VA (Debian 6.12, LPA2): the linear map starts lower, the
        // rest keeps its 48-bit end.
        let l = LinuxLayout::new(52, None).unwrap();
        assert_eq!(l.page_offset, 0xfff0_0000_0000_0000);
        assert_eq!(l.page_end, 0xffff_8000_0000_0000);
        assert_eq!(l.vmemmap_start, 0xffff_c000_0000_0000);
        assert_eq!(l.vmemmap_end, 0xffff_fe00_0000_0000);
        assert_eq!(l.region(0xfff1_0000_0000_0000), Region::Linear);
        assert_eq!(l.region(0xffff_bfff_fdff_f000), Region::Fixmap);
        // 39-bit VA (Android): PAGE_END = -2^38.
        let l = LinuxLayout::new(39, None).unwrap();
        assert_eq!(l.page_offset, 0xffff_ff80_0000_0000);
        assert_eq!(l.page_end, 0xffff_ffc0_0000_0000);
        assert_eq!(l.vmemmap_start, 0xffff_fffe_0000_0000);
        assert_eq!(l.vmemmap_end, 0xffff_ffff_0000_0000);
        assert!(LinuxLayout::new(35, None).is_none() && LinuxLayout::new(53, None).is_none());
    }

    #[test]
    fn plain_ranges() {
        assert_eq!(va_range(0x4412_3456), Region::VaRange(0x4000_0000));
        assert_eq!(Region::VaRange(0).name(), "VA range");
        assert_eq!(Region::Vmemmap.name(), "vmemmap");
    }
}
