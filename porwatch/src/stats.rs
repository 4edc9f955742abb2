//! What a decode saw: counts, problems, how the guest ended.

use std::collections::BTreeMap;
use std::fmt;

use porwatch_trace::{ExitReason, EXIT_REASON_NAMES, KINDS};

use crate::annotate::enum_text;

/// The last `guest_exit` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestExit {
    /// `guest_exit.reason` value ([`porwatch_trace::ExitReason`]).
    pub reason: u64,
    pub code: u64,
}

impl GuestExit {
    /// `system_off`, `test_exit`, ... or `unknown(N)`.
    pub fn reason_name(&self) -> String {
        enum_text(EXIT_REASON_NAMES, self.reason)
    }
}

/// Something that keeps a decode from being called clean, in the order the
/// summary names them. The first five mean the trace itself cannot be
/// trusted ([`Problem::damages_trace`]); the others are an intact trace
/// recording a run that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not one record decoded (empty input, zeros, garbage).
    NoRecords,
    CorruptFrames,
    TruncatedTail,
    UnexplainedGaps,
    /// A `header` record after the first record: a restart or a forgery.
    MidStreamHeader,
    /// A `panic` record or a `guest_exit` with reason `hyp_error`.
    HypFailed,
    /// porwatch injected an UNDEF for an instruction it could not handle.
    UndefInjected,
    /// Page tables went unwatched: the tracker ran out of capacity
    /// (`pt_stats.overflows`) or released pages (`pt_stats.released_pages`).
    TrackerOverflow,
}

impl Problem {
    /// Stable snake_case name (JSON summary `problems`).
    pub fn name(self) -> &'static str {
        match self {
            Problem::NoRecords => "no_records",
            Problem::CorruptFrames => "corrupt_frames",
            Problem::TruncatedTail => "truncated_tail",
            Problem::UnexplainedGaps => "unexplained_gaps",
            Problem::MidStreamHeader => "mid_stream_header",
            Problem::HypFailed => "hyp_failed",
            Problem::UndefInjected => "undef_injected",
            Problem::TrackerOverflow => "tracker_overflow",
        }
    }

    /// How the text summary names it.
    pub fn text(self) -> &'static str {
        match self {
            Problem::NoRecords => "no records",
            Problem::CorruptFrames => "corrupt frames",
            Problem::TruncatedTail => "truncated tail",
            Problem::UnexplainedGaps => "unexplained gaps",
            Problem::MidStreamHeader => "mid-stream header",
            Problem::HypFailed => "hypervisor failed",
            Problem::UndefInjected => "UNDEF injected",
            Problem::TrackerOverflow => "tables unwatched",
        }
    }

    /// True when the trace itself is damaged (decode exit status 3).
    pub fn damages_trace(self) -> bool {
        matches!(
            self,
            Problem::NoRecords
                | Problem::CorruptFrames
                | Problem::TruncatedTail
                | Problem::UnexplainedGaps
                | Problem::MidStreamHeader
        )
    }
}

/// What one CPU's records say (the summary's per-CPU part).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// Records written by this CPU.
    pub records: u64,
    /// `exc_entry` records: exceptions this CPU took to EL1.
    pub exc_entries: u64,
    /// `hazard` records.
    pub hazards: u64,
    /// `coverage_gap` records.
    pub coverage_gaps: u64,
    /// Sum of this CPU's `dropped.count`.
    pub hyp_dropped: u64,
    /// Jumps in this CPU's sequence numbers not explained by a `dropped`
    /// record.
    pub unexplained_gaps: u64,
    /// The latest `flight_stats` (`porwatch.stream=flight`): events the
    /// CPU's flight ring took, and those overwritten without being sent.
    pub flight_events: u64,
    pub flight_overwritten: u64,
}

