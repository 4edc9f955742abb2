//! The trace as hyp emits it: records are encoded (porwatch-trace), queued in
//! a ring and drained to the trace sink. A record that does not fit is
//! counted, never silently lost: the count goes out as a `dropped` record as
//! soon as there is room (its sequence number follows the dropped ones, so
//! the reader sees exactly which are missing). Records that must not be lost
//! (hazards, guest exit, panic) wait for room instead.
//!
//! Every record names the CPU that made it (porwatch's dense index, from the
//! per-CPU block) and carries that CPU's own sequence number, so each CPU's
//! records and drops are accounted for separately; the ring itself is
//! shared (one lock), and a CPU's `dropped` record goes out from that CPU.
//!
//! With `porwatch.stream=flight` a CPU's exception entries, returns and POR
//! writes go into that CPU's flight ring ([`FLIGHT`], docs/flight.md)
//! instead: unencoded, under the CPU's own lock, without the shared one.
//! They leave the ring only as an entry transition (an entry whose code
//! changed POR_EL1: both records) or as a hazard's cause chain
//! ([`emit_cause_chain`]); what the ring overwrites is counted and reported
//! (`flight_stats`). Sequence numbers stay one numbering per CPU of every
//! record ([`SEQ`]), so the records that refer to others by seq keep their
//! meaning.
//!
//! Format 3: a CPU's hot records (exception entries and returns, POR
//! writes, traps) are not framed one by one but gathered in that CPU's open
//! batch (porwatch-trace `Batch`: one frame of many records, each coded
//! against the earlier ones, docs/trace-format.md "Batches"). A batch goes
//! into the ring when it is full, before any other record of its CPU,
//! before any reliable record (every CPU's: it follows all that came
//! before it), when it is 1/[`BATCH_MAX_AGE_DIV`] s (20 ms) old at the next
//! hot record of any CPU or the next Rust trap of any CPU
//! ([`close_aged_batches`]), before its CPU sleeps in CPU_SUSPEND
//! ([`before_idle`]), and at flush. A batch that does not fit in the ring
//! is counted as that many dropped records.
//!
//! A `dropped` report goes out before the CPU's next record framed on its
//! own, taking its seq before that record does and that record's time (a
//! queued record's is older than now: a CPU's times never go back).
//!
//! Two sinks:
//! * the trace UART (the normal case): the ring is drained into the PL011's
//!   FIFO at every record, a byte at a time, as far as the FIFO takes it;
//! * a host file written with Arm semihosting
//!   (`porwatch.trace=semihosting:FILE`, for QEMU `secure=on` where the
//!   second PL011 is Secure-only): each SYS_WRITE is a call into the
//!   debugger or model (in QEMU a host system call), so the ring is written
//!   in contiguous chunks: at a record when [`FILE_BATCH`] bytes are queued
//!   or the last write is 1/[`FILE_MAX_AGE_DIV`] s (20 ms) old (so a live
//!   reader is not left waiting), at every reliable record and at flush. A
//!   write is synchronous and complete: nothing is lost. The UART path pays
//!   nothing for this: one branch, after the UART's own.
use crate::arch::pl011::Pl011;
use crate::arch::semihosting::HostFile;
use crate::arch::{fast_path, percpu};
use crate::console::{Msg, To};
use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0};
use core::sync::atomic::{AtomicU64, Ordering};
use porwatch_monitor::cmdline::Stream;
use porwatch_monitor::cpus::MAX_CPUS;
use porwatch_monitor::flight::{
    streams_transition, FlightEvent, FlightRing, Kind, FIELDS, POR_AT_ENTRY, POR_ENTRY_SEQ, POR_NEW, POR_OLD,
};
use porwatch_trace::ring::Ring;
use porwatch_trace::{batchable, encode_frame, Batch, Event, Record, MAX_FRAME};
use spin::Mutex;

const RING_BYTES: usize = 256 * 1024;
/// Flight mode: a `flight_stats` record every this many ring events of a CPU.
const FLIGHT_STATS_PERIOD: u64 = fast_path::FLIGHT_STATS_PERIOD;
/// File sink: write once this much is queued.
const FILE_BATCH: usize = 4096;
/// File sink: write when the last write is older than 1/this s.
const FILE_MAX_AGE_DIV: u64 = 50;
/// An open batch goes out once it is older than 1/this s, whatever comes.
const BATCH_MAX_AGE_DIV: u64 = 50;

