//! GICv3 redistributors as bus masters. With LPIs enabled, a redistributor
//! reads its LPI configuration table and reads and writes its LPI pending
//! table in memory, at the physical addresses GICR_PROPBASER and
//! GICR_PENDBASER give — no stage 2 in between, no SMMU. A guest that
//! points the pending table into porwatch's memory gets bits there read as
//! pending LPIs, and acknowledging one makes the redistributor clear the
//! bit (QEMU 10: `set_pending_table_bit`): a write into porwatch's code.
//!
//! So porwatch traps the guest's accesses to the first 4 KiB of every
//! redistributor's RD_base frame (where GICR_CTLR, PROPBASER and PENDBASER
//! are; the rest of the frame stays mapped) and emulates them with
//! [`on_write`]'s rule: LPIs are enabled only with both tables inside guest
//! RAM, and the table addresses cannot change while LPIs are enabled.
//! Everything else passes through unchanged. The GIC ITS, the other LPI
//! source, is hidden (crate::fdt::dma).
//!
//! Register layout: Arm IHI 0069 (GICv3/v4) 12.11; Linux
//! `include/linux/irqchip/arm-gic-v3.h`.

use crate::esr::AccessSyndrome;

/// RD_base offsets.
pub const GICR_CTLR: u64 = 0x0000;
pub const GICR_PROPBASER: u64 = 0x0070;
pub const GICR_PENDBASER: u64 = 0x0078;
/// The trapped part of an RD_base frame: registers up to 0x0fff.
pub const TRAPPED_BYTES: u64 = 0x1000;

/// GICR_CTLR.EnableLPIs.
pub const CTLR_ENABLE_LPIS: u32 = 1 << 0;
/// GICR_PROPBASER: IDbits [4:0] (INTID bits - 1), PA [51:12].
pub const PROPBASER_IDBITS_MASK: u64 = 0x1f;
pub const PROPBASER_PA_MASK: u64 = 0x000f_ffff_ffff_f000;
/// GICR_PENDBASER: PA [51:16] (64 KiB aligned).
pub const PENDBASER_PA_MASK: u64 = 0x000f_ffff_ffff_0000;
/// GICD_TYPER.IDbits [23:19]: INTID bits - 1 the distributor supports.
pub const GICD_TYPER_IDBITS_SHIFT: u32 = 19;
pub const GICD_TYPER_IDBITS_MASK: u32 = 0x1f;
/// The first LPI INTID: the configuration table starts there, the pending
/// table covers every INTID from 0.
pub const LPI_INTID_BASE: u64 = 8192;
/// INTID bits below which LPIs do not exist (IDbits + 1 < 14).
const LPI_MIN_ID_BITS: u32 = 14;

/// The redistributor state the rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LpiRegs {
    pub ctlr: u32,
    pub propbaser: u64,
    pub pendbaser: u64,
}

/// Why a guest write was not passed through as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// EnableLPIs with a table outside guest RAM: written with EnableLPIs
    /// cleared (LPIs stay off).
    TablesOutsideRam,
    /// PROPBASER or PENDBASER written while LPIs are enabled (architecturally
    /// UNPREDICTABLE): ignored.
    BaseWhileEnabled,
}

/// What to do with a guest write to the trapped page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Write this value (the guest's, or it with EnableLPIs cleared).
    Perform { value: u64, refused: Option<Refusal> },
    /// Do not write.
    Ignore(Refusal),
}

/// The LPI tables `regs` describe, as `[configuration, pending]`
/// `(base, size)` ranges; `None` when the ID bits in use leave no LPI.
/// The ID bits in use are PROPBASER.IDbits capped by GICD_TYPER.IDbits.
pub fn lpi_tables(regs: &LpiRegs, gicd_typer: u32) -> Option<[(u64, u64); 2]> {
    let prop_bits = (regs.propbaser & PROPBASER_IDBITS_MASK) as u32 + 1;
    let dist_bits = ((gicd_typer >> GICD_TYPER_IDBITS_SHIFT) & GICD_TYPER_IDBITS_MASK) + 1;
    let id_bits = prop_bits.min(dist_bits);
    if id_bits < LPI_MIN_ID_BITS {
        return None;
    }
    let ids = 1u64 << id_bits;
    Some([
        (regs.propbaser & PROPBASER_PA_MASK, ids - LPI_INTID_BASE),
        (regs.pendbaser & PENDBASER_PA_MASK, ids / 8),
    ])
}

