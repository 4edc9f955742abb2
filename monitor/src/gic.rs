//! GICv3 redistributor layout, shared by the hypervisor (its EL3 set-up,
//! hyp/src/arch/gic_el3.rs) and the test kernels (guest-tests/src/gicv3.rs).
//! The MMIO read is the caller's: this stays plain, host-tested code.
use crate::fdt::platform::Gic;

/// GICR_TYPER (RD_base + 8): [63:32] affinity, bit 4 Last, bit 1 VLPIS.
pub const GICR_TYPER: usize = 0x0008;
pub const GICR_TYPER_VLPIS: u32 = 1 << 1;
pub const GICR_TYPER_LAST: u32 = 1 << 4;
/// GICR_WAKER (RD_base + 0x14).
pub const GICR_WAKER: usize = 0x0014;
pub const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
pub const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// The SGI/PPI frame follows RD_base; a redistributor is 2 frames (4 with
/// GICv4 virtual LPIs).
pub const GICR_SGI_FRAME: usize = 0x1_0000;

/// MPIDR_EL1's affinity in GICR_TYPER[63:32] layout (Aff3.Aff2.Aff1.Aff0).
pub const fn gicr_affinity(mpidr: u64) -> u32 {
    ((((mpidr >> 32) & 0xff) << 24) | (mpidr & 0xff_ffff)) as u32
}

/// RD_base of the redistributor whose GICR_TYPER affinity is `affinity`,
/// walking each redistributor region frame by frame (`read32` reads a
/// 32-bit register at an address).
pub fn find_redistributor(gic: &Gic, affinity: u32, read32: impl Fn(usize) -> u32) -> Option<usize> {
    let mut found = None;
    for_each_redistributor(gic, &read32, |rd| {
        if found.is_none() && read32(rd + GICR_TYPER + 4) == affinity {
            found = Some(rd);
        }
    });
    found
}

/// Calls `f` with the RD_base of every redistributor, region by region,
/// frame by frame, up to the one marked Last in each region.
pub fn for_each_redistributor(gic: &Gic, read32: impl Fn(usize) -> u32, mut f: impl FnMut(usize)) {
    for r in gic.redist.iter() {
        let end = (r.base + r.size) as usize;
        let mut rd = r.base as usize;
        while rd + 2 * GICR_SGI_FRAME <= end {
            let lo = read32(rd + GICR_TYPER);
            f(rd);
            if lo & GICR_TYPER_LAST != 0 {
                break;
            }
            let frames = if lo & GICR_TYPER_VLPIS != 0 { 4 } else { 2 };
            rd += frames * GICR_SGI_FRAME;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdt::address::Region;
    use crate::fdt::platform::GicVersion;

    fn gic(regions: &[Region]) -> Gic {
        let mut g = Gic {
            version: GicVersion::V3,
            dist: Region::new(0x800_0000, 0x1_0000),
            redist: heapless::Vec::new(),
            cpu: None,
            hyp: None,
            vcpu: None,
            interrupt_cells: 3,
        };
        for r in regions {
            g.redist.push(*r).unwrap();
        }
        g
    }

    #[test]
    fn affinity_layout() {
        assert_eq!(gicr_affinity(0x80000000), 0);
        assert_eq!(gicr_affinity(0x0000_00ab_8012_3456), 0xab12_3456);
    }

    /// Redistributors at 0x1000_0000: CPU 0 (VLPIS, 4 frames), CPU 1 (2
    /// frames, Last). A second region holds CPU 2.
    fn read(a: usize) -> u32 {
        match a {
            0x1000_0008 => GICR_TYPER_VLPIS,
            0x1000_000c => 0,
            0x1004_0008 => GICR_TYPER_LAST,
            0x1004_000c => 1,
            0x2000_0008 => GICR_TYPER_LAST,
            0x2000_000c => 2,
            _ => 0xdead,
        }
    }

    #[test]
    fn walks_frames_and_regions() {
        let g = gic(&[Region::new(0x1000_0000, 0x10_0000), Region::new(0x2000_0000, 0x2_0000)]);
        assert_eq!(find_redistributor(&g, 0, read), Some(0x1000_0000));
        assert_eq!(find_redistributor(&g, 1, read), Some(0x1004_0000), "VLPIS: 4 frames on");
        assert_eq!(find_redistributor(&g, 2, read), Some(0x2000_0000), "next region after Last");
        assert_eq!(find_redistributor(&g, 3, read), None);
        // A region too small for one redistributor is not read.
        let tiny = gic(&[Region::new(0x1000_0000, 0x1_0000)]);
        assert_eq!(find_redistributor(&tiny, 0, read), None);
    }

    #[test]
    fn lists_every_redistributor() {
        let g = gic(&[Region::new(0x1000_0000, 0x10_0000), Region::new(0x2000_0000, 0x2_0000)]);
        let mut all = heapless::Vec::<usize, 8>::new();
        for_each_redistributor(&g, read, |rd| all.push(rd).unwrap());
        assert_eq!(all.as_slice(), &[0x1000_0000, 0x1004_0000, 0x2000_0000]);
    }
}