/// Where the trace goes.
#[derive(Clone, Copy)]
pub enum Sink {
    Uart(Pl011),
    File(HostFile),
}

struct Tracer {
    ring: Ring<RING_BYTES>,
    uart: Option<Pl011>,
    /// The semihosting file sink (never together with `uart`).
    file: Option<HostFile>,
    /// File sink: counter ticks after which queued bytes are written.
    max_age: u64,
    /// File sink: CNTPCT at the last write.
    last_write: u64,
    /// Per CPU: records dropped not yet reported, and records put in the
    /// ring (flight_stats.streamed).
    dropped: [u64; MAX_CPUS],
    streamed: [u64; MAX_CPUS],
    /// Per CPU: its open batch of hot records (format 3, docs/trace-format.md
    /// "Batches"), and CNTPCT when it was opened.
    batches: [Batch; MAX_CPUS],
    opened: [u64; MAX_CPUS],
    /// `porwatch.selftest=drop|drop-half`: which droppable frames the ring
    /// refuses, as if full.
    drop_test: DropTest,
    /// Per CPU: its last frame queued was a `dropped` report.
    after_report: [bool; MAX_CPUS],
}

/// `porwatch.selftest=drop|drop-half` (tests only): the ring refuses
/// droppable frames as if full; `dropped` reports and reliable records
/// still go in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum DropTest {
    Off,
    /// Every droppable frame.
    All,
    /// A droppable frame unless its CPU's last frame was a `dropped`
    /// report.
    Half,
}

/// What a frame is, to [`Tracer::ring_push`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    Droppable,
    Reliable,
    DropReport,
}

/// The oldest `opened` of the open batches (u64::MAX: none). Written under
/// [`TRACER`]; read without it by [`close_aged_batches`], so that the trap
/// path pays one load and a compare when nothing is due.
static OLDEST_OPEN: AtomicU64 = AtomicU64::new(u64::MAX);
/// Counter ticks after which an open batch is closed (set once by [`init`]).
static BATCH_MAX_AGE: AtomicU64 = AtomicU64::new(u64::MAX);

/// Per CPU: the flight ring. Locked by its own CPU only (and by the CPU
/// ending the run, for a parked CPU's records): never contended. Lock
/// order: a CPU's tap lock, then its FLIGHT lock, then TRACER.
static FLIGHT: [Mutex<FlightRing>; MAX_CPUS] = [const { Mutex::new(FlightRing::new()) }; MAX_CPUS];

/// Per CPU: the next sequence number, in the CPU's fast-path block (the
/// assembly takes seqs too when it pushes into the ring itself). Taken by
/// the CPU itself (and by the CPU ending the run for a parked one).
fn next_seq(cpu: usize) -> u64 {
    fast_path::take_seq(cpu)
}

/// Flight mode: CPU `cpu`'s ring, for the assembly to push into (a
/// `FlightRing` at a fixed address: the static's data; None: not flight
/// mode). Only that CPU pushes, and its Rust holds the lock when it reads
/// or writes the ring, which the assembly never runs during.
pub fn flight_ring(cpu: usize) -> Option<u64> {
    flight().then(|| &raw mut *FLIGHT[cpu.min(MAX_CPUS - 1)].lock() as u64)
}

fn flight() -> bool {
    crate::boot::config().opts.stream == Stream::Flight
}

static TRACER: Mutex<Tracer> = Mutex::new(Tracer {
    ring: Ring::new(),
    uart: None,
    file: None,
    max_age: 0,
    last_write: 0,
    dropped: [0; MAX_CPUS],
    streamed: [0; MAX_CPUS],
    batches: [const { Batch::new() }; MAX_CPUS],
    opened: [0; MAX_CPUS],
    drop_test: DropTest::Off,
    after_report: [false; MAX_CPUS],
});

/// Sets the trace sink (None: the trace is counted but goes nowhere).
pub fn init(sink: Option<Sink>) {
    let mut t = TRACER.lock();
    BATCH_MAX_AGE.store(CNTFRQ_EL0.get() / BATCH_MAX_AGE_DIV, Ordering::Relaxed);
    match sink {
        Some(Sink::Uart(u)) => t.uart = Some(u),
        Some(Sink::File(f)) => {
            t.file = Some(f);
            t.max_age = CNTFRQ_EL0.get() / FILE_MAX_AGE_DIV;
        }
        None => {}
    }
}

