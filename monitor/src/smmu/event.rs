//! Event queue records (IHI 0070 7.3): four 64-bit words each.

/// Word 0: type [7:0], SSV bit 11, SubstreamID [31:12], StreamID [63:32].
const W0_TYPE_MASK: u64 = 0xff;
const W0_SID_SHIFT: u32 = 32;
/// Word 1 (translation-related faults): PnU bit 33, InD bit 34, RnW bit 35
/// (1 = read), S2 bit 39 (stage 2 faulted), CLASS [41:40].
const W1_RNW: u64 = 1 << 35;
const W1_S2: u64 = 1 << 39;

/// Event type codes porwatch names.
pub const F_UUT: u8 = 0x01;
pub const C_BAD_STREAMID: u8 = 0x02;
pub const F_STE_FETCH: u8 = 0x03;
pub const C_BAD_STE: u8 = 0x04;
pub const F_STREAM_DISABLED: u8 = 0x06;
pub const F_TRANSL_FORBIDDEN: u8 = 0x07;
pub const C_BAD_SUBSTREAMID: u8 = 0x08;
pub const F_WALK_EABT: u8 = 0x0b;
pub const F_TRANSLATION: u8 = 0x10;
pub const F_ADDR_SIZE: u8 = 0x11;
pub const F_ACCESS: u8 = 0x12;
pub const F_PERMISSION: u8 = 0x13;

/// What an event record says, as porwatch reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No stage-2 mapping for the address (porwatch's memory, a hidden
    /// device, a hole).
    Translation,
    /// Stage 2 maps the address without the access (a write to a page table
    /// the watch made read-only).
    Permission,
    /// The address is beyond the stage-2 input or output size.
    AddrSize,
    /// Access flag fault.
    Access,
    /// External abort on a table walk.
    WalkAbort,
    /// A StreamID beyond the stream table.
    BadStreamId,
    /// An STE the SMMU found invalid.
    BadSte,
    /// The STE could not be read.
    SteFetch,
    /// A transaction with a SubstreamID (PASID): refused with stage 1 off.
    BadSubstreamId,
    /// An ATS-translated transaction refused.
    TranslForbidden,
    /// A stream whose STE disables it.
    StreamDisabled,
    /// Unsupported upstream transaction.
    Uut,
    /// Another type; the code is in [`Event::code`].
    Other,
}

/// A decoded event record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    /// The raw type code.
    pub code: u8,
    pub sid: u32,
    /// InputAddr (word 2): the address the device used. Meaningful for the
    /// translation-related faults and F_UUT / F_TRANSL_FORBIDDEN.
    pub addr: u64,
    /// The transaction was a write (RnW = 0). Meaningful where `addr` is.
    pub write: bool,
    /// The fault was at stage 2 (S2 = 1).
    pub stage2: bool,
}

impl Event {
    pub const fn decode(rec: &[u64; 4]) -> Self {
        let code = (rec[0] & W0_TYPE_MASK) as u8;
        let kind = match code {
            F_TRANSLATION => Kind::Translation,
            F_PERMISSION => Kind::Permission,
            F_ADDR_SIZE => Kind::AddrSize,
            F_ACCESS => Kind::Access,
            F_WALK_EABT => Kind::WalkAbort,
            C_BAD_STREAMID => Kind::BadStreamId,
            C_BAD_STE => Kind::BadSte,
            F_STE_FETCH => Kind::SteFetch,
            C_BAD_SUBSTREAMID => Kind::BadSubstreamId,
            F_TRANSL_FORBIDDEN => Kind::TranslForbidden,
            F_STREAM_DISABLED => Kind::StreamDisabled,
            F_UUT => Kind::Uut,
            _ => Kind::Other,
        };
        let has_access = matches!(
            kind,
            Kind::Translation
                | Kind::Permission
                | Kind::AddrSize
                | Kind::Access
                | Kind::WalkAbort
                | Kind::TranslForbidden
                | Kind::Uut
        );
        Event {
            kind,
            code,
            sid: (rec[0] >> W0_SID_SHIFT) as u32,
            addr: if has_access { rec[2] } else { 0 },
            write: has_access && rec[1] & W1_RNW == 0,
            stage2: has_access && rec[1] & W1_S2 != 0,
        }
    }
}

/// The largest step between two events of one run: QEMU's SMMU model
/// reports a faulting DMA once per 4- or 8-byte access, hardware once per
/// transaction.
pub const RUN_MAX_STEP: u64 = 8;

/// Consecutive events of one stream, type and direction at ascending
/// addresses (or, without an address, just repeated), reported as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// The first event of the run.
    pub first: Event,
    /// The address of the last one.
    pub last_addr: u64,
    /// How many events the run stands for.
    pub count: u32,
}

/// Folds a stream of events into runs.
#[derive(Default, Debug)]
pub struct Coalescer {
    cur: Option<Run>,
}

impl Coalescer {
    pub const fn new() -> Self {
        Coalescer { cur: None }
    }

    /// Adds `e`; returns the run it ended, if it does not continue it.
    pub fn push(&mut self, e: Event) -> Option<Run> {
        if let Some(r) = self.cur.as_mut() {
            let f = &r.first;
            let same = f.sid == e.sid && f.code == e.code && f.write == e.write && f.stage2 == e.stage2;
            let next = e.addr > r.last_addr && e.addr - r.last_addr <= RUN_MAX_STEP;
            let repeated = e.addr == 0 && r.last_addr == 0;
            if same && (next || repeated) && r.count < u32::MAX {
                r.last_addr = e.addr;
                r.count += 1;
                return None;
            }
        }
        self.cur.replace(Run { first: e, last_addr: e.addr, count: 1 })
    }

    /// The run in progress, if any (call when the queue is drained).
    pub fn finish(&mut self) -> Option<Run> {
        self.cur.take()
    }
}
