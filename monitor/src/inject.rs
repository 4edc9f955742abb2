//! Synchronous exceptions the hypervisor injects into its AArch64 EL1 guest.
//!
//! Pure computation of what Linux KVM does in `arch/arm64/kvm/inject_fault.c`
//! (`inject_undef64`, `inject_abt64`) and `arch/arm64/kvm/hyp/exception.c`
//! (`enter_exception64(vcpu, PSR_MODE_EL1h, except_type_sync)`), which in
//! turn follows the Arm ARM pseudocode `AArch64.TakeException()`:
//!
//! * vector = VBAR_EL1 + {0x000 current EL with SP_EL0, 0x200 current EL
//!   with SP_ELx, 0x400 lower EL AArch64, 0x600 lower EL AArch32} + 0x000
//!   (synchronous);
//! * ELR_EL1 = the faulting PC, SPSR_EL1 = the old PSTATE;
//! * new PSTATE: N,Z,C,V and DIT kept; PAN kept and set if SCTLR_EL1.SPAN
//!   == 0; UAO, SS, IL, BTYPE cleared; SSBS = SCTLR_EL1.DSSBS; TCO set when
//!   the guest has MTE; D,A,I,F set; M = EL1h (AArch64).
//!
//! Not modelled (as in KVM): PSTATE.ALLINT (FEAT_NMI), PSTATE.EXLOCK
//! (FEAT_GCS), PSTATE.PM (FEAT_EBEP) — porwatch does not expose those
//! features to the guest; they come out zero.
//!
//! The hypervisor applies an [`Injection`] by writing ELR_EL2/SPSR_EL2
//! (the guest resumes at the vector with the new PSTATE on ERET) and the
//! guest's SPSR_EL1, ELR_EL1, ESR_EL1 and (if `Some`) FAR_EL1.

use crate::esr::{
    ExceptionClass, FaultStatus, EC_SHIFT, FSC_MASK, FSC_SYNC_EXTERNAL, IL_BIT, ISS2_MASK, ISS2_SHIFT,
    ISS_CM, ISS_WNR,
};

// PSTATE / SPSR_ELx bits (Linux uapi/asm/ptrace.h PSR_*, debug-monitors.h
// DBG_SPSR_SS; Arm ARM SPSR_EL2 AArch64 layout).
pub const PSR_MODE_MASK: u64 = 0xF;
pub const PSR_MODE_EL0T: u64 = 0b0000;
pub const PSR_MODE_EL1T: u64 = 0b0100;
pub const PSR_MODE_EL1H: u64 = 0b0101;
/// M[4]: exception taken from AArch32.
pub const PSR_MODE32_BIT: u64 = 1 << 4;
pub const PSR_F_BIT: u64 = 1 << 6;
pub const PSR_I_BIT: u64 = 1 << 7;
pub const PSR_A_BIT: u64 = 1 << 8;
pub const PSR_D_BIT: u64 = 1 << 9;
pub const PSR_DAIF_MASK: u64 = PSR_D_BIT | PSR_A_BIT | PSR_I_BIT | PSR_F_BIT;
pub const PSR_BTYPE_MASK: u64 = 0b11 << 10;
pub const PSR_SSBS_BIT: u64 = 1 << 12;
pub const PSR_ALLINT_BIT: u64 = 1 << 13;
pub const PSR_IL_BIT: u64 = 1 << 20;
pub const PSR_SS_BIT: u64 = 1 << 21;
pub const PSR_PAN_BIT: u64 = 1 << 22;
pub const PSR_UAO_BIT: u64 = 1 << 23;
pub const PSR_DIT_BIT: u64 = 1 << 24;
pub const PSR_TCO_BIT: u64 = 1 << 25;
pub const PSR_V_BIT: u64 = 1 << 28;
pub const PSR_C_BIT: u64 = 1 << 29;
pub const PSR_Z_BIT: u64 = 1 << 30;
pub const PSR_N_BIT: u64 = 1 << 31;
pub const PSR_NZCV_MASK: u64 = PSR_N_BIT | PSR_Z_BIT | PSR_C_BIT | PSR_V_BIT;

// SCTLR_EL1 bits (Linux sysreg.h: SCTLR_EL1_SPAN BIT(23), SCTLR_ELx_DSSBS BIT(44)).
pub const SCTLR_EL1_SPAN: u64 = 1 << 23;
pub const SCTLR_ELX_DSSBS: u64 = 1 << 44;