/// Records `event`; drops it (counted) if the ring is full. Returns the
/// record's sequence number in this CPU's numbering (consumed even if it
/// was dropped).
#[inline]
pub fn emit(event: Event) -> u64 {
    emit_at(percpu::index(), now(), event)
}

/// Records `event` of CPU `cpu` that happened at counter value `ts`
/// (queued by the fast paths and emitted later, in order: tap.rs `drain`;
/// another CPU's only at the end of the run).
#[inline]
pub fn emit_at(cpu: usize, ts: u64, event: Event) -> u64 {
    let cpu = cpu.min(MAX_CPUS - 1);
    if flight() {
        if let Some(e) = ring_event(&event) {
            return record_flight(cpu, ts, e);
        }
    }
    let mut t = TRACER.lock();
    let seq = t.record_at(cpu, ts, event, false);
    t.drain();
    seq
}

/// The ring form of `event`, for the kinds the flight ring keeps.
#[inline]
fn ring_event(event: &Event) -> Option<FlightEvent> {
    let (kind, fields) = match *event {
        Event::ExcEntry { vector, esr, elr, spsr, far, por, depth } => {
            (Kind::ExcEntry, [vector, esr, elr, spsr, far, por, depth])
        }
        Event::ExcReturn { elr, spsr, por, depth } => (Kind::ExcReturn, [elr, spsr, por, depth, 0, 0, 0]),
        Event::PorWrite { pc, reg, old, new, at_entry, entry_seq, sampled } => {
            (Kind::PorWrite, [pc, reg, old, new, at_entry, entry_seq, sampled])
        }
        Event::Trap { esr, elr, outcome } => (Kind::Trap, [esr, elr, outcome, 0, 0, 0, 0]),
        _ => return None,
    };
    Some(FlightEvent { seq: 0, ts: 0, kind, streamed: false, fields })
}

/// The record a ring event stands for.
fn ring_record(e: &FlightEvent) -> Event<'static> {
    let f: [u64; FIELDS] = e.fields;
    match e.kind {
        Kind::ExcEntry => Event::ExcEntry {
            vector: f[0],
            esr: f[1],
            elr: f[2],
            spsr: f[3],
            far: f[4],
            por: f[5],
            depth: f[6],
        },
        Kind::ExcReturn => Event::ExcReturn { elr: f[0], spsr: f[1], por: f[2], depth: f[3] },
        Kind::PorWrite => Event::PorWrite {
            pc: f[0],
            reg: f[1],
            old: f[2],
            new: f[3],
            at_entry: f[4],
            entry_seq: f[5],
            sampled: f[6],
        },
        Kind::Trap => Event::Trap { esr: f[0], elr: f[1], outcome: f[2] },
    }
}

/// Flight mode: records `e` of CPU `cpu` at `ts` into its ring; an entry
/// transition (a POR write by exception-entry code that takes write away
/// from some pkey) goes out too, with its entry. Returns the event's seq.
fn record_flight(cpu: usize, ts: u64, mut e: FlightEvent) -> u64 {
    let mut ring = FLIGHT[cpu].lock();
    e.seq = next_seq(cpu);
    e.ts = ts;
    let transition = e.kind == Kind::PorWrite
        && streams_transition(e.fields[POR_AT_ENTRY] != 0, e.fields[POR_OLD], e.fields[POR_NEW]);
    e.streamed = transition;
    ring.push(e);
    if transition {
        let mut t = TRACER.lock();
        if let Some(entry) = ring.find_mut(e.fields[POR_ENTRY_SEQ]) {
            if !entry.streamed {
                entry.streamed = true;
                let entry = *entry;
                t.send(cpu, entry.seq, entry.ts, ring_record(&entry), false);
            }
        }
        t.send(cpu, e.seq, ts, ring_record(&e), false);
        t.drain();
    }
    if ring.recorded.is_multiple_of(FLIGHT_STATS_PERIOD) {
        emit_flight_stats(cpu, &ring);
    }
    e.seq
}

/// Flight mode: `cpu`'s accounting (reliable).
fn emit_flight_stats(cpu: usize, ring: &FlightRing) {
    let mut t = TRACER.lock();
    let ts = now();
    // What goes out before this record counts in `streamed`: the open
    // batches and a pending `dropped` record, so both go out first.
    t.before_unbatched(cpu, ts, true);
    let streamed = t.streamed[cpu] + 1;
    let event = Event::FlightStats { events: ring.recorded, streamed, overwritten: ring.overwritten() };
    t.record_at(cpu, ts, event, true);
    t.drain();
}

