//! Robustness of `decode_stream` (text and JSON) on arbitrary byte streams:
//! real frames from the trace encoder mixed with garbage, bit flips, cut
//! frames and zero runs, fed in random-sized reads. It must not panic, every
//! JSON line must parse, and the output must stay bounded by the input size.
//! And it must never call bad input clean: a stream it calls intact has a
//! record and ends on a delimiter; a clean run's trace followed by a tail of
//! any length, with a header inserted after its first record, or made of
//! zeros only is never intact.
//!
//! `scripts/test` runs proptest's default 256 cases; `scripts/fuzz-decoder
//! [N]` runs N (default 1,000,000) via `PROPTEST_CASES`.

use std::io::{self, Read};

use porwatch::{decode_stream, sample, DecodeOptions};
use porwatch_trace::{Event, Record};
use proptest::prelude::*;

/// Output bytes allowed per input byte, plus a constant (the summary). A
/// record line is at most a few hundred bytes for a frame of at least 4, a
/// problem line ~100 bytes for a frame of at least 1 byte.
const OUT_PER_IN: usize = 160;
const OUT_CONST: usize = 4096;

fn event() -> impl Strategy<Value = Event<'static>> {
    let v = any::<u64>();
    let small = 0u64..20;
    prop_oneof![
        (v, v, small.clone()).prop_map(|(esr, elr, outcome)| Event::Trap { esr, elr, outcome }),
        (small.clone(), v, v, v, v, v, small.clone()).prop_map(
            |(vector, esr, elr, spsr, far, por, depth)| {
                Event::ExcEntry { vector, esr, elr, spsr, far, por, depth }
            }
        ),
        (v, v, v, small.clone()).prop_map(|(elr, spsr, por, depth)| Event::ExcReturn {
            elr,
            spsr,
            por,
            depth
        }),
        (v, small.clone(), v, v, small.clone(), v, small.clone()).prop_map(
            |(pc, reg, old, new, at_entry, entry_seq, sampled)| Event::PorWrite {
                pc,
                reg,
                old,
                new,
                at_entry,
                entry_seq,
                sampled
            }
        ),
        (v, v, any::<i64>(), v, v, v, v, small.clone(), small.clone(), 0u64..1000, 0u64..1000).prop_map(
            |(va, ipa, level, old, new, pc, por, poindex, perm, entry_seq, por_seq)| Event::Hazard {
                va,
                ipa,
                level,
                half: poindex % 3,
                old,
                new,
                pc,
                por,
                poindex,
                perm,
                unprivileged: perm & 1,
                entry_seq,
                por_seq,
                action: perm % 3,
                leaf_level: 3,
                pir: 0,
                trace_seq: 0,
                entry_trace_seq: 0,
            }
        ),
        (v, v, v, v, small.clone()).prop_map(|(pc, insn, va, ipa, reason)| Event::CoverageGap {
            pc,
            insn,
            va,
            ipa,
            reason
        }),
        (v, v, small.clone()).prop_map(|(vbar, page, mechanism)| Event::TapArm { vbar, page, mechanism }),
        small.clone().prop_map(|count| Event::Dropped { count }),
        (v, small).prop_map(|(reason, code)| Event::GuestExit { reason, code }),
    ]
}

/// One piece of the stream.
#[derive(Clone, Debug)]
enum Piece {
    /// An encoded record, maybe with one byte XORed and maybe cut short.
    Frame {
        seq: u64,
        ts: u64,
        event: Event<'static>,
        flip: Option<(usize, u8)>,
        cut: Option<usize>,
    },
    /// One of the sample records (every other kind: header, psci, panic...).
    Sample(usize),
    Garbage(Vec<u8>),
    Zeros(usize),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        6 => (0u64..64, any::<u64>(), event(), proptest::option::weighted(0.2, (any::<usize>(), 1u8..=255)),
              proptest::option::weighted(0.1, any::<usize>()))
            .prop_map(|(seq, ts, event, flip, cut)| Piece::Frame { seq, ts, event, flip, cut }),
        2 => (0usize..64).prop_map(Piece::Sample),
        2 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(Piece::Garbage),
        1 => (1usize..8).prop_map(Piece::Zeros),
    ]
}

