//! Human-readable messages for the rare moments that need them (boot errors,
//! panics, unexpected EL2 exceptions), on the guest console and the trace
//! UART. No core::fmt: a few fixed strings and hex/decimal numbers suffice,
//! and keep formatting machinery out of the hypervisor.
use crate::arch::pl011::Pl011;
use core::sync::atomic::{AtomicUsize, Ordering};

static CONSOLE: AtomicUsize = AtomicUsize::new(0);
static TRACE: AtomicUsize = AtomicUsize::new(0);

/// Records the UARTs (0 = none). Called once the MMU maps them.
pub fn init(console: Option<Pl011>, trace: Option<Pl011>) {
    CONSOLE.store(console.map_or(0, |u| u.base()), Ordering::Relaxed);
    TRACE.store(trace.map_or(0, |u| u.base()), Ordering::Relaxed);
}

/// Where a message goes.
#[derive(Clone, Copy)]
pub enum To {
    /// The guest console only (boot messages).
    Console,
    /// Both UARTs: fatal messages must be seen whichever one the user reads.
    Both,
}

fn uarts(to: To) -> [Option<Pl011>; 2] {
    let get = |a: &AtomicUsize| match a.load(Ordering::Relaxed) {
        0 => None,
        b => Some(unsafe { Pl011::new(b) }),
    };
    match to {
        To::Console => [get(&CONSOLE), None],
        To::Both => [get(&CONSOLE), get(&TRACE)],
    }
}

/// One message, built piecewise: `Msg::new(To::Both).s("x=").hex(x).end()`.
pub struct Msg {
    to: To,
}

impl Msg {
    pub fn new(to: To) -> Self {
        let m = Self { to };
        m.frame_break();
        m.s("porwatch: ")
    }

    /// On the trace UART, text sits between frame delimiters (0x00) so the
    /// reader can resynchronise around it and show it as a message.
    fn frame_break(&self) {
        if let [_, Some(trace)] = uarts(self.to) {
            trace.put_blocking(0);
        }
    }

    pub fn s(self, s: &str) -> Self {
        self.bytes(s.as_bytes())
    }

    pub fn bytes(self, b: &[u8]) -> Self {
        for u in uarts(self.to).into_iter().flatten() {
            u.write_all(b);
        }
        self
    }

    pub fn hex(self, v: u64) -> Self {
        let mut buf = [0u8; 18];
        buf[0] = b'0';
        buf[1] = b'x';
        let digits = (64 - v.leading_zeros()).div_ceil(4).max(1) as usize;
        for i in 0..digits {
            let nib = ((v >> (4 * (digits - 1 - i))) & 0xf) as u8;
            buf[2 + i] = if nib < 10 { b'0' + nib } else { b'a' + nib - 10 };
        }
        self.bytes(&buf[..2 + digits])
    }

    pub fn dec(self, mut v: u64) -> Self {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.bytes(&buf[i..])
    }

    pub fn end(self) {
        let m = self.s("\n");
        m.frame_break();
    }
}
