//! A byte ring for encoded trace frames, as the hypervisor queues them
//! before they reach a trace sink. Frames go in whole or not at all; bytes
//! come out in order, either one at a time ([`Ring::drain`], for a UART
//! FIFO) or as contiguous slices ([`Ring::drain_slices`], for a sink that
//! takes a buffer per call, such as a semihosting SYS_WRITE). (Own type
//! rather than heapless::Deque: frames are copied in as at most two
//! contiguous slices, not one byte at a time.)

/// A ring of `N` bytes.
pub struct Ring<const N: usize> {
    buf: [u8; N],
    /// Next byte to drain.
    tail: usize,
    /// Bytes queued.
    len: usize,
}

impl<const N: usize> Default for Ring<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Ring<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        Self { buf: [0; N], tail: 0, len: 0 }
    }

    /// Bytes that can still be pushed.
    pub fn free(&self) -> usize {
        N - self.len
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is queued.
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

    /// Offers the queued bytes to `sink` in order as contiguous slices (at
    /// most two: up to the end of the buffer, then from its start). `sink`
    /// returns how many bytes of the slice it took (values above the slice
    /// length count as the whole slice); the bytes taken leave the ring, and
    /// a short take ends the drain. Returns the number of bytes taken.
    pub fn drain_slices(&mut self, mut sink: impl FnMut(&[u8]) -> usize) -> usize {
        let mut taken = 0;
        while self.len > 0 {
            let chunk = self.len.min(N - self.tail);
            let n = sink(&self.buf[self.tail..self.tail + chunk]).min(chunk);
            self.tail = (self.tail + n) % N;
            self.len -= n;
            taken += n;
            if n < chunk {
                break;
            }
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::Ring;
    use std::vec::Vec;

    fn drain_all<const N: usize>(r: &mut Ring<N>) -> Vec<u8> {
        let mut out = Vec::new();
        r.drain_slices(|s| {
            out.extend_from_slice(s);
            s.len()
        });
        out
    }

    #[test]
    fn push_is_all_or_nothing() {
        let mut r = Ring::<8>::new();
        assert!(r.push(b"abcde"));
        assert!(!r.push(b"wxyz"), "4 bytes do not fit in 3");
        assert_eq!((r.len(), r.free()), (5, 3));
        assert!(r.push(b"xyz"));
        assert_eq!(r.free(), 0);
        assert_eq!(drain_all(&mut r), b"abcdexyz");
        assert!(r.is_empty());
    }

    #[test]
    fn drain_slices_wraps_in_two_slices() {
        let mut r = Ring::<8>::new();
        assert!(r.push(b"123456"));
        let mut first = Vec::new();
        r.drain(|b| {
            if first.len() == 5 {
                return false;
            }
            first.push(b);
            true
        });
        assert_eq!(first, b"12345", "the refused byte stays queued");
        assert_eq!(r.len(), 1);
        // "6" sits at index 5; "abcde" wraps: 5 6 7 | 0 1 2.
        assert!(r.push(b"abcde"));
        let mut slices = Vec::new();
        let n = r.drain_slices(|s| {
            slices.push(s.to_vec());
            s.len()
        });
        assert_eq!(n, 6);
        assert_eq!(slices, [b"6ab".to_vec(), b"cde".to_vec()]);
        assert!(r.is_empty());
    }

    #[test]
    fn short_take_stops_and_keeps_the_rest_in_order() {
        let mut r = Ring::<8>::new();
        assert!(r.push(b"abcdef"));
        assert_eq!(r.drain_slices(|_| 2), 2);
        assert!(r.push(b"ghij"));
        // Nothing taken: nothing changes.
        assert_eq!(r.drain_slices(|_| 0), 0);
        assert_eq!(r.len(), 8);
        // A sink claiming more than offered takes the slice only.
        let mut got = Vec::new();
        let n = r.drain_slices(|s| {
            got.extend_from_slice(s);
            usize::MAX
        });
        assert_eq!(n, 8);
        assert_eq!(got, b"cdefghij");
    }

    #[test]
    fn random_pushes_and_drains_keep_byte_order() {
        use proptest::prelude::*;
        let ops = proptest::collection::vec((0usize..40, 0usize..50, any::<bool>()), 1..200);
        proptest::test_runner::TestRunner::default()
            .run(&ops, |ops| {
                let mut r = Ring::<64>::new();
                let mut model = std::collections::VecDeque::new();
                let mut next = 0u8;
                let mut out = Vec::new();
                for (push, take, slices) in ops {
                    let data: Vec<u8> = (0..push)
                        .map(|_| {
                            next = next.wrapping_add(1);
                            next
                        })
                        .collect();
                    if r.push(&data) {
                        model.extend(data);
                    }
                    let mut budget = take;
                    if slices {
                        r.drain_slices(|s| {
                            let n = s.len().min(budget);
                            out.extend_from_slice(&s[..n]);
                            budget -= n;
                            n
                        });
                    } else {
                        r.drain(|b| {
                            if budget == 0 {
                                return false;
                            }
                            budget -= 1;
                            out.push(b);
                            true
                        });
                    }
                    let expect: Vec<u8> = model.drain(..take.min(model.len())).collect();
                    prop_assert_eq!(&out, &expect);
                    out.clear();
                    prop_assert_eq!(r.len(), model.len());
                }
                Ok(())
            })
            .unwrap();
    }
}