// Vector offsets (inject_fault.c / exception.c).
pub const CURRENT_EL_SP_EL0_VECTOR: u64 = 0x000;
pub const CURRENT_EL_SP_ELX_VECTOR: u64 = 0x200;
pub const LOWER_EL_AARCH64_VECTOR: u64 = 0x400;
pub const LOWER_EL_AARCH32_VECTOR: u64 = 0x600;
/// Offset of the synchronous entry inside each group of four vectors.
pub const EXCEPT_TYPE_SYNC: u64 = 0x000;
/// VBAR_EL1 bits [10:0] are RES0 (the table is 2 KiB aligned).
pub const VBAR_RES0_MASK: u64 = 0x7FF;

/// The guest state at the trap, as the hypervisor reads it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GuestState {
    /// SPSR_EL2: the guest's PSTATE when it trapped.
    pub spsr_el2: u64,
    /// ELR_EL2: the guest PC to report (the faulting instruction).
    pub elr_el2: u64,
    pub vbar_el1: u64,
    /// SCTLR_EL1 (SPAN and DSSBS are consulted).
    pub sctlr_el1: u64,
    /// The trapped instruction was 32 bits wide (ESR_EL2.IL); see
    /// [`GuestState::il_bit`].
    pub il32: bool,
    /// The guest is given FEAT_MTE: PSTATE.TCO is set on exception entry.
    pub mte: bool,
}

impl GuestState {
    /// The IL bit for syndromes whose IL field is meaningful (e.g. when
    /// re-injecting a trapped instruction's own syndrome through
    /// [`sync_exception`]). UNDEF and aborts without ISV always use IL = 1
    /// (RES1 per the Arm ARM ESR_ELx.IL description); for an AArch64 guest
    /// this equals KVM's `kvm_vcpu_trap_il_is32bit()` choice, and differs
    /// only for a 16-bit T32 instruction at AArch32 EL0.
    #[inline]
    pub const fn il_bit(&self) -> u64 {
        if self.il32 {
            IL_BIT
        } else {
            0
        }
    }
}

/// Register values that deliver the exception.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Injection {
    /// New guest PC: VBAR_EL1 + vector offset.
    pub elr_el2: u64,
    /// New guest PSTATE (EL1h, DAIF masked, ...).
    pub spsr_el2: u64,
    /// SPSR_EL1 = the PSTATE at the fault.
    pub spsr_el1: u64,
    /// ELR_EL1 = the faulting PC.
    pub elr_el1: u64,
    pub esr_el1: u64,
    /// FAR_EL1 for aborts; `None` means leave FAR_EL1 untouched.
    pub far_el1: Option<u64>,
}

/// Vector offset for an exception to EL1h taken from `pstate`
/// (`enter_exception64` with target PSR_MODE_EL1h).
#[inline]
pub const fn vector_offset(pstate: u64) -> u64 {
    let mode = pstate & (PSR_MODE_MASK | PSR_MODE32_BIT);
    if mode == PSR_MODE_EL1H {
        CURRENT_EL_SP_ELX_VECTOR
    } else if mode == PSR_MODE_EL1T {
        CURRENT_EL_SP_EL0_VECTOR
    } else if mode & PSR_MODE32_BIT == 0 {
        LOWER_EL_AARCH64_VECTOR
    } else {
        LOWER_EL_AARCH32_VECTOR
    }
}

/// True when an abort from `pstate` reports the "lower EL" EC (0x20/0x24):
/// EL0 or AArch32 (`inject_abt64`).
#[inline]
pub const fn from_lower_el(pstate: u64) -> bool {
    pstate & PSR_MODE32_BIT != 0 || pstate & PSR_MODE_MASK == PSR_MODE_EL0T
}

/// PSTATE on entry to EL1h (`enter_exception64`, AArch64.TakeException()).
#[inline]
pub const fn entry_pstate(old: u64, sctlr_el1: u64, mte: bool) -> u64 {
    let mut new = old & (PSR_NZCV_MASK | PSR_DIT_BIT | PSR_PAN_BIT);
    if mte {
        new |= PSR_TCO_BIT;
    }
    // PAN unchanged unless SCTLR_EL1.SPAN == 0 (SPAN is RES1 without FEAT_PAN).
    if sctlr_el1 & SCTLR_EL1_SPAN == 0 {
        new |= PSR_PAN_BIT;
    }
    // SSBS = SCTLR_EL1.DSSBS. UAO, SS, IL, BTYPE: zero.
    if sctlr_el1 & SCTLR_ELX_DSSBS != 0 {
        new |= PSR_SSBS_BIT;
    }
    new | PSR_DAIF_MASK | PSR_MODE_EL1H
}

