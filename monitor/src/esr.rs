//! Typed decoding of ESR_EL2 (the syndrome of every exception taken to EL2).
//!
//! Layout (Arm ARM DDI 0487, register description "ESR_EL2"; Linux `arch/arm64/include/asm/esr.h`):
//! ISS2 [55:32], EC [31:26], IL [25], ISS [24:0]. Bits [63:56] are RES0.
//!
//! [`decode`] is called on every trap: it is branch-light, allocation-free,
//! total (every `u64` decodes to something) and never panics.

use crate::sysreg::SysRegId;

/// EC field: bits [31:26].
pub const EC_SHIFT: u32 = 26;
pub const EC_MASK: u64 = 0x3F;
/// IL: instruction length for synchronous exceptions (1 = 32-bit).
pub const IL_BIT: u64 = 1 << 25;
/// ISS: bits [24:0].
pub const ISS_MASK: u64 = (1 << 25) - 1;
/// ISS2: bits [55:32].
pub const ISS2_SHIFT: u32 = 32;
pub const ISS2_MASK: u64 = (1 << 24) - 1;

/// Every Exception Class value the Arm ARM (DDI 0487 K.a, ESR_ELx.EC) defines.
///
/// Values cross-checked with Linux `esr.h` (`ESR_ELx_EC_*`), QEMU
/// `target/arm/syndrome.h` (`enum arm_exception_class`) and the `aarch64-cpu`
/// crate's ESR_EL2.EC table (which adds 0x14 FEAT_SYSREG128, 0x1B FEAT_TME,
/// 0x3D FEAT_EBEP/SPE_EXC). 0x1E (GPC) and 0x1F (IMPDEF) are only ever taken
/// to EL3 but are architecturally defined ESR_ELx encodings.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum ExceptionClass {
    /// Unknown reason (also: UNDEFINED instruction).
    Unknown = 0x00,
    /// Trapped WFI/WFE/WFIT/WFET.
    Wfx = 0x01,
    /// Trapped MCR/MRC, coproc 0b1111 (AArch32).
    Cp15Mcr = 0x03,
    /// Trapped MCRR/MRRC, coproc 0b1111 (AArch32).
    Cp15Mcrr = 0x04,
    /// Trapped MCR/MRC, coproc 0b1110 (AArch32).
    Cp14Mcr = 0x05,
    /// Trapped LDC/STC (AArch32).
    Cp14Ldc = 0x06,
    /// Access to SME, SVE, Advanced SIMD or floating point trapped.
    SimdFp = 0x07,
    /// Trapped VMRS (ID group) (AArch32).
    Cp10Vmrs = 0x08,
    /// Trapped pointer-authentication instruction (FEAT_PAuth).
    PacTrap = 0x09,
    /// Trapped instruction not covered by other ECs (LD64B/ST64B, TSB/PSB CSYNC).
    OtherInstr = 0x0A,
    /// Trapped MRRC, coproc 0b1110 (AArch32).
    Cp14Mrrc = 0x0C,
    /// Branch Target exception (FEAT_BTI).
    Bti = 0x0D,
    /// Illegal Execution state.
    IllegalState = 0x0E,
    /// SVC in AArch32.
    Svc32 = 0x11,
    /// HVC in AArch32.
    Hvc32 = 0x12,
    /// SMC in AArch32.
    Smc32 = 0x13,
    /// Trapped MSRR/MRRS/128-bit System instruction (FEAT_SYSREG128).
    Sys128 = 0x14,
    /// SVC in AArch64.
    Svc64 = 0x15,
    /// HVC in AArch64.
    Hvc64 = 0x16,
    /// SMC in AArch64 (trapped by HCR_EL2.TSC).
    Smc64 = 0x17,
    /// Trapped MSR/MRS/System instruction in AArch64.
    Sys64 = 0x18,
    /// Access to SVE functionality trapped.
    Sve = 0x19,
    /// Trapped ERET/ERETAA/ERETAB.
    Eret = 0x1A,
    /// Exception from TSTART (FEAT_TME).
    Tstart = 0x1B,
    /// PAC authentication failure (FEAT_FPAC).
    Fpac = 0x1C,
    /// Access to SME functionality trapped.
    Sme = 0x1D,
    /// Granule Protection Check exception (FEAT_RME; EL3 only).
    Gpc = 0x1E,
    /// IMPLEMENTATION DEFINED exception to EL3.
    ImpDefEl3 = 0x1F,
    /// Instruction Abort from a lower EL.
    InstrAbortLower = 0x20,
    /// Instruction Abort at the same EL.
    InstrAbortSame = 0x21,
    /// PC alignment fault.
    PcAlign = 0x22,
    /// Data Abort from a lower EL.
    DataAbortLower = 0x24,
    /// Data Abort at the same EL.
    DataAbortSame = 0x25,
    /// SP alignment fault.
    SpAlign = 0x26,
    /// Memory Operation exception (FEAT_MOPS).
    Mops = 0x27,
    /// Trapped floating-point exception, AArch32.
    Fp32 = 0x28,
    /// Trapped floating-point exception, AArch64.
    Fp64 = 0x2C,
    /// Guarded Control Stack exception (FEAT_GCS).
    Gcs = 0x2D,
    /// SError exception.
    SError = 0x2F,
    /// Breakpoint from a lower EL.
    BreakpointLower = 0x30,
    /// Breakpoint at the same EL.
    BreakpointSame = 0x31,
    /// Software Step from a lower EL.
    SoftwareStepLower = 0x32,
    /// Software Step at the same EL.
    SoftwareStepSame = 0x33,
    /// Watchpoint from a lower EL.
    WatchpointLower = 0x34,
    /// Watchpoint at the same EL.
    WatchpointSame = 0x35,
    /// BKPT in AArch32.
    Bkpt32 = 0x38,
    /// Vector Catch (AArch32).
    VectorCatch32 = 0x3A,
    /// BRK in AArch64.
    Brk64 = 0x3C,
    /// Profiling exception (FEAT_EBEP / FEAT_SPE_EXC / FEAT_TRBE_EXC).
    Profiling = 0x3D,
}