/// The rule for a guest write of `value` (`size` bytes) at `offset` in the
/// trapped page, given the redistributor's current registers. `in_ram`
/// says whether `[base, base + size)` is guest RAM.
pub fn on_write(
    offset: u64,
    size: u8,
    value: u64,
    regs: &LpiRegs,
    gicd_typer: u32,
    in_ram: impl Fn(u64, u64) -> bool,
) -> Write {
    let end = offset + u64::from(size);
    let touches = |reg: u64, len: u64| offset < reg + len && reg < end;
    let enabled = regs.ctlr & CTLR_ENABLE_LPIS != 0;
    if enabled && (touches(GICR_PROPBASER, 8) || touches(GICR_PENDBASER, 8)) {
        return Write::Ignore(Refusal::BaseWhileEnabled);
    }
    if offset == GICR_CTLR && !enabled && value & u64::from(CTLR_ENABLE_LPIS) != 0 {
        let ok = match lpi_tables(regs, gicd_typer) {
            Some(tables) => tables.iter().all(|&(base, len)| in_ram(base, len)),
            None => true,
        };
        if !ok {
            return Write::Perform {
                value: value & !u64::from(CTLR_ENABLE_LPIS),
                refused: Some(Refusal::TablesOutsideRam),
            };
        }
    }
    Write::Perform { value, refused: None }
}

