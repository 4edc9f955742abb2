//! Host tests for the device tree code.

extern crate std;

mod discover;
mod dma;
mod fuzz;
mod fvp_base;
mod malformed;
mod reader;
mod reserved;
mod rewrite;

pub(super) const VIRT_GICV3: &[u8] = include_bytes!("../../../testdata/virt-gicv3.dtb");
/// QEMU 10.0 `-M virt,iommu=smmuv3` (what `porwatch run` starts).
pub(super) const VIRT_SMMU: &[u8] = include_bytes!("../../../testdata/virt-smmu.dtb");
pub(super) const DMA_EDGE: &[u8] = include_bytes!("../../../testdata/dma-edge.dtb");
pub(super) const VIRT_SECURE: &[u8] = include_bytes!("../../../testdata/virt-secure.dtb");
pub(super) const FVP_NESTED: &[u8] = include_bytes!("../../../testdata/fvp-nested.dtb");
/// Debian linux-image-6.1.0-50-arm64 6.1.176-1, arm/fvp-base-revc.dtb.
pub(super) const FVP_BASE_REVC: &[u8] = include_bytes!("../../../testdata/fvp-base-revc.dtb");
pub(super) const MISC_GICV2: &[u8] = include_bytes!("../../../testdata/misc-gicv2.dtb");
pub(super) const TINY: &[u8] = include_bytes!("../../../testdata/tiny.dtb");
pub(super) const ALIAS_LOOP: &[u8] = include_bytes!("../../../testdata/alias-loop.dtb");
pub(super) const BAD_CELLS: &[u8] = include_bytes!("../../../testdata/bad-cells.dtb");
pub(super) const DEEP: &[u8] = include_bytes!("../../../testdata/deep.dtb");
pub(super) const RESERVED: &[u8] = include_bytes!("../../../testdata/reserved.dtb");