/// The stream and how many of its frames must decode: intact frames that
/// start the stream or follow a delimiter.
fn bytes_of(pieces: &[Piece]) -> (Vec<u8>, usize) {
    let samples = sample::records();
    let mut out: Vec<u8> = Vec::new();
    let mut intact = 0;
    for p in pieces {
        let after_delimiter = out.last().is_none_or(|&b| b == 0);
        if after_delimiter && matches!(p, Piece::Frame { flip: None, cut: None, .. } | Piece::Sample(_)) {
            intact += 1;
        }
        match p {
            Piece::Frame { seq, ts, event, flip, cut } => {
                let mut f =
                    sample::encode(&[Record { cpu: 0, seq: *seq, ts: *ts, event: *event }]).expect("encodes");
                if let Some((i, x)) = flip {
                    let n = f.len();
                    f[i % n] ^= x;
                }
                if let Some(c) = cut {
                    f.truncate(c % (f.len() + 1));
                }
                out.extend(f);
            }
            Piece::Sample(i) => {
                out.extend(sample::encode(&samples[i % samples.len()..][..1]).expect("encodes"))
            }
            Piece::Garbage(g) => out.extend_from_slice(g),
            Piece::Zeros(n) => out.extend(std::iter::repeat_n(0u8, *n)),
        }
    }
    (out, intact)
}

/// Serves `data` in reads of the given sizes (cycled).
struct Reads<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    i: usize,
}

impl Read for Reads<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self.sizes[self.i % self.sizes.len()].min(buf.len()).min(self.data.len());
        self.i += 1;
        let (head, tail) = self.data.split_at(want);
        buf[..want].copy_from_slice(head);
        self.data = tail;
        Ok(want)
    }
}

fn check(bytes: &[u8], sizes: &[usize]) -> Result<(), TestCaseError> {
    let mut records = None;
    for json in [false, true] {
        let mut out = Vec::new();
        let opts = DecodeOptions { json, summary: json, ..Default::default() };
        let input = Reads { data: bytes, sizes: sizes.to_vec(), i: 0 };
        let stats = decode_stream(input, &mut out, &opts, None).expect("in-memory IO");
        prop_assert_eq!(stats.bytes, bytes.len() as u64);
        prop_assert!(
            out.len() <= OUT_PER_IN * bytes.len() + OUT_CONST,
            "{} output bytes for {} input bytes",
            out.len(),
            bytes.len()
        );
        let text = String::from_utf8(out).expect("UTF-8 output");
        if json {
            let lines: Vec<&str> = text.lines().collect();
            for line in &lines {
                serde_json::from_str::<serde_json::Value>(line)
                    .map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
            }
            prop_assert!(lines.last().is_some_and(|l| l.contains("\"summary\"")));
        }
        // Both formats see the same records.
        if let Some(r) = records {
            prop_assert_eq!(r, stats.records);
        }
        records = Some(stats.records);
    }
    Ok(())
}

