//! Arm SMMUv3 as porwatch uses it: a stage-2-only translation for every
//! stream, sharing the CPU's stage-2 tables, so that a device behind the
//! SMMU reaches exactly the memory the guest's CPU reaches — and never
//! porwatch's own memory, the hidden trace UART, or a page table the watch
//! made read-only.
//!
//! Everything here is plain data: register fields ([`regs`]), the Stream
//! Table Entry and level-1 descriptor ([`ste`]), command queue entries
//! ([`cmd`]), event records ([`event`]), queue index arithmetic
//! ([`queue`]) and the choice of a stage-2 configuration the SMMU can walk
//! given the CPU's VTCR_EL2 ([`geometry`]). The MMIO accesses are
//! hyp/src/arch/smmu.rs's.
//!
//! Sources: Arm IHI 0070 (SMMUv3 architecture), sections 5.2 (STE), 4.x
//! (commands), 7.3 (event records) and 6.3 (registers); cross-checked with
//! Linux `drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h` and QEMU 10.0's
//! model (`hw/arm/smmuv3-internal.h`, `smmuv3.c`, `smmu-common.c`).
//!
//! No context descriptor is used: stage 1 is bypassed (STE.Config =
//! 0b110), so the guest-visible address a device uses is an IPA, which
//! stage 2 maps as it does for the CPU (identity for guest RAM).

pub mod cmd;
pub mod event;
pub mod geometry;
pub mod queue;
pub mod regs;
pub mod ste;

#[cfg(test)]
mod tests;
