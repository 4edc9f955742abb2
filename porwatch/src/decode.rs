//! Stream decoding: bytes in, [`Item`]s (records and problems) out, with
//! sequence checking and [`DecodeStats`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{self, Read, Write};

use porwatch_monitor::cmdline::STREAM_FLIGHT_BIT;
use porwatch_trace::{
    decode_batch, decode_payload, is_batch, DecodeError, Deframer, Event, Record, TrapOutcome,
};

use crate::printer::{Printer, ViewOptions};
use crate::records::OwnedRecord;
pub use crate::stats::{DecodeStats, GuestExit};
use crate::{json, text};

/// Time of a record since counter start, from the latest header's cntfrq,
/// and the CPU that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    pub secs: u64,
    pub micros: u32,
    /// The CPU that wrote the record (porwatch's dense CPU index: the boot
    /// CPU is 0, the others in the device tree's /cpus order, as Linux
    /// numbers them).
    pub cpu: u32,
}

impl Timestamp {
    /// `ticks / cntfrq` seconds, truncated to microseconds; `None` if cntfrq is 0.
    pub fn from_ticks(ticks: u64, cntfrq: u64) -> Option<Self> {
        if cntfrq == 0 {
            return None;
        }
        let micros = u128::from(ticks % cntfrq) * 1_000_000 / u128::from(cntfrq);
        Some(Timestamp { secs: ticks / cntfrq, micros: u32::try_from(micros).unwrap_or(999_999), cpu: 0 })
    }
}

/// One thing found in the stream, in stream order.
#[derive(Clone, Copy, Debug)]
pub enum Item<'a> {
    /// A good record. `time` is `None` before the first header.
    Record { record: &'a Record<'a>, time: Option<Timestamp> },
    /// A rejected frame starting at byte `offset` of the stream.
    Corrupt { error: DecodeError, offset: u64 },
    /// The next record of `cpu` does not have the seq expected of that CPU
    /// (reported before that record; each CPU numbers its own records).
    /// `dropped` is the count of a `dropped` record that did not match the
    /// jump.
    Gap { cpu: u32, expected: u64, got: u64, dropped: Option<u64> },
    /// `porwatch.stream=flight`: a CPU's `flight_stats` says it sent
    /// `streamed` records, but `received` of them arrived (docs/flight.md;
    /// seqs have gaps by design there, this is the loss check instead).
    FlightShort { cpu: u32, streamed: u64, received: u64 },
    /// Input ended `bytes` bytes into a frame that started at `offset`
    /// (any length: an oversize frame cut off by the end is one too).
    TruncatedTail { offset: u64, bytes: u64 },
    /// A `header` record (seq `seq`, frame at `offset`) after the first
    /// record: the hypervisor writes one per run, so this is a restart
    /// (another run's trace appended) or a forged header. Reported before the
    /// record; sequence checking goes on as for any record.
    MidStreamHeader { seq: u64, offset: u64 },
    /// The input ended without a single record (`bytes` bytes: none, zeros,
    /// garbage, hyp text only).
    NoRecords { bytes: u64 },
    /// A plain-text line the hypervisor wrote between frames (it does so
    /// only when it fails: panics, exceptions at EL2), starting at `offset`.
    Text { text: &'a str, offset: u64 },
}

/// Incremental decoder: feed it chunks, then [`StreamDecoder::finish`].
#[derive(Clone, Default)]
pub struct StreamDecoder {
    deframer: Deframer,
    state: State,
}

/// Everything but the deframer (so a frame borrowed from the deframer can be
/// handled while the rest is updated).
#[derive(Clone, Default)]
struct State {
    stats: DecodeStats,
    cntfrq: Option<u64>,
    /// The seq expected next, per CPU.
    next_seq: BTreeMap<u32, u64>,
    /// The header says `porwatch.stream=flight`: seqs skip what stayed in
    /// the CPUs' flight rings, and `flight_stats` is the loss check.
    flight: bool,
    /// Stream offset of the next byte.
    offset: u64,
    /// Stream offset of the current frame's first byte.
    frame_start: u64,
    /// Raw bytes of the current frame, to recognise hyp text messages.
    raw: Vec<u8>,
    /// The current frame is longer than any record.
    oversize: bool,
}

