//! Crate-level tests: records, frames, the deframer.

extern crate std;
use std::vec;
use std::vec::Vec;

use crate::*;

/// One event of every known kind, all integer fields `v`, i64 fields `i`.
fn every_kind<'a>(v: u64, i: i64, bytes: &'a [u8]) -> Vec<Event<'a>> {
    vec![
        Event::Header {
            format_version: v,
            cntfrq: v,
            midr: v,
            mpidr: v,
            id_aa64pfr0: v,
            id_aa64pfr1: v,
            id_aa64dfr0: v,
            id_aa64isar0: v,
            id_aa64isar1: v,
            id_aa64mmfr0: v,
            id_aa64mmfr1: v,
            id_aa64mmfr2: v,
            id_aa64mmfr3: v,
            poe_mode: v,
            options: v,
            hyp_base: v,
            hyp_size: v,
            overlay_enforced: v,
        },
        Event::HypBoot { entry_el: v, dtb: v, console_uart: v, trace_uart: v },
        Event::MemRegion { base: v, size: v, kind: v },
        Event::GuestStart { entry: v, dtb: v, dtb_size: v, spsr: v },
        Event::Trap { esr: v, elr: v, outcome: v },
        Event::UnknownTrap { esr: v, elr: v, far: v, action: v },
        Event::Psci { function: v, arg0: v, arg1: v, arg2: v, result: i, conduit: v },
        Event::GuestExit { reason: v, code: v },
        Event::Dropped { count: v },
        Event::Panic { message: bytes },
        Event::ExcEntry { vector: v, esr: v, elr: v, spsr: v, far: v, por: v, depth: v },
        Event::ExcReturn { elr: v, spsr: v, por: v, depth: v },
        Event::PorWrite { pc: v, reg: v, old: v, new: v, at_entry: v, entry_seq: v, sampled: 0 },
        Event::Tcr2Write { pc: v, old: v, new: v },
        Event::TapArm { vbar: v, page: v, mechanism: 0 },
        Event::PtRoot { half: v, root: v, asid: v, tables: v, evicted: v, levels: v },
        Event::Hazard {
            va: v,
            ipa: v,
            level: i,
            half: v,
            old: v,
            new: v,
            pc: v,
            por: v,
            poindex: v,
            perm: v,
            unprivileged: v,
            entry_seq: v,
            por_seq: v,
            action: v,
            leaf_level: i,
            pir: v,
            trace_seq: v,
            entry_trace_seq: v,
        },
        Event::CoverageGap { pc: v, insn: v, va: v, ipa: v, reason: v },
        Event::PtStats {
            tables: v,
            max_tables: v,
            table_writes: v,
            stores: v,
            hazards: v,
            coverage_gaps: v,
            roots_dropped: v,
            overflows: v,
            roots_released: v,
            fast_stores: v,
            mops_steps: v,
            stepped_stores: v,
            released_pages: v,
            leaves_opened: v,
        },
        Event::SmmuEvent { sid: v, reason: v, code: v, addr: v, write: v, count: v, last: v },
        Event::IdField { field: v, width: v, cpu: v, guest: v, reason: v },
        Event::CpuStart { mpidr: v, entry: v, context: v, reason: v },
        Event::CpuStop { reason: v },
        Event::Audit {
            trigger: v,
            status: v,
            por: v,
            por_source: v,
            tables: v,
            unprotected: v,
            protected: v,
            unmapped: v,
            listed: v,
            table_pkeys: v,
            stale_leaves: v,
            stale_pages: v,
            stale_listed: v,
            leaves: v,
            ticks: v,
            va_bits: v,
            vbar: v,
        },
        Event::AuditTable {
            ipa: v,
            level: i,
            half: v,
            reached: v,
            base: v,
            first: v,
            last: v,
            alias: v,
            alias_level: i,
            poindex: v,
            perm: v,
            aliases: v,
        },
        Event::AuditStale { va: v, ipa: v, level: i, poindex: v, pages: v },
        // The hypervisor writes at most 16 frames (128 bytes).
        Event::CallTrace {
            of: v,
            ref_seq: v,
            pc: v,
            lr: v,
            fp: v,
            end: v,
            frames: &bytes[..bytes.len().min(128)],
        },
        Event::CauseChain { events: v, first_seq: v, complete: v, overwritten: v, wrapped: v },
        Event::FlightStats { events: v, streamed: v, overwritten: v },
        Event::PorSite { pc: v, page: v, state: v, sites: v },
    ]
}