/// A run's trace as the hypervisor writes it: the sample header (seq 0),
/// then `events` with consecutive seqs.
fn clean_run(events: &[Event<'static>]) -> Vec<Record<'static>> {
    let mut recs = vec![sample::records()[0]];
    for (i, e) in events.iter().enumerate() {
        recs.push(Record { cpu: 0, seq: i as u64 + 1, ts: i as u64 * 7, event: *e });
    }
    recs
}

/// Events a clean run may hold: a `dropped` record would need a matching
/// gap, so it becomes a `tap_arm` (mapped, not filtered: no rejects).
fn run_event() -> impl Strategy<Value = Event<'static>> {
    event().prop_map(|e| match e {
        Event::Dropped { count } => Event::TapArm { vbar: count, page: 0, mechanism: 0 },
        e => e,
    })
}

/// Decode stats of `bytes` (whole buffer).
fn stats_of(bytes: &[u8]) -> porwatch::DecodeStats {
    porwatch::decode_all(bytes).1
}

proptest! {
    // Cases from PROPTEST_CASES (default 256); no regression files (a
    // failure prints its minimal input).
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn an_intact_verdict_needs_a_record_and_a_final_delimiter(
        pieces in proptest::collection::vec(piece(), 0..40),
    ) {
        let (bytes, _) = bytes_of(&pieces);
        let stats = stats_of(&bytes);
        if stats.trace_intact() {
            prop_assert!(stats.records > 0, "{stats}");
            prop_assert_eq!(bytes.last(), Some(&0u8), "{}", stats);
        }
    }

    #[test]
    fn a_clean_run_then_an_unterminated_tail_is_truncated(
        events in proptest::collection::vec(run_event(), 0..20),
        tail in proptest::collection::vec(1u8..=255, 1..2000),
    ) {
        let mut bytes = sample::encode(&clean_run(&events)).expect("encodes");
        prop_assert!(stats_of(&bytes).trace_intact());
        bytes.extend_from_slice(&tail);
        let stats = stats_of(&bytes);
        prop_assert!(stats.truncated_tail && !stats.trace_intact() && !stats.is_clean(), "{}", stats);
    }

    #[test]
    fn a_header_after_the_first_record_is_never_clean(
        events in proptest::collection::vec(run_event(), 1..20),
        at in any::<usize>(),
        seq in prop_oneof![Just(0u64), any::<u64>()],
        renumber in any::<bool>(),
    ) {
        let mut recs = clean_run(&events);
        let at = 1 + at % recs.len();
        recs.insert(at, Record { seq, ..sample::records()[0] });
        if renumber {
            // Even with seqs made consecutive around it.
            for (i, r) in recs.iter_mut().enumerate() {
                r.seq = i as u64;
            }
        }
        let stats = stats_of(&sample::encode(&recs).expect("encodes"));
        prop_assert!(stats.mid_stream_headers >= 1 && !stats.trace_intact() && !stats.is_clean(), "{}", stats);
    }

    #[test]
    fn zeros_and_frameless_garbage_have_no_records(
        zeros in 0usize..5000,
        garbage in proptest::collection::vec(1u8..=255, 0..300),
    ) {
        let stats = stats_of(&vec![0u8; zeros]);
        prop_assert!(stats.records == 0 && !stats.trace_intact() && !stats.is_clean(), "{}", stats);
        // Garbage between two delimiters is at most one bad frame.
        let mut g = vec![0u8];
        g.extend_from_slice(&garbage);
        g.push(0);
        let stats = stats_of(&g);
        prop_assert!(!stats.trace_intact(), "{}", stats);
    }

    #[test]
    fn decode_stream_survives_frames_mixed_with_garbage(
        pieces in proptest::collection::vec(piece(), 0..40),
        sizes in proptest::collection::vec(1usize..300, 1..4),
    ) {
        let (bytes, intact) = bytes_of(&pieces);
        check(&bytes, &sizes)?;
        // Garbage costs at most the frame it is glued to: every intact frame
        // after a delimiter decodes; no record without a delimiter.
        let (recs, _) = porwatch::decode_all(&bytes);
        prop_assert!(recs.len() >= intact, "{} records, {} intact frames", recs.len(), intact);
        prop_assert!(recs.len() <= bytes.iter().filter(|&&b| b == 0).count());
    }

    #[test]
    fn decode_stream_survives_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        sizes in proptest::collection::vec(1usize..300, 1..4),
    ) {
        check(&bytes, &sizes)?;
    }
}
