//! A byte ring for encoded trace frames. Frames go in whole or not at all;
//! bytes come out in order. (Own type rather than heapless::Deque: frames are
//! copied in and drained to the UART FIFO as two contiguous slices, not one
//! byte at a time.)

pub struct Ring<const N: usize> {
    buf: [u8; N],
    /// Next byte to drain.
    tail: usize,
    /// Bytes queued.
    len: usize,
}

impl<const N: usize> Ring<N> {
    pub const fn new() -> Self {
        Self { buf: [0; N], tail: 0, len: 0 }
    }

    pub fn free(&self) -> usize {
        N - self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends all of `data`, or nothing if it does not fit.
    pub fn push(&mut self, data: &[u8]) -> bool {
        if data.len() > self.free() {
            return false;
        }
        let head = (self.tail + self.len) % N;
        let first = data.len().min(N - head);
        let (a, b) = data.split_at(first);
        self.buf[head..head + first].copy_from_slice(a);
        self.buf[..b.len()].copy_from_slice(b);
        self.len += data.len();
        true
    }

    /// Offers queued bytes to `sink` in order until it refuses one.
    pub fn drain(&mut self, mut sink: impl FnMut(u8) -> bool) {
        while self.len > 0 {
            if !sink(self.buf[self.tail]) {
                return;
            }
            self.tail = (self.tail + 1) % N;
            self.len -= 1;
        }
    }
}