fn frame(rec: &Record<'_>) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME];
    let n = encode_frame(rec, &mut out).expect("encodes");
    assert!(n <= MAX_FRAME);
    assert_eq!(out[n - 1], 0, "frame ends with the delimiter");
    assert!(!out[..n - 1].contains(&0), "no zero inside a frame");
    out[..n].to_vec()
}

fn payload(rec: &Record<'_>) -> Vec<u8> {
    let mut out = [0u8; MAX_PAYLOAD];
    let n = encode_payload(rec, &mut out).expect("encodes");
    out[..n].to_vec()
}

/// Payload with a correct CRC appended (a COBS-decoded frame).
fn with_crc(payload: &[u8]) -> Vec<u8> {
    let mut v = payload.to_vec();
    v.extend_from_slice(&crc16(payload).to_le_bytes());
    v
}

/// Runs bytes through a fresh deframer; collects payload decode results.
fn deframe(bytes: &[u8]) -> (Vec<Result<Vec<u8>, DecodeError>>, bool) {
    let mut d = Deframer::new();
    let mut out = Vec::new();
    for &b in bytes {
        if let Some(r) = d.push(b) {
            out.push(r.map(|p| p.to_vec()));
        }
    }
    (out, d.pending())
}

#[test]
fn every_kind_is_covered() {
    let events = every_kind(0, 0, b"");
    assert_eq!(events.len(), KINDS.len());
    for (e, k) in events.iter().zip(KINDS) {
        assert_eq!(e.kind_code(), k.code);
        assert_eq!(e.kind_name(), k.name);
        assert_eq!(e.spec(), Some(k));
        assert_eq!(e.fields().len(), k.fields.len());
        assert!(k.fields.len() <= MAX_FIELDS);
        assert!(k.name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'));
    }
    for (i, a) in KINDS.iter().enumerate() {
        for b in &KINDS[i + 1..] {
            assert_ne!(a.name, b.name);
        }
    }
    // JSON lines put the fields next to the record's own members.
    for k in KINDS {
        for f in k.fields {
            assert!(!["v", "seq", "ts", "time", "event"].contains(&f.name), "{}.{}", k.name, f.name);
        }
    }
}

#[test]
fn kind_codes_match_table() {
    let expected = [
        (0x01, "header"),
        (0x02, "hyp_boot"),
        (0x03, "mem_region"),
        (0x04, "guest_start"),
        (0x05, "trap"),
        (0x06, "unknown_trap"),
        (0x07, "psci"),
        (0x08, "guest_exit"),
        (0x09, "dropped"),
        (0x0a, "panic"),
        (0x0b, "exc_entry"),
        (0x0c, "exc_return"),
        (0x0d, "por_write"),
        (0x0e, "tcr2_write"),
        (0x0f, "tap_arm"),
        (0x10, "pt_root"),
        (0x11, "hazard"),
        (0x12, "coverage_gap"),
        (0x13, "pt_stats"),
        (0x14, "smmu_event"),
        (0x15, "id_field"),
        (0x16, "cpu_start"),
        (0x17, "cpu_stop"),
        (0x18, "audit"),
        (0x19, "audit_table"),
        (0x1a, "audit_stale"),
        (0x1b, "call_trace"),
        (0x1c, "cause_chain"),
        (0x1d, "flight_stats"),
        (0x1e, "por_site"),
    ];
    let got: Vec<(u8, &str)> = KINDS.iter().map(|k| (k.code, k.name)).collect();
    assert_eq!(got, expected);
    assert_eq!(kind_spec(0x05).unwrap().name, "trap");
    assert_eq!(kind_spec_by_name("psci").unwrap().code, 0x07);
    assert!(kind_spec(0x00).is_none());
    assert_eq!(KINDS[0].fields.len(), 18);
    assert_eq!(KINDS[0].fields[17].name, "overlay_enforced");
    assert_eq!(KINDS[0].fields[13].name, "poe_mode");
    assert_eq!(KINDS[0].fields[13].hint.enum_name(1), Some("virtual"));
}

#[test]
fn round_trip_every_kind_extremes() {
    let long = [0xA5u8; 280]; // spans a full 254-byte COBS block
    for (v, i, bytes) in
        [(0u64, 0i64, &b""[..]), (u64::MAX, i64::MIN, &long[..]), (127, i64::MAX, b"x"), (128, -1, b"\0\0\0")]
    {
        for event in every_kind(v, i, bytes) {
            for (seq, ts) in [(0, 0), (u64::MAX, u64::MAX), (127, 128)] {
                let rec = Record { cpu: 0, seq, ts, event };
                let f = frame(&rec);
                let (frames, pending) = deframe(&f);
                assert!(!pending);
                assert_eq!(frames.len(), 1);
                let p = frames[0].as_ref().expect("good frame");
                assert_eq!(decode_payload(p), Ok(rec));
                assert_eq!(p, &payload(&rec));
            }
        }
    }
}

#[test]
fn fields_iterate_in_order() {
    let e = Event::Psci {
        function: 0x8400_0000,
        arg0: 1,
        arg1: 2,
        arg2: 3,
        result: -2,
        conduit: PsciConduit::Hvc.code(),
    };
    let names: Vec<&str> = e.fields().map(|(s, _)| s.name).collect();
    assert_eq!(names, ["function", "arg0", "arg1", "arg2", "result", "conduit"]);
    assert_eq!(e.field("result"), Some(FieldValue::I64(-2)));
    assert_eq!(e.field("function"), Some(FieldValue::U64(0x8400_0000)));
    assert_eq!(e.field("nope"), None);
    let (spec, _) = e.fields().last().unwrap();
    assert_eq!(spec.hint, Hint::Enum(PSCI_CONDUIT_NAMES));
    assert_eq!(spec.hint.enum_name(1), Some("hvc"));
    assert_eq!(spec.hint.enum_name(2), None);

    let p = Event::Panic { message: b"boom" };
    let (spec, v) = p.fields().next().unwrap();
    assert_eq!((spec.name, spec.ty, spec.hint), ("message", FieldType::Bytes, Hint::Text));
    assert_eq!(v, FieldValue::Bytes(b"boom"));

    let u = Event::Unknown { kind: 0x42, raw: &[1, 2] };
    let fields: Vec<_> = u.fields().collect();
    assert_eq!(fields.len(), 1);
    assert_eq!(fields[0].0.name, "raw");
    assert_eq!(u.kind_name(), "unknown");
    assert_eq!(u.kind_code(), 0x42);
    assert_eq!(u.spec(), None);
}

#[test]
fn value_enums() {
    assert_eq!(PoeMode::Native.code(), 2);
    assert_eq!(PoeMode::from_code(1), Some(PoeMode::Virtual));
    assert_eq!(PoeMode::from_code(3), None);
    assert_eq!(MemKind::GuestDtb.name(), "guest_dtb");
    assert_eq!(MEM_KIND_NAMES[3], "hidden_mmio");
    assert_eq!(TrapOutcome::AbortInjected.code(), 3);
    assert_eq!(TRAP_OUTCOME_NAMES.len(), 5);
    assert_eq!(u64::from(ExitReason::HypError), 4);
    assert_eq!(EXIT_REASON_NAMES[2], "test_exit");
    assert_eq!(PSCI_CONDUIT_NAMES, ["smc", "hvc"]);
}

#[test]
fn truncated_payloads_of_every_length_error() {
    let long = [0x5Au8; 100];
    for (v, i) in [(0u64, 0i64), (u64::MAX, i64::MIN), (300, 300)] {
        for event in every_kind(v, i, &long) {
            let rec = Record { cpu: 0, seq: u64::MAX, ts: 1 << 40, event };
            let p = payload(&rec);
            assert_eq!(decode_payload(&p), Ok(rec));
            for k in 0..p.len() {
                let r = decode_payload(&p[..k]);
                if let Ok(d) = r {
                    // Only a cut just before appended fields is a valid
                    // (older writer's) record: same kind, appended fields 0.
                    assert!(APPENDED.iter().any(|(kind, _)| *kind == event.kind_name()), "{k}: {d:?}");
                    assert_eq!(d.event.kind_name(), event.kind_name());
                    continue;
                }
                assert!(r.is_err(), "{} cut to {k}/{} decoded: {r:?}", event.kind_name(), p.len());
                if k == 0 {
                    assert_eq!(r, Err(DecodeError::TooShort));
                } else {
                    assert!(matches!(r, Err(DecodeError::Truncated { .. })), "{k}: {r:?}");
                }
                // Also as a CRC-checked frame.
                assert!(decode_frame(&with_crc(&p[..k])).is_err());
            }
            // A wire frame cut anywhere and then delimited is rejected.
            let f = frame(&rec);
            for c in 1..f.len() - 1 {
                let (frames, pending) = deframe(&[&f[..c], &[0][..]].concat());
                assert!(!pending);
                assert_eq!(frames.len(), 1);
                assert!(frames[0].is_err(), "frame cut to {c}/{} accepted", f.len());
            }
        }
    }
}

#[test]
fn truncated_field_names() {
    let p = payload(&Record {
        cpu: 0,
        seq: 1,
        ts: 2,
        event: Event::Trap { esr: 0x5e00_0000, elr: 3, outcome: 0 },
    });
    assert_eq!(decode_payload(&p[..1]), Err(DecodeError::Truncated { field: "seq" }));
    assert_eq!(decode_payload(&p[..2]), Err(DecodeError::Truncated { field: "ts" }));
    assert_eq!(decode_payload(&p[..3]), Err(DecodeError::Truncated { field: "esr" }));
    assert_eq!(decode_payload(&p[..p.len() - 1]), Err(DecodeError::Truncated { field: "outcome" }));
    // A bytes field whose length exceeds the payload.
    let mut q = payload(&Record { cpu: 0, seq: 1, ts: 2, event: Event::Panic { message: b"abc" } });
    q[3] = 9;
    assert_eq!(decode_payload(&q), Err(DecodeError::Truncated { field: "message" }));
    // An overlong varint.
    let mut r = vec![0x05u8];
    r.extend_from_slice(&[0xff; 11]);
    assert_eq!(decode_payload(&r), Err(DecodeError::BadVarint { field: "seq" }));
}

#[test]
fn unknown_kind_decodes_as_unknown() {
    let p = [0x7fu8, 0x05, 0x81, 0x01, 0xde, 0xad, 0x00, 0xbe];
    let framed = with_crc(&p);
    let rec = decode_frame(&framed).unwrap();
    assert_eq!(rec.seq, 5);
    assert_eq!(rec.ts, 129);
    assert_eq!(rec.event, Event::Unknown { kind: 0x7f, raw: &[0xde, 0xad, 0x00, 0xbe] });
    // Re-encoding writes the same bytes back.
    assert_eq!(payload(&rec), p);
    // An unknown kind with nothing after ts, from CPU 2 (bit 7: a cpu
    // varint follows the kind).
    let rec = decode_payload(&[0xee, 2, 0, 0]).unwrap();
    assert_eq!(rec.event, Event::Unknown { kind: 0x6e, raw: &[] });
    assert_eq!(rec.cpu, 2);
    // Kind 0 is unknown too.
    assert!(matches!(decode_payload(&[0, 0, 0]).unwrap().event, Event::Unknown { kind: 0, .. }));
}

/// Format 2: a record of CPU n > 0 has bit 7 of the kind byte set and n
/// after it; CPU 0's records are format 1's, byte for byte.
#[test]
fn cpu_rides_in_the_kind_byte() {
    let event = Event::Trap { esr: 0x5e00_0000, elr: 3, outcome: 0 };
    let cpu0 = payload(&Record { cpu: 0, seq: 1, ts: 2, event });
    assert_eq!(cpu0[..3], [0x05, 1, 2]);
    for cpu in [1u32, 7, 200, u32::MAX] {
        let rec = Record { cpu, seq: 1, ts: 2, event };
        let p = payload(&rec);
        assert_eq!(p[0], 0x85);
        let mut v = Vec::new();
        let mut w = [0u8; 10];
        let n = crate::varint::encode(u64::from(cpu), &mut w).unwrap();
        v.extend_from_slice(&w[..n]);
        assert_eq!(p[1..1 + n], v[..], "cpu {cpu}");
        assert_eq!(p[1 + n..], cpu0[1..], "the rest is format 1's");
        assert_eq!(decode_frame(&with_crc(&p)), Ok(rec));
    }
    // A cpu beyond 32 bits, or cut off, is a corrupt frame.
    assert_eq!(
        decode_payload(&[0x85, 0x80, 0x80, 0x80, 0x80, 0x10, 1, 2]),
        Err(DecodeError::BadVarint { field: "cpu" })
    );
    assert_eq!(decode_payload(&[0x85]), Err(DecodeError::Truncated { field: "cpu" }));
}

#[test]
fn extra_trailing_fields_ignored() {
    for event in every_kind(1234, -5, b"msg") {
        let rec = Record { cpu: 0, seq: 9, ts: 10, event };
        let mut p = payload(&rec);
        p.extend_from_slice(&[0x81, 0x01, 0x03, b'n', b'e', b'w', 0x00]);
        assert_eq!(decode_frame(&with_crc(&p)), Ok(rec));
    }
}

#[test]
fn payload_and_frame_limits() {
    // seq/ts at 10 bytes each, length varint 2 bytes: 1+10+10+2 = 23 bytes overhead.
    let max_msg = [0xffu8; MAX_PAYLOAD - 23];
    let rec = Record { cpu: 0, seq: u64::MAX, ts: u64::MAX, event: Event::Panic { message: &max_msg } };
    assert_eq!(payload(&rec).len(), MAX_PAYLOAD);
    let f = frame(&rec);
    assert!(f.len() <= MAX_FRAME, "worst case frame {} bytes", f.len());
    assert_eq!(deframe(&f).0, vec![Ok(payload(&rec))]);

    let too_long = [0xffu8; MAX_PAYLOAD - 22];
    let rec = Record { cpu: 0, seq: u64::MAX, ts: u64::MAX, event: Event::Panic { message: &too_long } };
    let mut out = [0u8; 1024];
    assert_eq!(encode_frame(&rec, &mut out), None);
    assert_eq!(encode_payload(&rec, &mut out), None);

    // Output buffer too small.
    let rec = Record { cpu: 0, seq: 0, ts: 0, event: Event::Dropped { count: 3 } };
    let f = frame(&rec);
    for n in 0..f.len() {
        assert_eq!(encode_frame(&rec, &mut out[..n]), None, "out len {n}");
    }
    assert_eq!(encode_frame(&rec, &mut out[..f.len()]), Some(f.len()));
}

#[test]
fn deframer_handles_full_cobs_blocks() {
    // Non-zero runs around the 254-byte COBS block size, at every offset.
    let msg: Vec<u8> = (0..292u32).map(|i| (i % 251 + 1) as u8).collect();
    for len in 240..=msg.len() {
        let rec = Record { cpu: 0, seq: 1, ts: 1, event: Event::Panic { message: &msg[..len] } };
        let (frames, pending) = deframe(&frame(&rec));
        assert!(!pending);
        assert_eq!(frames, vec![Ok(payload(&rec))], "message length {len}");
    }
}

#[test]
fn deframer_multiple_frames_and_idle_zeros() {
    let recs: Vec<Record<'_>> = every_kind(77, -77, b"hello")
        .into_iter()
        .enumerate()
        .map(|(i, event)| Record { cpu: 0, seq: i as u64, ts: 1000 * i as u64, event })
        .collect();
    let mut stream = vec![0u8, 0, 0];
    for r in &recs {
        stream.extend(frame(r));
        stream.push(0); // idle delimiters are ignored
    }
    let (frames, pending) = deframe(&stream);
    assert!(!pending);
    assert_eq!(frames.len(), recs.len());
    for (f, r) in frames.iter().zip(&recs) {
        assert_eq!(decode_payload(f.as_ref().unwrap()), Ok(*r));
    }
}

#[test]
fn deframer_resyncs_after_garbage_and_mid_stream_start() {
    let a = frame(&Record {
        cpu: 0,
        seq: 1,
        ts: 2,
        event: Event::Trap { esr: 0x5e00_0000, elr: 0x4000_0000, outcome: 0 },
    });
    let b = frame(&Record { cpu: 0, seq: 2, ts: 3, event: Event::Dropped { count: 0 } });
    // Start in the middle of frame a.
    for cut in 1..a.len() - 1 {
        let stream = [&a[cut..], &b[..]].concat();
        let (frames, pending) = deframe(&stream);
        assert!(!pending);
        assert_eq!(frames.len(), 2, "cut {cut}");
        assert!(frames[0].is_err(), "cut {cut}: partial frame accepted");
        assert_eq!(frames[1].as_deref(), Ok(&payload(&decode_frame_bytes(&b))[..]));
    }
    // Garbage (no zero bytes) then a delimiter.
    let garbage: Vec<u8> = (0..100u32).map(|i| (i * 37 % 255 + 1) as u8).collect();
    let stream = [&garbage[..], &[0], &a[..]].concat();
    let (frames, _) = deframe(&stream);
    assert_eq!(frames.len(), 2);
    assert!(frames[0].is_err());
    assert!(frames[1].is_ok());
}

/// Decodes one complete encoded frame (with delimiter) into a record.
fn decode_frame_bytes(f: &[u8]) -> Record<'static> {
    let mut buf = [0u8; MAX_FRAME];
    let n = cobs::decode(&f[..f.len() - 1], &mut buf).unwrap();
    let owned: &'static [u8] = std::boxed::Box::leak(buf[..n].to_vec().into_boxed_slice());
    decode_frame(owned).unwrap()
}

