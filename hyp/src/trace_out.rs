//! The trace as hyp emits it: records are encoded (porwatch-trace), queued in
//! a ring and drained to the trace UART's FIFO at every trap exit. A record
//! that does not fit is counted, never silently lost: the count goes out as a
//! `dropped` record as soon as there is room (its sequence number follows the
//! dropped ones, so the reader sees exactly which are missing). Records that
//! must not be lost (guest exit, panic; hazards later) wait for room instead.
use crate::arch::pl011::Pl011;
use crate::ring::Ring;
use aarch64_cpu::registers::{Readable, CNTPCT_EL0};
use porwatch_trace::{encode_frame, Event, Record, MAX_FRAME};
use spin::Mutex;

const RING_BYTES: usize = 256 * 1024;

struct Tracer {
    ring: Ring<RING_BYTES>,
    uart: Option<Pl011>,
    seq: u64,
    dropped: u64,
}

static TRACER: Mutex<Tracer> = Mutex::new(Tracer { ring: Ring::new(), uart: None, seq: 0, dropped: 0 });

/// Sets the trace UART (None: the trace is counted but goes nowhere).
pub fn init(uart: Option<Pl011>) {
    TRACER.lock().uart = uart;
}

/// Records `event`; drops it (counted) if the ring is full. Returns the
/// record's sequence number (consumed even if it was dropped).
#[inline]
pub fn emit(event: Event) -> u64 {
    let mut t = TRACER.lock();
    let seq = t.record(event, false);
    t.drain();
    seq
}

/// Records `event`, waiting for the UART to make room if needed.
pub fn emit_reliable(event: Event) -> u64 {
    let mut t = TRACER.lock();
    let seq = t.record(event, true);
    t.drain();
    seq
}

/// Sends everything queued and waits until it has left the UART.
pub fn flush() {
    let mut t = TRACER.lock();
    t.flush();
}

/// Records `event` and flushes, for the panic path: does not wait for a lock
/// held by the code that panicked (it would never be released).
pub fn emit_from_panic(event: Event) {
    if let Some(mut t) = TRACER.try_lock() {
        let _ = t.record(event, true);
        t.flush();
    }
}

impl Tracer {
    fn record(&mut self, event: Event, reliable: bool) -> u64 {
        let mut buf = [0u8; MAX_FRAME];
        if self.dropped > 0 {
            let rec = Record { seq: self.seq, ts: now(), event: Event::Dropped { count: self.dropped } };
            if let Some(n) = encode_frame(&rec, &mut buf) {
                if reliable {
                    self.make_room(n);
                }
                if self.ring.push(&buf[..n]) {
                    self.seq += 1;
                    self.dropped = 0;
                }
            }
        }
        let seq = self.seq;
        self.seq += 1;
        let rec = Record { seq, ts: now(), event };
        let Some(n) = encode_frame(&rec, &mut buf) else {
            self.dropped += 1;
            return seq;
        };
        if reliable {
            self.make_room(n);
        }
        if self.dropped > 0 || !self.ring.push(&buf[..n]) {
            self.dropped += 1;
        }
        seq
    }

    fn make_room(&mut self, n: usize) {
        while self.ring.free() < n && self.uart.is_some() {
            self.drain();
        }
    }

    #[inline]
    fn drain(&mut self) {
        if let Some(u) = self.uart {
            self.ring.drain(|b| u.try_put(b));
        }
    }

    fn flush(&mut self) {
        if let Some(u) = self.uart {
            while !self.ring.is_empty() {
                self.ring.drain(|b| u.try_put(b));
            }
            u.wait_idle();
        }
    }
}

#[inline]
fn now() -> u64 {
    CNTPCT_EL0.get()
}
