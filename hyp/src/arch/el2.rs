//! EL2 controls for running the guest: what traps, what passes through.
//!
//! The guest owns the CPU as it would natively (GIC system registers, EL1
//! timers, FP/SIMD/SVE/SME, PMU, debug) except what porwatch must see:
//! SMC (PSCI), IMPLEMENTATION DEFINED registers (TIDCP: answered UNDEF, as
//! KVM does), the ID registers (TID3: the guest reads porwatch's view of the
//! CPU, cpu_view.rs) and stage 2. Fine-grained traps are all opened (their
//! "n" bits trap when 0, and reset values are UNKNOWN on hardware). The
//! controls a passed feature needs (HCRX_EL2.EnFPM for FPMR, SMCR_EL2.EZT0
//! for SME2, ...) come from the ID-register table
//! (porwatch_monitor::idregs::controls), never from the raw CPU.
use super::cpu::{isb, IdRegs};
use super::regs::{
    HCRX_EL2_REG, ICC_SRE_EL2, ICC_SRE_EL2_REG, SCXTNUM_EL0_REG, SCXTNUM_EL1_REG, VPIDR_EL2_REG,
};
use aarch64_cpu::registers::*;
use porwatch_monitor::idregs::{Controls, Tcr2Path};
use porwatch_monitor::vpoe::Mode;
use tock_registers::interfaces::Writeable;

/// SPSR for entering the guest: EL1h, D/A/I/F masked (arm64 boot protocol).
pub const GUEST_ENTRY_SPSR: u64 = 0x3c5;

/// SCTLR_EL1 for a guest that starts with its MMU and caches off: only the
/// RES1 bits of the Armv8.0 layout (29, 28, 23, 22, 20, 11).
const SCTLR_EL1_RES1: u64 = (1 << 29) | (1 << 28) | (1 << 23) | (1 << 22) | (1 << 20) | (1 << 11);

/// CPTR_EL2 (E2H = 0) with only its RES1 bits [13], [9], [7:0] set: TZ (8),
/// TFP (10), TSM (12), TTA (20), TAM (30), TCPAC (31) all 0 = no trap.
const CPTR_EL2_RES1: u64 = (1 << 13) | (1 << 9) | 0xff;
/// CPTR_EL2.TZ (E2H = 0): SVE instructions and ZCR_EL1 accesses at EL1/EL0
/// (and EL2) trap to EL2, EC 0x19.
const CPTR_EL2_TZ: u64 = 1 << 8;

/// HCR_EL2 for every guest; the table adds what passed features need
/// (API/APK, ATA, EnSCXT, FIEN) and TID3 makes ID registers trap.
pub fn hcr() -> u64 {
    (HCR_EL2::VM::SET
        + HCR_EL2::RW::EL1IsAarch64
        + HCR_EL2::TSC::SET
        + HCR_EL2::TIDCP::SET
        + HCR_EL2::TID3::SET
        + HCR_EL2::FB::SET
        + HCR_EL2::BSU::InnerShareable)
        .value
}

/// What porwatch watches the guest with (its options, decided above).
#[derive(Clone, Copy)]
pub struct Watch {
    /// The exception-entry tap (VBAR_EL1 writes trap; the OS lock is opened).
    pub tap: bool,
    /// The page-table watch (TTBR0/TTBR1/TCR_EL1 writes trap).
    pub track: bool,
    /// Exception-return tracing (ERET traps).
    pub exc_return: bool,
    pub poe: Mode,
    /// Native POE: POR_EL1 writes trap (`porwatch.por=trap`; sampling
    /// traps nothing).
    pub por_trap: bool,
    /// Virtual POE with patched sites: SCXTNUM_EL1 and SCXTNUM_EL0 carry
    /// POR_EL1 and POR_EL0 (their writes trap, their reads do not; they
    /// start at the virtual reset value).
    pub por_carrier: bool,
}

/// Everything [`configure_for_guest`] programs, decided at boot.
pub struct GuestSetup<'a> {
    pub ids: &'a IdRegs,
    /// The EL2 controls of the guest's CPU (porwatch_monitor::idregs).
    pub controls: &'a Controls,
    /// The guest's CPU has a PMUv3: it gets every event counter.
    pub pmuv3: bool,
    pub watch: Watch,
    pub vtcr: u64,
    pub vttbr: u64,
}

