//! SMCCC / PSCI handling for the guest's SMC and HVC calls (pure logic).
//!
//! [`classify`] turns the guest's x0..x3 into a [`GuestCall`]; [`decide`]
//! says what porwatch does with it. Function IDs and return codes come from
//! the `smccc` crate (Arm DEN 0028 SMCCC 1.4, DEN 0022 PSCI 1.1); the
//! porwatch-specific id is [`PORWATCH_TEST_EXIT`].
//!
//! The hypervisor should only route `HVC #0` / `SMC #0` here (SMCCC: the
//! immediate is 0; KVM answers NOT_SUPPORTED for a non-zero HVC immediate).
//!
//! SMCCC itself (version, `SMCCC_ARCH_FEATURES`, the Arm architecture
//! services) belongs to whoever is at EL3. With firmware, porwatch forwards
//! `SMCCC_VERSION`, `SMCCC_ARCH_FEATURES` and `PSCI_FEATURES(SMCCC_VERSION)`
//! alike, so the guest sees the firmware's SMCCC, consistently: QEMU's
//! built-in PSCI knows no SMCCC_VERSION, so the guest sees SMCCC v1.0 as on
//! bare QEMU (Linux: "SMC Calling Convention v1.0"), and TF-A's answers
//! reach it unchanged. Without firmware ([`decide_without_firmware`])
//! porwatch is the SMCCC v1.1 implementation: `SMCCC_VERSION` 1.1,
//! `SMCCC_ARCH_FEATURES` SUCCESS for itself and `SMCCC_VERSION`,
//! NOT_SUPPORTED for the Spectre workarounds and SoC ID, whose calls are
//! NOT_SUPPORTED too.
//!
//! CPU power (porwatch runs every CPU of the machine, [`Machine`] says
//! which and in what [`Power`] state; the guest's vCPU i is physical CPU i):
//! * `CPU_ON`: an entry point inside the hypervisor's memory is refused with
//!   `INVALID_ADDRESS` (PSCI: "the entry point address is known by the
//!   implementation to be invalid, because it is in a range that is known
//!   not to be available to the caller"), whatever the target. A target
//!   that is not one of the machine's CPUs (or has bits set outside the
//!   affinity fields) gets `INVALID_PARAMETERS`, one that is on
//!   `ALREADY_ON`, one being started `ON_PENDING`; an off CPU is started
//!   ([`Decision::CpuOn`]): with firmware, its CPU_ON is forwarded with
//!   porwatch's own secondary entry, which sets EL2 up and enters the
//!   guest's entry point with its context ID; without firmware porwatch
//!   releases the CPU from its pen.
//! * `CPU_OFF` powers the calling CPU down ([`Decision::CpuOff`]); on the
//!   last CPU that is on it ends the run ([`Decision::LastCpuOff`]).
//! * `CPU_SUSPEND`: with firmware it is forwarded with porwatch's warm entry
//!   ([`Decision::SuspendForward`]), so a power-down state resumes through
//!   porwatch (EL2 is set up again) and then at the guest's entry point;
//!   without firmware it is treated as standby and returns SUCCESS, as KVM
//!   does (PSCI allows a power-down state to be treated as standby).
//! * `AFFINITY_INFO`: for a CPU porwatch started or is starting, ON or
//!   ON_PENDING; otherwise firmware's answer (it knows when a CPU that
//!   called CPU_OFF has really gone off); without firmware, from the
//!   [`Power`] states: ON if a CPU of the affinity instance is on, else
//!   ON_PENDING if one is being started, else OFF.

use crate::cpus::Topology;
use smccc::arch::{
    SMCCC_ARCH_FEATURES, SMCCC_ARCH_SOC_ID, SMCCC_ARCH_WORKAROUND_1, SMCCC_ARCH_WORKAROUND_2,
    SMCCC_ARCH_WORKAROUND_3, SMCCC_VERSION,
};
use smccc::error::SUCCESS;
use smccc::psci::error::{ALREADY_ON, INVALID_ADDRESS, INVALID_PARAMETERS, NOT_SUPPORTED, ON_PENDING};
use smccc::psci::{
    AffinityState, MigrateType, Version, PSCI_AFFINITY_INFO_32, PSCI_AFFINITY_INFO_64, PSCI_CPU_OFF,
    PSCI_CPU_ON_32, PSCI_CPU_ON_64, PSCI_CPU_SUSPEND_32, PSCI_CPU_SUSPEND_64, PSCI_FEATURES,
    PSCI_MIGRATE_INFO_TYPE, PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET, PSCI_VERSION,
};

