//! The guest's call chain from its frame pointer: AArch64 frame records
//! (AAPCS64 6.4.6: x29 points at a 16-byte record `{previous x29, x30}`),
//! as Linux's `unwind_next_frame_record` follows them.
//!
//! The reads go through [`StackMem`], which the hypervisor implements with
//! an `AT` translation and a stage-2 check: a frame that cannot be read, is
//! misaligned, repeats, or holds a null return address ends the walk; so
//! does the depth bound ([`MAX_FRAMES`]). Nothing here can fault.
//!
//! Return addresses are signed when the kernel uses pointer authentication
//! (`paciasp` in the prologue); the PAC bits sit above the VA size and are
//! replaced by the address's half (Linux `ptrauth_strip_kernel_insn_pac`
//! for TTBR1, `ptrauth_strip_user_insn_pac` for TTBR0).

use heapless::Vec;

/// Frames kept (the hazard report's call trace is this deep at most).
pub const MAX_FRAMES: usize = 16;
/// Bytes of a frame record.
const RECORD: u64 = 16;
/// Frame records are 8-byte aligned at least (Linux checks the same).
const ALIGN: u64 = 8;

/// Guest memory by VA, as the unwinder reads it.
pub trait StackMem {
    /// The 64-bit value at `va` (8-byte aligned), or `None` if the guest
    /// could not read it (unmapped, not RAM).
    fn read_u64(&self, va: u64) -> Option<u64>;
}

/// Why the walk stopped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum End {
    /// x29 = 0, or a record with a null return address: the outermost frame.
    Complete,
    /// [`MAX_FRAMES`] frames recorded.
    Depth,
    /// A record could not be read.
    Unreadable,
    /// x29 was not 8-byte aligned.
    Misaligned,
    /// A record came back again (a loop).
    Loop,
}

impl End {
    /// Value of the `call_trace.end` trace field (porwatch_trace::UnwindEnd).
    pub const fn code(self) -> u64 {
        match self {
            End::Complete => 0,
            End::Depth => 1,
            End::Unreadable => 2,
            End::Misaligned => 3,
            End::Loop => 4,
        }
    }
}

/// The VA sizes of the two halves, for stripping PAC bits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VaBits {
    pub ttbr0: u8,
    pub ttbr1: u8,
}

impl VaBits {
    /// `addr` without PAC bits: bits [63:VA size] copied from bit 55.
    pub const fn strip(&self, addr: u64) -> u64 {
        let upper = addr & (1 << 55) != 0;
        let bits = if upper { self.ttbr1 } else { self.ttbr0 };
        if bits == 0 || bits >= 56 {
            return addr;
        }
        let mask = !((1u64 << bits) - 1);
        if upper {
            addr | mask
        } else {
            addr & !mask
        }
    }
}

/// A call chain: the return addresses of the frame records, innermost
/// first.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Unwind {
    pub frames: Vec<u64, MAX_FRAMES>,
    pub end: End,
}

