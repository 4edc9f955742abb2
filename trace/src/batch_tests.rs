//! Batches (format 3) against plain records: the same records come out,
//! and a lost frame loses only its own records, visibly.

extern crate std;
use std::collections::BTreeMap;
use std::vec::Vec;

use proptest::prelude::*;

use crate::*;

/// A value that often repeats or sits near others (what the coding
/// predicts), sometimes anything.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        0u64..4,
        any::<u64>(),
        0xffff_8000_0000_0000u64..0xffff_8000_0000_4000,
        Just(0x5600_0000u64),
        Just(0x9200_0007u64),
    ]
}

fn bit() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(1u64), 0u64..4]
}

fn event() -> impl Strategy<Value = Event<'static>> {
    prop_oneof![
        4 => (0u64..20, value(), value(), value(), value(), value(), 0u64..3).prop_map(
            |(vector, esr, elr, spsr, far, por, depth)| Event::ExcEntry { vector, esr, elr, spsr, far, por, depth }
        ),
        3 => (value(), bit(), value(), value(), bit(), value(), bit()).prop_map(
            |(pc, reg, old, new, at_entry, entry_seq, sampled)| Event::PorWrite {
                pc, reg, old, new, at_entry, entry_seq, sampled
            }
        ),
        2 => (value(), value(), 0u64..6).prop_map(|(esr, elr, outcome)| Event::Trap { esr, elr, outcome }),
        1 => (value(), value(), value(), 0u64..3).prop_map(|(elr, spsr, por, depth)| Event::ExcReturn { elr, spsr, por, depth }),
        1 => value().prop_map(|count| Event::Dropped { count }),
        1 => (value(), value(), value()).prop_map(|(pc, old, new)| Event::Tcr2Write { pc, old, new }),
    ]
}

/// Records of up to three CPUs; per CPU, seqs rise (by 1, or jump, as
/// flight mode's do) and ts mostly rises.
fn records() -> impl Strategy<Value = Vec<Record<'static>>> {
    proptest::collection::vec(
        (
            0u32..3,
            event(),
            prop_oneof![8 => Just(0u64), 1 => 1u64..1000],
            prop_oneof![4 => 0u64..50_000, 1 => any::<u64>()],
        ),
        1..300,
    )
    .prop_map(|raw| {
        let mut seq = [0u64; 3];
        let mut ts = [0u64; 3];
        raw.into_iter()
            .map(|(cpu, event, jump, dts)| {
                let c = cpu as usize;
                seq[c] += 1 + jump;
                ts[c] = ts[c].wrapping_add(dts);
                Record { cpu, seq: seq[c], ts: ts[c], event }
            })
            .collect()
    })
}

fn frame_of(rec: &Record) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME];
    let n = encode_frame(rec, &mut out).expect("encodes");
    out[..n].to_vec()
}

fn close(b: &mut Batch, frames: &mut Vec<Vec<u8>>) {
    let mut out = [0u8; MAX_FRAME];
    if let Some(n) = b.encode_frame(&mut out) {
        assert!(n <= MAX_FRAME);
        frames.push(out[..n].to_vec());
    }
    b.clear();
}

/// The compact stream as the hypervisor writes it: per CPU an open batch,
/// closed when full and before any record that cannot join it.
fn compact(recs: &[Record]) -> Vec<Vec<u8>> {
    let mut batches: [Batch; 3] = [Batch::new(), Batch::new(), Batch::new()];
    let mut frames = Vec::new();
    for rec in recs {
        let b = &mut batches[rec.cpu as usize];
        if batchable(&rec.event) {
            if !b.push(rec) {
                close(b, &mut frames);
                assert!(b.push(rec), "an empty batch takes any batchable record");
            }
        } else {
            close(b, &mut frames);
            frames.push(frame_of(rec));
        }
    }
    for b in &mut batches {
        close(b, &mut frames);
    }
    frames
}

/// Decodes a stream; the records and the number of bad frames.
fn decode(stream: &[u8]) -> (Vec<Record<'static>>, usize) {
    let mut d = Deframer::new();
    let mut out = Vec::new();
    let mut bad = 0;
    for &byte in stream {
        let Some(res) = d.push(byte) else { continue };
        let Ok(p) = res else {
            bad += 1;
            continue;
        };
        if is_batch(p) {
            let recs: Result<Vec<_>, _> = decode_batch(p).and_then(|it| it.collect());
            match recs {
                Ok(r) => out.extend(r),
                Err(_) => bad += 1,
            }
        } else {
            let r = decode_payload(p).expect("plain record decodes");
            out.push(Record { cpu: r.cpu, seq: r.seq, ts: r.ts, event: owned(r.event) });
        }
    }
    (out, bad)
}