impl CpuStats {
    /// Counts one record of this CPU.
    pub fn count(&mut self, event: &porwatch_trace::Event<'_>) {
        use porwatch_trace::Event;
        self.records += 1;
        match *event {
            Event::ExcEntry { .. } => self.exc_entries += 1,
            Event::Hazard { .. } => self.hazards += 1,
            Event::CoverageGap { .. } => self.coverage_gaps += 1,
            Event::Dropped { count } => self.hyp_dropped = self.hyp_dropped.saturating_add(count),
            Event::FlightStats { events, overwritten, .. } => {
                self.flight_events = events;
                self.flight_overwritten = overwritten;
            }
            _ => {}
        }
    }
}
/// Statistics of one decoded stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Bytes read.
    pub bytes: u64,
    /// Records decoded.
    pub records: u64,
    /// Timestamps (CNTPCT ticks) of the first and last record, and the
    /// counter frequency from the header (0: none seen).
    pub first_ts: Option<u64>,
    pub last_ts: u64,
    pub cntfrq: u64,
    /// Records per kind name (`unknown` for unknown kinds).
    pub per_kind: BTreeMap<&'static str, u64>,
    /// Frames rejected (COBS, CRC, size or payload errors).
    pub corrupt_frames: u64,
    /// Input ended inside a frame.
    pub truncated_tail: bool,
    /// Sequence jumps not accounted for by a `dropped` record.
    pub unexplained_gaps: u64,
    /// Sum of `dropped.count`: records the hypervisor reported lost.
    pub hyp_dropped: u64,
    /// The last `guest_exit`, if any.
    pub guest_exit: Option<GuestExit>,
    /// Number of `panic` records.
    pub panics: u64,
    /// Bytes on the wire (frame + delimiter) per record kind.
    pub bytes_per_kind: BTreeMap<&'static str, u64>,
    /// Plain-text lines the hypervisor wrote between frames (failures only).
    pub text_messages: u64,
    /// Message of the last `panic` record (UTF-8, lossy).
    pub last_panic: Option<String>,
    /// `header` records after the first record (a restart or a forgery).
    pub mid_stream_headers: u64,
    /// `unknown_trap` records with action `undef_injected`: instructions
    /// porwatch could not handle, answered with an UNDEF.
    pub undefs_injected: u64,
    /// seq of the first of them.
    pub first_undef_seq: Option<u64>,
    /// Largest `pt_stats.overflows`: table pages the tracker had no room for.
    pub tables_unwatched: u64,
    /// Per CPU (porwatch's index), for every CPU that wrote a record.
    pub per_cpu: BTreeMap<u32, CpuStats>,
}

impl DecodeStats {
    /// Everything that keeps this decode from being clean, in order.
    /// (Records the hypervisor itself reported as dropped are not a problem:
    /// it said so.)
    pub fn problems(&self) -> Vec<Problem> {
        let hyp_error = self.guest_exit.is_some_and(|e| e.reason == ExitReason::HypError.code());
        [
            (self.records == 0, Problem::NoRecords),
            (self.corrupt_frames > 0, Problem::CorruptFrames),
            (self.truncated_tail, Problem::TruncatedTail),
            (self.unexplained_gaps > 0, Problem::UnexplainedGaps),
            (self.mid_stream_headers > 0, Problem::MidStreamHeader),
            (self.panics > 0 || hyp_error, Problem::HypFailed),
            (self.undefs_injected > 0, Problem::UndefInjected),
            (self.tables_unwatched > 0, Problem::TrackerOverflow),
        ]
        .into_iter()
        .filter_map(|(yes, p)| yes.then_some(p))
        .collect()
    }

    /// The trace can be trusted: records were decoded, no corrupt frames, no
    /// truncated tail, no unexplained gaps, no header after the first record.
    pub fn trace_intact(&self) -> bool {
        !self.problems().into_iter().any(Problem::damages_trace)
    }

    /// Intact, and recording a run without failures: no hypervisor panic,
    /// no UNDEF porwatch had to inject, no table left unwatched.
    pub fn is_clean(&self) -> bool {
        self.problems().is_empty()
    }

    /// Records of kind `kind` (a kind name such as `"trap"`).
    pub fn count(&self, kind: &str) -> u64 {
        self.per_kind.get(kind).copied().unwrap_or(0)
    }