/// Flight mode: every CPU's `flight_stats`, at the end of the run (the
/// other CPUs are parked).
pub fn emit_flight_stats_all() {
    if !flight() {
        return;
    }
    for (cpu, ring) in FLIGHT.iter().enumerate() {
        let ring = ring.lock();
        if ring.recorded > 0 || cpu == percpu::index() {
            emit_flight_stats(cpu, &ring);
        }
    }
}

/// Flight mode: before a hazard on this CPU, its cause chain from the ring
/// (docs/flight.md): a `cause_chain` record, then every entry, return and
/// POR write since the write of POR `reg` (0 POR_EL1, 1 POR_EL0) that took
/// write away from `pkey` (None: unknown; the whole ring), oldest first,
/// with their own seq and ts. All reliable. Nothing with `stream=all` (the
/// stream has the chain already).
pub fn emit_cause_chain(reg: u64, pkey: Option<u8>) {
    if !flight() {
        return;
    }
    let cpu = percpu::index();
    let mut ring = FLIGHT[cpu].lock();
    let span = ring.chain(reg, pkey);
    let first_seq = ring.chain_links(span.len).next().map_or(0, |e| e.seq);
    let mut t = TRACER.lock();
    let header = Event::CauseChain {
        events: span.links as u64,
        first_seq,
        complete: span.found as u64,
        overwritten: ring.overwritten(),
        wrapped: u64::from(ring.has_wrapped()),
    };
    t.record_at(cpu, now(), header, true);
    for e in ring.chain_links(span.len) {
        t.send(cpu, e.seq, e.ts, ring_record(e), true);
    }
    t.drain();
    drop(t);
    // Sent now: not lost when overwritten.
    ring.mark_streamed(span.len);
}

/// Records `event`, waiting for the sink to make room if needed; with the
/// file sink the record (and everything before it) is written at once.
pub fn emit_reliable(event: Event) -> u64 {
    let cpu = percpu::index().min(MAX_CPUS - 1);
    let mut t = TRACER.lock();
    let seq = t.record(cpu, event, true);
    t.drain();
    t.write_file();
    seq
}

/// At every trap into Rust, any CPU's: closes the batches that are older
/// than the maximum age. Without this, only a hot record checks ages, and
/// a CPU that stops making them (idle, or all it does stays in the flight
/// ring) would hold its batch until its next record or the end of the run.
/// Costs a counter read, a load and a compare when nothing is due.
#[inline]
pub fn close_aged_batches() {
    let t = now();
    if t.saturating_sub(OLDEST_OPEN.load(Ordering::Relaxed)) < BATCH_MAX_AGE.load(Ordering::Relaxed) {
        return;
    }
    let mut tr = TRACER.lock();
    tr.close_aged(t);
    tr.drain();
}

/// This CPU is about to stop running the guest for a while (a CPU_SUSPEND
/// handed to firmware): its open batch, and a pending `dropped`, go out now
/// rather than when it wakes.
pub fn before_idle() {
    let cpu = percpu::index().min(MAX_CPUS - 1);
    let mut t = TRACER.lock();
    t.before_unbatched(cpu, now(), false);
    t.drain();
}

/// `porwatch.selftest=drop|drop-half`: from now on the ring refuses
/// droppable records as `test` says (tests only).
pub fn refuse_droppable(test: DropTest) {
    TRACER.lock().drop_test = test;
}

/// Sends everything queued and waits until it has left the UART.
pub fn flush() {
    let mut t = TRACER.lock();
    t.flush();
}

/// Records `event` and flushes, for the panic path: does not wait for a lock
/// held by the code that panicked (it would never be released).
pub fn emit_from_panic(event: Event) {
    let cpu = percpu::index().min(MAX_CPUS - 1);
    if let Some(mut t) = TRACER.try_lock() {
        let _ = t.record(cpu, event, true);
        t.flush();
    }
}

impl Tracer {
    /// Records `event` for CPU `cpu` (in range: percpu::index).
    fn record(&mut self, cpu: usize, event: Event, reliable: bool) -> u64 {
        self.record_at(cpu, now(), event, reliable)
    }