impl ExceptionClass {
    /// Maps a 6-bit EC value; `None` for unallocated values (and for
    /// anything above 0x3F).
    #[inline]
    pub const fn from_bits(bits: u8) -> Option<Self> {
        use ExceptionClass::*;
        Some(match bits {
            0x00 => Unknown,
            0x01 => Wfx,
            0x03 => Cp15Mcr,
            0x04 => Cp15Mcrr,
            0x05 => Cp14Mcr,
            0x06 => Cp14Ldc,
            0x07 => SimdFp,
            0x08 => Cp10Vmrs,
            0x09 => PacTrap,
            0x0A => OtherInstr,
            0x0C => Cp14Mrrc,
            0x0D => Bti,
            0x0E => IllegalState,
            0x11 => Svc32,
            0x12 => Hvc32,
            0x13 => Smc32,
            0x14 => Sys128,
            0x15 => Svc64,
            0x16 => Hvc64,
            0x17 => Smc64,
            0x18 => Sys64,
            0x19 => Sve,
            0x1A => Eret,
            0x1B => Tstart,
            0x1C => Fpac,
            0x1D => Sme,
            0x1E => Gpc,
            0x1F => ImpDefEl3,
            0x20 => InstrAbortLower,
            0x21 => InstrAbortSame,
            0x22 => PcAlign,
            0x24 => DataAbortLower,
            0x25 => DataAbortSame,
            0x26 => SpAlign,
            0x27 => Mops,
            0x28 => Fp32,
            0x2C => Fp64,
            0x2D => Gcs,
            0x2F => SError,
            0x30 => BreakpointLower,
            0x31 => BreakpointSame,
            0x32 => SoftwareStepLower,
            0x33 => SoftwareStepSame,
            0x34 => WatchpointLower,
            0x35 => WatchpointSame,
            0x38 => Bkpt32,
            0x3A => VectorCatch32,
            0x3C => Brk64,
            0x3D => Profiling,
            _ => return None,
        })
    }

    /// The raw 6-bit value.
    #[inline]
    pub const fn bits(self) -> u8 {
        self as u8
    }
}

/// An EC value as found in a register: either architecturally defined, or
/// an unallocated value preserved as-is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ec {
    Known(ExceptionClass),
    Other(u8),
}

impl Ec {
    /// From the 6-bit EC value (higher bits are dropped).
    #[inline]
    pub const fn from_bits(bits: u8) -> Self {
        let bits = bits & EC_MASK as u8;
        match ExceptionClass::from_bits(bits) {
            Some(ec) => Ec::Known(ec),
            None => Ec::Other(bits),
        }
    }

    /// The EC of an ESR value.
    #[inline]
    pub const fn of(esr: u64) -> Self {
        Self::from_bits(ec_bits(esr))
    }

    #[inline]
    pub const fn bits(self) -> u8 {
        match self {
            Ec::Known(ec) => ec as u8,
            Ec::Other(b) => b,
        }
    }
}

/// Raw EC bits of an ESR value.
#[inline]
pub const fn ec_bits(esr: u64) -> u8 {
    ((esr >> EC_SHIFT) & EC_MASK) as u8
}

/// The IL bit: true when the trapped instruction was 32 bits (always for
/// AArch64 instructions; also RES1 for aborts without ISV, UNKNOWN-class,
/// SError and most debug exceptions).
#[inline]
pub const fn il(esr: u64) -> bool {
    esr & IL_BIT != 0
}

/// ISS bits [24:0].
#[inline]
pub const fn iss(esr: u64) -> u32 {
    (esr & ISS_MASK) as u32
}

/// ISS2 bits [55:32].
#[inline]
pub const fn iss2(esr: u64) -> u32 {
    ((esr >> ISS2_SHIFT) & ISS2_MASK) as u32
}