/// The kinds [`event`] makes hold no bytes: copied out of the frame.
fn owned(e: Event<'_>) -> Event<'static> {
    match e {
        Event::ExcEntry { vector, esr, elr, spsr, far, por, depth } => {
            Event::ExcEntry { vector, esr, elr, spsr, far, por, depth }
        }
        Event::PorWrite { pc, reg, old, new, at_entry, entry_seq, sampled } => {
            Event::PorWrite { pc, reg, old, new, at_entry, entry_seq, sampled }
        }
        Event::Trap { esr, elr, outcome } => Event::Trap { esr, elr, outcome },
        Event::ExcReturn { elr, spsr, por, depth } => Event::ExcReturn { elr, spsr, por, depth },
        Event::Dropped { count } => Event::Dropped { count },
        Event::Tcr2Write { pc, old, new } => Event::Tcr2Write { pc, old, new },
        other => panic!("unexpected {other:?}"),
    }
}

fn per_cpu(recs: &[Record<'static>]) -> BTreeMap<u32, Vec<Record<'static>>> {
    let mut m: BTreeMap<u32, Vec<Record<'static>>> = BTreeMap::new();
    for r in recs {
        m.entry(r.cpu).or_default().push(*r);
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn batches_decode_to_the_plain_records(recs in records()) {
        let plain: Vec<u8> = recs.iter().flat_map(|r| frame_of(r)).collect();
        let (from_plain, bad) = decode(&plain);
        prop_assert_eq!(bad, 0);
        let frames = compact(&recs);
        let stream: Vec<u8> = frames.concat();
        let (from_compact, bad) = decode(&stream);
        prop_assert_eq!(bad, 0);
        // Batches hold records back, so CPUs interleave differently; each
        // CPU's records are the same, in the same order.
        prop_assert_eq!(per_cpu(&from_plain), per_cpu(&recs));
        prop_assert_eq!(per_cpu(&from_compact), per_cpu(&recs));
    }

    #[test]
    fn any_batch_payload_decodes_or_errs_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..80)) {
        let payload = [&[BATCH_KIND, 1, 2][..], &body].concat();
        if let Ok(items) = decode_batch(&payload) {
            for item in items {
                let _ = item;
            }
        }
    }

    #[test]
    fn a_lost_frame_loses_only_its_records_and_shows(recs in records(), pick in any::<prop::sample::Index>()) {
        let mut frames = compact(&recs);
        let lost = frames.remove(pick.index(frames.len()));
        let (lost_recs, bad) = decode(&lost);
        prop_assert_eq!(bad, 0);
        prop_assert!(!lost_recs.is_empty());
        let (got, bad) = decode(&frames.concat());
        prop_assert_eq!(bad, 0);
        let cpu = lost_recs[0].cpu;
        let mut want = per_cpu(&recs);
        let all = want.entry(cpu).or_default();
        // The lost frame's records are a run of one CPU's records.
        let at = all.iter().position(|r| *r == lost_recs[0]).unwrap();
        prop_assert_eq!(&all[at..at + lost_recs.len()], &lost_recs[..]);
        let after = all.get(at + lost_recs.len()).copied();
        all.drain(at..at + lost_recs.len());
        if all.is_empty() {
            want.remove(&cpu);
        }
        prop_assert_eq!(per_cpu(&got), want.clone());
        // The loss shows as a seq gap at the CPU's next record (seqs rise).
        if let Some(next) = after {
            let before = at.checked_sub(1).and_then(|i| want.get(&cpu).and_then(|v| v.get(i)));
            if let Some(prev) = before {
                prop_assert!(next.seq != prev.seq + 1);
            }
        }
    }
}

#[test]
fn bad_tags_are_errors_not_records() {
    let mut b = Batch::new();
    let rec = Record { cpu: 2, seq: 7, ts: 100, event: Event::Trap { esr: 1, elr: 2, outcome: 0 } };
    assert!(b.push(&rec));
    let p = b.payload().to_vec();
    let ok: Vec<_> = decode_batch(&p).unwrap().collect();
    assert_eq!(ok, [Ok(rec)]);
    // Trap flags 5:3 are never set; escape 3 is unused. The item: tag,
    // dts 0, esr 1, elr delta 2 (zigzag 4) after the header kind, cpu,
    // seq, ts.
    assert_eq!(p, [BATCH_KIND | KIND_CPU_FLAG, 2, 7, 100, 0x80 | 0b011, 0, 1, 4]);
    let tag_at = 4;
    for bad in [0x80 | 0x08, 0xf0] {
        let mut q = p.clone();
        q[tag_at] = bad;
        let r: Result<Vec<_>, _> = decode_batch(&q).unwrap().collect();
        assert_eq!(r, Err(DecodeError::BadBatch), "tag {bad:#x}");
    }
    // A truncated item is an error too.
    let r: Result<Vec<_>, _> = decode_batch(&p[..p.len() - 1]).unwrap().collect();
    assert!(matches!(r, Err(DecodeError::Truncated { .. })), "{r:?}");
}

#[test]
fn por_toggles_cost_two_bytes() {
    // The bench guest's por_change: one MSR site toggling POR_EL1.
    let mut b = Batch::new();
    let mut old = 0;
    for i in 0..40u64 {
        let new = old ^ 0x40;
        let ev = Event::PorWrite { pc: 0x4400_36c8, reg: 0, old, new, at_entry: 0, entry_seq: 0, sampled: 0 };
        assert!(b.push(&Record { cpu: 0, seq: 50 + i, ts: 1000 + 3 * i, event: ev }));
        old = new;
    }
    let first = b.payload().len();
    let mut b2 = Batch::new();
    for (i, r) in decode_batch(b.payload()).unwrap().enumerate() {
        let r = r.unwrap();
        assert!(b2.push(&r));
        if i == 1 {
            assert!(b2.payload().len() < 32);
        }
    }
    assert_eq!(b2.payload(), b.payload());
    // Header + two learning writes, then tag + dts per write.
    assert!(first <= 30 + 2 * 38, "{first} bytes");
}