/// Delivers a synchronous exception with syndrome `esr_el1` to EL1h.
#[inline]
pub fn sync_exception(state: &GuestState, esr_el1: u64, far_el1: Option<u64>) -> Injection {
    let vbar = state.vbar_el1 & !VBAR_RES0_MASK;
    Injection {
        elr_el2: vbar.wrapping_add(vector_offset(state.spsr_el2)).wrapping_add(EXCEPT_TYPE_SYNC),
        spsr_el2: entry_pstate(state.spsr_el2, state.sctlr_el1, state.mte),
        spsr_el1: state.spsr_el2,
        elr_el1: state.elr_el2,
        esr_el1,
        far_el1,
    }
}

#[inline]
const fn ec_field(ec: ExceptionClass) -> u64 {
    (ec as u64) << EC_SHIFT
}

/// ESR for an UNDEFINED instruction: EC 0x00 ("unknown reason"), IL = 1
/// (IL is RES1 for EC 0x00 per the Arm ARM; KVM sets it from the trapped
/// instruction length, which is always 32-bit for AArch64 code), ISS 0.
pub const UNDEF_ESR: u64 = (ExceptionClass::Unknown as u64) << EC_SHIFT | IL_BIT;

/// Builds a Data Abort ESR for the guest: EC 0x24 (`from_lower`) or 0x25,
/// IL = 1 (RES1 when ISV = 0), ISV = 0, WnR, DFSC = `fsc`, ISS2 = `iss2`
/// (bit 6 = Overlay). Out-of-range inputs are masked into their fields.
#[inline]
pub const fn data_abort_esr(from_lower: bool, fsc: u8, wnr: bool, iss2: u32) -> u64 {
    let ec = if from_lower { ExceptionClass::DataAbortLower } else { ExceptionClass::DataAbortSame };
    let wnr = if wnr { ISS_WNR as u64 } else { 0 };
    ((iss2 as u64 & ISS2_MASK) << ISS2_SHIFT) | ec_field(ec) | IL_BIT | wnr | (fsc as u64 & FSC_MASK as u64)
}

/// Builds an Instruction Abort ESR: EC 0x20 (`from_lower`) or 0x21, IL = 1
/// (RES1 for Instruction Aborts), IFSC = `fsc`.
#[inline]
pub const fn instr_abort_esr(from_lower: bool, fsc: u8) -> u64 {
    let ec = if from_lower { ExceptionClass::InstrAbortLower } else { ExceptionClass::InstrAbortSame };
    ec_field(ec) | IL_BIT | (fsc as u64 & FSC_MASK as u64)
}

/// Injects an UNDEFINED instruction exception (`kvm_inject_undefined`).
#[inline]
pub fn undef(state: &GuestState) -> Injection {
    sync_exception(state, UNDEF_ESR, None)
}

/// Injects a synchronous external Data Abort at `far` (`kvm_inject_dabt`,
/// DFSC 0x10), with WnR reporting the access direction.
#[inline]
pub fn external_data_abort(state: &GuestState, far: u64, wnr: bool) -> Injection {
    data_abort(state, FSC_SYNC_EXTERNAL, wnr, 0, far)
}

/// Injects a synchronous external Instruction Abort at `far`
/// (`kvm_inject_pabt`, IFSC 0x10).
#[inline]
pub fn external_instr_abort(state: &GuestState, far: u64) -> Injection {
    instr_abort(state, FSC_SYNC_EXTERNAL, far)
}

/// General Data Abort injection: DFSC `fsc`, WnR, ISS2 (`esr::ISS2_OVERLAY`
/// for an overlay permission fault), FAR_EL1 = `far`.
///
/// `data_abort(&el1h_state, 0x0F, true, 0x40, va)` produces ESR_EL1
/// `0x0000_0040_9600_004F` (EC 0x25, IL, ISS2.Overlay, WnR, permission
/// fault level 3).
#[inline]
pub fn data_abort(state: &GuestState, fsc: u8, wnr: bool, iss2: u32, far: u64) -> Injection {
    let esr = data_abort_esr(from_lower_el(state.spsr_el2), fsc, wnr, iss2);
    sync_exception(state, esr, Some(far))
}

