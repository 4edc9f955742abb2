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
/// unknown_trap, psci ×2 (the second a refused CPU_ON), then CPU 1's cpu_start,
/// trap and cpu_stop (its own sequence numbers 0..=2), id_field, dropped
/// (explaining a gap of 3), panic, guest_exit. Sequence numbers are
/// consistent per CPU (a clean decode).
pub fn records() -> Vec<Record<'static>> {
    let mut recs = cpu0_records();
    let at = recs.iter().position(|r| matches!(r.event, Event::IdField { .. })).unwrap_or(recs.len());
    let ts = recs.get(at.saturating_sub(1)).map_or(CNTFRQ, |r| r.ts);
    let cpu1 = [
        Event::CpuStart {
            mpidr: 0x8000_0001,
            entry: 0x4020_0100,
            context: 0x1,
            reason: porwatch_trace::CpuStartReason::CpuOn.code(),
        },
        Event::Trap { esr: 0x5a00_0000, elr: 0x4020_0140, outcome: TrapOutcome::Emulated as u64 },
        Event::CpuStop { reason: porwatch_trace::CpuStopReason::CpuOff.code() },
    ];
    for (i, event) in cpu1.into_iter().enumerate() {
        recs.insert(at + i, Record { cpu: 1, seq: i as u64, ts: ts + 1000 * (i as u64 + 1), event });
    }
    recs
}

/// CPU 0's part of [`records`].
fn cpu0_records() -> Vec<Record<'static>> {
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
            overlay_enforced: porwatch_trace::OverlayEnforced::TableWritesOnly as u64,
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
            arg0: 9,
            arg1: 0x4020_0100,
            arg2: 0,
            result: -2,
            conduit: PsciConduit::Hvc.code(),
        },
        Event::IdField {
            field: porwatch_monitor::idregs::pack(porwatch_monitor::sysreg::ID_AA64PFR1_EL1, 44),
            width: 4,
            cpu: 1,
            guest: 0,
            reason: porwatch_trace::IdReason::NeedsEl2.code(),
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
            let r = Record { cpu: 0, seq, ts: CNTFRQ + i as u64 * 3 * ms + 17, event };
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

/// A large synthetic trace for `scripts/bench-decoder`: the sample header,
/// then `n - 1` records cycling through the kinds a busy guest produces
/// (exc_entry, por_write, trap, exc_return, coverage_gap, psci, and a hazard
/// every 1000 records), with consecutive seqs, written to `out`.
pub fn write_bench_trace(n: u64, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut buf = [0u8; MAX_FRAME];
    let mut put = |r: &Record<'_>, out: &mut dyn std::io::Write| -> std::io::Result<()> {
        let len = encode_frame(r, &mut buf).ok_or_else(|| std::io::Error::other("record too large"))?;
        out.write_all(buf.get(..len).unwrap_or(&[]))
    };
    let mut header = records()[0];
    header.seq = 0;
    header.ts = 0;
    if n > 0 {
        put(&header, out)?;
    }
    for seq in 1..n {
        let pc = 0xffff_8000_8001_0000 + (seq % 4096) * 4;
        let event = match seq % 6 {
            _ if seq % 1000 == 0 => Event::Hazard {
                va: 0xffff_0000_4403_2198,
                ipa: 0x4403_2198,
                level: 3,
                half: 1,
                old: 0x1060_0000_4403_3703,
                new: 0x60_0000_4403_3703,
                pc,
                por: 0x17,
                poindex: 1,
                perm: 1,
                unprivileged: 0,
                entry_seq: seq - 1,
                por_seq: seq - 1,
                action: 0,
                leaf_level: 3,
                pir: 0,
                trace_seq: 0,
                entry_trace_seq: 0,
            },
            0 => Event::ExcEntry {
                vector: 5,
                esr: 0x200_0000,
                elr: pc,
                spsr: 0x2000_0345,
                far: 0,
                por: 0x57,
                depth: 0,
            },
            1 => Event::PorWrite {
                pc,
                reg: 0,
                old: 0x57,
                new: 0x17,
                at_entry: 1,
                entry_seq: seq - 1,
                sampled: 0,
            },
            2 => Event::Trap { esr: ESR_MRS_POR_EL0, elr: pc, outcome: TrapOutcome::Emulated as u64 },
            3 => Event::ExcReturn { elr: pc, spsr: 0x2000_0345, por: 0x57, depth: 0 },
            4 => Event::CoverageGap {
                pc,
                insn: 0xf900_0020,
                va: 0xffff_0000_4400_0000,
                ipa: 0x4400_0000,
                reason: 0,
            },
            _ => Event::Psci {
                function: 0x8400_0000,
                arg0: 0,
                arg1: 0,
                arg2: 0,
                result: 0x1_0002,
                conduit: PsciConduit::Hvc as u64,
            },
        };
        put(&Record { cpu: 0, seq, ts: seq * 625, event }, out)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_trace_is_clean_and_mixed() {
        let mut bytes = Vec::new();
        super::write_bench_trace(2001, &mut bytes).unwrap();
        let (recs, stats) = crate::decode_all(&bytes);
        assert!(stats.is_clean(), "{stats}");
        assert_eq!(recs.len(), 2001);
        assert_eq!(stats.count("hazard"), 2);
        for kind in ["header", "exc_entry", "por_write", "trap", "exc_return", "coverage_gap", "psci"] {
            assert!(stats.count(kind) > 0, "{kind}");
        }
    }
}
