//! porwatch host tool: decode and print the hypervisor's binary trace
//! (format in `docs/trace-format.md`, encoder/decoder in `porwatch-trace`).
//!
//! * [`decode_stream`]: incremental decode of any `Read`, printing as it goes
//!   (used by `porwatch decode` and, live, by `porwatch run`).
//! * [`decode_all`]: whole-buffer decode into [`OwnedRecord`]s, for tests.
//! * [`text`], [`json`]: the printers; [`DecodeStats`]: the summary.

// Lets modules refer to this crate as `porwatch::` as well as `crate::`.
extern crate self as porwatch;

pub mod annotate;
pub mod audit_report;
pub mod calltrace;
pub mod chain;
pub mod decode;
pub mod decode_cmd;
pub mod docgen;
pub mod esr;
pub mod exit_status;
pub mod filter;
pub mod findings;
pub mod follow;
pub mod guest_console;
pub mod guest_image;
pub mod hazard;
pub mod json;
pub mod linux;
pub mod outcome;
pub mod perfetto;
pub mod printer;
pub mod psci;
pub mod qemu;
pub mod records;
pub mod run;
pub mod sample;
pub mod stats;
pub mod symbols;
pub mod text;

pub use decode::{
    decode_all, decode_stream, decode_to_end, DecodeOptions, Ending, Item, StreamDecoder, Timestamp,
};
pub use records::{OwnedRecord, OwnedValue};
pub use stats::{DecodeStats, GuestExit};