#[test]
fn deframer_oversize_reported_once() {
    let good = frame(&Record { cpu: 0, seq: 7, ts: 8, event: Event::Dropped { count: 1 } });
    let mut stream = vec![0x42u8; 1000];
    stream.push(0);
    stream.extend_from_slice(&good);
    let (frames, pending) = deframe(&stream);
    assert!(!pending);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0], Err(DecodeError::TooLong));
    assert!(frames[1].is_ok());
    // Exactly MAX_FRAME - 1 encoded bytes is still accepted as a frame (bad CRC here).
    let mut stream = vec![0x42u8; MAX_FRAME - 1];
    stream.push(0);
    let (frames, _) = deframe(&stream);
    assert_eq!(frames.len(), 1);
    assert_ne!(frames[0], Err(DecodeError::TooLong));
    // One more is too long.
    let mut stream = vec![0x42u8; MAX_FRAME];
    stream.push(0);
    assert_eq!(deframe(&stream).0, vec![Err(DecodeError::TooLong)]);
    // Oversize at end of input: reported once, and the input still ended
    // inside it (a truncated tail of any length is never silent).
    let (frames, pending) = deframe(&[0x42u8; 500]);
    assert_eq!(frames, vec![Err(DecodeError::TooLong)]);
    assert!(pending);
    let mut d = Deframer::new();
    for _ in 0..5000 {
        d.push(0x42);
    }
    assert_eq!(d.pending_len(), 5000);
    d.push(0);
    assert!(!d.pending());
}