// SMCCC Function Identifier layout (DEN 0028, "Function Identifier"):
/// Bit 31: fast call.
pub const FID_FAST_CALL: u32 = 1 << 31;
/// Bit 30: SMC64/HVC64 calling convention.
pub const FID_SMC64: u32 = 1 << 30;
/// Bits [29:24]: owning entity number.
pub const FID_OWNER_SHIFT: u32 = 24;
pub const FID_OWNER_MASK: u32 = 0x3F;
/// Bit 16 (SMCCC v1.3+): SVE "no live state" hint; callees must ignore it.
pub const FID_SVE_HINT: u32 = 1 << 16;
/// Owning entity 6: Vendor Specific Hypervisor Service.
pub const OWNER_VENDOR_HYP: u32 = 6;

/// porwatch's test-exit hypercall: fast SMC64/HVC64 call, owner 6 (Vendor
/// Specific Hypervisor Service), function number 0x50 ('P').
/// x1 = exit status (0 = pass); the hypervisor ends the run with it.
pub const PORWATCH_TEST_EXIT: u32 = FID_FAST_CALL | FID_SMC64 | (OWNER_VENDOR_HYP << FID_OWNER_SHIFT) | 0x50;

/// PSCI version porwatch implements itself: 1.1.
pub const PSCI_IMPLEMENTED_VERSION: Version = Version { major: 1, minor: 1 };

pub use crate::cpus::MPIDR_AFFINITY_MASK;

/// A classified guest SMC/HVC.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GuestCall {
    PsciVersion,
    PsciFeatures {
        fid: u32,
    },
    CpuSuspend {
        power_state: u32,
        entry: u64,
        context: u64,
    },
    CpuOff,
    CpuOn {
        target: u64,
        entry: u64,
        context: u64,
    },
    AffinityInfo {
        target: u64,
        lowest_level: u32,
    },
    MigrateInfoType,
    SystemOff,
    SystemReset,
    SmcccVersion,
    SmcccArchFeatures {
        fid: u32,
    },
    /// SMCCC_ARCH_WORKAROUND_{1,2,3} or SMCCC_ARCH_SOC_ID: firmware services.
    ArchService {
        fid: u32,
    },
    /// [`PORWATCH_TEST_EXIT`] with its status code.
    TestExit {
        code: u64,
    },
    /// Anything else (function id with the SVE hint removed).
    Unknown(u32),
}

/// Normalises a function id: the low 32 bits of x0, with the SMCCC v1.3
/// SVE hint (bit 16) cleared on fast calls.
#[inline]
pub const fn function_id(x0: u64) -> u32 {
    let fid = x0 as u32;
    if fid & FID_FAST_CALL != 0 {
        fid & !FID_SVE_HINT
    } else {
        fid
    }
}

/// Classifies a guest SMC/HVC from its x0..x3. For SMC32/HVC32 function ids
/// the arguments are the W registers (upper halves ignored).
#[inline]
pub fn classify(x0: u64, x1: u64, x2: u64, x3: u64) -> GuestCall {
    let fid = function_id(x0);
    let (a1, a2, a3) = if fid & FID_SMC64 == 0 {
        (x1 as u32 as u64, x2 as u32 as u64, x3 as u32 as u64)
    } else {
        (x1, x2, x3)
    };
    match fid {
        PSCI_VERSION => GuestCall::PsciVersion,
        PSCI_FEATURES => GuestCall::PsciFeatures { fid: a1 as u32 },
        PSCI_CPU_SUSPEND_32 | PSCI_CPU_SUSPEND_64 => {
            GuestCall::CpuSuspend { power_state: a1 as u32, entry: a2, context: a3 }
        }
        PSCI_CPU_OFF => GuestCall::CpuOff,
        PSCI_CPU_ON_32 | PSCI_CPU_ON_64 => GuestCall::CpuOn { target: a1, entry: a2, context: a3 },
        PSCI_AFFINITY_INFO_32 | PSCI_AFFINITY_INFO_64 => {
            GuestCall::AffinityInfo { target: a1, lowest_level: a2 as u32 }
        }
        PSCI_MIGRATE_INFO_TYPE => GuestCall::MigrateInfoType,
        PSCI_SYSTEM_OFF => GuestCall::SystemOff,
        PSCI_SYSTEM_RESET => GuestCall::SystemReset,
        SMCCC_VERSION => GuestCall::SmcccVersion,
        SMCCC_ARCH_FEATURES => GuestCall::SmcccArchFeatures { fid: a1 as u32 },
        SMCCC_ARCH_WORKAROUND_1 | SMCCC_ARCH_WORKAROUND_2 | SMCCC_ARCH_WORKAROUND_3 | SMCCC_ARCH_SOC_ID => {
            GuestCall::ArchService { fid }
        }
        PORWATCH_TEST_EXIT => GuestCall::TestExit { code: x1 },
        other => GuestCall::Unknown(other),
    }
}

/// A CPU's power state as porwatch's PSCI keeps it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Power {
    /// Running the guest (or about to, in porwatch's start-up).
    On,
    /// Off (never started, or CPU_OFF).
    Off,
    /// CPU_ON accepted, the CPU has not entered the guest yet.
    OnPending,
}

