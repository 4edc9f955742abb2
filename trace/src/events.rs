//! The event table (format version 1): the single source of truth for
//! kinds, codes, fields, their order, types and display hints.

use crate::wire::{Reader, Writer};
use crate::UNKNOWN_RAW;
use crate::{kind_spec, DecodeError, FieldSpec, FieldValue, Fields, Hint, KindSpec};

value_enum! {
    /// How the hypervisor provides FEAT_S1POE to the guest (`header.poe_mode`).
    pub enum PoeMode, names POE_MODE_NAMES {
        /// POE not offered to the guest.
        None = 0 => "none",
        /// POE emulated by the hypervisor.
        Virtual = 1 => "virtual",
        /// The CPU's own POE passed through.
        Native = 2 => "native",
    }
}

value_enum! {
    /// What the permission overlays actually restrict (`header.overlay_enforced`).
    pub enum OverlayEnforced, names OVERLAY_ENFORCED_NAMES {
        /// No overlays (POE not offered).
        None = 0 => "none",
        /// Virtual POE: POR_EL1/POR_EL0 are emulated and the overlay is
        /// evaluated only for writes to tracked page tables (hazards). No
        /// other access is restricted: user pkeys (POR_EL0) are not enforced.
        TableWritesOnly = 1 => "table_writes_only",
        /// Native POE: the CPU enforces POR_EL1 and POR_EL0 on every access.
        Hardware = 2 => "hardware",
    }
}

value_enum! {
    /// What a memory region is (`mem_region.kind`).
    pub enum MemKind, names MEM_KIND_NAMES {
        GuestRam = 0 => "guest_ram",
        Hyp = 1 => "hyp",
        Mmio = 2 => "mmio",
        /// MMIO the guest cannot see (the trace UART, hidden DMA-capable
        /// devices).
        HiddenMmio = 3 => "hidden_mmio",
        GuestDtb = 4 => "guest_dtb",
        /// MMIO the guest reaches through porwatch's emulation (the GICv3
        /// redistributors' LPI registers).
        EmulatedMmio = 5 => "emulated_mmio",
    }
}

value_enum! {
    /// What the hypervisor did with a trap (`trap.outcome`, `unknown_trap.action`).
    pub enum TrapOutcome, names TRAP_OUTCOME_NAMES {
        /// Emulated by the hypervisor; the guest continues after it.
        Emulated = 0 => "emulated",
        /// Passed on (e.g. an SMC forwarded to firmware).
        Forwarded = 1 => "forwarded",
        /// An UNDEFINED exception was injected into the guest.
        UndefInjected = 2 => "undef_injected",
        /// An abort was injected into the guest.
        AbortInjected = 3 => "abort_injected",
        /// Skipped without effect.
        Ignored = 4 => "ignored",
    }
}

value_enum! {
    /// Instruction through which the guest made a PSCI call (`psci.conduit`).
    pub enum PsciConduit, names PSCI_CONDUIT_NAMES {
        Smc = 0 => "smc",
        Hvc = 1 => "hvc",
    }
}

value_enum! {
    /// Which of the 16 vector-table slots an exception entered (`exc_entry.vector`):
    /// offset / 0x80 from VBAR_EL1. Kind (sync, irq, fiq, serror) by source:
    /// current EL with SP_EL0 (el1t), with SP_ELx (el1h), lower EL AArch64, AArch32.
    pub enum Vector, names VECTOR_NAMES {
        SyncEl1t = 0 => "sync_el1t",
        IrqEl1t = 1 => "irq_el1t",
        FiqEl1t = 2 => "fiq_el1t",
        SErrorEl1t = 3 => "serror_el1t",
        SyncEl1h = 4 => "sync_el1h",
        IrqEl1h = 5 => "irq_el1h",
        FiqEl1h = 6 => "fiq_el1h",
        SErrorEl1h = 7 => "serror_el1h",
        SyncEl0_64 = 8 => "sync_el0_64",
        IrqEl0_64 = 9 => "irq_el0_64",
        FiqEl0_64 = 10 => "fiq_el0_64",
        SErrorEl0_64 = 11 => "serror_el0_64",
        SyncEl0_32 = 12 => "sync_el0_32",
        IrqEl0_32 = 13 => "irq_el0_32",
        FiqEl0_32 = 14 => "fiq_el0_32",
        SErrorEl0_32 = 15 => "serror_el0_32",
    }
}

value_enum! {
    /// Which overlay register a `por_write` changed.
    pub enum PorReg, names POR_REG_NAMES {
        PorEl1 = 0 => "por_el1",
        PorEl0 = 1 => "por_el0",
    }
}

value_enum! {
    /// How the exception-entry tap watches a vector table (`tap_arm.mechanism`).
    pub enum TapMechanism, names TAP_MECHANISM_NAMES {
        /// The vector page is execute-never at stage 2; an entry faults and
        /// the vector code is single-stepped.
        XnStep = 0 => "xn_step",
        /// Stage 2 maps a shadow of the vector page whose slots start with an
        /// HVC: one trap per entry.
        Trampoline = 1 => "trampoline",
    }
}