    /// Per-kind counts in kind-code order (`unknown` last), non-zero only.
    pub fn kinds_in_order(&self) -> Vec<(&'static str, u64)> {
        let order = KINDS.iter().map(|k| k.name).chain(["unknown"]);
        let mut v: Vec<(&'static str, u64)> =
            order.filter_map(|k| self.per_kind.get(k).map(|&n| (k, n))).collect();
        // Names not in the table (none today) come last.
        for (&k, &n) in &self.per_kind {
            if !v.iter().any(|(name, _)| *name == k) {
                v.push((k, n));
            }
        }
        v
    }

    /// Per-kind counts as `header:1 trap:12 ...`, in kind-code order.
    pub fn kinds_compact(&self) -> String {
        let parts: Vec<String> = self.kinds_in_order().iter().map(|(k, n)| format!("{k}:{n}")).collect();
        parts.join(" ")
    }
}

impl DecodeStats {
    /// The summary line with problems found outside the trace (`porwatch
    /// run`: QEMU failed, a timeout, a guest kernel's death...) named in its
    /// verdict after the trace's own.
    pub fn summary_with(&self, extra: &[&str]) -> String {
        let line = self.to_string();
        if extra.is_empty() {
            return line;
        }
        let verdict = if self.is_clean() {
            line.strip_suffix("; clean").map(|l| format!("{l}; NOT CLEAN: "))
        } else {
            Some(format!("{line}, "))
        };
        format!("{}{}", verdict.unwrap_or(line), extra.join(", "))
    }
}

/// The one-line summary printed to stderr after a text decode.
impl fmt::Display for DecodeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "porwatch: {} records", self.records)?;
        if !self.per_kind.is_empty() {
            write!(f, " ({})", self.kinds_compact())?;
        }
        write!(
            f,
            "; hyp dropped {}; corrupt frames {}; truncated tail {}; unexplained gaps {}",
            self.hyp_dropped,
            self.corrupt_frames,
            if self.truncated_tail { "yes" } else { "no" },
            self.unexplained_gaps
        )?;
        if self.mid_stream_headers > 0 {
            write!(f, "; mid-stream headers {}", self.mid_stream_headers)?;
        }
        if self.panics > 0 {
            write!(f, "; panics {}", self.panics)?;
        }
        if self.undefs_injected > 0 {
            write!(f, "; UNDEF injected {}", self.undefs_injected)?;
        }
        if self.tables_unwatched > 0 {
            write!(f, "; tables unwatched {}", self.tables_unwatched)?;
        }
        let (kept, lost) = self
            .per_cpu
            .values()
            .fold((0u64, 0u64), |(k, l), c| (k + c.flight_events, l + c.flight_overwritten));
        if kept > 0 {
            write!(f, "; flight ring: {kept} events recorded, {lost} overwritten unsent")?;
        }
        match &self.guest_exit {
            Some(e) => write!(f, "; guest exit {} code {}", e.reason_name(), e.code)?,
            None => write!(f, "; no guest exit")?,
        }
        if self.per_cpu.len() > 1 {
            // One CPU's figures are the totals above already.
            let parts: Vec<String> = self
                .per_cpu
                .iter()
                .map(|(cpu, c)| {
                    let mut p = format!(
                        "cpu{cpu} {} records {} entries {} hazards",
                        c.records, c.exc_entries, c.hazards
                    );
                    if c.hyp_dropped > 0 {
                        p += &format!(" {} dropped", c.hyp_dropped);
                    }
                    if c.unexplained_gaps > 0 {
                        p += &format!(" {} gaps", c.unexplained_gaps);
                    }
                    p
                })
                .collect();
            write!(f, "; per CPU: {}", parts.join(", "))?;
        }
        let problems = self.problems();
        if problems.is_empty() {
            return write!(f, "; clean");
        }
        let names: Vec<&str> = problems.iter().map(|p| p.text()).collect();
        write!(f, "; NOT CLEAN: {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_and_summary() {
        let mut s = DecodeStats::default();
        assert!(!s.is_clean(), "no records is not clean");
        assert_eq!(s.problems(), [Problem::NoRecords]);
        assert!(s.to_string().ends_with("; no guest exit; NOT CLEAN: no records"), "{s}");
        s.records = 3;
        s.per_kind.insert("trap", 2);
        s.per_kind.insert("header", 1);
        s.hyp_dropped = 5;
        assert!(s.is_clean());
        s.guest_exit = Some(GuestExit { reason: 2, code: 7 });
        let line = s.to_string();
        assert!(line.contains("3 records (header:1 trap:2)"), "{line}");
        s.per_kind.insert("unknown", 1);
        s.per_kind.insert("dropped", 4);
        assert_eq!(s.kinds_compact(), "header:1 trap:2 dropped:4 unknown:1");
        s.per_kind.remove("unknown");
        s.per_kind.remove("dropped");
        assert!(line.contains("hyp dropped 5"), "{line}");
        assert!(line.contains("guest exit test_exit code 7"), "{line}");
        assert!(line.ends_with("; clean"), "{line}");
        assert_eq!(s.count("trap"), 2);
        assert_eq!(s.count("psci"), 0);
        assert!(!line.contains("flight ring"), "{line}");
        let mut flight = s.clone();
        flight.per_cpu.entry(0).or_default().count(&porwatch_trace::Event::FlightStats {
            events: 70,
            streamed: 3,
            overwritten: 12,
        });
        flight.per_cpu.entry(1).or_default().count(&porwatch_trace::Event::FlightStats {
            events: 30,
            streamed: 3,
            overwritten: 0,
        });
        let line = flight.to_string();
        assert!(line.contains("; flight ring: 100 events recorded, 12 overwritten unsent"), "{line}");

        for (dirty, damaged, says) in [
            (DecodeStats { corrupt_frames: 1, ..s.clone() }, true, "NOT CLEAN: corrupt frames"),
            (DecodeStats { truncated_tail: true, ..s.clone() }, true, "NOT CLEAN: truncated tail"),
            (DecodeStats { unexplained_gaps: 2, ..s.clone() }, true, "NOT CLEAN: unexplained gaps"),
            (DecodeStats { mid_stream_headers: 1, ..s.clone() }, true, "NOT CLEAN: mid-stream header"),
            (DecodeStats { panics: 1, ..s.clone() }, false, "NOT CLEAN: hypervisor failed"),
            (
                DecodeStats { guest_exit: Some(GuestExit { reason: 4, code: 0 }), ..s.clone() },
                false,
                "NOT CLEAN: hypervisor failed",
            ),
            (DecodeStats { undefs_injected: 2, ..s.clone() }, false, "NOT CLEAN: UNDEF injected"),
            (DecodeStats { tables_unwatched: 523, ..s.clone() }, false, "NOT CLEAN: tables unwatched"),
        ] {
            assert!(!dirty.is_clean(), "{dirty}");
            assert_eq!(dirty.trace_intact(), !damaged, "{dirty}");
            assert!(dirty.to_string().ends_with(says), "{dirty}");
        }
        // porwatch run adds what the trace cannot know.
        assert!(s.summary_with(&[]).ends_with("; clean"));
        assert!(s.summary_with(&["guest kernel died"]).ends_with("; NOT CLEAN: guest kernel died"), "{s}");
        let d = DecodeStats { corrupt_frames: 1, ..s.clone() };
        assert!(d.summary_with(&["timed out"]).ends_with("NOT CLEAN: corrupt frames, timed out"));
        let both = DecodeStats { corrupt_frames: 1, undefs_injected: 1, tables_unwatched: 5, ..s.clone() };
        let line = both.to_string();
        assert!(line.contains("; UNDEF injected 1; tables unwatched 5;"), "{line}");
        assert!(line.ends_with("NOT CLEAN: corrupt frames, UNDEF injected, tables unwatched"), "{line}");
    }
}
