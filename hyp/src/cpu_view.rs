//! The CPU the guest sees (porwatch_monitor::idregs), decided once at boot
//! from the CPU's ID registers and porwatch's configuration: what trapped
//! ID-register reads return, the `id_field` records that say what differs
//! and why, and the EL2 controls arch/el2.rs programs from the same table.
use crate::arch::idregs;
use crate::boot::Config;
use crate::trace_out;
use porwatch_monitor::cmdline::PorSites;
use porwatch_monitor::idregs::{self as table, Controls, Setup, View};
use porwatch_monitor::sysreg::SysRegId;
use porwatch_monitor::vpoe::Mode;
use porwatch_trace::Event;
use spin::Once;

pub struct Cpu {
    pub view: View,
    pub controls: Controls,
    /// SCXTNUM_EL1 carries POR_EL1 at patched sites (por_sites.rs).
    pub por_carrier: bool,
}

static CPU: Once<Cpu> = Once::new();

/// Stands in before [`init`] (no guest runs yet, nothing reads it).
static NONE: Cpu = Cpu { view: View::ZERO, controls: Controls::NONE, por_carrier: false };

/// Decides the guest's CPU and records every field it reads differently
/// from the CPU (boot, once, before the guest runs).
pub fn init(cfg: &Config) -> &'static Cpu {
    CPU.call_once(|| {
        let raw = idregs::read_all();
        // Patched POR_EL1 sites need virtual POE, a trap for the carrier's
        // writes (FGT) and the carrier itself.
        let por_carrier = cfg.poe == Mode::Virtual
            && cfg.opts.por_sites == PorSites::Patch
            && cfg.ids.has_fgt()
            && table::has_scxtnum(&raw);
        let setup = Setup { poe: cfg.poe, track: cfg.opts.track, fgt: cfg.ids.has_fgt(), por_carrier };
        let view = table::decide(&raw, &setup, |d| {
            trace_out::emit(Event::IdField {
                field: d.packed(),
                width: d.width as u64,
                cpu: d.cpu,
                guest: d.guest,
                reason: d.reason as u64,
            });
        });
        let controls = table::controls::controls(&raw, &view, &setup);
        Cpu { view, controls, por_carrier }
    })
}

/// ID_AA64DFR0_EL1.PMUVer: no PMU, or an IMPLEMENTATION DEFINED one.
const PMUVER_NONE: u8 = 0;
const PMUVER_IMPDEF: u8 = 0xf;

impl Cpu {
    /// The guest sees a PMUv3 (EL2 then gives it every event counter).
    pub fn pmuv3(&self) -> bool {
        !matches!(self.view.field(table::table::DFR0_PMUVER), PMUVER_NONE | PMUVER_IMPDEF)
    }
}

pub fn get() -> &'static Cpu {
    CPU.get().unwrap_or(&NONE)
}

/// What a guest MRS of ID register `id` (TID3 space) returns.
pub fn read_id(id: SysRegId) -> u64 {
    get().view.get(id)
}