    /// Records `event` for CPU `cpu` with timestamp `ts` (a queued record's
    /// own, which precedes any record the CPU makes after it), with the
    /// CPU's next seq.
    fn record_at(&mut self, cpu: usize, ts: u64, event: Event, reliable: bool) -> u64 {
        let cpu = cpu.min(MAX_CPUS - 1);
        if self.joins_batch(cpu, &event, reliable) {
            let seq = next_seq(cpu);
            self.batch(cpu, Record { cpu: cpu as u32, seq, ts, event });
            return seq;
        }
        // A pending `dropped` takes its seq before this record does: it
        // follows the dropped ones.
        self.before_unbatched(cpu, ts, reliable);
        let seq = next_seq(cpu);
        self.push(cpu, seq, ts, event, reliable);
        seq
    }

    /// Sends `event` of CPU `cpu` with seq `seq` (its next, or a flight
    /// ring's event's own: a transition or a cause chain). A hot record
    /// joins the CPU's batch; any other closes it first (all of them, for
    /// a reliable record: it follows everything before it), so each CPU's
    /// records stay in order.
    fn send(&mut self, cpu: usize, seq: u64, ts: u64, event: Event, reliable: bool) {
        if self.joins_batch(cpu, &event, reliable) {
            self.batch(cpu, Record { cpu: cpu as u32, seq, ts, event });
            return;
        }
        self.before_unbatched(cpu, ts, reliable);
        self.push(cpu, seq, ts, event, reliable);
    }

    /// Whether `event` of `cpu` goes into the CPU's open batch.
    fn joins_batch(&self, cpu: usize, event: &Event, reliable: bool) -> bool {
        !reliable && self.dropped[cpu] == 0 && batchable(event)
    }

    /// Before a record of `cpu` at `ts` that is framed on its own: the
    /// open batches go out (all of them before a reliable record: it
    /// follows everything before it), then the CPU's pending `dropped`.
    fn before_unbatched(&mut self, cpu: usize, ts: u64, reliable: bool) {
        if reliable {
            self.close_batches(true);
        } else {
            self.close_batch(cpu, false);
        }
        self.send_dropped(cpu, ts, reliable);
    }

    /// Adds `rec` to `cpu`'s batch, closing it first when full; then closes
    /// any batch that has been open too long.
    fn batch(&mut self, cpu: usize, rec: Record) {
        // The record's time stands for now (a queued record's is a little
        // older: its batch closes a little early), saving a counter read.
        let t = rec.ts;
        if !self.add_to_batch(cpu, &rec, t) {
            self.close_batch(cpu, false);
            if self.dropped[cpu] > 0 || !self.add_to_batch(cpu, &rec, t) {
                self.dropped[cpu] += 1;
            }
        }
        self.close_aged(t);
    }

    /// Closes every batch open for longer than the maximum age at `t`.
    fn close_aged(&mut self, t: u64) {
        let max_age = BATCH_MAX_AGE.load(Ordering::Relaxed);
        // Saturating: a queued record's older time never closes a batch.
        if t.saturating_sub(OLDEST_OPEN.load(Ordering::Relaxed)) >= max_age {
            for c in 0..MAX_CPUS {
                if !self.batches[c].is_empty() && t.saturating_sub(self.opened[c]) >= max_age {
                    self.close_batch(c, false);
                }
            }
        }
    }

    fn add_to_batch(&mut self, cpu: usize, rec: &Record, t: u64) -> bool {
        let b = &mut self.batches[cpu];
        let opening = b.is_empty();
        if !b.push(rec) {
            return false;
        }
        if opening {
            self.opened[cpu] = t;
            OLDEST_OPEN.fetch_min(t, Ordering::Relaxed);
        }
        true
    }

    /// Puts `cpu`'s open batch in the ring (waiting for room if
    /// `reliable`); its records are dropped, counted, if it does not fit.
    fn close_batch(&mut self, cpu: usize, reliable: bool) {
        let b = &self.batches[cpu];
        if b.is_empty() {
            return;
        }
        let count = u64::from(b.count());
        let mut buf = [0u8; MAX_FRAME];
        let n = b.encode_frame(&mut buf);
        self.batches[cpu].clear();
        match n {
            Some(n) => {
                if reliable {
                    self.make_room(n);
                }
                if self.dropped[cpu] == 0 && self.ring_push(cpu, &buf[..n], Frame::of(reliable)) {
                    self.streamed[cpu] += count;
                } else {
                    self.dropped[cpu] += count;
                }
            }
            None => self.dropped[cpu] += count,
        }
        let oldest = (0..MAX_CPUS)
            .filter(|&c| !self.batches[c].is_empty())
            .map(|c| self.opened[c])
            .min()
            .unwrap_or(u64::MAX);
        OLDEST_OPEN.store(oldest, Ordering::Relaxed);
    }

