//! Property tests: decoding arbitrary bytes never panics; encode → decode
//! round-trips arbitrary field values for every kind.

use porwatch_trace::*;
use proptest::prelude::*;

/// Builds the event of kind `KINDS[idx]` from generic values.
fn build<'a>(idx: usize, v: &[u64; 17], i: i64, bytes: &'a [u8]) -> Event<'a> {
    match idx {
        0 => Event::Header {
            format_version: v[0],
            cntfrq: v[1],
            midr: v[2],
            mpidr: v[3],
            id_aa64pfr0: v[4],
            id_aa64pfr1: v[5],
            id_aa64dfr0: v[6],
            id_aa64isar0: v[7],
            id_aa64isar1: v[8],
            id_aa64mmfr0: v[9],
            id_aa64mmfr1: v[10],
            id_aa64mmfr2: v[11],
            id_aa64mmfr3: v[12],
            poe_mode: v[13],
            options: v[14],
            hyp_base: v[15],
            hyp_size: v[16],
            overlay_enforced: v[0] % 3,
        },
        1 => Event::HypBoot { entry_el: v[0], dtb: v[1], console_uart: v[2], trace_uart: v[3] },
        2 => Event::MemRegion { base: v[0], size: v[1], kind: v[2] },
        3 => Event::GuestStart { entry: v[0], dtb: v[1], dtb_size: v[2], spsr: v[3] },
        4 => Event::Trap { esr: v[0], elr: v[1], outcome: v[2] },
        5 => Event::UnknownTrap { esr: v[0], elr: v[1], far: v[2], action: v[3] },
        6 => Event::Psci { function: v[0], arg0: v[1], arg1: v[2], arg2: v[3], result: i, conduit: v[4] },
        7 => Event::GuestExit { reason: v[0], code: v[1] },
        8 => Event::Dropped { count: v[0] },
        9 => Event::Panic { message: bytes },
        _ => Event::Unknown { kind: 0x70 | idx as u8, raw: bytes },
    }
}

fn any_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(127u64),
        Just(128u64),
        any::<u64>(),
        (0u32..64).prop_map(|s| 1u64 << s),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..700)) {
        let _ = decode_payload(&data);
        let _ = decode_frame(&data);
        let _ = check_crc(&data);
        let mut out = [0u8; 1024];
        let _ = cobs::decode(&data, &mut out);
        let mut small = [0u8; 8];
        let _ = cobs::decode(&data, &mut small);
        let mut d = Deframer::new();
        for &b in &data {
            if let Some(Ok(p)) = d.push(b) {
                // A frame that passed the CRC still decodes without panicking.
                let _ = decode_payload(p);
            }
        }
        let _ = d.pending();
    }

    #[test]
    fn round_trip_arbitrary_values(
        idx in 0usize..11,
        v in proptest::array::uniform17(any_u64()),
        i in any::<i64>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..290),
        seq in any_u64(),
        ts in any_u64(),
        cpu in 0u32..8,
    ) {
        let rec = Record { cpu, seq, ts, event: build(idx, &v, i, &bytes) };
        let mut out = [0u8; MAX_FRAME];
        let n = encode_frame(&rec, &mut out).expect("payload within MAX_PAYLOAD");
        prop_assert!(n <= MAX_FRAME);
        prop_assert_eq!(out[n - 1], 0);
        prop_assert!(!out[..n - 1].contains(&0));
        let mut d = Deframer::new();
        let mut got = None;
        for &b in &out[..n] {
            if let Some(r) = d.push(b) {
                prop_assert!(got.is_none());
                got = Some(r.map(|p| p.to_vec()));
            }
        }
        let payload = got.expect("one frame").expect("good frame");
        prop_assert_eq!(decode_payload(&payload), Ok(rec));
    }

    #[test]
    fn pending_means_the_input_did_not_end_on_a_delimiter(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut d = Deframer::new();
        for &b in &data {
            let _ = d.push(b);
        }
        let since_delimiter = data.iter().rev().take_while(|&&b| b != 0).count();
        prop_assert_eq!(d.pending(), since_delimiter > 0);
        prop_assert_eq!(d.pending_len(), since_delimiter);
    }

    #[test]
    fn frames_survive_surrounding_garbage(
        garbage in proptest::collection::vec(any::<u8>(), 0..400),
        count in any_u64(),
    ) {
        let rec = Record { cpu: 0, seq: 1, ts: 2, event: Event::Dropped { count } };
        let mut out = [0u8; MAX_FRAME];
        let n = encode_frame(&rec, &mut out).unwrap();
        let mut stream = garbage.clone();
        stream.push(0);
        stream.extend_from_slice(&out[..n]);
        let mut d = Deframer::new();
        let mut last = None;
        for &b in &stream {
            if let Some(r) = d.push(b) {
                last = Some(r.map(|p| p.to_vec()));
            }
        }
        let payload = last.expect("a frame").expect("last frame good");
        prop_assert_eq!(decode_payload(&payload), Ok(rec));
    }
}