/// Programs this CPU's EL2 for running the guest; `mpidr` is what the
/// guest reads as its MPIDR_EL1.
pub fn configure_for_guest(s: &GuestSetup, mpidr: u64) {
    let ids = s.ids;
    let c = s.controls;
    HCR_EL2.set(hcr() | c.hcr);
    VTCR_EL2.set(s.vtcr);
    VTTBR_EL2.set(s.vttbr);

    // Traps for FP/SIMD, SME, trace, AMU, CPACR: all off (RES1 bits kept).
    // SVE traps until the guest first uses it (on_sve_trap): QEMU zeroes
    // the Z/P registers above EL1's vector length at every return from an
    // EL2 whose SVE is enabled with a longer one, ~7% of a trap-heavy
    // guest's time (docs/costs.md); a guest that never uses SVE never pays.
    // (TZ also traps EL2's own ZCR_EL2 accesses: set it last.)
    CPTR_EL2.set(CPTR_EL2_RES1);
    isb();
    if let Some(zcr) = c.zcr_el2 {
        // ZCR_EL2 (s3_4_c1_c2_0): let EL1 use every vector length.
        unsafe { core::arch::asm!("msr s3_4_c1_c2_0, {}", in(reg) zcr) };
    }
    if let Some(smcr) = c.smcr_el2 {
        // SMCR_EL2 (s3_4_c1_c2_6): likewise for streaming mode, with ZT0
        // (SME2) and FA64 when the guest sees them.
        unsafe { core::arch::asm!("msr s3_4_c1_c2_6, {}", in(reg) smcr) };
    }
    if c.zcr_el2.is_some() {
        CPTR_EL2.set(CPTR_EL2_RES1 | CPTR_EL2_TZ);
        isb();
    }

    // PMU and debug: the guest gets every counter, nothing traps.
    let hpmn = if s.pmuv3 { (PMCR_EL0_N.read() >> PMCR_N_SHIFT) & PMCR_N_MASK } else { 0 };
    MDCR_EL2.set(hpmn);

    // Timers: EL1 may read the physical counter and use the physical timer.
    CNTHCTL_EL2.write(CNTHCTL_EL2::EL1PCTEN::SET + CNTHCTL_EL2::EL1PCEN::SET);
    CNTVOFF_EL2.set(0);

    // GICv3: EL1 uses the system-register interface directly.
    if ids.has_gicv3_sysregs() {
        ICC_SRE_EL2_REG.write(ICC_SRE_EL2::SRE::SET + ICC_SRE_EL2::Enable::SET);
        isb();
    }

    VPIDR_EL2_REG.set(ids.midr);
    VMPIDR_EL2.set(mpidr);

    if ids.has_fgt() {
        open_fine_grained_traps(ids);
        watch_with_fine_grained_traps(&s.watch, ids, c.tcr2);
    }
    if s.watch.tap {
        super::debug::unlock_os_lock();
    }
    if ids.has_hcx() {
        // TCR2En (the guest's TCR2_EL1 in the hardware, or kept by porwatch
        // with every access trapped), SCTLR2En, EnFPM, MSCEn: as the table
        // says.
        HCRX_EL2_REG.set(c.hcrx);
    }

    SCTLR_EL1.set(SCTLR_EL1_RES1);
    isb();
}

/// The guest used SVE (an SVE instruction or ZCR_EL1, EC 0x19) while
/// CPTR_EL2.TZ kept it trapped: SVE stays enabled on this CPU from now on;
/// true if the guest should retry the instruction (false: TZ was not set,
/// the trap is not porwatch's).
pub fn on_sve_trap() -> bool {
    let cptr = CPTR_EL2.get();
    if cptr & CPTR_EL2_TZ == 0 {
        return false;
    }
    CPTR_EL2.set(cptr & !CPTR_EL2_TZ);
    isb();
    true
}

