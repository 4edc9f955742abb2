//! The GICv3 redistributors' LPI registers, trapped and emulated so that
//! no redistributor reads or writes LPI tables outside guest RAM (the rule
//! is porwatch_monitor::gicr's). The first 4 KiB page of every RD_base
//! frame is left unmapped at stage 2; a guest access to it arrives as a
//! stage-2 translation fault and is carried out here, at EL2, on the same
//! register.
use crate::arch::frame::GuestRegs;
use crate::arch::{inject, stage2};
use crate::traps::Handled;
use aarch64_cpu::registers::{Readable, FAR_EL2, HPFAR_EL2};
use core::ptr::{read_volatile, write_volatile};
use porwatch_monitor::esr::{AccessSyndrome, DataAbort};
use porwatch_monitor::fdt::platform::{GicVersion, Platform};
use porwatch_monitor::fdt::Region;
use porwatch_monitor::gic::for_each_redistributor;
use porwatch_monitor::gicr::{
    self, LpiRegs, Write, GICR_CTLR, GICR_PENDBASER, GICR_PROPBASER, TRAPPED_BYTES,
};
use porwatch_trace::TrapOutcome;
use spin::Once;

/// Redistributors porwatch can guard (more: it refuses to start).
pub const MAX_REDISTRIBUTORS: usize = 64;
/// GICD_TYPER, in the distributor frame.
const GICD_TYPER: usize = 0x0004;

struct Guarded {
    /// The trapped page of each RD_base frame.
    pages: heapless::Vec<u64, MAX_REDISTRIBUTORS>,
    /// GICD_TYPER (its IDbits cap the LPI tables).
    gicd_typer: u32,
}

static GUARDED: Once<Guarded> = Once::new();

fn read32(a: usize) -> u32 {
    unsafe { read_volatile(a as *const u32) }
}

/// Boot, MMU off: finds every redistributor of a GICv3 with LPIs (reading
/// their GICR_TYPER). The pages returned must be mapped at EL2 and left out
/// of stage 2. Err if there are more than porwatch can guard.
pub fn find(plat: &Platform) -> Result<&'static [u64], ()> {
    let mut pages = heapless::Vec::new();
    let mut gicd_typer = 0;
    let mut full = false;
    if let Some(g) = plat.gic.as_ref().filter(|g| g.version == GicVersion::V3) {
        gicd_typer = read32(g.dist.base as usize + GICD_TYPER);
        for_each_redistributor(g, read32, |rd| full |= pages.push(rd as u64).is_err());
    }
    if full {
        return Err(());
    }
    Ok(&GUARDED.call_once(|| Guarded { pages, gicd_typer }).pages)
}

/// The trapped pages as stage-2 holes.
pub fn regions() -> impl Iterator<Item = Region> {
    GUARDED.get().into_iter().flat_map(|g| g.pages.iter().map(|&p| Region::new(p, TRAPPED_BYTES)))
}

/// A stage-2 data abort: if it is in a trapped page, emulate the access
/// (Some); anything else is not ours (None).
pub fn on_data_abort(regs: &mut GuestRegs, da: &DataAbort, esr: u64) -> Option<Handled> {
    let g = GUARDED.get()?;
    // A stage-2 translation fault: HPFAR_EL2 holds the IPA's page.
    let page = HPFAR_EL2.read(HPFAR_EL2::FIPA) << 12;
    if !g.pages.contains(&page) {
        return None;
    }
    let offset = FAR_EL2.get() & (TRAPPED_BYTES - 1);
    let Some(acc) = da.access().filter(|a| offset.is_multiple_of(u64::from(a.size))) else {
        // No syndrome (e.g. LDP) or misaligned: what a device would answer.
        inject::external_data_abort(regs, esr, da.wnr(), FAR_EL2.get());
        return Some(Handled::Refused(TrapOutcome::AbortInjected));
    };
    let addr = (page + offset) as usize;
    let outcome = if da.wnr() {
        let lpi = LpiRegs {
            ctlr: read32(page as usize + GICR_CTLR as usize),
            propbaser: unsafe { read_volatile((page + GICR_PROPBASER) as *const u64) },
            pendbaser: unsafe { read_volatile((page + GICR_PENDBASER) as *const u64) },
        };
        let value = regs.get(acc.srt);
        let in_ram = |base: u64, len: u64| stage2::ram_pa(base, len).is_some();
        match gicr::on_write(offset, acc.size, value, &lpi, g.gicd_typer, in_ram) {
            Write::Perform { value, refused } => {
                write(addr, &acc, value);
                if refused.is_some() {
                    TrapOutcome::Ignored
                } else {
                    TrapOutcome::Emulated
                }
            }
            Write::Ignore(_) => TrapOutcome::Ignored,
        }
    } else {
        regs.set(acc.srt, gicr::load_result(read(addr, &acc), &acc));
        TrapOutcome::Emulated
    };
    regs.elr += 4;
    Some(match outcome {
        TrapOutcome::Emulated => Handled::Done(outcome),
        // Logged with ESR/ELR/FAR as an unknown_trap: what the guest asked
        // for was not done as asked.
        _ => Handled::Refused(outcome),
    })
}

fn read(addr: usize, acc: &AccessSyndrome) -> u64 {
    // SAFETY: a trapped RD_base page, mapped as device memory at EL2.
    unsafe {
        match acc.size {
            1 => u64::from(read_volatile(addr as *const u8)),
            2 => u64::from(read_volatile(addr as *const u16)),
            4 => u64::from(read_volatile(addr as *const u32)),
            _ => read_volatile(addr as *const u64),
        }
    }
}

fn write(addr: usize, acc: &AccessSyndrome, v: u64) {
    // SAFETY: as in read(); the value is cut to the access size.
    unsafe {
        match acc.size {
            1 => write_volatile(addr as *mut u8, v as u8),
            2 => write_volatile(addr as *mut u16, v as u16),
            4 => write_volatile(addr as *mut u32, v as u32),
            _ => write_volatile(addr as *mut u64, v),
        }
    }
}