/// The access whose stage-1 translation table walk failed: it decides the
/// exception class and WnR/CM of [`walk_external_abort`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WalkAccess {
    /// An instruction fetch: an Instruction Abort.
    Fetch,
    /// A data read: a Data Abort with WnR = 0.
    Read,
    /// A data write (stores, atomics, DC ZVA): WnR = 1, as QEMU reports it
    /// (the Arm ARM leaves WnR UNKNOWN for an external abort on an atomic).
    Write,
    /// A cache-maintenance or address-translation instruction: CM = 1 and
    /// WnR = 1, as the Arm ARM requires for those.
    CacheMaintenance,
}

/// A Synchronous External abort on the stage-1 translation table walk for
/// `far`, at lookup level `level` (-1..=3; DFSC/IFSC 0b0101LL, 0b010011 for
/// level -1): what the guest takes when a descriptor fetch of its own walk
/// hits an address with nothing behind it. ISV = 0 (never set for a
/// stage-1 fault), S1PTW = 0 (a stage-1 fault), EA = 0 (the IMPLEMENTATION
/// DEFINED external-abort type; QEMU reports 0 for an address with no
/// device, a bus decode error), FnV = 0 (FAR_EL1 = `far`, the VA being
/// translated), ISS2 = 0.
#[inline]
pub fn walk_external_abort(state: &GuestState, access: WalkAccess, level: i8, far: u64) -> Injection {
    let fsc = FaultStatus::SyncExternalOnWalk { level: level.clamp(-1, 3) }.bits();
    match access {
        WalkAccess::Fetch => instr_abort(state, fsc, far),
        WalkAccess::Read | WalkAccess::Write => data_abort(state, fsc, access == WalkAccess::Write, 0, far),
        WalkAccess::CacheMaintenance => {
            let esr = data_abort_esr(from_lower_el(state.spsr_el2), fsc, true, 0) | ISS_CM as u64;
            sync_exception(state, esr, Some(far))
        }
    }
}

