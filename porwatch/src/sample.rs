//! A small synthetic trace with one record of every kind, as the hypervisor
//! would write it. Used by tests and to generate the documentation examples.

use porwatch_trace::{
    encode_frame, Event, ExitReason, MemKind, PoeMode, PsciConduit, Record, TrapOutcome, MAX_FRAME,
};

/// Counter frequency of the sample (QEMU virt: 62.5 MHz).
pub const CNTFRQ: u64 = 62_500_000;

/// ESR of `MRS x3, POR_EL0` trapped from EL1/EL0 (EC 0x18, IL=1).
pub const ESR_MRS_POR_EL0: u64 =
    (0x18 << 26) | (1 << 25) | (3 << 20) | (4 << 17) | (3 << 14) | (10 << 10) | (3 << 5) | (2 << 1) | 1;

/// The sample records: header, hyp_boot, mem_region ×2, guest_start, trap,
/// unknown_trap, psci ×2, dropped (explaining a gap of 3), panic,
/// guest_exit. Sequence numbers are consistent (a clean decode).
pub fn records() -> Vec<Record<'static>> {
    let ms = CNTFRQ / 1000;
    let ev = [
        Event::Header {
            format_version: porwatch_trace::FORMAT_VERSION,
            cntfrq: CNTFRQ,
            midr: 0x410f_d083,
            mpidr: 0x8000_0000,
            id_aa64pfr0: 0x1101_1011_1111_2222,
            id_aa64pfr1: 0x0000_0000_0000_0020,
            id_aa64dfr0: 0x0000_0000_1030_5106,
            id_aa64isar0: 0x0221_1000_1002_1120,
            id_aa64isar1: 0x0000_0000_0010_1012,
            id_aa64mmfr0: 0x0000_0000_0010_1125,
            id_aa64mmfr1: 0x0000_0000_1021_2122,
            id_aa64mmfr2: 0x0000_0000_0001_1011,
            id_aa64mmfr3: 0x0000_0000_0001_0000,
            poe_mode: PoeMode::Virtual.code(),
            options: 0x3,
            hyp_base: 0x4000_0000,
            hyp_size: 0x20_0000,
        },
        Event::HypBoot { entry_el: 2, dtb: 0x4800_0000, console_uart: 0x0900_0000, trace_uart: 0x0904_0000 },
        Event::MemRegion { base: 0x4020_0000, size: 0x7e0_0000, kind: MemKind::GuestRam.code() },
        Event::MemRegion { base: 0x0904_0000, size: 0x1000, kind: MemKind::HiddenMmio.code() },
        Event::GuestStart { entry: 0x4020_0000, dtb: 0x4800_0000, dtb_size: 0x10_0000, spsr: 0x3c5 },
        Event::Trap { esr: ESR_MRS_POR_EL0, elr: 0x4020_1a48, outcome: TrapOutcome::Emulated.code() },
        Event::UnknownTrap {
            esr: 0x0200_0000,
            elr: 0x4020_2000,
            far: 0,
            action: TrapOutcome::UndefInjected.code(),
        },
        Event::Psci {
            function: 0x8400_0000,
            arg0: 0,
            arg1: 0,
            arg2: 0,
            result: 0x1_0001,
            conduit: PsciConduit::Hvc.code(),
        },
        Event::Psci {
            function: 0xc400_0003,
            arg0: 1,
            arg1: 0x4020_0100,
            arg2: 0,
            result: -2,
            conduit: PsciConduit::Hvc.code(),
        },
        Event::Dropped { count: 3 },
        Event::Panic { message: b"hyp/src/trap.rs:120: unexpected \"ESR\"" },
        Event::GuestExit { reason: ExitReason::HypError.code(), code: 1 },
    ];
    let mut seq = 0;
    ev.into_iter()
        .enumerate()
        .map(|(i, event)| {
            if let Event::Dropped { count } = event {
                seq += count;
            }
            let r = Record { seq, ts: CNTFRQ + i as u64 * 3 * ms + 17, event };
            seq += 1;
            r
        })
        .collect()
}

/// Encodes records into a byte stream; `None` if one is too large.
pub fn encode(records: &[Record<'_>]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; MAX_FRAME];
    for r in records {
        let n = encode_frame(r, &mut buf)?;
        out.extend_from_slice(buf.get(..n)?);
    }
    Some(out)
}

/// [`records`] encoded.
pub fn trace() -> Vec<u8> {
    encode(&records()).unwrap_or_default()
}
