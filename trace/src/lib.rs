//! porwatch trace format (version [`FORMAT_VERSION`]).
//!
//! The trace is a byte stream of frames:
//! `COBS(payload ‖ crc16(payload) LE) ‖ 0x00`, with
//! `payload = kind: u8, [cpu: varint,] seq: varint, ts: varint, fields...`.
//! Format 3 adds batch frames ([`Batch`], kind [`BATCH_KIND`]): several
//! hot records of one CPU in one frame, expanded by [`decode_batch`].
//! See `docs/trace-format.md` for the full specification.
//!
//! * Writer (hypervisor, `no_std`, no alloc): build a [`Record`] and call
//!   [`encode_frame`] into a `[u8; MAX_FRAME]`; queue frames in a
//!   [`ring::Ring`] until the sink takes them.
//! * Reader (host): feed bytes to a [`Deframer`], then [`decode_payload`];
//!   or [`decode_frame`] on a COBS-decoded frame.
//! * Generic printers: [`Event::kind_name`], [`Event::fields`] and the
//!   display [`Hint`]s in [`KINDS`].
//!
//! The encoder never panics, allocates or formats; `bytes` fields are
//! written whole, so callers truncate them (e.g. panic messages) to keep the
//! payload within [`MAX_PAYLOAD`].
#![no_std]

#[macro_use]
mod macros;

mod batch;
pub mod cobs;
mod crc;
mod deframer;
mod error;
mod events;
mod frame;
pub mod ring;
mod schema;
pub mod varint;
mod wire;

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod tests;

pub use batch::{batchable, decode_batch, is_batch, Batch, BatchRecords, BATCH_KIND};
pub use crc::crc16;
pub use deframer::Deframer;
pub use error::DecodeError;
pub use events::{
    test_exit_status, Event, ExitReason, GapReason, Half, HazardAction, IdReason, MemKind, OverlayEnforced,
    PoeMode, PorReg, PsciConduit, SmmuEventType, TapMechanism, TrapOutcome, Vector, EXIT_REASON_NAMES,
    GAP_REASON_NAMES, HALF_NAMES, HAZARD_ACTION_NAMES, ID_REASON_NAMES, KINDS, MAX_EXIT_STATUS, MAX_FIELDS,
    MEM_KIND_NAMES, POE_MODE_NAMES, POR_REG_NAMES, PSCI_CONDUIT_NAMES, SMMU_EVENT_TYPE_NAMES,
    TAP_MECHANISM_NAMES, TRAP_OUTCOME_NAMES, VECTOR_NAMES,
};
pub use events::{
    AuditStatus, AuditTrigger, CallTraceOf, PorSiteState, PorSource, UnwindEnd, AUDIT_STATUS_NAMES,
    AUDIT_TRIGGER_NAMES, CALL_TRACE_OF_NAMES, POR_SITE_STATE_NAMES, POR_SOURCE_NAMES, UNWIND_END_NAMES,
};
pub use events::{CpuStartReason, CpuStopReason, CPU_START_REASON_NAMES, CPU_STOP_REASON_NAMES};
pub use frame::{
    check_crc, decode_frame, decode_payload, encode_frame, encode_payload, Record, KIND_CPU_FLAG, MAX_FRAME,
    MAX_PAYLOAD,
};
pub use schema::{
    kind_spec, kind_spec_by_name, FieldSpec, FieldType, FieldValue, Fields, Hint, KindSpec, UNKNOWN_RAW,
};

/// Trace format version written in [`Event::Header`]. 2: records name
/// their CPU ([`KIND_CPU_FLAG`]) and sequence numbers count per CPU; a
/// format-1 trace decodes as one written by CPU 0. 3: the hot kinds travel
/// in [`Batch`] frames (kind [`BATCH_KIND`]), several records per frame;
/// formats 1 and 2 decode unchanged.
pub const FORMAT_VERSION: u64 = 3;

// Every kind code leaves the CPU flag free.
const _: () = {
    let mut i = 0;
    while i < KINDS.len() {
        assert!(KINDS[i].code & KIND_CPU_FLAG == 0);
        i += 1;
    }
};