/// What [`decide`] needs to know about the machine.
#[derive(Clone, Copy, Debug)]
pub struct Machine<'a> {
    /// The hypervisor's own memory `(base, size)`, in the guest's IPA space
    /// (identity mapped), which the guest must never be handed.
    pub hyp: (u64, u64),
    /// The CPUs, by dense index.
    pub cpus: &'a Topology,
    /// Their power states, by index (`cpus.len()` of them).
    pub power: &'a [Power],
    /// The calling CPU's index.
    pub caller: usize,
}

impl Machine<'_> {
    fn power_of(&self, cpu: usize) -> Power {
        self.power.get(cpu).copied().unwrap_or(Power::Off)
    }

    /// A CPU other than the caller is on or being started.
    fn others_on(&self) -> bool {
        (0..self.cpus.len()).any(|c| c != self.caller && self.power_of(c) != Power::Off)
    }

    /// AFFINITY_INFO from the power states (module doc).
    fn affinity_info(&self, target: u64, lowest_level: u32) -> Decision {
        let mask = match lowest_level {
            0 => MPIDR_AFFINITY_MASK,
            1 => MPIDR_AFFINITY_MASK & !0xFF,
            2 => MPIDR_AFFINITY_MASK & !0xFFFF,
            3 => MPIDR_AFFINITY_MASK & !0xFF_FFFF,
            _ => return Decision::Deny(INVALID_PARAMETERS),
        };
        if target & !MPIDR_AFFINITY_MASK != 0 {
            return Decision::Deny(INVALID_PARAMETERS);
        }
        let states = self
            .cpus
            .mpidrs()
            .iter()
            .enumerate()
            .filter(|(_, &m)| m & mask == target & mask)
            .map(|(i, _)| self.power_of(i));
        let (mut any, mut on, mut pending) = (false, false, false);
        for s in states {
            any = true;
            on |= s == Power::On;
            pending |= s == Power::OnPending;
        }
        match (any, on, pending) {
            (false, _, _) => Decision::Deny(INVALID_PARAMETERS),
            (_, true, _) => Decision::Answer(AffinityState::On as u64),
            (_, _, true) => Decision::Answer(AffinityState::OnPending as u64),
            _ => Decision::Answer(AffinityState::Off as u64),
        }
    }
}

/// What the hypervisor does with a guest call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Decision {
    /// Forward the guest's x0..x17 unchanged to firmware (SMC, `smccc`
    /// crate `smc64`) and return firmware's x0..x3 to the guest.
    Forward,
    /// PSCI_VERSION: forward, then answer [`clamp_version`] of firmware's.
    ForwardVersion,
    /// Return to the guest with this x0 (x1..x3 untouched).
    Answer(u64),
    /// Refuse: return this PSCI error code (sign-extended) in x0.
    Deny(i32),
    /// SYSTEM_OFF: end the run, powered off.
    PowerOff,
    /// SYSTEM_RESET: end (or restart) the run.
    Reset,
    /// CPU_OFF with other CPUs on: this CPU powers down.
    CpuOff,
    /// CPU_OFF of the last CPU that is on: end the run.
    LastCpuOff,
    /// CPU_ON of CPU `target` (a dense index; it is off): start it at the
    /// guest's `entry` with `context` in x0.
    CpuOn { target: usize, entry: u64, context: u64 },
    /// CPU_SUSPEND as standby: return SUCCESS (0) in x0 (a standby state
    /// may return at once: PSCI 1.1, 5.4.2).
    Suspend,
    /// CPU_SUSPEND forwarded to firmware with porwatch's warm entry; after a
    /// power-down the guest resumes at `entry` with `context`.
    SuspendForward { power_state: u32, entry: u64, context: u64 },
    /// porwatch test guest finished with this status.
    TestExit(u64),
}

impl Decision {
    /// The x0 value to hand back to the guest for decisions that return
    /// immediately (`Answer`, `Deny`; `Suspend` after waking). `None` for
    /// decisions that do not resume the guest with a hypervisor-made value.
    #[inline]
    pub const fn x0(self) -> Option<u64> {
        match self {
            Decision::Answer(v) => Some(v),
            Decision::Deny(code) => Some(ret(code)),
            Decision::Suspend => Some(ret(SUCCESS)),
            _ => None,
        }
    }
}

/// An SMCCC/PSCI 32-bit status code as an x0 value (sign-extended).
#[inline]
pub const fn ret(code: i32) -> u64 {
    code as i64 as u64
}

/// The PSCI version to report, given firmware's PSCI_VERSION answer: the
/// lower of firmware's and [`PSCI_IMPLEMENTED_VERSION`] (firmware errors,
/// i.e. negative values, report porwatch's own).
pub const fn clamp_version(firmware: u64) -> u64 {
    let ours = ((PSCI_IMPLEMENTED_VERSION.major as u64) << 16) | PSCI_IMPLEMENTED_VERSION.minor as u64;
    let fw = firmware as u32 as u64;
    if (firmware as i64) < 0 || fw > ours {
        ours
    } else {
        fw
    }
}