    /// Closes every CPU's open batch.
    fn close_batches(&mut self, reliable: bool) {
        for c in 0..MAX_CPUS {
            self.close_batch(c, reliable);
        }
    }

    /// The `dropped` record for CPU `cpu`'s lost records, if any and if
    /// it fits now (its seq follows the dropped ones). Its time is `ts`,
    /// that of the record it goes out before: a queued record's time is
    /// older than now, and the CPU's times must not go back.
    fn send_dropped(&mut self, cpu: usize, ts: u64, reliable: bool) {
        if self.dropped[cpu] == 0 {
            return;
        }
        let mut buf = [0u8; MAX_FRAME];
        let count = self.dropped[cpu];
        let rec =
            Record { cpu: cpu as u32, seq: fast_path::peek_seq(cpu), ts, event: Event::Dropped { count } };
        if let Some(n) = encode_frame(&rec, &mut buf) {
            if reliable {
                self.make_room(n);
            }
            if self.ring_push(cpu, &buf[..n], Frame::DropReport) {
                next_seq(cpu);
                self.dropped[cpu] = 0;
                self.streamed[cpu] += 1;
            }
        }
    }

    /// Queues one record (counted as dropped if it does not fit, or if
    /// earlier drops are still unreported: the reader must see them first).
    fn push(&mut self, cpu: usize, seq: u64, ts: u64, event: Event, reliable: bool) {
        let mut buf = [0u8; MAX_FRAME];
        let rec = Record { cpu: cpu as u32, seq, ts, event };
        let Some(n) = encode_frame(&rec, &mut buf) else {
            self.dropped[cpu] += 1;
            return;
        };
        if reliable {
            self.make_room(n);
        }
        if self.dropped[cpu] > 0 || !self.ring_push(cpu, &buf[..n], Frame::of(reliable)) {
            self.dropped[cpu] += 1;
        } else {
            self.streamed[cpu] += 1;
        }
    }

    /// Queues a frame of `cpu` if it fits (and `selftest=drop` does not
    /// refuse it).
    fn ring_push(&mut self, cpu: usize, frame: &[u8], what: Frame) -> bool {
        let refused = what == Frame::Droppable
            && match self.drop_test {
                DropTest::Off => false,
                DropTest::All => true,
                DropTest::Half => !self.after_report[cpu],
            };
        if refused || !self.ring.push(frame) {
            return false;
        }
        self.after_report[cpu] = what == Frame::DropReport;
        true
    }

    fn make_room(&mut self, n: usize) {
        while self.ring.free() < n && self.uart.is_some() {
            self.drain();
        }
        if self.ring.free() < n {
            self.write_file();
        }
    }

    #[inline]
    fn drain(&mut self) {
        if let Some(u) = self.uart {
            self.ring.drain(|b| u.try_put(b));
        } else if self.file.is_some() && self.file_due() {
            self.write_file();
        }
    }

    /// File sink: whether the queued bytes should be written now.
    fn file_due(&self) -> bool {
        self.ring.len() >= FILE_BATCH || now().wrapping_sub(self.last_write) >= self.max_age
    }

    /// File sink: writes everything queued (no-op without a file). A host
    /// that stops taking bytes (disk full, file closed) ends the file sink,
    /// with a console message: the trace goes nowhere from then on, and
    /// records are counted as dropped instead of stalling the guest.
    #[inline(never)]
    fn write_file(&mut self) {
        let Some(f) = self.file else { return };
        self.last_write = now();
        while !self.ring.is_empty() {
            if self.ring.drain_slices(|s| f.write(s)) == 0 {
                self.file = None;
                Msg::new(To::Console)
                    .s("semihosting trace file: the host stopped taking data; trace lost")
                    .end();
                return;
            }
        }
    }

    fn flush(&mut self) {
        self.close_batches(true);
        if let Some(u) = self.uart {
            while !self.ring.is_empty() {
                self.ring.drain(|b| u.try_put(b));
            }
            u.wait_idle();
        }
        self.write_file();
    }
}

impl Frame {
    fn of(reliable: bool) -> Self {
        if reliable {
            Frame::Reliable
        } else {
            Frame::Droppable
        }
    }
}

#[inline]
fn now() -> u64 {
    CNTPCT_EL0.get()
}