value_enum! {
    /// What happened to a virtual POE POR_EL1 site (`por_site.state`).
    pub enum PorSiteState, names POR_SITE_STATE_NAMES {
        /// The site now runs as an access of the carrier register, in porwatch's
        /// shadow of its code page.
        Patched = 0 => "patched",
        /// The page's shadow was given up (the guest read or wrote the page too
        /// often, or in a way porwatch cannot complete); its sites UNDEF again.
        Released = 1 => "released",
        /// The site cannot be patched (every shadow in use, the page is the tap's,
        /// not RAM); it keeps UNDEFing.
        Refused = 2 => "refused",
    }
}

value_enum! {
    /// Which translation table base a stage-1 table hangs off.
    pub enum Half, names HALF_NAMES {
        Ttbr0 = 0 => "ttbr0",
        Ttbr1 = 1 => "ttbr1",
    }
}

value_enum! {
    /// What porwatch did with a hazardous page-table write (`hazard.action`).
    pub enum HazardAction, names HAZARD_ACTION_NAMES {
        /// Policy report: the write was performed; the guest never faults.
        Performed = 0 => "performed",
        /// Policy fault: the overlay permission fault was injected, as the
        /// hardware would have raised it; the write was not performed.
        FaultInjected = 1 => "fault_injected",
        /// Native POE: the hardware faulted first; porwatch completed the
        /// write (report) or let the guest's handler run (fault).
        HardwareFault = 2 => "hardware_fault",
    }
}

value_enum! {
    /// Why a store to a tracked table could not be emulated (`coverage_gap.reason`).
    pub enum GapReason, names GAP_REASON_NAMES {
        /// The instruction is not a store porwatch decodes (older writers;
        /// such stores are now single-stepped, `pt_stats.stepped_stores`).
        Undecodable = 0 => "undecodable",
        /// The instruction could not be read (older writers; now stepped).
        Unreadable = 1 => "unreadable",
        /// The store's address does not match the fault address, or it crosses
        /// into another page (older writers; now emulated page by page, or
        /// stepped).
        AddressMismatch = 2 => "address_mismatch",
        /// The table is beyond the tracker's capacity.
        Capacity = 3 => "capacity",
        /// Unsupported translation regime (16K/64K granule, big-endian
        /// data at EL1).
        Regime = 4 => "regime",
        /// The stage-1 walker updated a descriptor itself (hardware AF/dirty;
        /// older writers: the access is now stepped and the update seen).
        WalkerUpdate = 5 => "walker_update",
    }
}

value_enum! {
    /// Why the guest stopped (`guest_exit.reason`).
    pub enum ExitReason, names EXIT_REASON_NAMES {
        /// PSCI SYSTEM_OFF.
        SystemOff = 0 => "system_off",
        /// PSCI SYSTEM_RESET.
        SystemReset = 1 => "system_reset",
        /// The test-exit hypercall; `code` is the test's exit code.
        TestExit = 2 => "test_exit",
        /// The last CPU called PSCI CPU_OFF.
        CpuOff = 3 => "cpu_off",
        /// The hypervisor gave up (see the preceding panic/unknown_trap).
        HypError = 4 => "hyp_error",
    }
}

value_enum! {
    /// Why a CPU entered the guest (`cpu_start.reason`).
    pub enum CpuStartReason, names CPU_START_REASON_NAMES {
        /// The guest's PSCI CPU_ON started it.
        CpuOn = 0 => "cpu_on",
        /// It resumed from a power-down CPU_SUSPEND (through porwatch's warm entry).
        Resume = 1 => "resume",
    }
}

value_enum! {
    /// Why a CPU left the guest (`cpu_stop.reason`).
    pub enum CpuStopReason, names CPU_STOP_REASON_NAMES {
        /// PSCI CPU_OFF (not the last CPU on: the run goes on).
        CpuOff = 0 => "cpu_off",
    }
}

value_enum! {
    /// Why the guest reads an ID-register field other than the CPU's
    /// (`id_field.reason`; porwatch_monitor::idregs::Reason, same order).
    pub enum IdReason, names ID_REASON_NAMES {
        /// Not in porwatch's table: a reserved position or an unknown register (a newer architecture).
        Unknown = 0 => "unknown",
        /// Describes EL2, EL3 or stage 2, which belong to porwatch.
        El2Only = 1 => "el2_only",
        /// Needs EL2 work porwatch does not do (its controls stay at their trapping or disabled value).
        NeedsEl2 = 2 => "needs_el2_support",
        /// The page-table watch cannot follow it.
        PageTableWatch = 3 => "page_table_watch",
        /// Provided by porwatch (virtual POE).
        VirtualPoe = 4 => "virtual_poe",
        /// FEAT_S1POE not provided (porwatch.poe=off, or no tap).
        PoeNotProvided = 5 => "poe_not_provided",
        /// Needs the guest's TCR2_EL1 in the hardware; porwatch keeps it virtual here.
        Tcr2Virtual = 6 => "tcr2_virtual",
        /// Fixed by porwatch's EL2 configuration (EL1 AArch64, stage-2 IPA size).
        El2Config = 7 => "el2_config",
        /// Depends on a feature the guest does not see.
        Depends = 8 => "depends",
        /// Its register carries POR_EL1 at patched sites (SCXTNUM_EL1: FEAT_CSV2_2 hidden).
        PorCarrier = 9 => "por_carrier",
    }
}