/// True when `addr` lies in `[base, base + size)` (overflow-safe).
#[inline]
pub const fn region_contains(region: (u64, u64), addr: u64) -> bool {
    let (base, size) = region;
    addr >= base && addr - base < size
}

/// PSCI_FEATURES / SMCCC_ARCH_FEATURES answer for functions porwatch
/// implements itself.
#[inline]
const fn implemented(fid: u32) -> bool {
    matches!(
        fid,
        PSCI_VERSION
            | PSCI_FEATURES
            | PSCI_CPU_SUSPEND_32
            | PSCI_CPU_SUSPEND_64
            | PSCI_CPU_OFF
            | PSCI_CPU_ON_32
            | PSCI_CPU_ON_64
            | PSCI_AFFINITY_INFO_32
            | PSCI_AFFINITY_INFO_64
            | PSCI_MIGRATE_INFO_TYPE
            | PSCI_SYSTEM_OFF
            | PSCI_SYSTEM_RESET
            | SMCCC_VERSION
    )
}

/// Decides what to do with `call` made by `m.caller`, with firmware (PSCI
/// provider) at EL3.
pub fn decide(call: GuestCall, m: &Machine<'_>) -> Decision {
    let hyp_region = m.hyp;
    match call {
        // porwatch is the PSCI implementation the guest sees (as KVM is),
        // but SYSTEM_OFF/RESET and CPU_OFF end up at firmware: ask it, and
        // never claim more than either side offers.
        GuestCall::PsciVersion => Decision::ForwardVersion,
        GuestCall::PsciFeatures { fid } => {
            let fid = function_id(fid as u64);
            if matches!(
                fid,
                PSCI_SYSTEM_OFF
                    | PSCI_SYSTEM_RESET
                    | PSCI_CPU_OFF
                    | PSCI_CPU_SUSPEND_32
                    | PSCI_CPU_SUSPEND_64
                    | SMCCC_VERSION
            ) {
                // Carried out by firmware (CPU_SUSPEND: its power_state
                // format is firmware's; SMCCC_VERSION: forwarded too).
                Decision::Forward
            } else if implemented(fid) {
                // CPU_SUSPEND's feature flags are 0 too: original
                // power_state format, platform-coordinated mode only.
                Decision::Answer(ret(SUCCESS))
            } else {
                Decision::Answer(ret(NOT_SUPPORTED))
            }
        }
        GuestCall::CpuSuspend { power_state, entry, context } => {
            if region_contains(hyp_region, entry) {
                Decision::Deny(INVALID_ADDRESS)
            } else {
                Decision::SuspendForward { power_state, entry, context }
            }
        }
        GuestCall::CpuOff => {
            if m.others_on() {
                Decision::CpuOff
            } else {
                Decision::LastCpuOff
            }
        }
        GuestCall::CpuOn { target, entry, context } => {
            let index = if target & !MPIDR_AFFINITY_MASK != 0 { None } else { m.cpus.index_of(target) };
            if region_contains(hyp_region, entry) {
                Decision::Deny(INVALID_ADDRESS)
            } else {
                match index.map(|i| (i, m.power_of(i))) {
                    None => Decision::Deny(INVALID_PARAMETERS),
                    Some((_, Power::On)) => Decision::Answer(ret(ALREADY_ON)),
                    Some((_, Power::OnPending)) => Decision::Answer(ret(ON_PENDING)),
                    Some((target, Power::Off)) => Decision::CpuOn { target, entry, context },
                }
            }
        }
        // Firmware knows when a CPU that called CPU_OFF is really off; a
        // CPU porwatch started (or is starting) is on as far as the guest
        // is concerned, whatever firmware says yet (QEMU's PSCI reports
        // OFF for a moment after its CPU_ON).
        GuestCall::AffinityInfo { target, lowest_level: 0 } => {
            let index = if target & !MPIDR_AFFINITY_MASK != 0 { None } else { m.cpus.index_of(target) };
            match index.map(|i| m.power_of(i)) {
                Some(Power::On) => Decision::Answer(AffinityState::On as u64),
                Some(Power::OnPending) => Decision::Answer(AffinityState::OnPending as u64),
                _ => Decision::Forward,
            }
        }
        GuestCall::AffinityInfo { .. } => Decision::Forward,
        GuestCall::MigrateInfoType => Decision::Answer(MigrateType::MigrationNotRequired as u64),
        GuestCall::SystemOff => Decision::PowerOff,
        GuestCall::SystemReset => Decision::Reset,
        // Firmware's SMCCC, as it describes it (module doc).
        GuestCall::SmcccVersion | GuestCall::SmcccArchFeatures { .. } => Decision::Forward,
        GuestCall::ArchService { .. } => Decision::Forward,
        GuestCall::TestExit { code } => Decision::TestExit(code),
        GuestCall::Unknown(_) => Decision::Answer(ret(NOT_SUPPORTED)),
    }
}