/// Follows the frame records from `fp` (x29).
pub fn unwind<M: StackMem + ?Sized>(mem: &M, fp: u64, va: VaBits) -> Unwind {
    let mut frames: Vec<u64, MAX_FRAMES> = Vec::new();
    let mut seen: Vec<u64, MAX_FRAMES> = Vec::new();
    let mut fp = fp;
    let end = loop {
        if fp == 0 {
            break End::Complete;
        }
        if frames.is_full() {
            break End::Depth;
        }
        if !fp.is_multiple_of(ALIGN) || fp.checked_add(RECORD).is_none() {
            break End::Misaligned;
        }
        if seen.contains(&fp) {
            break End::Loop;
        }
        let (Some(next), Some(lr)) = (mem.read_u64(fp), mem.read_u64(fp + 8)) else {
            break End::Unreadable;
        };
        let ret = va.strip(lr);
        if ret == 0 {
            break End::Complete;
        }
        // Both have room: at most MAX_FRAMES iterations reach here.
        let _ = seen.push(fp);
        let _ = frames.push(ret);
        fp = next;
    };
    Unwind { frames, end }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::collections::HashMap;

    struct Mem(HashMap<u64, u64>);

    impl StackMem for Mem {
        fn read_u64(&self, va: u64) -> Option<u64> {
            self.0.get(&va).copied()
        }
    }

    const VA48: VaBits = VaBits { ttbr0: 48, ttbr1: 48 };
    const K: u64 = 0xffff_8000_8000_0000;

    /// Records at `fps`, each pointing at the next, with return addresses
    /// `K + 0x100 * i`; the last one points at `last`.
    fn chain(fps: &[u64], last: u64) -> Mem {
        let mut m = HashMap::new();
        for (i, &fp) in fps.iter().enumerate() {
            m.insert(fp, fps.get(i + 1).copied().unwrap_or(last));
            m.insert(fp + 8, K + 0x100 * (i as u64 + 1));
        }
        Mem(m)
    }

    #[test]
    fn a_complete_chain() {
        let fps = [K + 0x1000, K + 0x1040, K + 0x1100];
        let u = unwind(&chain(&fps, 0), fps[0], VA48);
        assert_eq!(u.frames.as_slice(), &[K + 0x100, K + 0x200, K + 0x300]);
        assert_eq!(u.end, End::Complete);
        assert_eq!(unwind(&chain(&fps, 0), 0, VA48).frames.len(), 0);
        // Linux's final record {0, 0} ends it too.
        let mut m = chain(&fps, K + 0x2000);
        m.0.insert(K + 0x2000, 0);
        m.0.insert(K + 0x2008, 0);
        assert_eq!(unwind(&m, fps[0], VA48).end, End::Complete);
    }

    #[test]
    fn bad_frames_end_the_walk() {
        let fps = [K + 0x1000, K + 0x1040];
        let u = unwind(&chain(&fps, K + 0x9000), fps[0], VA48);
        assert_eq!((u.frames.len(), u.end), (2, End::Unreadable));
        let u = unwind(&chain(&fps, K + 0x1044), fps[0], VA48);
        assert_eq!((u.frames.len(), u.end), (2, End::Misaligned));
        let u = unwind(&chain(&fps, fps[0]), fps[0], VA48);
        assert_eq!((u.frames.len(), u.end), (2, End::Loop));
        let u = unwind(&chain(&fps, 0), !7u64, VA48);
        assert_eq!((u.frames.len(), u.end), (0, End::Misaligned));
        let fps: std::vec::Vec<u64> = (0..40).map(|i| K + 0x1000 + 0x20 * i).collect();
        let u = unwind(&chain(&fps, 0), fps[0], VA48);
        assert_eq!((u.frames.len(), u.end), (MAX_FRAMES, End::Depth));
    }

    #[test]
    fn pac_bits_are_stripped() {
        // A signed kernel return address: PAC in bits [63:56] and [54:48] (bit 55 kept).
        assert_eq!(VA48.strip(0x3fa5_8000_8000_1234), 0xffff_8000_8000_1234);
        assert_eq!(VA48.strip(0x002a_0000_0040_1234), 0x0000_0000_0040_1234);
        let va52 = VaBits { ttbr0: 52, ttbr1: 52 };
        assert_eq!(va52.strip(0x3f8f_8000_8000_1234), 0xffff_8000_8000_1234);
        assert_eq!(VaBits { ttbr0: 0, ttbr1: 0 }.strip(0x1234), 0x1234);
        let mut m = chain(&[K + 0x1000], 0);
        m.0.insert(K + 0x1008, 0x3fa5_8000_8000_1234);
        assert_eq!(unwind(&m, K + 0x1000, VA48).frames.as_slice(), &[0xffff_8000_8000_1234]);
    }

    #[test]
    fn end_codes_are_stable() {
        let all = [End::Complete, End::Depth, End::Unreadable, End::Misaligned, End::Loop];
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.code(), i as u64);
        }
    }
}