/// Sets every "nXXX" fine-grained trap bit (1 = do not trap) and clears the
/// positive ones, so the guest runs untrapped.
fn open_fine_grained_traps(ids: &IdRegs) {
    use aarch64_cpu::registers::{HDFGRTR_EL2 as R, HDFGWTR_EL2 as W};
    let n_fgxtr = HFGRTR_EL2::nAMAIR2_EL1::SET
        + HFGRTR_EL2::nMAIR2_EL1::SET
        + HFGRTR_EL2::nS2POR_EL1::SET
        + HFGRTR_EL2::nPOR_EL1::SET
        + HFGRTR_EL2::nPOR_EL0::SET
        + HFGRTR_EL2::nPIR_EL1::SET
        + HFGRTR_EL2::nPIRE0_EL1::SET
        + HFGRTR_EL2::nRCWMASK_EL1::SET
        + HFGRTR_EL2::nTPIDR2_EL0::SET
        + HFGRTR_EL2::nSMPRI_EL1::SET
        + HFGRTR_EL2::nGCS_EL1::SET
        + HFGRTR_EL2::nGCS_EL0::SET
        + HFGRTR_EL2::nACCDATA_EL1::SET;
    // HFGWTR_EL2 has the same n-bits at the same positions.
    HFGRTR_EL2.set(n_fgxtr.value);
    HFGWTR_EL2.set(n_fgxtr.value);
    HFGITR_EL2.write(
        HFGITR_EL2::nGCSEPP::SET
            + HFGITR_EL2::nGCSSTR_EL1::SET
            + HFGITR_EL2::nGCSPUSHM_EL1::SET
            + HFGITR_EL2::nBRBIALL::SET
            + HFGITR_EL2::nBRBINJ::SET,
    );
    R.write(R::nPMSNEVFR_EL1::SET + R::nBRBDATA::SET + R::nBRBCTL::SET + R::nBRBIDR::SET);
    W.write(W::nPMSNEVFR_EL1::SET + W::nBRBDATA::SET + W::nBRBCTL::SET);
    if ids.has_amu() {
        // HAFGRTR_EL2 exists only with FEAT_AMUv1.
        HAFGRTR_EL2.set(0);
    }
    isb();
}

/// PMCR_EL0.N [15:11]: the number of event counters.
const PMCR_N_SHIFT: u64 = 11;
const PMCR_N_MASK: u64 = 0x1f;

/// PMCR_EL0.N (number of event counters), read at EL2.
struct PmcrEl0;
static PMCR_EL0_N: PmcrEl0 = PmcrEl0;
impl PmcrEl0 {
    fn read(&self) -> u64 {
        let v: u64;
        unsafe { core::arch::asm!("mrs {}, pmcr_el0", out(reg) v, options(nomem, nostack)) };
        v
    }
}

/// The fine-grained traps porwatch watches the guest with: VBAR_EL1 writes
/// (the tap follows the vector table), CPACR_EL1 (virtual E0POE), POR_EL1
/// writes (native POE with porwatch.por=trap), TCR_EL1 (the page-table
/// watch; under virtual POE with the guest's TCR2_EL1 in the hardware, reads
/// and writes: the FGT TCR_EL1 bits also trap TCR2_EL1, so porwatch keeps
/// its POE bits), ERET (exception-return tracing).
fn watch_with_fine_grained_traps(watch: &Watch, ids: &IdRegs, tcr2: Tcr2Path) {
    let mut w = HFGWTR_EL2.get();
    let mut r = HFGRTR_EL2.get();
    if watch.tap {
        w |= HFGWTR_EL2::VBAR_EL1::SET.value;
    }
    if watch.track {
        // The page-table watch follows TTBR0/TTBR1/TCR_EL1 (TCR also covers TCR2).
        w |= HFGWTR_EL2::TTBR0_EL1::SET.value
            | HFGWTR_EL2::TTBR1_EL1::SET.value
            | HFGWTR_EL2::TCR_EL1::SET.value;
    }
    match watch.poe {
        Mode::Virtual => {
            w |= HFGWTR_EL2::CPACR_EL1::SET.value;
            r |= HFGRTR_EL2::CPACR_EL1::SET.value;
            if tcr2 == Tcr2Path::Hardware {
                w |= HFGWTR_EL2::TCR_EL1::SET.value;
                r |= HFGRTR_EL2::TCR_EL1::SET.value;
            }
            if watch.por_carrier {
                w |= HFGWTR_EL2::SCXTNUM_EL1::SET.value | HFGWTR_EL2::SCXTNUM_EL0::SET.value;
                SCXTNUM_EL1_REG.set(0);
                SCXTNUM_EL0_REG.set(0);
            }
            if porwatch_monitor::vpoe::hw_has_s1poe(ids.mmfr3) {
                // Forced virtual on a CPU with POE: trap POR_EL1/POR_EL0
                // both ways (nPOR_* = 0 traps) so they stay virtual.
                let n = HFGWTR_EL2::nPOR_EL1::SET.value | HFGWTR_EL2::nPOR_EL0::SET.value;
                w &= !n;
                r &= !n;
            }
        }
        // nPOR_EL1 = 0 traps (porwatch.por=trap); sampling traps nothing.
        Mode::Native if watch.por_trap => w &= !HFGWTR_EL2::nPOR_EL1::SET.value,
        Mode::Native => {}
        Mode::None => {}
    }
    HFGWTR_EL2.set(w);
    HFGRTR_EL2.set(r);
    if watch.exc_return {
        HFGITR_EL2.set(HFGITR_EL2.get() | HFGITR_EL2::ERET::SET.value);
    }
    isb();
}