/// The register value a trapped load delivers: `raw` (the `size`-byte
/// device value, zero-extended) sign-extended if SSE, cut to 32 bits for a
/// W register (SF = 0), as the load itself would have done.
pub fn load_result(raw: u64, s: &AccessSyndrome) -> u64 {
    let bits = 8 * u32::from(s.size);
    let mut v = if bits >= 64 { raw } else { raw & ((1u64 << bits) - 1) };
    if s.sign_extend && bits < 64 && v >> (bits - 1) & 1 != 0 {
        v |= !0u64 << bits;
    }
    if !s.sixty_four {
        v &= u64::from(u32::MAX);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 10's GICD_TYPER.IDbits: 15 (16 INTID bits).
    const QEMU_GICD_TYPER: u32 = 15 << GICD_TYPER_IDBITS_SHIFT;
    const RAM: (u64, u64) = (0x4080_0000, 0x8000_0000);
    fn in_ram(base: u64, len: u64) -> bool {
        base >= RAM.0 && base + len <= RAM.1
    }
    fn regs(ctlr: u32, prop: u64, pend: u64) -> LpiRegs {
        LpiRegs { ctlr, propbaser: prop, pendbaser: pend }
    }

    #[test]
    fn table_sizes_follow_the_id_bits_in_use() {
        // IDbits 13: 2^14 INTIDs, 8192 LPIs: 8 KiB of configuration, 2 KiB
        // of pending bits.
        let r = regs(0, 0x4402_0000 | 13, 0x4403_0000);
        assert_eq!(lpi_tables(&r, QEMU_GICD_TYPER), Some([(0x4402_0000, 0x2000), (0x4403_0000, 0x800)]));
        // Capped by the distributor: IDbits 31 in PROPBASER, 16 bits in GICD.
        let r = regs(0, 0x4402_0000 | 31, 0x4403_0000);
        assert_eq!(
            lpi_tables(&r, QEMU_GICD_TYPER),
            Some([(0x4402_0000, 0x1_0000 - 8192), (0x4403_0000, 0x2000)])
        );
        // Fewer than 14 bits: no LPIs, no tables.
        assert_eq!(lpi_tables(&regs(0, 0x4402_0000 | 12, 0), QEMU_GICD_TYPER), None);
        // PA fields drop the attribute bits.
        let r = regs(0, 0x0700_0000_4402_0c8d | (1 << 62), (1 << 62) | 0x4403_0c80);
        assert_eq!(lpi_tables(&r, QEMU_GICD_TYPER).unwrap()[1].0, 0x4403_0000);
        assert_eq!(lpi_tables(&r, QEMU_GICD_TYPER).unwrap()[0].0, 0x4402_0000);
    }

    #[test]
    fn lpis_are_enabled_only_with_tables_in_guest_ram() {
        let w = |r: &LpiRegs, v: u64| on_write(GICR_CTLR, 4, v, r, QEMU_GICD_TYPER, in_ram);
        // Linux: both tables in its RAM.
        let good = regs(0, 0x4402_0000 | 15, 0x4403_0000);
        assert_eq!(w(&good, 1), Write::Perform { value: 1, refused: None });
        // The attack: pending table in porwatch's memory (0x4021_0000).
        let bad = regs(0, 0x4402_0000 | 13, 0x4021_0000);
        assert_eq!(w(&bad, 3), Write::Perform { value: 2, refused: Some(Refusal::TablesOutsideRam) });
        // Configuration table straddling the end of RAM.
        let bad = regs(0, (RAM.1 - 0x1000) | 13, 0x4403_0000);
        assert_eq!(w(&bad, 1), Write::Perform { value: 0, refused: Some(Refusal::TablesOutsideRam) });
        // Other CTLR writes, and IDbits too small for LPIs, pass.
        assert_eq!(w(&bad, 0), Write::Perform { value: 0, refused: None });
        let none = regs(0, 12, 0x4021_0000);
        assert_eq!(w(&none, 1), Write::Perform { value: 1, refused: None });
        // Already enabled: writing CTLR again is not re-checked.
        let on = regs(1, 0x4402_0000 | 13, 0x4403_0000);
        assert_eq!(w(&on, 1), Write::Perform { value: 1, refused: None });
    }

    #[test]
    fn table_addresses_are_frozen_while_lpis_are_on() {
        let on = regs(CTLR_ENABLE_LPIS, 0x4402_0000 | 13, 0x4403_0000);
        let off = regs(0, 0x4402_0000 | 13, 0x4403_0000);
        for (off_, size) in [(GICR_PROPBASER, 8), (GICR_PENDBASER, 8), (GICR_PENDBASER + 4, 4), (0x6c, 8)] {
            assert_eq!(
                on_write(off_, size, 0x4021_0000, &on, QEMU_GICD_TYPER, in_ram),
                Write::Ignore(Refusal::BaseWhileEnabled),
                "{off_:#x}/{size}"
            );
            assert_eq!(
                on_write(off_, size, 0x4021_0000, &off, QEMU_GICD_TYPER, in_ram),
                Write::Perform { value: 0x4021_0000, refused: None }
            );
        }
        // Other registers (GICR_WAKER, SETLPIR) pass with LPIs on.
        assert_eq!(
            on_write(0x14, 4, 2, &on, QEMU_GICD_TYPER, in_ram),
            Write::Perform { value: 2, refused: None }
        );
        assert_eq!(
            on_write(0x40, 8, 8200, &on, QEMU_GICD_TYPER, in_ram),
            Write::Perform { value: 8200, refused: None }
        );
    }

    #[test]
    fn loads_extend_as_the_instruction_would() {
        let s = |size, sign_extend, sixty_four| AccessSyndrome {
            size,
            sign_extend,
            srt: 0,
            sixty_four,
            acquire_release: false,
        };
        assert_eq!(load_result(0x1234_5678, &s(4, false, false)), 0x1234_5678);
        assert_eq!(load_result(0x8000_0000, &s(4, true, true)), 0xffff_ffff_8000_0000, "ldrsw");
        assert_eq!(load_result(0x80, &s(1, true, false)), 0xffff_ff80, "ldrsb w");
        assert_eq!(load_result(0xffff_ffff_0000_00ff, &s(1, false, false)), 0xff, "ldrb");
        assert_eq!(load_result(0xdead_beef_0000_0001, &s(8, false, true)), 0xdead_beef_0000_0001);
        assert_eq!(load_result(0xabcd, &s(2, false, true)), 0xabcd);
    }
}