/// The largest process exit status: an exit status has 8 bits.
pub const MAX_EXIT_STATUS: u8 = u8::MAX;

/// The exit status the hypervisor stops the machine with after a test exit
/// with `code` (semihosting SYS_EXIT; QEMU exits with it): `code` when it
/// fits in 8 bits, [`MAX_EXIT_STATUS`] when it does not, so a code such as
/// 256 never reads as 0. The full code is in `guest_exit.code`, which is
/// what `porwatch run` reports.
pub const fn test_exit_status(code: u64) -> u8 {
    if code > MAX_EXIT_STATUS as u64 {
        MAX_EXIT_STATUS
    } else {
        code as u8
    }
}

value_enum! {
    /// What started a protection audit (`audit.trigger`).
    pub enum AuditTrigger, names AUDIT_TRIGGER_NAMES {
        /// The guest first ran under a restrictive POR_EL1 with its MMU on.
        FirstPor = 0 => "first_por",
        /// The guest stopped.
        Exit = 1 => "exit",
        /// `porwatch.audit=every:MS`.
        Periodic = 2 => "periodic",
    }
}

value_enum! {
    /// What an SMMU reported (`smmu_event.reason`): SMMUv3 event record types
    /// (IHI 0070 7.3; `f_` = a transaction faulted, `c_` = a configuration
    /// error), and the loss of events when its queue overflowed.
    pub enum SmmuEventType, names SMMU_EVENT_TYPE_NAMES {
        /// A type porwatch does not name (see `code`).
        Other = 0 => "other",
        /// F_TRANSLATION: stage 2 maps nothing there (porwatch's memory, a
        /// hidden device, a hole).
        Translation = 1 => "f_translation",
        /// F_PERMISSION: stage 2 maps the page without this access (a write
        /// to a page table the watch keeps read-only).
        Permission = 2 => "f_permission",
        /// F_ADDR_SIZE: beyond the SMMU's input or output address size.
        AddrSize = 3 => "f_addr_size",
        /// F_ACCESS: access flag fault.
        Access = 4 => "f_access",
        /// F_WALK_EABT: external abort on a table walk.
        WalkAbort = 5 => "f_walk_eabt",
        /// C_BAD_STREAMID: a StreamID beyond porwatch's stream table.
        BadStreamId = 6 => "c_bad_streamid",
        /// C_BAD_STE: the SMMU rejected an STE.
        BadSte = 7 => "c_bad_ste",
        /// F_STE_FETCH: an STE could not be read.
        SteFetch = 8 => "f_ste_fetch",
        /// C_BAD_SUBSTREAMID: a transaction with a PASID (stage 1 is off).
        BadSubstreamId = 9 => "c_bad_substreamid",
        /// F_TRANSL_FORBIDDEN: an ATS-translated transaction refused.
        TranslForbidden = 10 => "f_transl_forbidden",
        /// F_STREAM_DISABLED.
        StreamDisabled = 11 => "f_stream_disabled",
        /// F_UUT: unsupported upstream transaction.
        Uut = 12 => "f_uut",
        /// The SMMU's event queue overflowed (or an event could not be
        /// written): at least one event before this record was lost.
        Overflow = 13 => "overflow",
    }
}

value_enum! {
    /// What a protection audit could conclude (`audit.status`).
    pub enum AuditStatus, names AUDIT_STATUS_NAMES {
        /// Every tracked table page was audited.
        Done = 0 => "done",
        /// Nothing to audit: the overlay is off (TCR2_EL1.POE = 0) or the
        /// audited POR_EL1 lets EL1 write through every pkey.
        NoOverlays = 1 => "no_overlays",
        /// Nothing to audit: the guest's MMU is off or no table is tracked.
        NoTables = 2 => "no_tables",
        /// Audited, but some tables may be missing: the tracker overflowed,
        /// a walk ran out of budget, or the audit's array was full.
        Incomplete = 3 => "incomplete",
    }
}

value_enum! {
    /// Where the audited POR_EL1 value came from (`audit.por_source`).
    pub enum PorSource, names POR_SOURCE_NAMES {
        /// `porwatch.audit_por=`.
        Option = 0 => "option",
        /// The value the guest's exception-entry code installs (the latest
        /// at-entry POR_EL1 write).
        AtEntry = 1 => "at_entry",
        /// The first restrictive value the guest set.
        FirstRestrictive = 2 => "first_restrictive",
        /// None known (the guest never set a restrictive POR_EL1).
        None = 3 => "none",
    }
}

value_enum! {
    /// Whose call chain a `call_trace` record is (`call_trace.of`).
    pub enum CallTraceOf, names CALL_TRACE_OF_NAMES {
        /// The code that made the hazardous store (the hazard's `trace_seq`).
        Hazard = 0 => "hazard",
        /// The code an exception interrupted (`ref_seq` is its exc_entry).
        ExcEntry = 1 => "exc_entry",
    }
}