/// True when the FAR of the exception with syndrome `esr` holds an address
/// (Arm ARM FAR_ELx: Instruction and Data Aborts, PC alignment faults and
/// Watchpoints; a Data Abort with FnV = 1 says it does not). For every other
/// exception (a trapped system-register access, SMC/HVC, ...) FAR is UNKNOWN.
#[inline]
pub const fn far_valid(esr: u64) -> bool {
    use ExceptionClass::*;
    match ExceptionClass::from_bits(ec_bits(esr)) {
        Some(DataAbortLower | DataAbortSame) => iss(esr) & ISS_FNV == 0,
        Some(InstrAbortLower | InstrAbortSame | PcAlign | WatchpointLower | WatchpointSame) => true,
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// EC 0x18: trapped MSR / MRS / System instruction.
// ISS: op0 [21:20], op2 [19:17], op1 [16:14], CRn [13:10], Rt [9:5],
// CRm [4:1], Direction [0] (1 = read, MRS). (esr.h ESR_ELx_SYS64_ISS_*.)
// ---------------------------------------------------------------------------

const SYS64_RT_SHIFT: u32 = 5;
const SYS64_RT_MASK: u32 = 0x1F;
const SYS64_DIR_READ: u32 = 1;

/// A trapped MSR/MRS (or SYS/SYSL) access.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SysRegAccess {
    pub id: SysRegId,
    /// Transfer register number; 31 means XZR.
    pub rt: u8,
    /// True for MRS / SYSL (the guest reads into Xt).
    pub is_read: bool,
}

impl SysRegAccess {
    #[inline]
    pub const fn from_iss(iss: u32) -> Self {
        Self {
            id: SysRegId::from_sys64_iss(iss),
            rt: ((iss >> SYS64_RT_SHIFT) & SYS64_RT_MASK) as u8,
            is_read: iss & SYS64_DIR_READ != 0,
        }
    }
}

// ---------------------------------------------------------------------------
// Fault status codes (DFSC/IFSC, ISS[5:0]).
// Arm ARM ISS encoding for Data/Instruction Aborts; encodings follow the
// pseudocode EncodeLDFSC() as implemented by QEMU `arm_fi_to_lfsc()`
// (including the FEAT_LPA2 level -1 codes 0x29, 0x2B, 0x13, 0x1B, 0x23)
// and Linux esr.h `ESR_ELx_FSC_*`.
// ---------------------------------------------------------------------------

pub const FSC_MASK: u32 = 0x3F;
pub const FSC_ADDR_SIZE_L0: u8 = 0x00;
pub const FSC_ADDR_SIZE_LM1: u8 = 0x29;
pub const FSC_TRANSLATION_L0: u8 = 0x04;
pub const FSC_TRANSLATION_LM1: u8 = 0x2B;
pub const FSC_ACCESS_FLAG_L0: u8 = 0x08;
pub const FSC_PERMISSION_L0: u8 = 0x0C;
pub const FSC_SYNC_EXTERNAL: u8 = 0x10;
pub const FSC_SYNC_TAG_CHECK: u8 = 0x11;
pub const FSC_SEA_WALK_LM1: u8 = 0x13;
pub const FSC_SEA_WALK_L0: u8 = 0x14;
pub const FSC_SYNC_PARITY: u8 = 0x18;
pub const FSC_PARITY_WALK_LM1: u8 = 0x1B;
pub const FSC_PARITY_WALK_L0: u8 = 0x1C;
pub const FSC_ALIGNMENT: u8 = 0x21;
pub const FSC_GPF_WALK_LM1: u8 = 0x23;
pub const FSC_GPF_WALK_L0: u8 = 0x24;
pub const FSC_GPF: u8 = 0x28;
pub const FSC_TLB_CONFLICT: u8 = 0x30;
pub const FSC_UNSUPPORTED_ATOMIC_UPDATE: u8 = 0x31;
pub const FSC_IMPDEF_LOCKDOWN: u8 = 0x34;
pub const FSC_IMPDEF_EXCLUSIVE: u8 = 0x35;

/// A decoded DFSC/IFSC. `level` is the translation level, -1..=3.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FaultStatus {
    AddressSize {
        level: i8,
    },
    Translation {
        level: i8,
    },
    AccessFlag {
        level: i8,
    },
    Permission {
        level: i8,
    },
    /// Synchronous External abort, not on a table walk.
    SyncExternal,
    /// Synchronous Tag Check Fault (MTE).
    SyncTagCheck,
    /// Synchronous External abort on a table walk / hardware table update.
    SyncExternalOnWalk {
        level: i8,
    },
    /// Synchronous parity/ECC error, not on a walk.
    SyncParity,
    SyncParityOnWalk {
        level: i8,
    },
    Alignment,
    /// Granule Protection Fault on a table walk (FEAT_RME).
    GranuleProtectionOnWalk {
        level: i8,
    },
    /// Granule Protection Fault, not on a walk.
    GranuleProtection,
    TlbConflict,
    UnsupportedAtomicUpdate,
    ImpDefLockdown,
    ImpDefExclusive,
    /// Reserved / not decoded: the raw 6-bit value.
    Other(u8),
}

impl FaultStatus {
    #[inline]
    pub const fn from_bits(fsc: u8) -> Self {
        let fsc = fsc & FSC_MASK as u8;
        let lvl = (fsc & 0b11) as i8;
        use FaultStatus::*;
        match fsc {
            0x00..=0x03 => AddressSize { level: lvl },
            FSC_ADDR_SIZE_LM1 => AddressSize { level: -1 },
            0x04..=0x07 => Translation { level: lvl },
            FSC_TRANSLATION_LM1 => Translation { level: -1 },
            0x08..=0x0B => AccessFlag { level: lvl },
            0x0C..=0x0F => Permission { level: lvl },
            FSC_SYNC_EXTERNAL => SyncExternal,
            FSC_SYNC_TAG_CHECK => SyncTagCheck,
            FSC_SEA_WALK_LM1 => SyncExternalOnWalk { level: -1 },
            0x14..=0x17 => SyncExternalOnWalk { level: lvl },
            FSC_SYNC_PARITY => SyncParity,
            FSC_PARITY_WALK_LM1 => SyncParityOnWalk { level: -1 },
            0x1C..=0x1F => SyncParityOnWalk { level: lvl },
            FSC_ALIGNMENT => Alignment,
            FSC_GPF_WALK_LM1 => GranuleProtectionOnWalk { level: -1 },
            0x24..=0x27 => GranuleProtectionOnWalk { level: lvl },
            FSC_GPF => GranuleProtection,
            FSC_TLB_CONFLICT => TlbConflict,
            FSC_UNSUPPORTED_ATOMIC_UPDATE => UnsupportedAtomicUpdate,
            FSC_IMPDEF_LOCKDOWN => ImpDefLockdown,
            FSC_IMPDEF_EXCLUSIVE => ImpDefExclusive,
            other => Other(other),
        }
    }

