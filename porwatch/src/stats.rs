//! What a decode saw: counts, problems, how the guest ended.

use std::collections::BTreeMap;
use std::fmt;

use porwatch_trace::{EXIT_REASON_NAMES, KINDS};

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
    /// Per CPU (porwatch's index), for every CPU that wrote a record.
    pub per_cpu: BTreeMap<u32, CpuStats>,
}

impl DecodeStats {
    /// No corrupt frames, no truncated tail, no unexplained gaps. (Records
    /// the hypervisor itself reported as dropped do not make a stream dirty.)
    pub fn is_clean(&self) -> bool {
        self.corrupt_frames == 0 && !self.truncated_tail && self.unexplained_gaps == 0
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
        if self.panics > 0 {
            write!(f, "; panics {}", self.panics)?;
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
        write!(f, "; {}", if self.is_clean() { "clean" } else { "NOT CLEAN" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_and_summary() {
        let mut s = DecodeStats::default();
        assert!(s.is_clean());
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

        for dirty in [
            DecodeStats { corrupt_frames: 1, ..s.clone() },
            DecodeStats { truncated_tail: true, ..s.clone() },
            DecodeStats { unexplained_gaps: 2, ..s.clone() },
        ] {
            assert!(!dirty.is_clean());
            assert!(dirty.to_string().ends_with("NOT CLEAN"));
        }
    }
}