value_enum! {
    /// Why a frame-pointer walk stopped (`call_trace.end`;
    /// porwatch_monitor::unwind::End, same order).
    pub enum UnwindEnd, names UNWIND_END_NAMES {
        /// x29 = 0 or a null return address: the outermost frame.
        Complete = 0 => "complete",
        /// 16 frames recorded.
        Depth = 1 => "depth",
        /// A frame record could not be read (not mapped, not RAM).
        Unreadable = 2 => "unreadable",
        /// x29 was not 8-byte aligned.
        Misaligned = 3 => "misaligned",
        /// A frame record came back again.
        Loop = 4 => "loop",
    }
}

define_events! {
    /// First record of a trace: format version and the CPU's identity, so a
    /// trace can be read without the machine it came from.
    0x01 header => Header {
        /// Trace format version (`FORMAT_VERSION`, 3; a reader takes 1, 2, 3).
        format_version: u64 = Dec,
        /// CNTFRQ_EL0: counter frequency in Hz; `ts` ticks / cntfrq = seconds.
        cntfrq: u64 = Dec,
        /// MIDR_EL1.
        midr: u64 = Hex,
        /// MPIDR_EL1 of the boot CPU.
        mpidr: u64 = Hex,
        /// ID_AA64PFR0_EL1.
        id_aa64pfr0: u64 = Hex,
        /// ID_AA64PFR1_EL1.
        id_aa64pfr1: u64 = Hex,
        /// ID_AA64DFR0_EL1.
        id_aa64dfr0: u64 = Hex,
        /// ID_AA64ISAR0_EL1.
        id_aa64isar0: u64 = Hex,
        /// ID_AA64ISAR1_EL1.
        id_aa64isar1: u64 = Hex,
        /// ID_AA64MMFR0_EL1.
        id_aa64mmfr0: u64 = Hex,
        /// ID_AA64MMFR1_EL1.
        id_aa64mmfr1: u64 = Hex,
        /// ID_AA64MMFR2_EL1.
        id_aa64mmfr2: u64 = Hex,
        /// ID_AA64MMFR3_EL1 (S1POE is bits [19:16]).
        id_aa64mmfr3: u64 = Hex,
        /// How FEAT_S1POE is provided to the guest.
        poe_mode: u64 = Enum(POE_MODE_NAMES),
        /// Hypervisor option bits: the `porwatch.*` command-line options, as `porwatch_monitor::cmdline::Options::bits` documents (the trace selection is bits 0..=1 plus bit 12: 1 node path, 2 address, 3 none, 4 semihosting file).
        options: u64 = Hex,
        /// Physical base of the hypervisor's memory, where it runs (it moves itself to the top of RAM at boot).
        hyp_base: u64 = Hex,
        /// Size of the hypervisor's memory: its image, stack and the guest's stage-2 tables (never guest RAM).
        hyp_size: u64 = Hex,
        /// What the overlays restrict for this guest (follows poe_mode).
        overlay_enforced: u64_appended = Enum(OVERLAY_ENFORCED_NAMES),
    }

    /// The hypervisor started.
    0x02 hyp_boot => HypBoot {
        /// Exception level the hypervisor was entered at.
        entry_el: u64 = Dec,
        /// Physical address of the DTB the hypervisor was given.
        dtb: u64 = Hex,
        /// Base of the guest-visible console UART.
        console_uart: u64 = Hex,
        /// Base of the UART this trace is written to (0: none, e.g. the trace goes to a semihosting file).
        trace_uart: u64 = Hex,
    }

    /// A region of the guest's physical address map.
    0x03 mem_region => MemRegion {
        /// Physical base address.
        base: u64 = Hex,
        /// Size in bytes.
        size: u64 = Hex,
        /// What the region is.
        kind: u64 = Enum(MEM_KIND_NAMES),
    }

    /// The hypervisor is about to enter the guest.
    0x04 guest_start => GuestStart {
        /// Guest entry point.
        entry: u64 = Hex,
        /// Physical address of the guest's DTB (x0 at entry).
        dtb: u64 = Hex,
        /// Size of the guest's DTB in bytes.
        dtb_size: u64 = Hex,
        /// SPSR the guest is entered with.
        spsr: u64 = Hex,
    }

    /// A guest exception taken to EL2 and handled.
    0x05 trap => Trap {
        /// ESR_EL2 (exception class in bits [31:26]).
        esr: u64 = Hex,
        /// ELR_EL2: guest PC of the trapping instruction.
        elr: u64 = Hex,
        /// What the hypervisor did with it.
        outcome: u64 = Enum(TRAP_OUTCOME_NAMES),
    }

    /// A guest exception the hypervisor has no handler for.
    0x06 unknown_trap => UnknownTrap {
        /// ESR_EL2.
        esr: u64 = Hex,
        /// ELR_EL2.
        elr: u64 = Hex,
        /// FAR_EL2 when the exception reports an address (instruction and data
        /// aborts without FnV, PC alignment, watchpoints); 0 otherwise, where
        /// FAR_EL2 is UNKNOWN (a trapped system-register access, SMC, ...).
        far: u64 = Hex,
        /// What was done instead (same values as `trap.outcome`).
        action: u64 = Enum(TRAP_OUTCOME_NAMES),
    }

    /// A PSCI / SMCCC call made by the guest, after handling.
    0x07 psci => Psci {
        /// Function ID (w0).
        function: u64 = Hex,
        /// x1.
        arg0: u64 = Hex,
        /// x2.
        arg1: u64 = Hex,
        /// x3.
        arg2: u64 = Hex,
        /// Value returned in x0 (negative: PSCI error code).
        result: i64 = Dec,
        /// Instruction the guest used for the call.
        conduit: u64 = Enum(PSCI_CONDUIT_NAMES),
    }

    /// The guest stopped; normally the last record.
    0x08 guest_exit => GuestExit {
        /// Why the guest stopped.
        reason: u64 = Enum(EXIT_REASON_NAMES),
        /// Exit code (test_exit: the guest's x1, all 64 bits) or 0.
        code: u64 = Dec,
    }

    /// Records were lost (trace buffer full). Their sequence numbers were
    /// consumed: this record's seq is the previous record's seq + `count` + 1.
    0x09 dropped => Dropped {
        /// Number of records lost.
        count: u64 = Dec,
    }

    /// The hypervisor panicked.
    0x0a panic => Panic {
        /// Panic message, UTF-8, cut by the writer so the record fits `MAX_PAYLOAD`.
        message: bytes = Text,
    }

    /// The guest took an exception to EL1 (seen by the exception-entry tap
    /// when the CPU fetched from the vector slot). Registers are as the CPU
    /// wrote them on entry.
    0x0b exc_entry => ExcEntry {
        /// Vector slot entered.
        vector: u64 = Enum(VECTOR_NAMES),
        /// ESR_EL1 (meaningful for synchronous exceptions and SErrors; an IRQ
        /// or FIQ does not write it, so it holds an earlier exception's value,
        /// which the reader marks stale instead of decoding).
        esr: u64 = Hex,
        /// ELR_EL1: where the exception was taken.
        elr: u64 = Hex,
        /// SPSR_EL1: the interrupted PSTATE.
        spsr: u64 = Hex,
        /// FAR_EL1 (meaningful for aborts, watchpoints, PC alignment).
        far: u64 = Hex,
        /// POR_EL1 in force when the exception was taken.
        por: u64 = Hex,
        /// Nesting depth after this entry (counted with exception-return tracing; else 0).
        depth: u64 = Dec,
    }

    /// The guest returned from an exception (ERET), with exception-return
    /// tracing on (`porwatch.eret=on`).
    0x0c exc_return => ExcReturn {
        /// ELR_EL1: the PC returned to.
        elr: u64 = Hex,
        /// SPSR_EL1: the PSTATE returned to.
        spsr: u64 = Hex,
        /// POR_EL1 in force at the ERET.
        por: u64 = Hex,
        /// Nesting depth after this return.
        depth: u64 = Dec,
    }

    /// The guest changed POR_EL1 or POR_EL0 (a write that did not change
    /// the value is not recorded).
    0x0d por_write => PorWrite {
        /// PC of the MSR.
        pc: u64 = Hex,
        /// Which register.
        reg: u64 = Enum(POR_REG_NAMES),
        /// Value before.
        old: u64 = Hex,
        /// Value written.
        new: u64 = Hex,
        /// 1 when this is exception-entry code's write: the first POR_EL1
        /// change after an exception entry, before any other entry or return.
        at_entry: u64 = Dec,
        /// seq of the most recent exc_entry (0: none yet); with at_entry = 1,
        /// the entry whose code made this change.
        entry_seq: u64 = Dec,
        /// 1: native POE with `porwatch.por=sample`: the change was derived from two samples of POR_EL1 that differ; `pc` is where the new value was first seen (an entry's ELR, a table store's PC), not the MSR, and changes undone between samples are not seen.
        sampled: u64_appended = Dec,
    }

    /// The guest changed TCR2_EL1 (POE bit 3, E0POE bit 2 enable the overlays).
    0x0e tcr2_write => Tcr2Write {
        /// PC of the MSR.
        pc: u64 = Hex,
        /// Value before.
        old: u64 = Hex,
        /// Value written.
        new: u64 = Hex,
    }

    /// The exception-entry tap now watches the vector table at `vbar`.
    0x0f tap_arm => TapArm {
        /// VBAR_EL1 as the guest wrote it.
        vbar: u64 = Hex,
        /// Intermediate physical address of the vector table's page.
        page: u64 = Hex,
        /// How entries are caught from now on.
        mechanism: u64_appended = Enum(TAP_MECHANISM_NAMES),
    }

    /// porwatch now tracks the stage-1 tables under a TTBR.
    0x10 pt_root => PtRoot {
        /// Which TTBR.
        half: u64 = Enum(HALF_NAMES),
        /// IPA of the root table.
        root: u64 = Hex,
        /// ASID (TTBR bits [63:48]).
        asid: u64 = Dec,
        /// Table pages tracked after this change (all roots).
        tables: u64 = Dec,
        /// Root of an address space dropped to stay within the bound (0: none).
        evicted: u64 = Hex,
        /// Translation levels of this half: 4 (48-bit VA), 5 (52-bit VA
        /// with LPA2, TCR_EL1.DS = 1), fewer for smaller VA ranges.
        levels: u64_appended = Dec,
    }

    /// A write to a guest page table made while the permission overlay did
    /// not grant write (the hardware would fault). Never dropped.
    0x11 hazard => Hazard {
        /// VA written (FAR).
        va: u64 = Hex,
        /// IPA written.
        ipa: u64 = Hex,
        /// Level of the table written (-1..3).
        level: i64 = Dec,
        /// The table's root: ttbr0 or ttbr1.
        half: u64 = Enum(HALF_NAMES),
        /// Descriptor before.
        old: u64 = Hex,
        /// Descriptor written.
        new: u64 = Hex,
        /// PC of the store.
        pc: u64 = Hex,
        /// POR_EL1 (POR_EL0 for unprivileged stores) in force.
        por: u64 = Hex,
        /// POIndex of the leaf descriptor that maps `va` (the pkey); 8:
        /// unknown (native POE: the CPU faulted, the software walk failed).
        poindex: u64 = Dec,
        /// The 4-bit overlay permission POR grants that pkey (0 if unknown).
        perm: u64 = Hex,
        /// 1 for an unprivileged (STTR-class) store.
        unprivileged: u64 = Dec,
        /// seq of the most recent exc_entry (0: none).
        entry_seq: u64 = Dec,
        /// seq of the most recent por_write (0: none).
        por_seq: u64 = Dec,
        /// performed, fault_injected, hardware_fault.
        action: u64 = Enum(HAZARD_ACTION_NAMES),
        /// Level of the stage-1 leaf that maps `va` (the level a hardware
        /// overlay fault reports in its DFSC); -1 if unknown.
        leaf_level: i64 = Dec,
        /// With S1PIE on (TCR2_EL1.PIE): 0x10 | the PIR_EL1 (PIRE0_EL1) entry the leaf's PIIndex selects (bit 3 clear: the overlay applies; 0x6: with WXN, the overlay's X removes its W); 0: S1PIE off, or unknown.
        pir: u64_appended = Hex,
        /// seq of the `call_trace` record of the store's call chain (written just before; 0: none).
        trace_seq: u64_appended = Dec,
        /// seq of the `call_trace` record of the cause entry's interrupted code (0: none).
        entry_trace_seq: u64_appended = Dec,
    }

    /// A table porwatch cannot watch: a store to a tracked table it can
    /// neither emulate nor single-step (big-endian data, reason `regime`):
    /// the page leaves the tracker (`pt_stats.released_pages`), so the
    /// guest keeps running and writes to it go unseen until the tracker
    /// rebuilds; or a table beyond the tracker's capacity (`capacity`, `pc`,
    /// `insn`, `va` 0), never tracked.
    0x12 coverage_gap => CoverageGap {
        /// PC of the store.
        pc: u64 = Hex,
        /// The instruction word (0 if unreadable).
        insn: u64 = Hex,
        /// VA written.
        va: u64 = Hex,
        /// IPA written.
        ipa: u64 = Hex,
        /// undecodable, unreadable, address_mismatch, capacity, regime, walker_update.
        reason: u64 = Enum(GAP_REASON_NAMES),
    }

    /// Page-table tracking totals, written when the guest stops.
    0x13 pt_stats => PtStats {
        /// Table pages tracked now.
        tables: u64 = Dec,
        /// Most table pages tracked at once.
        max_tables: u64 = Dec,
        /// Descriptor writes seen (emulated stores, split per descriptor).
        table_writes: u64 = Dec,
        /// Stores to tracked tables emulated.
        stores: u64 = Dec,
        /// Hazards reported.
        hazards: u64 = Dec,
        /// Coverage gaps.
        coverage_gaps: u64 = Dec,
        /// TTBR0 address spaces dropped to stay within the bound.
        roots_dropped: u64 = Dec,
        /// Tables not tracked for lack of capacity.
        overflows: u64 = Dec,
        /// TTBR0 address spaces released as freed (torn down while not
        /// installed, or their pages found reused as ordinary memory).
        roots_released: u64_appended = Dec,
        /// Of `stores`, those the hypervisor's assembly fast path completed
        /// (plain stores to last-level tables).
        fast_stores: u64_appended = Dec,
        /// Of `stores`, FEAT_MOPS steps (SET*/CPY*: one destination page of a
        /// memset or memcpy each, emulated and restarted).
        mops_steps: u64_appended = Dec,
        /// Of `stores`, stores porwatch does not emulate (SIMD&FP, 16-byte
        /// CASP, LS64, ...) completed by single-stepping them with the page
        /// writable and comparing it before and after: each descriptor they
        /// wrote is in `table_writes`.
        stepped_stores: u64_appended = Dec,
        /// Table pages that left the tracker because a store to them could be
        /// neither emulated nor stepped (each with a `coverage_gap` record);
        /// writes to them are not seen until the tracker rebuilds.
        released_pages: u64_appended = Dec,
        /// Last-level table pages left writable while no overlay could deny
        /// a privileged write (`porwatch.leaves=open`, the default, and
        /// TCR2_EL1.POE clear on every CPU): the stores made to them then
        /// are not in `stores` or `table_writes` (none can be a hazard or
        /// link a table). Counts each time a page was opened.
        leaves_opened: u64_appended = Dec,
    }

    /// A device's memory access stopped by the SMMU porwatch runs (every
    /// stream is translated by the guest's stage 2), or another event of
    /// its event queue. The device saw an abort (a read returns nothing
    /// useful, a write is dropped); nothing was written. Consecutive events
    /// of one stream, type and direction at ascending addresses are one
    /// record (QEMU reports a faulting DMA once per 4-byte access).
    /// Reported at the next trap after the event (at most one poll per
    /// millisecond) and when the guest stops.
    0x14 smmu_event => SmmuEvent {
        /// StreamID of the device (PCIe: the requester ID, bus << 8 |
        /// device << 3 | function).
        sid: u64 = Hex,
        /// What happened (the event type).
        reason: u64 = Enum(SMMU_EVENT_TYPE_NAMES),
        /// The SMMUv3 event type code (0x10 F_TRANSLATION, 0x13
        /// F_PERMISSION, ...; 0 for `overflow`).
        code: u64 = Hex,
        /// The address the device used (an IPA; 0 for configuration errors).
        addr: u64 = Hex,
        /// 1: the access was a write; 0: a read (or not an access).
        write: u64 = Dec,
        /// Events this record stands for.
        count: u64 = Dec,
        /// The address of the last of them.
        last: u64 = Hex,
    }

    /// An ID-register field the guest reads differently from the CPU
    /// (hidden, lowered or provided by porwatch), one per field, written at
    /// boot before guest_start: what the guest's CPU lacks and why
    /// (docs/cpu.md).
    0x15 id_field => IdField {
        /// The field: the register's MSR/MRS encoding (instruction bits [20:5]: op0, op1, CRn, CRm, op2) shifted left by 8, or'ed with the field's lowest bit. The reader names it (`ID_AA64PFR1_EL1.GCS [47:44]`).
        field: u64 = Hex,
        /// Width in bits (64: a whole register porwatch does not know).
        width: u64 = Dec,
        /// The CPU's value of the field.
        cpu: u64 = Hex,
        /// The value the guest reads.
        guest: u64 = Hex,
        /// Why they differ.
        reason: u64 = Enum(ID_REASON_NAMES),
    }

    /// A CPU other than the boot CPU entered the guest (the boot CPU's start
    /// is `guest_start`). Written by that CPU.
    0x16 cpu_start => CpuStart {
        /// MPIDR_EL1 of the CPU (what the guest reads).
        mpidr: u64 = Hex,
        /// Where it enters the guest (the CPU_ON or CPU_SUSPEND entry point).
        entry: u64 = Hex,
        /// x0 at entry: the guest's context ID.
        context: u64 = Hex,
        /// cpu_on or resume.
        reason: u64 = Enum(CPU_START_REASON_NAMES),
    }

    /// A CPU left the guest for good (until a CPU_ON starts it again).
    0x17 cpu_stop => CpuStop {
        /// cpu_off.
        reason: u64 = Enum(CPU_STOP_REASON_NAMES),
    }

    /// A protection audit (docs/audit.md): the tracked page-table pages
    /// through which EL1 could write under the guest's restrictive POR_EL1.
    /// Written before its lists: `listed` audit_table and `stale_listed`
    /// audit_stale records follow. Never dropped.
    0x18 audit => Audit {
        /// What started it.
        trigger: u64 = Enum(AUDIT_TRIGGER_NAMES),
        /// What it could conclude.
        status: u64 = Enum(AUDIT_STATUS_NAMES),
        /// The POR_EL1 value audited against.
        por: u64 = Hex,
        /// Where that value came from.
        por_source: u64 = Enum(POR_SOURCE_NAMES),
        /// Table pages audited (every tracked one).
        tables: u64 = Dec,
        /// Of those, pages some alias lets EL1 write (the list).
        unprotected: u64 = Dec,
        /// Pages mapped only where EL1 cannot write them.
        protected: u64 = Dec,
        /// Pages no leaf of the live regimes maps.
        unmapped: u64 = Dec,
        /// audit_table records that follow (at most 128; the rest are counted only).
        listed: u64 = Dec,
        /// The tables' pkeys: bit i set when an alias of some table has POIndex i and only the overlay keeps EL1 from writing through it.
        table_pkeys: u64 = Hex,
        /// Leaves with one of the tables' pkeys that map pages other than tables.
        stale_leaves: u64 = Dec,
        /// The 4 KiB pages those leaves map that are not tables.
        stale_pages: u64 = Dec,
        /// audit_stale records that follow (at most 32 per pkey).
        stale_listed: u64 = Dec,
        /// Block and page descriptors walked.
        leaves: u64 = Dec,
        /// CNTPCT ticks the audit took (under `-icount shift=0`, 1e9 / cntfrq instructions per tick).
        ticks: u64 = Dec,
        /// Input address bits of the TTBR1 half (64 - T1SZ; 0: not walked), for the reader's Linux layout.
        va_bits: u64 = Dec,
        /// VBAR_EL1 (the kernel's vectors: a kernel-image address for Linux).
        vbar: u64 = Hex,
    }

    /// One page-table page some alias lets EL1 write under the audited
    /// POR_EL1 (follows its audit record).
    0x19 audit_table => AuditTable {
        /// The table page.
        ipa: u64 = Hex,
        /// Lookup level of the table (-1..3).
        level: i64 = Dec,
        /// The half it belongs to.
        half: u64 = Enum(HALF_NAMES),
        /// 1 when a walk reached it (then `base`, `first` and `last` are meaningful).
        reached: u64 = Dec,
        /// The first VA the table translates.
        base: u64 = Hex,
        /// The first VA its valid descriptors translate (`base` if none).
        first: u64 = Hex,
        /// The last VA (inclusive) its valid descriptors translate (`base` if none).
        last: u64 = Hex,
        /// The writable alias: the VA that maps the page's first byte.
        alias: u64 = Hex,
        /// Level of the alias's leaf (3: a page).
        alias_level: i64 = Dec,
        /// The alias's POIndex (pkey).
        poindex: u64 = Dec,
        /// Perm<POIndex> of the audited POR_EL1.
        perm: u64 = Hex,
        /// Leaves mapping the page in the regimes walked.
        aliases: u64 = Dec,
    }

    /// A leaf with one of the tables' pkeys over pages that are not page
    /// tables: harmless, but a sign of a pkey not reset when a table was
    /// freed (follows its audit record).
    0x1a audit_stale => AuditStale {
        /// VA of the leaf.
        va: u64 = Hex,
        /// Output address (page or block base).
        ipa: u64 = Hex,
        /// Lookup level of the leaf (3: a page).
        level: i64 = Dec,
        /// Its POIndex.
        poindex: u64 = Dec,
        /// 4 KiB pages in it that are not tables.
        pages: u64 = Dec,
    }

    /// A guest call chain from its frame pointer (x29): for a hazard
    /// (written just before it; `hazard.trace_seq`) or for the code its
    /// cause entry interrupted. Never dropped.
    0x1b call_trace => CallTrace {
        /// Whose chain.
        of: u64 = Enum(CALL_TRACE_OF_NAMES),
        /// For `exc_entry`: the exc_entry record's seq; else 0.
        ref_seq: u64 = Dec,
        /// The PC (the store; the exception's ELR_EL1).
        pc: u64 = Hex,
        /// x30 then (the return address of a function without a frame record yet).
        lr: u64 = Hex,
        /// x29 then.
        fp: u64 = Hex,
        /// Why the walk stopped.
        end: u64 = Enum(UNWIND_END_NAMES),
        /// Return addresses of the frame records, innermost first (at most 16; PAC bits stripped).
        frames: bytes = Addrs,
    }

    /// `porwatch.stream=flight`: the next `events` records of this CPU are
    /// a hazard's cause chain, re-sent from the CPU's flight ring with their
    /// own seq and ts (oldest first; the hazard follows them): every
    /// exc_entry, exc_return and por_write from the POR write that took
    /// write away from the hazard's pkey to the store (docs/flight.md).
    /// Never dropped.
    0x1c cause_chain => CauseChain {
        /// Records that follow (the chain).
        events: u64 = Dec,
        /// seq of the chain's first (oldest) record (0: empty chain).
        first_seq: u64 = Dec,
        /// 1: the chain starts at the write that took write away; 0: no
        /// such write was found in the ring (see `overwritten`).
        complete: u64 = Dec,
        /// Events this CPU's ring has overwritten without streaming them so
        /// far.
        overwritten: u64 = Dec,
        /// 1: the ring has wrapped (it no longer holds this CPU's first
        /// event), so a chain with complete = 0 is cut at the ring's oldest
        /// event, even with overwritten = 0 (what was lost had been
        /// streamed); 0 with complete = 0: the chain runs from the CPU's
        /// first event, no write ever granted the pkey.
        wrapped: u64_appended = Dec,
    }

    /// `porwatch.stream=flight`: this CPU's flight-recorder accounting,
    /// periodically and at the end of the run. Never dropped.
    0x1d flight_stats => FlightStats {
        /// Events recorded into the ring (exc_entry, exc_return, por_write, trap).
        events: u64 = Dec,
        /// Records of this CPU sent on the wire so far, this one included
        /// (the reader checks it against what it received).
        streamed: u64 = Dec,
        /// Ring events overwritten without ever being streamed.
        overwritten: u64 = Dec,
    }

    /// Virtual POE: a guest POR_EL1 site porwatch patched, or a page it gave up
    /// (docs/tap.md, "Patched POR_EL1 sites").
    0x1e por_site => PorSite {
        /// VA of the site (its MRS/MSR POR_EL1); for `released`, the access that
        /// made porwatch give the page up.
        pc: u64 = Hex,
        /// IPA of the code page.
        page: u64 = Hex,
        /// What happened.
        state: u64 = Enum(POR_SITE_STATE_NAMES),
        /// Sites patched in the page now.
        sites: u64 = Dec,
    }
}