    /// Re-encodes to the 6-bit FSC. Levels outside what the encoding can
    /// express are clamped into the field (`level & 3`), never panicking.
    #[inline]
    pub const fn bits(self) -> u8 {
        use FaultStatus::*;
        const fn lv(base: u8, level: i8, minus1: u8) -> u8 {
            if level < 0 {
                minus1
            } else {
                base | (level as u8 & 0b11)
            }
        }
        match self {
            AddressSize { level } => lv(FSC_ADDR_SIZE_L0, level, FSC_ADDR_SIZE_LM1),
            Translation { level } => lv(FSC_TRANSLATION_L0, level, FSC_TRANSLATION_LM1),
            AccessFlag { level } => FSC_ACCESS_FLAG_L0 | (level as u8 & 0b11),
            Permission { level } => FSC_PERMISSION_L0 | (level as u8 & 0b11),
            SyncExternal => FSC_SYNC_EXTERNAL,
            SyncTagCheck => FSC_SYNC_TAG_CHECK,
            SyncExternalOnWalk { level } => lv(FSC_SEA_WALK_L0, level, FSC_SEA_WALK_LM1),
            SyncParity => FSC_SYNC_PARITY,
            SyncParityOnWalk { level } => lv(FSC_PARITY_WALK_L0, level, FSC_PARITY_WALK_LM1),
            Alignment => FSC_ALIGNMENT,
            GranuleProtectionOnWalk { level } => lv(FSC_GPF_WALK_L0, level, FSC_GPF_WALK_LM1),
            GranuleProtection => FSC_GPF,
            TlbConflict => FSC_TLB_CONFLICT,
            UnsupportedAtomicUpdate => FSC_UNSUPPORTED_ATOMIC_UPDATE,
            ImpDefLockdown => FSC_IMPDEF_LOCKDOWN,
            ImpDefExclusive => FSC_IMPDEF_EXCLUSIVE,
            Other(b) => b & FSC_MASK as u8,
        }
    }
}

// ---------------------------------------------------------------------------
// Data Abort ISS (EC 0x24/0x25). Linux esr.h / QEMU syndrome.h:
// ISV [24], SAS [23:22], SSE [21], SRT [20:16], SF [15], AR [14] (valid
// only when ISV=1), VNCR [13], SET [12:11], FnV [10], EA [9], CM [8],
// S1PTW [7], WnR [6], DFSC [5:0].
// ISS2 (ESR[55:32]): Xs [4:0], DirtyBit [5], Overlay [6], AssuredOnly [7],
// GCS [8], TagAccess [9], TnD [10].
// ---------------------------------------------------------------------------

pub const ISS_ISV: u32 = 1 << 24;
pub const ISS_SAS_SHIFT: u32 = 22;
pub const ISS_SAS_MASK: u32 = 0b11;
pub const ISS_SSE: u32 = 1 << 21;
pub const ISS_SRT_SHIFT: u32 = 16;
pub const ISS_SRT_MASK: u32 = 0x1F;
pub const ISS_SF: u32 = 1 << 15;
pub const ISS_AR: u32 = 1 << 14;
pub const ISS_VNCR: u32 = 1 << 13;
pub const ISS_SET_SHIFT: u32 = 11;
pub const ISS_SET_MASK: u32 = 0b11;
pub const ISS_FNV: u32 = 1 << 10;
pub const ISS_EA: u32 = 1 << 9;
pub const ISS_CM: u32 = 1 << 8;
pub const ISS_S1PTW: u32 = 1 << 7;
pub const ISS_WNR: u32 = 1 << 6;

pub const ISS2_XS_MASK: u32 = 0x1F;
pub const ISS2_DIRTY_BIT: u32 = 1 << 5;
pub const ISS2_OVERLAY: u32 = 1 << 6;
pub const ISS2_ASSURED_ONLY: u32 = 1 << 7;
pub const ISS2_GCS: u32 = 1 << 8;
pub const ISS2_TAG_ACCESS: u32 = 1 << 9;
pub const ISS2_TND: u32 = 1 << 10;

/// Instruction-syndrome fields of a Data Abort, valid only when ISV=1.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AccessSyndrome {
    /// Access size in bytes: 1, 2, 4 or 8 (from SAS).
    pub size: u8,
    /// Sign-extend the loaded value (SSE).
    pub sign_extend: bool,
    /// Transfer register (SRT); 31 = XZR/WZR.
    pub srt: u8,
    /// 64-bit register width (SF).
    pub sixty_four: bool,
    /// Acquire/release semantics (AR).
    pub acquire_release: bool,
}

/// A Data Abort syndrome (ISS + ISS2), with typed accessors.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DataAbort {
    pub iss: u32,
    pub iss2: u32,
}

