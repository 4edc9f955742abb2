//! Queue index arithmetic (IHI 0070 3.5.1): a PROD or CONS value holds the
//! index in bits [log2 - 1:0] and a wrap flag in bit log2; the queue is
//! empty when both match, full when the indices match and the wrap flags
//! differ. Bit 31 of EVENTQ_PROD is OVFLG (the SMMU lost events), echoed
//! by software into EVENTQ_CONS.OVACKFLG.

pub const OVERFLOW_FLAG: u32 = 1 << 31;

/// One queue's geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queue {
    pub log2: u8,
}

impl Queue {
    /// Index and wrap bits of a PROD/CONS value.
    pub const fn wrap_index(&self, v: u32) -> u32 {
        v & ((2 << self.log2) - 1)
    }

    /// The entry slot a PROD/CONS value points at.
    pub const fn slot(&self, v: u32) -> usize {
        (v & ((1 << self.log2) - 1)) as usize
    }

    pub const fn is_empty(&self, prod: u32, cons: u32) -> bool {
        self.wrap_index(prod) == self.wrap_index(cons)
    }

    pub const fn is_full(&self, prod: u32, cons: u32) -> bool {
        self.wrap_index(prod ^ cons) == 1 << self.log2
    }

    /// The value after `v` (index + 1, wrap flag toggled on wrap-around).
    pub const fn next(&self, v: u32) -> u32 {
        self.wrap_index(self.wrap_index(v) + 1)
    }
}