/// The hypervisor's plain-text messages start with this.
const TEXT_PREFIX: &[u8] = b"porwatch: ";
/// Longest text message kept (longer ones are reported as corrupt frames).
const MAX_TEXT: usize = 1024;

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Statistics so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.state.stats
    }

    /// Decodes `bytes`, calling `sink` for each item found. Stops at the
    /// first error returned by `sink`.
    pub fn feed<E>(
        &mut self,
        bytes: &[u8],
        sink: &mut dyn FnMut(&Item<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        for &b in bytes {
            let st = &mut self.state;
            st.stats.bytes += 1;
            st.offset += 1;
            let start = st.frame_start;
            if b == 0 {
                st.frame_start = st.offset;
            } else if st.raw.len() < MAX_TEXT {
                st.raw.push(b);
            }
            match self.deframer.push(b) {
                None => {}
                Some(Ok(payload)) if is_batch(payload) => match batch_records(payload) {
                    Ok(recs) => st.batch(&recs, start, sink)?,
                    Err(error) => st.text_or_corrupt(error, start, sink)?,
                },
                Some(Ok(payload)) => match decode_payload(payload) {
                    Ok(rec) => {
                        *st.stats.bytes_per_kind.entry(rec.event.kind_name()).or_insert(0) +=
                            st.offset - start;
                        st.record(&rec, start, sink)?
                    }
                    Err(error) => st.text_or_corrupt(error, start, sink)?,
                },
                // Oversize: judged (text or corrupt) once its end is seen.
                Some(Err(DecodeError::TooLong)) => st.oversize = true,
                Some(Err(error)) => st.text_or_corrupt(error, start, sink)?,
            }
            if b == 0 && st.oversize {
                st.text_or_corrupt(DecodeError::TooLong, start, sink)?;
            }
            if b == 0 {
                st.raw.clear();
                st.oversize = false;
            }
        }
        Ok(())
    }

    /// Ends the stream: reports a truncated tail if the input ended inside a
    /// frame (of any length), and that there were no records if there were
    /// none; returns the statistics.
    pub fn finish<E>(mut self, sink: &mut dyn FnMut(&Item<'_>) -> Result<(), E>) -> Result<DecodeStats, E> {
        if self.deframer.pending() {
            self.state.stats.truncated_tail = true;
            sink(&Item::TruncatedTail {
                offset: self.state.frame_start,
                bytes: self.deframer.pending_len() as u64,
            })?;
        }
        if self.state.stats.records == 0 {
            sink(&Item::NoRecords { bytes: self.state.stats.bytes })?;
        }
        Ok(self.state.stats)
    }
}

impl State {
    /// A rejected frame that is really a hyp text message is shown as text;
    /// anything else is corrupt.
    fn text_or_corrupt<E>(
        &mut self,
        error: DecodeError,
        offset: u64,
        sink: &mut dyn FnMut(&Item<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let raw = std::mem::take(&mut self.raw);
        let text = raw.strip_suffix(b"\n").unwrap_or(&raw);
        let printable = text.iter().all(|&c| c == b'\t' || c == b'\r' || (0x20..0x7f).contains(&c));
        let r = if printable && raw.len() < MAX_TEXT && text.starts_with(TEXT_PREFIX) {
            let t = std::str::from_utf8(text).unwrap_or("").trim_end_matches('\r');
            self.stats.text_messages += 1;
            sink(&Item::Text { text: t, offset })
        } else {
            self.corrupt(error, offset, sink)
        };
        self.raw = raw;
        r
    }

    fn corrupt<E>(
        &mut self,
        error: DecodeError,
        offset: u64,
        sink: &mut dyn FnMut(&Item<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.stats.corrupt_frames += 1;
        sink(&Item::Corrupt { error, offset })
    }

    /// A batch's records (format 3) with their items' sizes, each record
    /// handled as if it came alone. For `bytes_per_kind` a record costs
    /// its item plus an equal part of the frame's own bytes (header, CRC,
    /// COBS, delimiter; the first ones a byte more when it does not
    /// divide), so the kinds still add up to the stream.
    fn batch<E>(
        &mut self,
        recs: &[(Record<'_>, usize)],
        offset: u64,
        sink: &mut dyn FnMut(&Item<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let items: u64 = recs.iter().map(|(_, len)| *len as u64).sum();
        let overhead = (self.offset - offset).saturating_sub(items);
        let n = recs.len() as u64;
        for (i, (rec, len)) in (0u64..).zip(recs) {
            let share = *len as u64 + overhead / n + u64::from(i < overhead % n);
            *self.stats.bytes_per_kind.entry(rec.event.kind_name()).or_insert(0) += share;
            self.record(rec, offset, sink)?;
        }
        Ok(())
    }

    fn record<E>(
        &mut self,
        rec: &Record<'_>,
        offset: u64,
        sink: &mut dyn FnMut(&Item<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Event::Header { cntfrq, .. } = rec.event {
            if self.stats.records > 0 {
                self.stats.mid_stream_headers += 1;
                sink(&Item::MidStreamHeader { seq: rec.seq, offset })?;
            }
            self.cntfrq = (cntfrq != 0).then_some(cntfrq);
            self.stats.cntfrq = cntfrq;
        }
        if let Event::Header { options, .. } = rec.event {
            self.flight = options >> STREAM_FLIGHT_BIT & 1 != 0;
        }
        self.stats.first_ts.get_or_insert(rec.ts);
        self.stats.last_ts = rec.ts;
        self.check_seq(rec, sink)?;
        let st = &mut self.stats;
        st.records += 1;
        *st.per_kind.entry(rec.event.kind_name()).or_insert(0) += 1;
        st.per_cpu.entry(rec.cpu).or_default().count(&rec.event);
        match rec.event {
            Event::Dropped { count } => st.hyp_dropped = st.hyp_dropped.saturating_add(count),
            Event::GuestExit { reason, code } => st.guest_exit = Some(GuestExit { reason, code }),
            Event::Panic { message } => {
                st.panics += 1;
                st.last_panic = Some(String::from_utf8_lossy(message).into_owned());
            }
            Event::UnknownTrap { action, .. } if action == TrapOutcome::UndefInjected.code() => {
                st.undefs_injected += 1;
                st.first_undef_seq.get_or_insert(rec.seq);
            }
            // Tables the tracker could not hold, and pages it released
            // (stores porwatch can neither emulate nor step).
            Event::PtStats { overflows, released_pages, .. } => {
                st.tables_unwatched = st.tables_unwatched.max(overflows.saturating_add(released_pages))
            }
            _ => {}
        }
        let time = self
            .cntfrq
            .and_then(|f| Timestamp::from_ticks(rec.ts, f))
            .map(|t| Timestamp { cpu: rec.cpu, ..t });
        sink(&Item::Record { record: rec, time })
    }

    /// Per CPU, each seq must be the previous + 1, except that a
    /// `dropped{count}` record comes exactly `count` later. A CPU's first
    /// record sets its base; a later header does not start a new one (a
    /// forged header with seq 0 must not hide the jump).
    fn check_seq<E>(
        &mut self,
        rec: &Record<'_>,
        sink: &mut dyn FnMut(&Item<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.flight {
            return self.check_flight(rec, sink);
        }
        if let Some(&expected) = self.next_seq.get(&rec.cpu) {
            let dropped = match rec.event {
                Event::Dropped { count } => Some(count),
                _ => None,
            };
            if rec.seq != expected.wrapping_add(dropped.unwrap_or(0)) {
                self.stats.unexplained_gaps += 1;
                self.stats.per_cpu.entry(rec.cpu).or_default().unexplained_gaps += 1;
                sink(&Item::Gap { cpu: rec.cpu, expected, got: rec.seq, dropped })?;
            }
        }
        self.next_seq.insert(rec.cpu, rec.seq.wrapping_add(1));
        Ok(())
    }

    /// Flight mode: a CPU's `flight_stats.streamed` must equal the records
    /// of that CPU received so far, this one included (cause chains re-send
    /// ring events with their old seqs, so seqs neither run consecutively
    /// nor only rise).
    fn check_flight<E>(
        &mut self,
        rec: &Record<'_>,
        sink: &mut dyn FnMut(&Item<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Event::FlightStats { streamed, .. } = rec.event {
            let cpu = self.stats.per_cpu.entry(rec.cpu).or_default();
            // Counted after this check: this record is the + 1.
            let received = cpu.records + 1;
            if received != streamed {
                self.stats.unexplained_gaps += 1;
                cpu.unexplained_gaps += 1;
                sink(&Item::FlightShort { cpu: rec.cpu, streamed, received })?;
            }
        }
        Ok(())
    }
}

/// A batch payload's records, each with the size of its item; an error if
/// any item is bad (the frame is then corrupt as a whole).
fn batch_records(payload: &[u8]) -> Result<Vec<(Record<'static>, usize)>, DecodeError> {
    let mut items = decode_batch(payload)?;
    let mut out = Vec::new();
    while let Some(rec) = items.next() {
        out.push((rec?, items.item_len()));
    }
    Ok(out)
}

/// Output options of [`decode_stream`].
#[derive(Clone, Debug, Default)]
pub struct DecodeOptions {
    /// JSON lines instead of text.
    pub json: bool,
    /// At the end, print the summary: as a final JSON line to `out` in JSON
    /// mode, as one line on stderr in text mode.
    pub summary: bool,
    /// Symbols, hazard-only view (see [`crate::printer`]).
    pub view: ViewOptions,
}

/// Reads `input` to its end, printing each record (and each problem) to
/// `out` as soon as it is decoded; `out` is flushed after every chunk read,
/// so this works on live streams. `tee`, if given, receives every raw byte
/// read. Then prints the summary (if `opts.summary`) and the `--counts`
/// line. Returns the statistics; IO errors of input, output or tee end the
/// decode.
pub fn decode_stream<R: Read, W: Write>(
    input: R,
    out: &mut W,
    opts: &DecodeOptions,
    tee: Option<&mut dyn Write>,
) -> io::Result<DecodeStats> {
    let ending = decode_to_end(input, out, opts, tee)?;
    if opts.summary {
        ending.write_summary(out, opts.json, None)?;
    }
    ending.write_counts();
    out.flush()?;
    Ok(ending.stats)
}

/// [`decode_stream`] without the closing lines: the caller prints them with
/// [`Ending`] when it is ready (`porwatch run` does once the guest console
/// is drained, so they never interleave with it). Writes the `--perfetto`
/// file.
pub fn decode_to_end<R: Read, W: Write>(
    mut input: R,
    out: &mut W,
    opts: &DecodeOptions,
    mut tee: Option<&mut dyn Write>,
) -> io::Result<Ending> {
    let mut dec = StreamDecoder::new();
    let mut printer = Printer::new(opts.json, &opts.view);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buf.get(..n).unwrap_or(&[]);
        if let Some(t) = tee.as_mut() {
            t.write_all(chunk)?;
            t.flush()?;
        }
        dec.feed(chunk, &mut |item: &Item<'_>| printer.item(out, item))?;
        out.flush()?;
    }
    let stats = dec.finish(&mut |item: &Item<'_>| printer.item(out, item))?;
    printer.finish(&opts.view)?;
    out.flush()?;
    let counts = opts.view.counts.then(|| printer.counts_line(&stats));
    Ok(Ending {
        first_undef: printer.first_undef().map(str::to_owned),
        counts,
        findings_lines: printer.summary_lines(),
        findings_json: printer.summary_json(),
        stats,
    })
}

/// What a finished decode says at the end.
#[derive(Clone, Debug, Default)]
pub struct Ending {
    pub stats: DecodeStats,
    /// The first `unknown_trap` with action `undef_injected`, as its text
    /// line (ESR decoded, ELR symbolized).
    pub first_undef: Option<String>,
    /// The `--counts` line, when asked for.
    pub counts: Option<String>,
    /// What the trace found beyond the counts (hazards by site, the last
    /// protection audit): text lines after the summary line, and the JSON
    /// summary's extra members (`hazard_sites`, `audits`).
    pub findings_lines: Vec<String>,
    pub findings_json: serde_json::Map<String, serde_json::Value>,
}

impl Ending {
    /// The text summary: the one-line summary, then a line for each failure
    /// the trace records that the line only counts.
    pub fn text_lines(&self) -> Vec<String> {
        self.text_lines_with(&[])
    }

    /// [`Ending::text_lines`] with problems found outside the trace named in
    /// the summary's verdict too ([`DecodeStats::summary_with`]).
    pub fn text_lines_with(&self, extra: &[&str]) -> Vec<String> {
        let s = &self.stats;
        let mut v = vec![s.summary_with(extra)];
        if s.undefs_injected > 0 {
            v.push(format!(
                "porwatch: UNDEF injected {} time(s): the guest ran instructions porwatch could not handle \
                 and got an UNDEF for each; first: {}",
                s.undefs_injected,
                self.first_undef.as_deref().unwrap_or("(not shown)")
            ));
        }
        if s.tables_unwatched > 0 {
            v.push(format!(
                "porwatch: {} page-table page(s) not watched (pt_stats.overflows: over the \
                 tracker's capacity; pt_stats.released_pages: stores porwatch could not follow); \
                 stores to them went unseen",
                s.tables_unwatched
            ));
        }
        v.extend(self.findings_lines.iter().cloned());
        v
    }

    /// Prints the summary: text lines on stderr, or the final JSON line to
    /// `out` (with the run's outcome from `porwatch run`).
    pub fn write_summary(
        &self,
        out: &mut dyn Write,
        json: bool,
        run: Option<&json::RunEnd<'_>>,
    ) -> io::Result<()> {
        if json {
            json::write_summary_with(out, &self.stats, run, &self.findings_json)?;
            return out.flush();
        }
        let extra: Vec<&str> =
            run.map(|r| r.extra_problems.iter().map(|(_, t)| *t).collect()).unwrap_or_default();
        let mut err = io::stderr().lock();
        for line in self.text_lines_with(&extra) {
            writeln!(err, "{line}")?;
        }
        Ok(())
    }

    /// The `--counts` line on stderr, if asked for.
    pub fn write_counts(&self) {
        if let Some(c) = &self.counts {
            eprintln!("{c}");
        }
    }
}

/// Prints one item as text or as a JSON line.
pub fn write_item(out: &mut dyn Write, json: bool, item: &Item<'_>) -> io::Result<()> {
    if json {
        json::write_item(out, item)
    } else {
        text::write_item(out, item)
    }
}

/// Decodes a whole in-memory trace into owned records (for tests and tools).
pub fn decode_all(bytes: &[u8]) -> (Vec<OwnedRecord>, DecodeStats) {
    let mut records = Vec::new();
    let mut sink = |item: &Item<'_>| -> Result<(), Infallible> {
        if let Item::Record { record, .. } = item {
            records.push(OwnedRecord::from(*record));
        }
        Ok(())
    };
    let mut dec = StreamDecoder::new();
    let Ok(()) = dec.feed(bytes, &mut sink);
    let Ok(stats) = dec.finish(&mut sink);
    (records, stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;
    use crate::stats::Problem;
    use porwatch_trace::{encode_frame, MAX_FRAME};

    fn enc(records: &[Record<'_>]) -> Vec<u8> {
        sample::encode(records).unwrap()
    }

    fn ev(seq: u64, event: Event<'static>) -> Record<'static> {
        Record { cpu: 0, seq, ts: seq * 10, event }
    }

    fn trap(seq: u64) -> Record<'static> {
        ev(seq, Event::Trap { esr: 0x5a00_0000, elr: 0x1000, outcome: 0 })
    }

    /// Tiny deterministic PRNG (xorshift64*).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn sample_decodes_intact_and_records_the_failures_it_holds() {
        let (recs, stats) = decode_all(&sample::trace());
        assert_eq!(recs.len(), sample::records().len());
        assert!(stats.trace_intact(), "{stats}");
        // It has a hyp panic and an injected UNDEF: not a clean run.
        assert_eq!(stats.problems(), [Problem::HypFailed, Problem::UndefInjected]);
        assert_eq!((stats.undefs_injected, stats.first_undef_seq), (1, Some(6)));
        assert_eq!(stats.records, 16);
        assert_eq!(stats.per_cpu.len(), 2);
        assert_eq!(stats.per_cpu[&1].records, 3);
        assert_eq!(stats.count("psci"), 2);
        assert_eq!(stats.count("mem_region"), 2);
        assert_eq!(stats.hyp_dropped, 3);
        assert_eq!(stats.panics, 1);
        assert_eq!(stats.last_panic.as_deref(), Some("hyp/src/trap.rs:120: unexpected \"ESR\""));
        assert_eq!(stats.guest_exit, Some(GuestExit { reason: 4, code: 1 }));
        assert_eq!(stats.bytes, sample::trace().len() as u64);
        assert_eq!(recs[5].kind, "trap");
        assert_eq!(recs[5].get_u64("esr"), Some(sample::ESR_MRS_POR_EL0));
        assert_eq!(recs[5].get_enum("outcome"), Some("emulated"));
        assert_eq!(recs[0].get_enum("poe_mode"), Some("virtual"));
    }

    #[test]
    fn a_flight_trace_is_checked_by_its_flight_stats_not_by_consecutive_seqs() {
        let gaps = |recs: &[Record<'_>]| decode_all(&enc(recs)).1.unexplained_gaps;
        let mut h = sample::records()[0];
        if let Event::Header { ref mut options, .. } = h.event {
            *options |= 1 << STREAM_FLIGHT_BIT;
        }
        let h = Record { cpu: 0, seq: 0, ..h };
        let stats = |seq, streamed| ev(seq, Event::FlightStats { events: 9, streamed, overwritten: 0 });
        // Seqs skip ring events and chains go back: neither is a gap.
        assert_eq!(gaps(&[h, trap(5), trap(3), trap(9), stats(10, 5)]), 0);
        // One of the four records before the stats did not arrive.
        assert_eq!(gaps(&[h, trap(5), trap(9), stats(10, 5)]), 1);
        // The same records without the flight bit are gaps.
        assert_eq!(gaps(&[sample::records()[0], trap(5), trap(3)]), 2);
    }

    /// Format 3: `recs` (all batchable) as one batch frame.
    fn batch_frame(recs: &[Record<'_>]) -> Vec<u8> {
        let mut b = porwatch_trace::Batch::new();
        for r in recs {
            assert!(b.push(r));
        }
        let mut out = [0u8; MAX_FRAME];
        let n = b.encode_frame(&mut out).unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn batches_expand_into_their_records_and_a_lost_one_shows() {
        let entry = |seq| {
            ev(
                seq,
                Event::ExcEntry {
                    vector: 8,
                    esr: 0x5600_0000,
                    elr: 0x40_0000 + seq,
                    spsr: 0,
                    far: 0,
                    por: 0,
                    depth: 0,
                },
            )
        };
        let plain = enc(&[trap(0), entry(1), entry(2), trap(3), entry(4), entry(5)]);
        let frames =
            [batch_frame(&[trap(0), entry(1), entry(2)]), batch_frame(&[trap(3), entry(4), entry(5)])];
        let (from_plain, _) = decode_all(&plain);
        let (recs, stats) = decode_all(&frames.concat());
        assert_eq!(recs, from_plain);
        assert!(stats.is_clean(), "{stats}");
        assert_eq!(stats.per_kind.get("exc_entry"), Some(&4));
        // Every byte is some kind's.
        assert_eq!(stats.bytes_per_kind.values().sum::<u64>(), stats.bytes);
        // The first frame lost: the second still decodes, and the loss is
        // visible as a gap; a damaged frame is corrupt, then the same gap.
        let later = [batch_frame(&[trap(6), entry(7)])];
        let (recs, stats) = decode_all(&[&frames[0][..], &later[0]].concat());
        assert_eq!(recs.len(), 5);
        assert_eq!(stats.unexplained_gaps, 1);
        let mut damaged = frames[1].clone();
        damaged[3] ^= 0x10;
        let (recs, stats) = decode_all(&[&frames[0][..], &damaged, &later[0]].concat());
        assert_eq!(recs.len(), 5);
        assert_eq!((stats.corrupt_frames, stats.unexplained_gaps), (1, 1));
    }

    #[test]
    fn a_flight_trace_counts_a_batch_as_its_records() {
        let mut h = sample::records()[0];
        if let Event::Header { ref mut options, .. } = h.event {
            *options |= 1 << STREAM_FLIGHT_BIT;
        }
        let h = Record { cpu: 0, seq: 0, ..h };
        let stats = enc(&[ev(10, Event::FlightStats { events: 9, streamed: 5, overwritten: 0 })]);
        let batch = batch_frame(&[trap(5), trap(3), trap(9)]);
        let (_, s) = decode_all(&[enc(&[h]), batch.clone(), stats.clone()].concat());
        assert!(s.is_clean(), "{s}");
        let (_, s) = decode_all(&[enc(&[h]), stats].concat());
        assert_eq!(s.unexplained_gaps, 1, "the batch's three records are missing");
    }

    #[test]
    fn sequence_checking() {
        let gaps = |recs: &[Record<'_>]| decode_all(&enc(recs)).1.unexplained_gaps;
        assert_eq!(gaps(&[trap(0), trap(1), trap(2)]), 0);
        assert_eq!(gaps(&[trap(5), trap(6)]), 0, "first record sets the base");
        assert_eq!(gaps(&[trap(0), trap(1), trap(3)]), 1);
        assert_eq!(gaps(&[trap(0), trap(2), trap(4)]), 2);
        assert_eq!(gaps(&[trap(0), trap(1), trap(1)]), 1, "repeat");
        assert_eq!(gaps(&[trap(0), trap(9), trap(3)]), 2, "backwards");
        // dropped{count} explains exactly `count` missing numbers before it.
        assert_eq!(gaps(&[trap(0), ev(4, Event::Dropped { count: 3 }), trap(5)]), 0);
        assert_eq!(gaps(&[trap(0), ev(1, Event::Dropped { count: 0 }), trap(2)]), 0);
        assert_eq!(gaps(&[trap(0), ev(5, Event::Dropped { count: 3 }), trap(6)]), 1);
        assert_eq!(gaps(&[trap(0), ev(2, Event::Dropped { count: 3 })]), 1);
        // A header after the first record does not reset the base: a
        // "restart" with seq 0 is a gap (and reported as a mid-stream header).
        let h = sample::records()[0];
        assert_eq!(gaps(&[trap(7), trap(8), h, trap(1)]), 1);
        assert_eq!(gaps(&[trap(7), Record { cpu: 0, seq: 3, ..h }]), 1);
        assert_eq!(gaps(&[trap(7), Record { cpu: 0, seq: 8, ..h }]), 0);

        let (_, stats) = decode_all(&enc(&[trap(0), ev(4, Event::Dropped { count: 3 })]));
        assert_eq!(stats.hyp_dropped, 3);
        assert!(stats.is_clean(), "{stats}");
    }

    /// Each CPU numbers its own records: interleaved streams are clean, a
    /// jump in one CPU's numbers is a gap of that CPU, and a CPU's dropped
    /// record explains its own missing numbers only.
    #[test]
    fn sequence_checking_per_cpu() {
        let on = |cpu, r: Record<'static>| Record { cpu, ..r };
        let check = |recs: &[Record<'_>]| decode_all(&enc(recs)).1;
        let s = check(&[trap(0), on(1, trap(0)), trap(1), on(2, trap(7)), on(1, trap(1)), trap(2)]);
        assert!(s.is_clean(), "{s}");
        assert_eq!(s.per_cpu[&0].records, 3);
        assert_eq!(s.per_cpu[&1].records, 2);
        assert_eq!(s.per_cpu[&2].records, 1);
        let s = check(&[trap(0), on(1, trap(0)), trap(1), on(1, trap(2)), trap(2)]);
        assert_eq!(s.unexplained_gaps, 1);
        assert_eq!(s.per_cpu[&1].unexplained_gaps, 1);
        assert_eq!(s.per_cpu[&0].unexplained_gaps, 0);
        // CPU 1's drop explains CPU 1's numbers, not CPU 0's.
        let s = check(&[trap(0), on(1, trap(0)), on(1, ev(4, Event::Dropped { count: 3 })), trap(1)]);
        assert!(s.is_clean(), "{s}");
        assert_eq!(s.per_cpu[&1].hyp_dropped, 3);
        let s = check(&[trap(0), on(1, trap(0)), on(1, ev(4, Event::Dropped { count: 3 })), trap(4)]);
        assert_eq!(s.unexplained_gaps, 1);
        // The text summary names each CPU when more than one wrote.
        assert!(
            s.to_string().contains("per CPU: cpu0 2 records 0 entries 0 hazards 1 gaps, cpu1 2 records"),
            "{s}"
        );
    }

    #[test]
    fn gap_items_precede_the_record() {
        let mut items = Vec::new();
        let mut dec = StreamDecoder::new();
        let mut sink = |i: &Item<'_>| -> Result<(), Infallible> {
            items.push(match i {
                Item::Record { record, .. } => format!("rec {}", record.seq),
                Item::Gap { expected, got, dropped, .. } => format!("gap {expected} {got} {dropped:?}"),
                Item::FlightShort { streamed, received, .. } => format!("flight {streamed} {received}"),
                Item::Corrupt { error, offset } => format!("corrupt {} {offset}", error.code()),
                Item::TruncatedTail { offset, bytes } => format!("tail {offset} {bytes}"),
                Item::Text { text, .. } => format!("text {text}"),
                Item::MidStreamHeader { seq, offset } => format!("header {seq} {offset}"),
                Item::NoRecords { bytes } => format!("no records {bytes}"),
            });
            Ok(())
        };
        let bytes = enc(&[trap(0), trap(2), ev(9, Event::Dropped { count: 2 })]);
        let Ok(()) = dec.feed(&bytes, &mut sink);
        let Ok(stats) = dec.finish(&mut sink);
        assert_eq!(items, ["rec 0", "gap 1 2 None", "rec 2", "gap 3 9 Some(2)", "rec 9"]);
        assert_eq!(stats.unexplained_gaps, 2);
    }

    /// Items of a whole-buffer decode, as short strings, and the stats.
    fn item_list(bytes: &[u8]) -> (Vec<String>, DecodeStats) {
        let mut items = Vec::new();
        let mut sink = |i: &Item<'_>| -> Result<(), Infallible> {
            items.push(match i {
                Item::Record { record, .. } => format!("rec {}", record.seq),
                Item::Gap { expected, got, .. } => format!("gap {expected} {got}"),
                Item::FlightShort { streamed, received, .. } => format!("flight {streamed} {received}"),
                Item::Corrupt { error, offset } => format!("corrupt {} {offset}", error.code()),
                Item::TruncatedTail { offset, bytes } => format!("tail {offset} {bytes}"),
                Item::Text { .. } => "text".into(),
                Item::MidStreamHeader { seq, offset } => format!("header {seq} {offset}"),
                Item::NoRecords { bytes } => format!("no records {bytes}"),
            });
            Ok(())
        };
        let mut dec = StreamDecoder::new();
        let Ok(()) = dec.feed(bytes, &mut sink);
        let Ok(stats) = dec.finish(&mut sink);
        (items, stats)
    }

    #[test]
    fn a_mid_stream_header_is_reported_and_never_clean() {
        // The attack of issue #12: after a real run, a restart header with
        // seq 0, a fake hazard and a `dropped` explaining nothing.
        let h = sample::records()[0];
        let good = enc(&[h, Record { seq: 1, ..trap(1) }, trap(2)]);
        let mut bytes = good.clone();
        let forged = [h, ev(1, Event::Dropped { count: 0 }), trap(2)];
        bytes.extend(enc(&forged));
        let (items, stats) = item_list(&bytes);
        assert_eq!(items[3], format!("header 0 {}", good.len()), "{items:?}");
        assert_eq!(items[4], "gap 3 0", "{items:?}");
        assert_eq!(stats.mid_stream_headers, 1);
        assert!(!stats.trace_intact() && !stats.is_clean(), "{stats}");
        assert!(stats.to_string().ends_with("NOT CLEAN: unexplained gaps, mid-stream header"), "{stats}");
        // Even with consistent seqs a second header is a problem.
        let (items, stats) = item_list(&enc(&[trap(0), Record { seq: 1, ..h }, trap(2)]));
        let at = enc(&[trap(0)]).len();
        assert_eq!(items, ["rec 0".to_string(), format!("header 1 {at}"), "rec 1".into(), "rec 2".into()]);
        assert_eq!(stats.unexplained_gaps, 0);
        assert!(!stats.trace_intact());
        // A header that is the first record (after garbage) is fine.
        let mut bytes = b"\x13junk\x00".to_vec();
        bytes.extend(enc(&[h, Record { seq: 1, ..trap(1) }]));
        let (_, stats) = item_list(&bytes);
        assert_eq!(stats.mid_stream_headers, 0);
    }

    #[test]
    fn empty_zero_and_garbage_inputs_have_no_records_and_are_not_clean() {
        for (bytes, name) in
            [(vec![], "empty"), (vec![0u8; 4096], "zeros"), (b"porwatch\x00".to_vec(), "junk")]
        {
            let (items, stats) = item_list(&bytes);
            assert_eq!(items.last().unwrap(), &format!("no records {}", bytes.len()), "{name}");
            assert_eq!(stats.records, 0);
            assert!(!stats.trace_intact() && !stats.is_clean(), "{name}");
            assert!(stats.to_string().contains("NOT CLEAN: no records"), "{name}: {stats}");
        }
    }

    #[test]
    fn an_unterminated_tail_of_any_length_is_truncated() {
        let good = enc(&[trap(0)]);
        for len in [1, 5, MAX_FRAME - 1, MAX_FRAME, MAX_FRAME + 1, 5000] {
            let mut bytes = good.clone();
            bytes.extend(std::iter::repeat_n(0x42u8, len));
            let (items, stats) = item_list(&bytes);
            assert_eq!(items, ["rec 0".to_string(), format!("tail {} {len}", good.len())], "{len}");
            assert!(stats.truncated_tail && !stats.trace_intact(), "{len}");
        }
        // Terminated, the oversize frame is a corrupt frame instead.
        let mut bytes = good.clone();
        bytes.extend(std::iter::repeat_n(0x42u8, 500));
        bytes.push(0);
        let (items, stats) = item_list(&bytes);
        assert_eq!(items, ["rec 0".to_string(), format!("corrupt too_long {}", good.len())]);
        assert!(!stats.truncated_tail);
    }

    #[test]
    fn injected_undefs_and_tracker_overflow_are_counted() {
        let undef = |seq, action| ev(seq, Event::UnknownTrap { esr: 0x6234_d028, elr: 0x40, far: 0, action });
        let pt = |seq, overflows| {
            ev(
                seq,
                Event::PtStats {
                    tables: 4096,
                    max_tables: 4096,
                    table_writes: 0,
                    stores: 0,
                    hazards: 0,
                    coverage_gaps: 0,
                    roots_dropped: 0,
                    overflows,
                    roots_released: 0,
                    fast_stores: 0,
                    mops_steps: 0,
                    stepped_stores: 0,
                    released_pages: 0,
                    leaves_opened: 0,
                },
            )
        };
        let (_, stats) = decode_all(&enc(&[trap(0), undef(1, 3), undef(2, 2), undef(3, 2), pt(4, 0)]));
        assert_eq!((stats.undefs_injected, stats.first_undef_seq), (2, Some(2)));
        assert!(stats.trace_intact() && !stats.is_clean());
        let (_, stats) = decode_all(&enc(&[trap(0), pt(1, 523)]));
        assert_eq!(stats.tables_unwatched, 523);
        assert!(stats.to_string().ends_with("NOT CLEAN: tables unwatched"), "{stats}");
        let (_, stats) = decode_all(&enc(&[trap(0), pt(1, 0)]));
        assert!(stats.is_clean(), "{stats}");
    }

    #[test]
    fn timestamps_follow_header_cntfrq() {
        assert_eq!(
            Timestamp::from_ticks(125_000_000, 62_500_000),
            Some(Timestamp { secs: 2, micros: 0, cpu: 0 })
        );
        assert_eq!(
            Timestamp::from_ticks(62_500_063, 62_500_000),
            Some(Timestamp { secs: 1, micros: 1, cpu: 0 })
        );
        assert_eq!(Timestamp::from_ticks(u64::MAX, 1), Some(Timestamp { secs: u64::MAX, micros: 0, cpu: 0 }));
        assert_eq!(
            Timestamp::from_ticks(u64::MAX, u64::MAX - 1),
            Some(Timestamp { secs: 1, micros: 0, cpu: 0 })
        );
        assert_eq!(Timestamp::from_ticks(5, 0), None);

        let mut h = sample::records()[0];
        let mut times = Vec::new();
        let mut sink = |i: &Item<'_>| -> Result<(), Infallible> {
            if let Item::Record { time, .. } = i {
                times.push(*time);
            }
            Ok(())
        };
        let mut dec = StreamDecoder::new();
        let Ok(()) = dec.feed(&enc(&[trap(0), Record { cpu: 0, seq: 1, ts: 62_500_000, ..h }]), &mut sink);
        if let Event::Header { ref mut cntfrq, .. } = h.event {
            *cntfrq = 0;
        }
        let Ok(()) = dec.feed(&enc(&[Record { cpu: 0, seq: 2, ..h }, trap(3)]), &mut sink);
        assert_eq!(times, [None, Some(Timestamp { secs: 1, micros: 0, cpu: 0 }), None, None]);
    }

    #[test]
    fn corrupt_frames_counted_and_skipped() {
        let mut bytes = enc(&[trap(0)]);
        let good_len = bytes.len();
        let mut bad = enc(&[trap(1)]);
        bad[3] ^= 0x04;
        bytes.extend(bad);
        // A frame with a valid CRC whose payload is cut inside `elr`.
        let full = [0x05u8, 0x02, 0x14, 0x80, 0x80, 0x80, 0xd0, 0x02, 0x80];
        let mut raw = full.to_vec();
        raw.extend(porwatch_trace::crc16(&full).to_le_bytes());
        let mut cobs = [0u8; MAX_FRAME];
        let n = porwatch_trace::cobs::encode(&raw, &mut cobs).unwrap();
        bytes.extend_from_slice(&cobs[..n]);
        bytes.push(0);
        bytes.extend(enc(&[trap(3)]));

        let mut seen = Vec::new();
        let mut dec = StreamDecoder::new();
        let Ok(()) = dec.feed(&bytes, &mut |i: &Item<'_>| -> Result<(), Infallible> {
            if let Item::Corrupt { error, offset } = i {
                seen.push((*error, *offset));
            }
            Ok(())
        });
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], (DecodeError::Crc, good_len as u64));
        assert_eq!(seen[1].0, DecodeError::Truncated { field: "elr" });
        let (recs, stats) = decode_all(&bytes);
        assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 3]);
        assert_eq!(stats.corrupt_frames, 2);
        assert_eq!(stats.unexplained_gaps, 1);
        assert!(!stats.trace_intact());
    }

    #[test]
    fn truncated_tail_reported() {
        let bytes = sample::trace();
        let (_, stats) = decode_all(&bytes[..bytes.len() - 3]);
        assert!(stats.truncated_tail);
        assert!(!stats.trace_intact());
        // Cut exactly at a frame boundary: clean, one record fewer.
        let first = enc(&sample::records()[..1]).len();
        let (recs, stats) = decode_all(&bytes[..first]);
        assert_eq!(recs.len(), 1);
        assert!(stats.is_clean(), "{stats}");
    }

    /// Feeds input through `decode_stream` in both formats: must not panic.
    fn survive(bytes: &[u8]) -> DecodeStats {
        let mut stats = None;
        for json in [false, true] {
            let mut out = Vec::new();
            let opts = DecodeOptions { json, summary: json, ..Default::default() };
            let s = decode_stream(bytes, &mut out, &opts, None).expect("in-memory IO");
            if json {
                for line in String::from_utf8(out).expect("UTF-8 output").lines() {
                    serde_json::from_str::<serde_json::Value>(line).expect(line);
                }
            }
            stats = Some(s);
        }
        stats.unwrap()
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..300 {
            let len = rng.below(2000);
            let density = 1 + rng.below(255); // vary how often 0x00 appears
            let bytes: Vec<u8> =
                (0..len).map(|_| if rng.below(density) == 0 { 0 } else { rng.next() as u8 }).collect();
            survive(&bytes);
        }
        survive(&[]);
        survive(&[0; 1000]);
        survive(&[0xff; 5000]);
    }

    #[test]
    fn bit_flipped_and_truncated_sample_never_panics() {
        let trace = sample::trace();
        let mut rng = Rng(42);
        for _ in 0..500 {
            let mut bytes = trace.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
            let stats = survive(&bytes);
            // Either damage was reported, or every record still decoded.
            assert!(!stats.trace_intact() || stats.records == 15, "{stats}");
        }
        for cut in 0..trace.len() {
            let stats = survive(&trace[..cut]);
            assert!(stats.records <= 15);
            if trace[cut - usize::from(cut > 0)] != 0 && cut > 0 {
                assert!(stats.truncated_tail, "cut {cut}");
            }
            // No cut of a trace is ever intact unless it ends on a frame.
            let on_boundary = cut > 0 && trace[cut - 1] == 0;
            assert_eq!(stats.trace_intact(), on_boundary, "cut {cut}: {stats}");
        }
    }

    /// Serves `chunks` one per read call.
    struct Chunks(Vec<Vec<u8>>);
    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let c = self.0.remove(0);
            buf[..c.len()].copy_from_slice(&c);
            Ok(c.len())
        }
    }

    /// Records the text written before each flush.
    #[derive(Default)]
    struct Flushes {
        buf: Vec<u8>,
        at_flush: Vec<String>,
    }
    impl Write for Flushes {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.buf.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.at_flush.push(String::from_utf8_lossy(&self.buf).into_owned());
            Ok(())
        }
    }

    #[test]
    fn stream_prints_each_chunk_as_it_arrives_and_tees() {
        let recs = sample::records();
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut buf = [0u8; MAX_FRAME];
        for r in &recs {
            let n = encode_frame(r, &mut buf).unwrap();
            // Split each frame in two reads.
            chunks.push(buf[..n / 2].to_vec());
            chunks.push(buf[n / 2..n].to_vec());
        }
        let mut out = Flushes::default();
        let mut tee = Vec::new();
        let opts = DecodeOptions { json: false, summary: false, ..Default::default() };
        let stats = decode_stream(Chunks(chunks), &mut out, &opts, Some(&mut tee)).unwrap();
        assert!(stats.trace_intact(), "{stats}");
        assert_eq!(tee, sample::trace());
        // After the second chunk (end of the first frame) the header is out.
        assert!(!out.at_flush[0].contains("header"));
        assert!(out.at_flush[1].contains("#0 header"));
        assert!(out.at_flush[3].contains("#1 hyp_boot"));
        assert_eq!(String::from_utf8(out.buf).unwrap().lines().count(), recs.len());
    }

    #[test]
    fn json_summary_is_last_line() {
        let mut out = Vec::new();
        let opts = DecodeOptions { json: true, summary: true, ..Default::default() };
        decode_stream(&sample::trace()[..], &mut out, &opts, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["event"], "summary");
        assert_eq!(last["records"], 16);
        assert_eq!(last["per_cpu"]["1"]["records"], 3);
        assert_eq!(last["trace_intact"], true);
        assert_eq!(last["problems"], serde_json::json!(["hyp_failed", "undef_injected"]));
        assert_eq!(last["clean"], false);
        assert_eq!(last["kinds"]["psci"], 2);
        assert_eq!(last["guest_exit"]["reason"], "hyp_error");
        assert_eq!(text.lines().count(), 17);
    }
}

#[cfg(test)]
mod text_message_tests {
    use super::*;
    use porwatch_trace::{encode_frame, Event, Record, MAX_FRAME};

    fn frame(seq: u64) -> Vec<u8> {
        let mut buf = [0u8; MAX_FRAME];
        let rec = Record { cpu: 0, seq, ts: 1, event: Event::Dropped { count: 0 } };
        let n = encode_frame(&rec, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    fn items(bytes: &[u8]) -> (Vec<String>, DecodeStats) {
        let mut v = Vec::new();
        let mut dec = StreamDecoder::new();
        let mut sink = |i: &Item<'_>| -> Result<(), std::convert::Infallible> {
            v.push(match i {
                Item::Text { text, .. } => format!("text {text}"),
                Item::Corrupt { .. } => "corrupt".into(),
                Item::Record { record, .. } => format!("rec {}", record.seq),
                Item::NoRecords { .. } => "no records".into(),
                _ => "other".into(),
            });
            Ok(())
        };
        let Ok(()) = dec.feed(bytes, &mut sink);
        let Ok(stats) = dec.finish(&mut sink);
        (v, stats)
    }

    #[test]
    fn hyp_text_between_delimiters_is_a_message_not_corruption() {
        let mut b = frame(0);
        b.extend_from_slice(b"\0porwatch: PANIC: boom at x.rs:1\r\n\0");
        b.extend(frame(1));
        let (v, stats) = items(&b);
        assert_eq!(v, ["rec 0", "text porwatch: PANIC: boom at x.rs:1", "rec 1"]);
        assert_eq!(stats.text_messages, 1);
        assert!(stats.is_clean());
    }

    #[test]
    fn long_hyp_text_is_still_a_message_and_other_text_is_corrupt() {
        let long = format!("\0porwatch: {}\n\0", "x".repeat(600));
        let (v, stats) = items(long.as_bytes());
        assert_eq!(v.len(), 2);
        assert!(v[0].starts_with("text porwatch: xxx"));
        assert_eq!(v[1], "no records");
        assert_eq!(stats.corrupt_frames, 0);
        let (v, stats) = items(b"\0hello world\n\0");
        assert_eq!(v, ["corrupt", "no records"]);
        assert_eq!(stats.corrupt_frames, 1);
    }
}