/// General Instruction Abort injection with IFSC `fsc` at `far`.
#[inline]
pub fn instr_abort(state: &GuestState, fsc: u8, far: u64) -> Injection {
    let esr = instr_abort_esr(from_lower_el(state.spsr_el2), fsc);
    sync_exception(state, esr, Some(far))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esr::{self, Exit, FaultStatus};

    const VBAR: u64 = 0xFFFF_8000_1001_0800;
    const PC: u64 = 0xFFFF_8000_1234_5678;

    fn el1h(sctlr: u64) -> GuestState {
        GuestState {
            // N and C set, DAIF clear, EL1h.
            spsr_el2: PSR_N_BIT | PSR_C_BIT | PSR_MODE_EL1H,
            elr_el2: PC,
            vbar_el1: VBAR,
            sctlr_el1: sctlr,
            il32: true,
            mte: false,
        }
    }

    #[test]
    fn undef_from_el1h() {
        let s = el1h(SCTLR_EL1_SPAN);
        let inj = undef(&s);
        assert_eq!(
            inj,
            Injection {
                elr_el2: VBAR + 0x200,
                spsr_el2: PSR_N_BIT | PSR_C_BIT | 0x3C5,
                spsr_el1: PSR_N_BIT | PSR_C_BIT | 0x5,
                elr_el1: PC,
                esr_el1: 0x0200_0000,
                far_el1: None,
            }
        );
        assert_eq!(inj.spsr_el2, 0xA000_03C5);
    }

    #[test]
    fn undef_from_el0() {
        let s = GuestState { spsr_el2: PSR_Z_BIT | PSR_MODE_EL0T, ..el1h(SCTLR_EL1_SPAN) };
        let inj = undef(&s);
        assert_eq!(inj.elr_el2, VBAR + 0x400);
        assert_eq!(inj.spsr_el2, PSR_Z_BIT | 0x3C5);
        assert_eq!(inj.spsr_el1, PSR_Z_BIT);
        assert_eq!(inj.esr_el1, 0x0200_0000);
        // EC 0 from EL0 is still EC 0.
        assert_eq!(esr::ec_bits(inj.esr_el1), 0);
    }

    #[test]
    fn vector_offsets() {
        assert_eq!(vector_offset(PSR_MODE_EL1T), 0x000);
        assert_eq!(vector_offset(PSR_MODE_EL1H), 0x200);
        assert_eq!(vector_offset(PSR_MODE_EL0T), 0x400);
        assert_eq!(vector_offset(PSR_MODE32_BIT), 0x600); // AArch32 USR
        assert_eq!(vector_offset(PSR_MODE32_BIT | 0x3), 0x600); // AArch32 SVC
        assert_eq!(vector_offset(PSR_DAIF_MASK | PSR_MODE_EL1H), 0x200);
        // VBAR_EL1 RES0 bits are ignored.
        let s = GuestState { vbar_el1: VBAR | 0x7FF, ..el1h(SCTLR_EL1_SPAN) };
        assert_eq!(undef(&s).elr_el2, VBAR + 0x200);
        // EL1t
        let s = GuestState { spsr_el2: PSR_MODE_EL1T, ..el1h(SCTLR_EL1_SPAN) };
        assert_eq!(undef(&s).elr_el2, VBAR);
    }

    #[test]
    fn external_data_abort_from_el1_and_el0() {
        let s = el1h(SCTLR_EL1_SPAN);
        let inj = external_data_abort(&s, 0xDEAD_B000, true);
        assert_eq!(inj.esr_el1, 0x9600_0050); // EC 0x25, IL, WnR, DFSC 0x10
        assert_eq!(inj.far_el1, Some(0xDEAD_B000));
        assert_eq!(inj.elr_el1, PC);
        let inj = external_data_abort(&s, 0x1000, false);
        assert_eq!(inj.esr_el1, 0x9600_0010);
        let s0 = GuestState { spsr_el2: PSR_MODE_EL0T, ..s };
        let inj = external_data_abort(&s0, 0x1000, false);
        assert_eq!(inj.esr_el1, 0x9200_0010); // EC 0x24
        assert_eq!(inj.elr_el2, VBAR + 0x400);
        // AArch32 EL0 also reports "lower EL".
        let s32 = GuestState { spsr_el2: PSR_MODE32_BIT, ..s };
        assert_eq!(external_data_abort(&s32, 0, false).esr_el1, 0x9200_0010);
    }

    #[test]
    fn external_instr_abort_codes() {
        let s = el1h(SCTLR_EL1_SPAN);
        let inj = external_instr_abort(&s, PC);
        assert_eq!(inj.esr_el1, 0x8600_0010); // EC 0x21, IL, IFSC 0x10
        assert_eq!(inj.far_el1, Some(PC));
        let s0 = GuestState { spsr_el2: PSR_MODE_EL0T, ..s };
        assert_eq!(external_instr_abort(&s0, PC).esr_el1, 0x8200_0010); // EC 0x20
    }

    #[test]
    fn overlay_seed_esr() {
        let s = el1h(SCTLR_EL1_SPAN);
        let inj = data_abort(&s, 0x0F, true, esr::ISS2_OVERLAY, 0x4000_1234);
        assert_eq!(inj.esr_el1, 0x0000_0040_9600_004F);
        assert_eq!(inj.far_el1, Some(0x4000_1234));
        assert_eq!(data_abort_esr(false, 0x0F, true, 0x40), 0x0000_0040_9600_004F);
        // Decodes back (EC rewritten to "lower" to go through `decode`).
        let as_lower = data_abort_esr(true, 0x0F, true, 0x40);
        let Exit::DataAbortLower(da) = esr::decode(as_lower) else { panic!() };
        assert!(da.overlay() && da.wnr() && !da.isv());
        assert_eq!(da.dfsc(), FaultStatus::Permission { level: 3 });
        // Out-of-range inputs are masked, not panicking.
        assert_eq!(data_abort_esr(false, 0xFF, false, u32::MAX), 0x00FF_FFFF_9600_003F);
    }

    #[test]
    fn external_abort_on_a_stage1_walk() {
        let s = el1h(SCTLR_EL1_SPAN);
        // A load whose level-2 table has nothing behind it: bare QEMU gives
        // ESR 0x96000016 (EC 0x25, IL, DFSC 0b010110).
        let inj = walk_external_abort(&s, WalkAccess::Read, 2, 0xffff_8000_0020_0000);
        assert_eq!(inj.esr_el1, 0x9600_0016);
        assert_eq!(inj.far_el1, Some(0xffff_8000_0020_0000));
        assert_eq!(inj.elr_el2, VBAR + 0x200);
        // A store (WnR), a TTBR with nothing behind it (level 0), LPA2's
        // level -1, and from EL0 (EC 0x24).
        assert_eq!(walk_external_abort(&s, WalkAccess::Write, 0, 0).esr_el1, 0x9600_0054);
        assert_eq!(walk_external_abort(&s, WalkAccess::Read, -1, 0).esr_el1, 0x9600_0013);
        let s0 = GuestState { spsr_el2: PSR_MODE_EL0T, ..s };
        assert_eq!(walk_external_abort(&s0, WalkAccess::Write, 3, 0).esr_el1, 0x9200_0057);
        // DC CIVAC: CM and WnR. An instruction fetch: an Instruction Abort.
        assert_eq!(walk_external_abort(&s, WalkAccess::CacheMaintenance, 1, 0).esr_el1, 0x9600_0155);
        assert_eq!(walk_external_abort(&s, WalkAccess::Fetch, 1, PC).esr_el1, 0x8600_0015);
        assert_eq!(walk_external_abort(&s0, WalkAccess::Fetch, 1, PC).esr_el1, 0x8200_0015);
        // It decodes back as what it is.
        let Exit::DataAbortLower(da) = esr::decode(data_abort_esr(true, 0x16, false, 0)) else { panic!() };
        assert_eq!(da.dfsc(), FaultStatus::SyncExternalOnWalk { level: 2 });
        assert!(!da.s1ptw() && !da.isv() && !da.ea());
    }

    #[test]
    fn pan_span_behaviour() {
        // SPAN=1: PAN preserved (clear stays clear, set stays set).
        let s = el1h(SCTLR_EL1_SPAN);
        assert_eq!(undef(&s).spsr_el2 & PSR_PAN_BIT, 0);
        let s = GuestState { spsr_el2: s.spsr_el2 | PSR_PAN_BIT, ..s };
        assert_ne!(undef(&s).spsr_el2 & PSR_PAN_BIT, 0);
        // SPAN=0: PAN set on entry.
        let s = el1h(0);
        assert_ne!(undef(&s).spsr_el2 & PSR_PAN_BIT, 0);
        let s0 = GuestState { spsr_el2: PSR_MODE_EL0T, ..s };
        assert_eq!(undef(&s0).spsr_el2, PSR_PAN_BIT | 0x3C5);
    }

    #[test]
    fn pstate_fields_cleared_kept_set() {
        let old = PSR_NZCV_MASK
            | PSR_DIT_BIT
            | PSR_UAO_BIT
            | PSR_SS_BIT
            | PSR_IL_BIT
            | PSR_BTYPE_MASK
            | PSR_SSBS_BIT
            | PSR_ALLINT_BIT
            | PSR_TCO_BIT
            | PSR_MODE_EL0T;
        // DSSBS=0, SPAN=1, no MTE: SSBS/TCO/UAO/SS/IL/BTYPE/ALLINT cleared.
        let new = entry_pstate(old, SCTLR_EL1_SPAN, false);
        assert_eq!(new, PSR_NZCV_MASK | PSR_DIT_BIT | PSR_DAIF_MASK | PSR_MODE_EL1H);
        // DSSBS=1 sets SSBS even if it was clear; MTE sets TCO.
        let new = entry_pstate(PSR_MODE_EL1H, SCTLR_EL1_SPAN | SCTLR_ELX_DSSBS, true);
        assert_eq!(new, PSR_SSBS_BIT | PSR_TCO_BIT | PSR_DAIF_MASK | PSR_MODE_EL1H);
        // The SPSR_EL1 copy keeps everything, including SS and IL.
        let s = GuestState { spsr_el2: old, ..el1h(SCTLR_EL1_SPAN) };
        assert_eq!(undef(&s).spsr_el1, old);
    }

    #[test]
    fn wrapping_never_panics() {
        let s = GuestState {
            spsr_el2: u64::MAX,
            elr_el2: u64::MAX,
            vbar_el1: u64::MAX,
            sctlr_el1: u64::MAX,
            il32: false,
            mte: true,
        };
        let inj = instr_abort(&s, 0xFF, u64::MAX);
        assert_eq!(inj.elr_el2, (!0x7FFu64).wrapping_add(0x600));
        assert_eq!(esr::ec_bits(inj.esr_el1), 0x20);
        assert_eq!(s.il_bit(), 0);
        assert_eq!(el1h(0).il_bit(), IL_BIT);
    }
}