#[test]
fn deframer_truncated_tail_pending() {
    let f = frame(&Record { cpu: 0, seq: 1, ts: 1, event: Event::GuestExit { reason: 0, code: 0 } });
    for cut in 1..f.len() {
        let mut d = Deframer::new();
        for &b in &f[..cut] {
            assert!(d.push(b).is_none());
        }
        assert!(d.pending(), "cut {cut}");
        assert_eq!(d.pending_len(), cut);
        d.reset();
        assert!(!d.pending());
    }
    let mut d = Deframer::new();
    for &b in &f {
        d.push(b);
    }
    assert!(!d.pending());
}

#[test]
fn deframer_short_and_cobs_errors() {
    assert_eq!(deframe(&[0x01, 0x00]).0, vec![Err(DecodeError::TooShort)]);
    assert_eq!(deframe(&[0x03, 0x01, 0x00]).0, vec![Err(DecodeError::Cobs)]);
    assert_eq!(deframe(&[0x03, 0x01, 0x02, 0x00]).0, vec![Err(DecodeError::TooShort)]);
    assert_eq!(deframe(&[0x04, 0x01, 0x02, 0x03, 0x00]).0, vec![Err(DecodeError::Crc)]);
}

#[test]
fn bit_flips_detected() {
    let rec = Record {
        cpu: 0,
        seq: 123_456,
        ts: 987_654_321,
        event: Event::Psci {
            function: 0xc400_0003,
            arg0: 1,
            arg1: 0x4008_0000,
            arg2: 0,
            result: -2,
            conduit: 1,
        },
    };
    let f = frame(&rec);
    let next = frame(&Record { cpu: 0, seq: 123_457, ts: 987_654_400, event: Event::Dropped { count: 0 } });
    for byte in 0..f.len() - 1 {
        for bit in 0..8 {
            let mut g = f.clone();
            g[byte] ^= 1 << bit;
            let stream = [&g[..], &next[..]].concat();
            let (frames, pending) = deframe(&stream);
            assert!(!pending);
            let (last, rest) = frames.split_last().unwrap();
            assert!(last.is_ok(), "following frame lost after flip {byte}.{bit}");
            assert!(!rest.is_empty(), "flip {byte}.{bit} vanished");
            assert!(rest.iter().all(|r| r.is_err()), "flip {byte}.{bit} went undetected");
        }
    }
}