impl DataAbort {
    #[inline]
    pub const fn isv(&self) -> bool {
        self.iss & ISS_ISV != 0
    }
    /// SAS as bytes (1 << SAS); meaningful only with ISV.
    #[inline]
    pub const fn access_size(&self) -> u8 {
        1 << ((self.iss >> ISS_SAS_SHIFT) & ISS_SAS_MASK)
    }
    #[inline]
    pub const fn sse(&self) -> bool {
        self.iss & ISS_SSE != 0
    }
    #[inline]
    pub const fn srt(&self) -> u8 {
        ((self.iss >> ISS_SRT_SHIFT) & ISS_SRT_MASK) as u8
    }
    #[inline]
    pub const fn sf(&self) -> bool {
        self.iss & ISS_SF != 0
    }
    #[inline]
    pub const fn ar(&self) -> bool {
        self.iss & ISS_AR != 0
    }
    /// The ISV-guarded instruction syndrome, for MMIO emulation.
    #[inline]
    pub const fn access(&self) -> Option<AccessSyndrome> {
        if !self.isv() {
            return None;
        }
        Some(AccessSyndrome {
            size: self.access_size(),
            sign_extend: self.sse(),
            srt: self.srt(),
            sixty_four: self.sf(),
            acquire_release: self.ar(),
        })
    }
    /// FEAT_NV2: the fault came from a VNCR_EL2-based access.
    #[inline]
    pub const fn vncr(&self) -> bool {
        self.iss & ISS_VNCR != 0
    }
    /// Synchronous Error Type (FEAT_RAS), meaningful for external aborts.
    #[inline]
    pub const fn set(&self) -> u8 {
        ((self.iss >> ISS_SET_SHIFT) & ISS_SET_MASK) as u8
    }
    /// FAR not Valid: FAR_EL2 holds no address when set.
    #[inline]
    pub const fn fnv(&self) -> bool {
        self.iss & ISS_FNV != 0
    }
    /// External abort type (IMPLEMENTATION DEFINED classification).
    #[inline]
    pub const fn ea(&self) -> bool {
        self.iss & ISS_EA != 0
    }
    /// Cache maintenance / address translation instruction fault.
    #[inline]
    pub const fn cm(&self) -> bool {
        self.iss & ISS_CM != 0
    }
    /// Stage-2 fault on a stage-1 translation table walk.
    #[inline]
    pub const fn s1ptw(&self) -> bool {
        self.iss & ISS_S1PTW != 0
    }
    /// Write not Read.
    #[inline]
    pub const fn wnr(&self) -> bool {
        self.iss & ISS_WNR != 0
    }
    #[inline]
    pub const fn dfsc_bits(&self) -> u8 {
        (self.iss & FSC_MASK) as u8
    }
    #[inline]
    pub const fn dfsc(&self) -> FaultStatus {
        FaultStatus::from_bits(self.dfsc_bits())
    }
    /// ISS2.Overlay (bit 6): a Permission fault caused by a Permission
    /// Overlay (FEAT_S1POE / FEAT_S2POE).
    #[inline]
    pub const fn overlay(&self) -> bool {
        self.iss2 & ISS2_OVERLAY != 0
    }
    #[inline]
    pub const fn dirty_bit(&self) -> bool {
        self.iss2 & ISS2_DIRTY_BIT != 0
    }
    #[inline]
    pub const fn assured_only(&self) -> bool {
        self.iss2 & ISS2_ASSURED_ONLY != 0
    }
    #[inline]
    pub const fn gcs(&self) -> bool {
        self.iss2 & ISS2_GCS != 0
    }
    #[inline]
    pub const fn tag_access(&self) -> bool {
        self.iss2 & ISS2_TAG_ACCESS != 0
    }
    #[inline]
    pub const fn tnd(&self) -> bool {
        self.iss2 & ISS2_TND != 0
    }
    /// ISS2.Xs: register of an ST64BV/ST64BV0 that faulted.
    #[inline]
    pub const fn xs(&self) -> u8 {
        (self.iss2 & ISS2_XS_MASK) as u8
    }
}

/// An Instruction Abort syndrome (EC 0x20/0x21). ISS: SET [12:11], FnV [10],
/// EA [9], S1PTW [7], IFSC [5:0] (same positions as the Data Abort fields).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct InstrAbort {
    pub iss: u32,
}

impl InstrAbort {
    #[inline]
    pub const fn set(&self) -> u8 {
        ((self.iss >> ISS_SET_SHIFT) & ISS_SET_MASK) as u8
    }
    #[inline]
    pub const fn fnv(&self) -> bool {
        self.iss & ISS_FNV != 0
    }
    #[inline]
    pub const fn ea(&self) -> bool {
        self.iss & ISS_EA != 0
    }
    #[inline]
    pub const fn s1ptw(&self) -> bool {
        self.iss & ISS_S1PTW != 0
    }
    #[inline]
    pub const fn ifsc_bits(&self) -> u8 {
        (self.iss & FSC_MASK) as u8
    }
    #[inline]
    pub const fn ifsc(&self) -> FaultStatus {
        FaultStatus::from_bits(self.ifsc_bits())
    }
}

// ---------------------------------------------------------------------------
// Other ISS encodings (esr.h / Arm ARM).
// ---------------------------------------------------------------------------

/// HVC/SMC/BRK immediate, ISS[15:0].
pub const ISS_IMM16_MASK: u32 = 0xFFFF;
/// Software Step ISS: ISV [24], EX [6] (IFSC [5:0] = 0x22).
pub const ISS_SS_EX: u32 = 1 << 6;
/// ERET ISS[1]: ERETAA/ERETAB; ISS[0]: B key (esr.h ESR_ELx_ERET_ISS_*).
pub const ISS_ERET_ERETA: u32 = 1 << 1;
pub const ISS_ERET_KEY_B: u32 = 1 << 0;
/// WFx ISS: CV [24], COND [23:20], RN [9:5], RV [2], TI [1:0].
pub const ISS_CV: u32 = 1 << 24;
pub const ISS_COND_SHIFT: u32 = 20;
pub const ISS_COND_MASK: u32 = 0xF;
pub const ISS_WFX_RN_SHIFT: u32 = 5;
pub const ISS_WFX_RN_MASK: u32 = 0x1F;
pub const ISS_WFX_RV: u32 = 1 << 2;
pub const ISS_WFX_TI_MASK: u32 = 0b11;
/// SError ISS: IDS [24], IESB [13], AET [12:10], EA [9], DFSC [5:0].
pub const ISS_SERROR_IDS: u32 = 1 << 24;
pub const ISS_SERROR_IESB: u32 = 1 << 13;
pub const ISS_SERROR_AET_SHIFT: u32 = 10;
pub const ISS_SERROR_AET_MASK: u32 = 0b111;

/// Which WF* instruction trapped (WFx ISS.TI).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WfxKind {
    Wfi = 0,
    Wfe = 1,
    Wfit = 2,
    Wfet = 3,
}

/// A trapped WF* instruction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Wfx {
    pub kind: WfxKind,
    /// For WFIT/WFET: register holding the timeout (valid when `rv`).
    pub rn: u8,
    pub rv: bool,
}

/// An SError syndrome (EC 0x2F).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SError {
    pub iss: u32,
}

