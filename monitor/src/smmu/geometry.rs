//! The SMMU walks the CPU's own stage-2 tables. Its input address size
//! (IAS) may be smaller than the CPU's IPA range (QEMU's SMMUv3: 44 bits,
//! `-cpu max`: 48), so the STE narrows T0SZ while keeping the CPU's start
//! level: the SMMU then uses the first entries of the same root table (or
//! the first of the same concatenated root tables), which describe the
//! same IPAs. Addresses above the SMMU's range fault with a translation or
//! address size fault, which is reported; porwatch maps nothing the guest
//! may DMA to that high on the machines it runs on.
use super::regs::{Features, Unusable};
use super::ste::Stage2;
use crate::pgtable::regs::{
    stage2_concat, TCR_PS_MASK, TCR_PS_SHIFT, TCR_T0SZ_MASK, TCR_T0SZ_SHIFT, VTCR_SL0_BASE_4K, VTCR_SL0_MASK,
    VTCR_SL0_SHIFT,
};

/// The stage-2 configuration for the SMMU from the CPU's VTCR_EL2 and
/// VTTBR_EL2 root: T0SZ raised to the SMMU's input size if needed (same
/// start level), PS lowered to its output size, VMID `vmid`. The root must
/// lie within the output size.
pub fn for_smmu(f: &Features, vtcr: u64, root: u64, vmid: u16) -> Result<Stage2, Unusable> {
    if !f.vmid16 && vmid > u16::from(u8::MAX) {
        return Err(Unusable::Geometry);
    }
    let t0sz = ((vtcr >> TCR_T0SZ_SHIFT) & TCR_T0SZ_MASK) as u32;
    let cpu_ipa_bits = 64u32.saturating_sub(t0sz);
    let sl0 = ((vtcr & VTCR_SL0_MASK) >> VTCR_SL0_SHIFT) as u8;
    let start_level = VTCR_SL0_BASE_4K.checked_sub(sl0).ok_or(Unusable::Geometry)?;
    let ipa_bits = cpu_ipa_bits.min(u32::from(f.ias_bits()));
    stage2_concat(ipa_bits, start_level).ok_or(Unusable::Geometry)?;
    let cpu_ps = ((vtcr & TCR_PS_MASK) >> TCR_PS_SHIFT) as u8;
    let ps = cpu_ps.min(f.oas_field);
    let ps_bits = super::regs::oas_bits(ps).ok_or(Unusable::Geometry)?;
    if root >> ps_bits != 0 {
        return Err(Unusable::Geometry);
    }
    let vtcr = (vtcr & !(TCR_T0SZ_MASK << TCR_T0SZ_SHIFT) & !TCR_PS_MASK)
        | (u64::from(64 - ipa_bits) << TCR_T0SZ_SHIFT)
        | (u64::from(ps) << TCR_PS_SHIFT);
    Ok(Stage2 { vtcr, root, vmid })
}