#[test]
fn errors_have_codes() {
    assert_eq!(DecodeError::Crc.code(), "crc");
    assert_eq!(DecodeError::Truncated { field: "esr" }.field(), Some("esr"));
    assert_eq!(std::format!("{}", DecodeError::BadVarint { field: "ts" }), "bad varint in field ts");
}

/// Fields appended after format version 1's first release (`u64_appended`),
/// per kind, in order: absent in traces from older writers.
const APPENDED: [(&str, &[&str]); 7] = [
    ("header", &["overlay_enforced"]),
    ("por_write", &["sampled"]),
    ("tap_arm", &["mechanism"]),
    ("pt_root", &["levels"]),
    ("hazard", &["pir", "trace_seq", "entry_trace_seq"]),
    (
        "pt_stats",
        &["roots_released", "fast_stores", "mops_steps", "stepped_stores", "released_pages", "leaves_opened"],
    ),
    ("cause_chain", &["wrapped"]),
];

#[test]
fn records_from_an_older_writer_read_appended_fields_as_zero() {
    for (kind, appended) in APPENDED {
        let spec = kind_spec_by_name(kind).unwrap();
        let names: Vec<_> = spec.fields.iter().map(|f| f.name).collect();
        assert_eq!(&names[names.len() - appended.len()..], appended, "{kind}: appended fields come last");
        let event = every_kind(7, 7, b"x").into_iter().find(|e| e.kind_name() == kind).unwrap();
        let rec = Record { cpu: 0, seq: 3, ts: 4, event };
        let p = payload(&rec);
        // Older writers' records: without the last k fields (7 is one
        // varint byte).
        for k in 1..=appended.len() {
            let framed = with_crc(&p[..p.len() - k]);
            let old = decode_frame(&framed).unwrap();
            let fields: Vec<_> = old.event.fields().collect();
            let (kept, missing) = fields.split_at(fields.len() - k);
            assert!(missing.iter().all(|(_, v)| *v == FieldValue::U64(0)), "{kind}, {k} missing");
            assert!(kept.iter().all(|(_, v)| *v != FieldValue::U64(0)), "{kind}, {k} missing");
        }
        // Cut inside a field that was always there: still an error.
        let cut = appended.len() + 1;
        assert!(decode_payload(&p[..p.len() - cut]).is_err() || spec.fields.len() < cut);
    }
}

#[test]
fn test_exit_status_never_reads_a_wide_code_as_zero() {
    assert_eq!(test_exit_status(0), 0);
    assert_eq!(test_exit_status(3), 3);
    assert_eq!(test_exit_status(255), 255);
    for wide in [256, 257, 1 << 32, u64::MAX] {
        assert_eq!(test_exit_status(wide), MAX_EXIT_STATUS, "{wide}");
    }
}