/// SMCCC version porwatch claims when it is the only firmware (1.1: the
/// first with SMCCC_ARCH_FEATURES, which it answers).
pub const SMCCC_VERSION_WITHOUT_FIRMWARE: u64 = 0x1_0001;

/// [`decide`] when no firmware runs at EL3 (porwatch was entered at EL3 and
/// dropped to EL2 itself, as on an Arm FVP without TF-A): nothing is ever
/// [`Decision::Forward`]ed. PSCI is porwatch's own (its version; SYSTEM_OFF,
/// SYSTEM_RESET and CPU_OFF are supported, CPU_SUSPEND as standby with the
/// original power_state format, AFFINITY_INFO from the power states);
/// firmware services (Spectre workarounds, SoC ID, vendor calls) are not
/// supported.
pub fn decide_without_firmware(call: GuestCall, m: &Machine<'_>) -> Decision {
    match decide(call, m) {
        Decision::ForwardVersion => Decision::Answer(clamp_version(ret(NOT_SUPPORTED))),
        Decision::SuspendForward { .. } => Decision::Suspend,
        Decision::Forward => match call {
            GuestCall::AffinityInfo { target, lowest_level } => m.affinity_info(target, lowest_level),
            // SYSTEM_OFF/RESET, CPU_OFF, CPU_SUSPEND (feature flags 0:
            // the original power_state format) and SMCCC_VERSION.
            GuestCall::PsciFeatures { .. } => Decision::Answer(ret(SUCCESS)),
            GuestCall::SmcccVersion => Decision::Answer(SMCCC_VERSION_WITHOUT_FIRMWARE),
            GuestCall::SmcccArchFeatures { fid } => match function_id(fid as u64) {
                SMCCC_VERSION | SMCCC_ARCH_FEATURES => Decision::Answer(ret(SUCCESS)),
                _ => Decision::Answer(ret(NOT_SUPPORTED)),
            },
            _ => Decision::Answer(ret(NOT_SUPPORTED)),
        },
        d => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smccc::psci::error::DENIED;

    const HYP: (u64, u64) = (0x4000_0000, 0x0020_0000);
    const BOOT: u64 = 0x8000_0000; // MPIDR_EL1 with RES1 bit 31, affinity 0

    /// QEMU virt with 4 CPUs, the boot CPU on, the others off.
    fn machine_with(power: &[Power], caller: usize, f: impl FnOnce(&Machine<'_>) -> Decision) -> Decision {
        let cpus = Topology::new(&[0, 1, 2, 3], 4, BOOT).unwrap();
        f(&Machine { hyp: HYP, cpus: &cpus, power, caller })
    }

    const BOOTED: [Power; 4] = [Power::On, Power::Off, Power::Off, Power::Off];

    fn d(call: GuestCall) -> Decision {
        machine_with(&BOOTED, 0, |m| decide(call, m))
    }

    fn dwf(call: GuestCall) -> Decision {
        machine_with(&BOOTED, 0, |m| decide_without_firmware(call, m))
    }

    #[test]
    fn without_firmware_nothing_is_forwarded() {
        let d = |c| dwf(c);
        assert_eq!(d(GuestCall::PsciVersion), Decision::Answer(0x1_0001));
        for fid in [PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET, PSCI_CPU_OFF, PSCI_CPU_ON_64] {
            assert_eq!(d(GuestCall::PsciFeatures { fid }), Decision::Answer(ret(SUCCESS)), "{fid:#x}");
        }
        assert_eq!(d(GuestCall::PsciFeatures { fid: 0x8400_00ff }), Decision::Answer(ret(NOT_SUPPORTED)));
        assert_eq!(d(GuestCall::SmcccVersion), Decision::Answer(SMCCC_VERSION_WITHOUT_FIRMWARE));
        // SMCCC v1.1 as claimed: PSCI_FEATURES and ARCH_FEATURES agree that
        // SMCCC_VERSION exists; the firmware workarounds do not.
        assert_eq!(d(GuestCall::PsciFeatures { fid: SMCCC_VERSION }), Decision::Answer(ret(SUCCESS)));
        for fid in [SMCCC_VERSION, SMCCC_ARCH_FEATURES] {
            assert_eq!(d(GuestCall::SmcccArchFeatures { fid }), Decision::Answer(ret(SUCCESS)), "{fid:#x}");
        }
        for fid in
            [SMCCC_ARCH_WORKAROUND_1, SMCCC_ARCH_WORKAROUND_2, SMCCC_ARCH_WORKAROUND_3, SMCCC_ARCH_SOC_ID]
        {
            assert_eq!(
                d(GuestCall::SmcccArchFeatures { fid }),
                Decision::Answer(ret(NOT_SUPPORTED)),
                "{fid:#x}"
            );
            assert_eq!(d(GuestCall::ArchService { fid }), Decision::Answer(ret(NOT_SUPPORTED)), "{fid:#x}");
        }
        assert_eq!(
            d(GuestCall::SmcccArchFeatures { fid: PSCI_CPU_ON_64 }),
            Decision::Answer(ret(NOT_SUPPORTED))
        );
        assert_eq!(d(GuestCall::SystemOff), Decision::PowerOff);
        assert_eq!(d(GuestCall::TestExit { code: 3 }), Decision::TestExit(3));
        // Every call of the classifier's space: never Forward*.
        for x0 in
            [0x8000_0000u64, 0x8000_0001, 0x8400_0000, 0x8400_000A, 0xC400_0003, 0x8600_0000, 0xC600_0050]
        {
            for x1 in [0u64, 0x8000_8000, 0x8400_0008, 0xC400_0003] {
                let r = d(classify(x0, x1, 0x4000_0000, 0));
                assert!(!matches!(r, Decision::Forward | Decision::ForwardVersion), "{x0:#x} {x1:#x}: {r:?}");
            }
        }
    }

    #[test]
    fn ids_match_the_specs() {
        assert_eq!(PSCI_VERSION, 0x8400_0000);
        assert_eq!(PSCI_CPU_ON_64, 0xC400_0003);
        assert_eq!(PSCI_SYSTEM_OFF, 0x8400_0008);
        assert_eq!(SMCCC_VERSION, 0x8000_0000);
        assert_eq!(PORWATCH_TEST_EXIT, 0xC600_0050);
        assert_eq!(ret(NOT_SUPPORTED), u64::MAX);
        assert_eq!(ret(INVALID_ADDRESS), (-9i64) as u64);
        assert_eq!(DENIED, -3);
    }

    #[test]
    fn classify_psci() {
        assert_eq!(classify(0x8400_0000, 0, 0, 0), GuestCall::PsciVersion);
        assert_eq!(classify(0x8400_000A, 0xC400_0003, 0, 0), GuestCall::PsciFeatures { fid: 0xC400_0003 });
        assert_eq!(classify(0x8400_0008, 0, 0, 0), GuestCall::SystemOff);
        assert_eq!(classify(0x8400_0009, 0, 0, 0), GuestCall::SystemReset);
        assert_eq!(classify(0x8400_0002, 0, 0, 0), GuestCall::CpuOff);
        assert_eq!(classify(0x8400_0006, 0, 0, 0), GuestCall::MigrateInfoType);
        assert_eq!(
            classify(0xC400_0003, 1, 0x4008_0000, 0x1234_5678_9ABC),
            GuestCall::CpuOn { target: 1, entry: 0x4008_0000, context: 0x1234_5678_9ABC }
        );
        // CPU_ON_32: arguments are W registers.
        assert_eq!(
            classify(0x8400_0003, 0xFFFF_FFFF_0000_0001, 0xFFFF_FFFF_4008_0000, 0xFFFF_FFFF_0000_0000),
            GuestCall::CpuOn { target: 1, entry: 0x4008_0000, context: 0 }
        );
        assert_eq!(
            classify(0xC400_0001, 0x0001_0000, 0x4000_1000, 7),
            GuestCall::CpuSuspend { power_state: 0x0001_0000, entry: 0x4000_1000, context: 7 }
        );
        assert_eq!(
            classify(0xC400_0004, 0x100, 1, 0),
            GuestCall::AffinityInfo { target: 0x100, lowest_level: 1 }
        );
    }

    #[test]
    fn classify_smccc_and_vendor() {
        assert_eq!(classify(0x8000_0000, 0, 0, 0), GuestCall::SmcccVersion);
        assert_eq!(
            classify(0x8000_0001, 0x8000_8000, 0, 0),
            GuestCall::SmcccArchFeatures { fid: 0x8000_8000 }
        );
        assert_eq!(classify(0x8000_8000, 0, 0, 0), GuestCall::ArchService { fid: 0x8000_8000 });
        assert_eq!(classify(0x8000_7FFF, 0, 0, 0), GuestCall::ArchService { fid: 0x8000_7FFF });
        assert_eq!(classify(0xC600_0050, 3, 0, 0), GuestCall::TestExit { code: 3 });
        assert_eq!(classify(0xC600_0050, u64::MAX, 0, 0), GuestCall::TestExit { code: u64::MAX });
        assert_eq!(classify(0x8600_FF01, 0, 0, 0), GuestCall::Unknown(0x8600_FF01));
        assert_eq!(classify(0xC400_0008, 0, 0, 0), GuestCall::Unknown(0xC400_0008));
        // Upper half of x0 ignored; SVE hint bit ignored on fast calls.
        assert_eq!(classify(0xFFFF_FFFF_8400_0000, 0, 0, 0), GuestCall::PsciVersion);
        assert_eq!(
            classify(0xC401_0003, 0, 0x1000, 0),
            GuestCall::CpuOn { target: 0, entry: 0x1000, context: 0 }
        );
        // Yielding calls keep bit 16.
        assert_eq!(classify(0x0401_0000, 0, 0, 0), GuestCall::Unknown(0x0401_0000));
    }

    #[test]
    fn decide_simple_answers() {
        assert_eq!(d(GuestCall::PsciVersion), Decision::ForwardVersion);
        assert_eq!(clamp_version(0x0001_0000), 0x0001_0000);
        assert_eq!(clamp_version(0x0001_0003), 0x0001_0001);
        assert_eq!(clamp_version(0x0000_0002), 0x0000_0002);
        assert_eq!(clamp_version(u64::MAX), 0x0001_0001);
        assert_eq!(d(GuestCall::SystemOff), Decision::PowerOff);
        assert_eq!(d(GuestCall::SystemReset), Decision::Reset);
        // The boot CPU is the only one on: its CPU_OFF ends the run.
        assert_eq!(d(GuestCall::CpuOff), Decision::LastCpuOff);
        assert_eq!(d(GuestCall::TestExit { code: 42 }), Decision::TestExit(42));
        assert_eq!(d(GuestCall::MigrateInfoType), Decision::Answer(2));
        assert_eq!(d(GuestCall::Unknown(0x8600_FF01)), Decision::Answer(u64::MAX));
        // CPU_SUSPEND: forwarded with firmware (its power_state format, a
        // power-down resuming through porwatch), standby without.
        let call = GuestCall::CpuSuspend { power_state: 0x1_0000, entry: 0x4100_0000, context: 7 };
        assert_eq!(
            d(call),
            Decision::SuspendForward { power_state: 0x1_0000, entry: 0x4100_0000, context: 7 }
        );
        let s = dwf(call);
        assert_eq!(s, Decision::Suspend);
        assert_eq!(s.x0(), Some(0));
        let bad = GuestCall::CpuSuspend { power_state: 0x1_0000, entry: HYP.0 + 8, context: 7 };
        assert_eq!(d(bad), Decision::Deny(INVALID_ADDRESS));
        assert_eq!(Decision::PowerOff.x0(), None);
        assert_eq!(Decision::Forward.x0(), None);
    }

    #[test]
    fn decide_features() {
        let f = |fid| d(GuestCall::PsciFeatures { fid });
        for fid in [
            PSCI_VERSION,
            PSCI_FEATURES,
            PSCI_CPU_ON_64,
            PSCI_CPU_ON_32,
            PSCI_AFFINITY_INFO_64,
            PSCI_MIGRATE_INFO_TYPE,
        ] {
            assert_eq!(f(fid), Decision::Answer(0), "{fid:#x}");
        }
        // What firmware carries out (CPU_SUSPEND: in its power_state
        // format), and SMCCC_VERSION: firmware's answer, so that it agrees
        // with SMCCC_VERSION itself (forwarded too).
        for fid in [PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET, PSCI_CPU_OFF, PSCI_CPU_SUSPEND_64, SMCCC_VERSION] {
            assert_eq!(f(fid), Decision::Forward, "{fid:#x}");
        }
        for fid in [
            smccc::psci::PSCI_SYSTEM_SUSPEND_64,
            smccc::psci::PSCI_SYSTEM_RESET2_64,
            smccc::psci::PSCI_MIGRATE_64,
            smccc::psci::PSCI_MEM_PROTECT,
            PORWATCH_TEST_EXIT,
            0,
        ] {
            assert_eq!(f(fid), Decision::Answer(u64::MAX), "{fid:#x}");
        }
        // SMCCC_ARCH_FEATURES: firmware's SMCCC, whatever is asked.
        let a = |fid| d(GuestCall::SmcccArchFeatures { fid });
        for fid in [
            SMCCC_ARCH_WORKAROUND_1,
            SMCCC_ARCH_WORKAROUND_3,
            SMCCC_ARCH_SOC_ID,
            SMCCC_ARCH_FEATURES,
            SMCCC_VERSION,
            PSCI_CPU_ON_64,
        ] {
            assert_eq!(a(fid), Decision::Forward, "{fid:#x}");
        }
        assert_eq!(d(GuestCall::SmcccVersion), Decision::Forward);
        assert_eq!(d(GuestCall::ArchService { fid: SMCCC_ARCH_WORKAROUND_2 }), Decision::Forward);
    }

    #[test]
    fn cpu_on_refuses_hypervisor_memory() {
        let on = |target, entry| d(GuestCall::CpuOn { target, entry, context: 0 });
        // Entry at the first byte, inside, and the last byte of hyp memory.
        for entry in [HYP.0, HYP.0 + 0x1234, HYP.0 + HYP.1 - 1] {
            assert_eq!(on(1, entry), Decision::Deny(INVALID_ADDRESS), "{entry:#x}");
            assert_eq!(on(0, entry), Decision::Deny(INVALID_ADDRESS), "{entry:#x}");
        }
        assert_eq!(on(1, HYP.0).x0(), Some((-9i64) as u64));
        // Just outside: the boot CPU is on, CPU 1 is started.
        assert_eq!(on(0, HYP.0 + HYP.1), Decision::Answer(ret(ALREADY_ON)));
        assert_eq!(on(0, HYP.0 - 4), Decision::Answer(ret(ALREADY_ON)));
        assert_eq!(on(1, 0x8000_0000), Decision::CpuOn { target: 1, entry: 0x8000_0000, context: 0 });
        // Non-affinity bits in target_cpu are invalid; so is a CPU the
        // machine does not have.
        assert_eq!(on(1 << 31 | 1, 0x8000_0000), Decision::Deny(INVALID_PARAMETERS));
        assert_eq!(on(4, 0x8000_0000), Decision::Deny(INVALID_PARAMETERS));
        assert_eq!(on(0x100, 0x8000_0000), Decision::Deny(INVALID_PARAMETERS));
        // Region at the top of the address space: no overflow.
        let top = (u64::MAX - 0xFFF, 0x1000);
        let cpus = Topology::new(&[0, 1], 2, BOOT).unwrap();
        let m = Machine { hyp: top, cpus: &cpus, power: &BOOTED[..2], caller: 0 };
        assert_eq!(
            decide(GuestCall::CpuOn { target: 1, entry: u64::MAX, context: 0 }, &m),
            Decision::Deny(INVALID_ADDRESS)
        );
        assert!(!region_contains((0, 0), 0));
    }

    /// CPU_ON, CPU_OFF and AFFINITY_INFO follow each CPU's power state, the
    /// same with and without firmware (except AFFINITY_INFO, which
    /// firmware answers when there is one).
    #[test]
    fn power_states_across_cpus() {
        use Power::{Off, On, OnPending};
        let on = |power: &[Power], caller, target: u64| {
            let call = GuestCall::CpuOn { target, entry: 0x4100_0000, context: 0x55 };
            let a = machine_with(power, caller, |m| decide(call, m));
            let b = machine_with(power, caller, |m| decide_without_firmware(call, m));
            assert_eq!(a, b, "{power:?} {target}");
            a
        };
        let states = [On, OnPending, On, Off];
        assert_eq!(on(&states, 0, 1), Decision::Answer(ret(ON_PENDING)));
        assert_eq!(on(&states, 0, 2), Decision::Answer(ret(ALREADY_ON)));
        assert_eq!(on(&states, 2, 3), Decision::CpuOn { target: 3, entry: 0x4100_0000, context: 0x55 });
        // CPU_OFF: the last CPU on ends the run; a pending one counts as on.
        let off = |power: &[Power], caller| machine_with(power, caller, |m| decide(GuestCall::CpuOff, m));
        assert_eq!(off(&[On, On, Off, Off], 1), Decision::CpuOff);
        assert_eq!(off(&[Off, On, Off, Off], 1), Decision::LastCpuOff);
        assert_eq!(off(&[On, OnPending, Off, Off], 0), Decision::CpuOff);
        // AFFINITY_INFO with firmware: porwatch's own ON / ON_PENDING, else
        // firmware's (a CPU that called CPU_OFF is off when firmware says).
        let fw = |power: &[Power], target, lowest_level| {
            machine_with(power, 0, |m| decide(GuestCall::AffinityInfo { target, lowest_level }, m))
        };
        assert_eq!(fw(&states, 0, 0), Decision::Answer(0));
        assert_eq!(fw(&states, 1, 0), Decision::Answer(2));
        assert_eq!(fw(&states, 3, 0), Decision::Forward);
        assert_eq!(fw(&states, 7, 0), Decision::Forward);
        assert_eq!(fw(&states, 0, 1), Decision::Forward);
        // Without firmware, from the states.
        let ai = |power: &[Power], target, lowest_level| {
            let call = GuestCall::AffinityInfo { target, lowest_level };
            machine_with(power, 0, |m| decide_without_firmware(call, m))
        };
        assert_eq!(ai(&states, 0, 0), Decision::Answer(0)); // ON
        assert_eq!(ai(&states, 1, 0), Decision::Answer(2)); // ON_PENDING
        assert_eq!(ai(&states, 3, 0), Decision::Answer(1)); // OFF
        assert_eq!(ai(&[Off, OnPending, Off, Off], 3, 1), Decision::Answer(2)); // Aff0 ignored
        assert_eq!(ai(&[Off, Off, Off, Off], 0, 1), Decision::Answer(1));
        assert_eq!(ai(&states, 7, 0), Decision::Deny(INVALID_PARAMETERS)); // no such CPU
        assert_eq!(ai(&states, 0x100, 1), Decision::Deny(INVALID_PARAMETERS));
        assert_eq!(ai(&states, 1 << 31, 0), Decision::Deny(INVALID_PARAMETERS));
        assert_eq!(ai(&states, 0, 4), Decision::Deny(INVALID_PARAMETERS));
    }
}