impl SError {
    /// IMPLEMENTATION DEFINED syndrome (the rest of ISS is not architected).
    #[inline]
    pub const fn ids(&self) -> bool {
        self.iss & ISS_SERROR_IDS != 0
    }
    #[inline]
    pub const fn iesb(&self) -> bool {
        self.iss & ISS_SERROR_IESB != 0
    }
    /// Asynchronous Error Type (FEAT_RAS).
    #[inline]
    pub const fn aet(&self) -> u8 {
        ((self.iss >> ISS_SERROR_AET_SHIFT) & ISS_SERROR_AET_MASK) as u8
    }
    #[inline]
    pub const fn ea(&self) -> bool {
        self.iss & ISS_EA != 0
    }
    #[inline]
    pub const fn dfsc_bits(&self) -> u8 {
        (self.iss & FSC_MASK) as u8
    }
}

/// What the hypervisor's trap handler dispatches on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Exit {
    /// EC 0x18: trapped MSR/MRS/System instruction.
    SysReg(SysRegAccess),
    /// EC 0x16: HVC from AArch64.
    Hvc { imm: u16 },
    /// EC 0x17: trapped SMC from AArch64.
    Smc { imm: u16 },
    /// EC 0x24: stage-2 (or EL2-routed) Data Abort from the guest.
    DataAbortLower(DataAbort),
    /// EC 0x20: Instruction Abort from the guest.
    InstrAbortLower(InstrAbort),
    /// EC 0x32: Software Step from the guest (MDSCR_EL1.SS with MDCR_EL2.TDE).
    SoftwareStepLower { isv: bool, ex: bool },
    /// EC 0x1A: trapped ERET (HCR_EL2.NV / FGT). `eret_a`: ERETAA/ERETAB,
    /// `key_b`: ERETAB.
    Eret { eret_a: bool, key_b: bool },
    /// EC 0x01: trapped WFI/WFE/WFIT/WFET. `cv`/`cond` are only
    /// meaningful for AArch32 conditional instructions.
    Wfx(Wfx),
    /// EC 0x3C: BRK from AArch64 (routed by MDCR_EL2.TDE).
    Brk { comment: u16 },
    /// EC 0x2F: SError.
    SError(SError),
    /// EC 0x19: an SVE instruction or ZCR_EL1 access trapped by
    /// CPTR_EL2.TZ (porwatch enables SVE at EL2 lazily: docs/costs.md).
    SveAccess,
    /// Anything else: the EC (known or not) and the raw ISS.
    Unknown { ec: Ec, iss: u32 },
}

/// Decodes an ESR_EL2 value.
#[inline]
pub fn decode(esr: u64) -> Exit {
    let iss = iss(esr);
    match Ec::of(esr) {
        Ec::Known(ExceptionClass::Sys64) => Exit::SysReg(SysRegAccess::from_iss(iss)),
        Ec::Known(ExceptionClass::Hvc64) => Exit::Hvc { imm: (iss & ISS_IMM16_MASK) as u16 },
        Ec::Known(ExceptionClass::Smc64) => Exit::Smc { imm: (iss & ISS_IMM16_MASK) as u16 },
        Ec::Known(ExceptionClass::DataAbortLower) => Exit::DataAbortLower(DataAbort { iss, iss2: iss2(esr) }),
        Ec::Known(ExceptionClass::InstrAbortLower) => Exit::InstrAbortLower(InstrAbort { iss }),
        Ec::Known(ExceptionClass::SoftwareStepLower) => {
            Exit::SoftwareStepLower { isv: iss & ISS_ISV != 0, ex: iss & ISS_SS_EX != 0 }
        }
        Ec::Known(ExceptionClass::Eret) => {
            Exit::Eret { eret_a: iss & ISS_ERET_ERETA != 0, key_b: iss & ISS_ERET_KEY_B != 0 }
        }
        Ec::Known(ExceptionClass::Wfx) => Exit::Wfx(Wfx {
            kind: match iss & ISS_WFX_TI_MASK {
                0 => WfxKind::Wfi,
                1 => WfxKind::Wfe,
                2 => WfxKind::Wfit,
                _ => WfxKind::Wfet,
            },
            rn: ((iss >> ISS_WFX_RN_SHIFT) & ISS_WFX_RN_MASK) as u8,
            rv: iss & ISS_WFX_RV != 0,
        }),
        Ec::Known(ExceptionClass::Brk64) => Exit::Brk { comment: (iss & ISS_IMM16_MASK) as u16 },
        Ec::Known(ExceptionClass::SError) => Exit::SError(SError { iss }),
        Ec::Known(ExceptionClass::Sve) => Exit::SveAccess,
        ec => Exit::Unknown { ec, iss },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysreg;

    fn esr(ec: u8, il: bool, iss: u32) -> u64 {
        ((ec as u64) << EC_SHIFT) | if il { IL_BIT } else { 0 } | iss as u64
    }

    #[test]
    fn every_ec_round_trips() {
        let mut known = 0;
        for b in 0u8..64 {
            let ec = Ec::from_bits(b);
            assert_eq!(ec.bits(), b);
            if let Some(k) = ExceptionClass::from_bits(b) {
                assert_eq!(k.bits(), b);
                assert_eq!(ec, Ec::Known(k));
                known += 1;
            } else {
                assert_eq!(ec, Ec::Other(b));
            }
        }
        assert_eq!(known, 49);
        assert_eq!(ExceptionClass::from_bits(0x40), None);
        assert_eq!(Ec::from_bits(0xFF), Ec::Other(0x3F));
        // Unallocated values the Arm ARM leaves out.
        for b in [0x02, 0x0B, 0x0F, 0x10, 0x23, 0x29, 0x2A, 0x2B, 0x2E, 0x36, 0x37, 0x39, 0x3B, 0x3E, 0x3F] {
            assert_eq!(Ec::from_bits(b), Ec::Other(b));
        }
    }

    #[test]
    fn sysreg_trap() {
        // MRS X3, POR_EL1 trapped: EC 0x18, IL, dir read.
        let iss = sysreg::POR_EL1.to_sys64_iss() | (3 << 5) | 1;
        let e = esr(0x18, true, iss);
        assert!(il(e));
        assert_eq!(decode(e), Exit::SysReg(SysRegAccess { id: sysreg::POR_EL1, rt: 3, is_read: true }));
        // MSR TTBR1_EL1, XZR
        let iss = sysreg::TTBR1_EL1.to_sys64_iss() | (31 << 5);
        match decode(esr(0x18, true, iss)) {
            Exit::SysReg(a) => {
                assert_eq!(a.id, sysreg::TTBR1_EL1);
                assert_eq!(a.rt, 31);
                assert!(!a.is_read);
            }
            other => panic!("{other:?}"),
        }
        // A QEMU-style syndrome built field by field (syn_aa64_sysregtrap):
        // op0=3 op1=0 op2=0 crn=0 crm=7 rt=9 read.
        let (op0, op2, op1, crn, crm, rt) = (3u64, 0u64, 0u64, 0u64, 7u64, 9u64);
        let qemu = (0x18u64 << 26)
            | (1 << 25)
            | (op0 << 20)
            | (op2 << 17)
            | (op1 << 14)
            | (crn << 10)
            | (rt << 5)
            | (crm << 1)
            | 1;
        assert_eq!(
            decode(qemu),
            Exit::SysReg(SysRegAccess { id: sysreg::ID_AA64MMFR0_EL1, rt: 9, is_read: true })
        );
    }

    #[test]
    fn hvc_smc_brk() {
        assert_eq!(decode(esr(0x16, true, 0)), Exit::Hvc { imm: 0 });
        assert_eq!(decode(esr(0x16, true, 0xBEEF)), Exit::Hvc { imm: 0xBEEF });
        assert_eq!(decode(esr(0x17, true, 0x1234)), Exit::Smc { imm: 0x1234 });
        assert_eq!(decode(esr(0x3C, true, 0x800)), Exit::Brk { comment: 0x800 });
        assert_eq!(decode(esr(0x19, true, 0)), Exit::SveAccess);
        // HVC32 is not the AArch64 HVC.
        assert_eq!(
            decode(esr(0x12, true, 5)),
            Exit::Unknown { ec: Ec::Known(ExceptionClass::Hvc32), iss: 5 }
        );
    }

    #[test]
    fn data_abort_with_isv() {
        // STR W5, [X1] to MMIO, stage-2 translation fault level 3:
        // ISV, SAS=2 (4 bytes), SRT=5, WnR, DFSC=0x07.
        let iss = ISS_ISV | (2 << ISS_SAS_SHIFT) | (5 << ISS_SRT_SHIFT) | ISS_WNR | 0x07;
        let Exit::DataAbortLower(da) = decode(esr(0x24, true, iss)) else { panic!() };
        assert!(da.isv());
        assert!(da.wnr());
        assert_eq!(da.dfsc(), FaultStatus::Translation { level: 3 });
        assert_eq!(
            da.access(),
            Some(AccessSyndrome {
                size: 4,
                sign_extend: false,
                srt: 5,
                sixty_four: false,
                acquire_release: false
            })
        );
        assert!(!da.fnv() && !da.ea() && !da.cm() && !da.s1ptw() && !da.vncr() && !da.overlay());
    }

    #[test]
    fn data_abort_all_flags() {
        let iss = ISS_ISV
            | (3 << ISS_SAS_SHIFT)
            | ISS_SSE
            | (30 << ISS_SRT_SHIFT)
            | ISS_SF
            | ISS_AR
            | ISS_VNCR
            | (2 << ISS_SET_SHIFT)
            | ISS_FNV
            | ISS_EA
            | ISS_CM
            | ISS_S1PTW
            | ISS_WNR
            | 0x10;
        let iss2 =
            ISS2_OVERLAY | ISS2_DIRTY_BIT | ISS2_GCS | ISS2_TAG_ACCESS | ISS2_TND | ISS2_ASSURED_ONLY | 17;
        let e = esr(0x24, true, iss) | ((iss2 as u64) << 32);
        let Exit::DataAbortLower(da) = decode(e) else { panic!() };
        assert_eq!(da.access_size(), 8);
        assert!(da.sse() && da.sf() && da.ar() && da.vncr() && da.fnv() && da.ea() && da.cm() && da.s1ptw());
        assert_eq!(da.srt(), 30);
        assert_eq!(da.set(), 2);
        assert_eq!(da.dfsc(), FaultStatus::SyncExternal);
        assert!(
            da.overlay() && da.dirty_bit() && da.gcs() && da.tag_access() && da.tnd() && da.assured_only()
        );
        assert_eq!(da.xs(), 17);
        assert_eq!(da.iss2, iss2);
    }

    #[test]
    fn data_abort_without_isv_hides_access() {
        let Exit::DataAbortLower(da) = decode(esr(0x24, true, ISS_WNR | 0x0F)) else { panic!() };
        assert_eq!(da.access(), None);
        assert_eq!(da.dfsc(), FaultStatus::Permission { level: 3 });
    }

    #[test]
    fn overlay_seed_esr() {
        // The overlay-permission-fault syndrome porwatch injects, seen as an
        // EL2 syndrome with EC changed to "lower EL": ISS2 bit 6 set.
        let e = 0x0000_0040_9200_004F_u64; // EC 0x24, IL, ISS2 0x40, WnR, DFSC 0x0F
        assert_eq!(ec_bits(e), 0x24);
        let Exit::DataAbortLower(da) = decode(e) else { panic!() };
        assert!(da.overlay());
        assert!(da.wnr());
        assert_eq!(da.dfsc(), FaultStatus::Permission { level: 3 });
        assert_eq!(iss2(e), 0x40);
    }

    #[test]
    fn instr_abort() {
        let Exit::InstrAbortLower(ia) = decode(esr(0x20, true, ISS_S1PTW | ISS_FNV | 0x06)) else { panic!() };
        assert!(ia.s1ptw() && ia.fnv() && !ia.ea());
        assert_eq!(ia.ifsc(), FaultStatus::Translation { level: 2 });
        assert_eq!(ia.set(), 0);
    }

    #[test]
    fn software_step_eret_wfx_serror() {
        assert_eq!(
            decode(esr(0x32, true, ISS_ISV | ISS_SS_EX | 0x22)),
            Exit::SoftwareStepLower { isv: true, ex: true }
        );
        assert_eq!(decode(esr(0x32, true, 0x22)), Exit::SoftwareStepLower { isv: false, ex: false });
        assert_eq!(decode(esr(0x1A, true, 0)), Exit::Eret { eret_a: false, key_b: false });
        assert_eq!(decode(esr(0x1A, true, 2)), Exit::Eret { eret_a: true, key_b: false });
        assert_eq!(decode(esr(0x1A, true, 3)), Exit::Eret { eret_a: true, key_b: true });
        assert_eq!(decode(esr(0x01, true, 0)), Exit::Wfx(Wfx { kind: WfxKind::Wfi, rn: 0, rv: false }));
        assert_eq!(
            decode(esr(0x01, true, (7 << 5) | ISS_WFX_RV | 3)),
            Exit::Wfx(Wfx { kind: WfxKind::Wfet, rn: 7, rv: true })
        );
        let Exit::SError(s) = decode(esr(0x2F, true, ISS_SERROR_IDS | 0x1234)) else { panic!() };
        assert!(s.ids());
        let Exit::SError(s) = decode(esr(0x2F, true, (3 << 10) | ISS_SERROR_IESB | 0x11)) else { panic!() };
        assert!(!s.ids() && s.iesb());
        assert_eq!(s.aet(), 3);
        assert_eq!(s.dfsc_bits(), 0x11);
    }

    #[test]
    fn unknown_and_same_el() {
        assert_eq!(
            decode(esr(0x25, true, 0x10)),
            Exit::Unknown { ec: Ec::Known(ExceptionClass::DataAbortSame), iss: 0x10 }
        );
        assert_eq!(
            decode(esr(0x3F, false, 0x1FF_FFFF)),
            Exit::Unknown { ec: Ec::Other(0x3F), iss: 0x1FF_FFFF }
        );
        assert_eq!(decode(0), Exit::Unknown { ec: Ec::Known(ExceptionClass::Unknown), iss: 0 });
        // RES0 high bits are ignored.
        assert_eq!(decode(u64::MAX << 56 | esr(0x16, true, 1)), Exit::Hvc { imm: 1 });
    }

    #[test]
    fn far_is_valid_only_for_aborts_pc_alignment_and_watchpoints() {
        assert!(far_valid(0x9200_004f)); // data abort, lower EL
        assert!(far_valid(0x8200_000f)); // instruction abort
        assert!(far_valid(esr(0x22, true, 0)));
        assert!(far_valid(esr(0x34, true, 0)));
        assert!(!far_valid(0x9200_0410), "data abort with FnV = 1");
        assert!(!far_valid(0x6238_e865), "trapped MRS");
        assert!(!far_valid(0x5e00_0000), "SMC");
        assert!(!far_valid(0x0200_0000), "unknown");
    }

    #[test]
    fn decode_is_total() {
        // Spot-check a sweep: every EC with assorted ISS/ISS2 patterns.
        for ec in 0u64..64 {
            for pat in [0u64, u64::MAX, 0x5555_5555_5555_5555, 0xAAAA_AAAA_AAAA_AAAA] {
                let e = (pat & !(EC_MASK << EC_SHIFT)) | (ec << EC_SHIFT);
                let _ = decode(e);
                assert_eq!(Ec::of(e).bits() as u64, ec);
            }
        }
    }

    #[test]
    fn fault_status_codes() {
        use FaultStatus::*;
        let cases: &[(u8, FaultStatus)] = &[
            (0x00, AddressSize { level: 0 }),
            (0x03, AddressSize { level: 3 }),
            (0x29, AddressSize { level: -1 }),
            (0x04, Translation { level: 0 }),
            (0x07, Translation { level: 3 }),
            (0x2B, Translation { level: -1 }),
            (0x08, AccessFlag { level: 0 }),
            (0x0B, AccessFlag { level: 3 }),
            (0x0C, Permission { level: 0 }),
            (0x0F, Permission { level: 3 }),
            (0x10, SyncExternal),
            (0x11, SyncTagCheck),
            (0x13, SyncExternalOnWalk { level: -1 }),
            (0x14, SyncExternalOnWalk { level: 0 }),
            (0x17, SyncExternalOnWalk { level: 3 }),
            (0x18, SyncParity),
            (0x1B, SyncParityOnWalk { level: -1 }),
            (0x1D, SyncParityOnWalk { level: 1 }),
            (0x21, Alignment),
            (0x23, GranuleProtectionOnWalk { level: -1 }),
            (0x26, GranuleProtectionOnWalk { level: 2 }),
            (0x28, GranuleProtection),
            (0x30, TlbConflict),
            (0x31, UnsupportedAtomicUpdate),
            (0x34, ImpDefLockdown),
            (0x35, ImpDefExclusive),
            (0x22, Other(0x22)),
            (0x3F, Other(0x3F)),
        ];
        for &(bits, fs) in cases {
            assert_eq!(FaultStatus::from_bits(bits), fs, "{bits:#x}");
            assert_eq!(fs.bits(), bits, "{fs:?}");
        }
        for b in 0u8..64 {
            assert_eq!(FaultStatus::from_bits(b).bits(), b);
        }
    }
}
