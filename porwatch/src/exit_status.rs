//! Exit statuses: one table for `porwatch run`, one for `porwatch decode`.
//! `--help`, README's "Exit status" section (generated, checked by
//! tests/docs.rs) and the code all read them from here.
//!
//! `porwatch run` passes the guest's test status on only in
//! `0..=`[`GUEST_STATUS_MAX`]; porwatch's own outcomes are all above it, so
//! no guest status can be mistaken for one of them. When several outcomes
//! apply, the first in [`RUN_OUTCOMES`] wins (the summary names all).

/// The largest guest test status `porwatch run` passes on as its own exit
/// status; larger ones exit [`RunStatus::GuestStatusOutOfRange`].
pub const GUEST_STATUS_MAX: u64 = 63;

/// How a `porwatch run` ended, as far as its exit status says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// porwatch refused the run before QEMU started, or the hypervisor
    /// refused its configuration at boot.
    Refused,
    /// QEMU could not start, or exited or died without the guest exiting.
    QemuFailed,
    /// The hypervisor failed (panic or exception at EL2).
    HypFailed,
    /// A kernel panic, Oops or BUG on the guest console.
    GuestPanic,
    /// porwatch injected an UNDEF for an instruction it could not handle.
    GuestUndef,
    /// --timeout expired; QEMU was killed.
    Timeout,
    /// The trace cannot be trusted.
    TraceDamaged,
    /// The page-table tracker ran out of room: tables went unwatched.
    TrackerOverflow,
    /// The guest's test status is above [`GUEST_STATUS_MAX`].
    GuestStatusOutOfRange,
    /// The guest's test status (0 after SYSTEM_OFF/RESET/CPU_OFF).
    Guest(u8),
    /// --fail-on-hazard and a hazard, where the status would have been 0.
    Hazard,
}

/// porwatch's own outcomes in precedence order, then the guest's status and
/// the hazard status (which replaces only a 0).
pub const RUN_OUTCOMES: [RunStatus; 11] = [
    RunStatus::Refused,
    RunStatus::QemuFailed,
    RunStatus::HypFailed,
    RunStatus::GuestPanic,
    RunStatus::GuestUndef,
    RunStatus::Timeout,
    RunStatus::TraceDamaged,
    RunStatus::TrackerOverflow,
    RunStatus::GuestStatusOutOfRange,
    RunStatus::Guest(0),
    RunStatus::Hazard,
];

impl RunStatus {
    /// The exit status.
    pub const fn code(self) -> i32 {
        match self {
            RunStatus::Guest(c) => c as i32,
            RunStatus::GuestStatusOutOfRange => 64,
            RunStatus::TraceDamaged => 65,
            RunStatus::QemuFailed => 69,
            RunStatus::HypFailed => 70,
            RunStatus::Refused => 78,
            RunStatus::GuestPanic => 80,
            RunStatus::GuestUndef => 81,
            RunStatus::TrackerOverflow => 82,
            RunStatus::Hazard => 83,
            RunStatus::Timeout => 124,
        }
    }

    /// Stable name (JSON summary `run.outcome`).
    pub const fn name(self) -> &'static str {
        match self {
            RunStatus::Refused => "refused",
            RunStatus::QemuFailed => "qemu_failed",
            RunStatus::HypFailed => "hyp_failed",
            RunStatus::GuestPanic => "guest_panic",
            RunStatus::GuestUndef => "guest_undef",
            RunStatus::Timeout => "timeout",
            RunStatus::TraceDamaged => "trace_damaged",
            RunStatus::TrackerOverflow => "tracker_overflow",
            RunStatus::GuestStatusOutOfRange => "guest_status_out_of_range",
            RunStatus::Guest(_) => "guest",
            RunStatus::Hazard => "hazard",
        }
    }

    /// The status column of the table ("0-63" for the guest's statuses).
    pub fn code_text(self) -> String {
        match self {
            RunStatus::Guest(_) => format!("0-{GUEST_STATUS_MAX}"),
            o => o.code().to_string(),
        }
    }

    /// What the status means.
    pub const fn meaning(self) -> &'static str {
        match self {
            RunStatus::Refused => {
                "porwatch refused the run: a bad option or input found before QEMU started (the message \
                 says which), or the hypervisor refused its configuration at boot (its message is on the \
                 console)"
            }
            RunStatus::QemuFailed => {
                "QEMU failed: it could not be started, or exited or died (a signal) without the guest \
                 having exited; porwatch prints QEMU's exit status and its last message"
            }
            RunStatus::HypFailed => {
                "the hypervisor failed (a panic or an exception at EL2, or its code changed during the \
                 run: a digest taken at boot is checked when the guest stops; the message is on both \
                 UARTs)"
            }
            RunStatus::GuestPanic => {
                "the guest kernel died: a `Kernel panic - not syncing`, `Internal error:` (Oops), \
                 `Unable to handle kernel` or `kernel BUG at` line on its console, named in the summary"
            }
            RunStatus::GuestUndef => {
                "porwatch gave the guest an UNDEF for a trapped instruction it could not handle \
                 (`unknown_trap` with action `undef_injected`; the first one is shown)"
            }
            RunStatus::Timeout => "the run exceeded --timeout; QEMU was killed",
            RunStatus::TraceDamaged => {
                "the trace cannot be trusted: corrupt frames, a truncated tail, unexplained sequence gaps, \
                 a header after the first record, no records at all, or a `guest_exit` that QEMU's exit \
                 status contradicts"
            }
            RunStatus::TrackerOverflow => {
                "page tables went unwatched: the tracker ran out of room (`pt_stats.overflows`) or \
                 released a page whose stores porwatch could not follow (`pt_stats.released_pages`)"
            }
            RunStatus::GuestStatusOutOfRange => {
                "the guest's test status was above 63 (the full 64-bit value is printed)"
            }
            RunStatus::Guest(_) => {
                "the guest's test status (`PORWATCH_TEST_EXIT`, the full value from the trace's \
                 `guest_exit.code`), 0 after PSCI SYSTEM_OFF, SYSTEM_RESET or CPU_OFF; only when none \
                 of the above happened"
            }
            RunStatus::Hazard => {
                "--fail-on-hazard: the trace has a `hazard` and the status would otherwise be 0"
            }
        }
    }

    /// The guest's test status as porwatch run's outcome.
    pub fn of_guest_status(code: u64) -> Self {
        match u8::try_from(code) {
            Ok(c) if code <= GUEST_STATUS_MAX => RunStatus::Guest(c),
            _ => RunStatus::GuestStatusOutOfRange,
        }
    }

    /// Position in [`RUN_OUTCOMES`] (lower wins).
    pub fn precedence(self) -> usize {
        let key = match self {
            RunStatus::Guest(_) => RunStatus::Guest(0),
            o => o,
        };
        RUN_OUTCOMES.iter().position(|&o| o == key).unwrap_or(RUN_OUTCOMES.len())
    }
}

/// `porwatch decode`'s exit statuses (status, meaning), in precedence order.
pub const DECODE_STATUSES: [(i32, &str); 5] = [
    (
        DECODE_DAMAGED,
        "the trace is damaged: corrupt frames, a truncated tail, unexplained sequence gaps, a header \
         after the first record, or no records at all",
    ),
    (
        DECODE_RUN_FAILED,
        "the trace is intact but records a failed run: a hypervisor panic, an UNDEF porwatch injected \
         for an instruction it could not handle, or page tables left unwatched (tracker over capacity, or a page released)",
    ),
    (DECODE_HAZARD, "the trace has a `hazard` record (`--no-fail-on-hazard`: 0)"),
    (DECODE_ERROR, "usage or I/O error"),
    (DECODE_CLEAN, "clean"),
];
/// `porwatch decode`: clean.
pub const DECODE_CLEAN: i32 = 0;
/// `porwatch decode`: usage or IO error.
pub const DECODE_ERROR: i32 = 2;
/// `porwatch decode`: the trace is damaged.
pub const DECODE_DAMAGED: i32 = 3;
/// `porwatch decode`: intact, with a hazard (unless --no-fail-on-hazard).
pub const DECODE_HAZARD: i32 = 4;
/// `porwatch decode`: intact, recording a failed run.
pub const DECODE_RUN_FAILED: i32 = 5;

/// Markdown table of `porwatch run`'s statuses (README "Exit status").
pub fn run_table_markdown() -> String {
    let mut s = String::from("| status | outcome | meaning |\n|---|---|---|\n");
    for o in RUN_OUTCOMES {
        s.push_str(&format!("| {} | `{}` | {} |\n", o.code_text(), o.name(), o.meaning()));
    }
    s
}

/// The same as plain text, for `porwatch run --help`.
pub fn run_table_text() -> String {
    let mut s = format!(
        "Exit status: the guest's test status if it is 0-{GUEST_STATUS_MAX} and nothing else happened; \
         otherwise porwatch's own, the first of these that applies:\n"
    );
    for o in RUN_OUTCOMES {
        s.push_str(&format!("  {:>5}  {}: {}\n", o.code_text(), o.name(), o.meaning().replace('`', "\"")));
    }
    s.push_str("  (101: porwatch itself panicked, a bug.)\n");
    s
}

/// Markdown table of `porwatch decode`'s statuses.
pub fn decode_table_markdown() -> String {
    let mut s = String::from("| status | meaning |\n|---|---|\n");
    for (code, meaning) in DECODE_STATUSES {
        s.push_str(&format!("| {code} | {meaning} |\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_statuses_are_distinct_and_above_the_guest_range() {
        let own: Vec<i32> =
            RUN_OUTCOMES.iter().filter(|o| !matches!(o, RunStatus::Guest(_))).map(|o| o.code()).collect();
        for (i, a) in own.iter().enumerate() {
            assert!(*a > GUEST_STATUS_MAX as i32, "{a}");
            assert!(*a <= 255);
            assert!(!own[i + 1..].contains(a), "{a} twice");
        }
        // 101 is what a panicking Rust program exits with: not ours.
        assert!(!own.contains(&101));
    }

    #[test]
    fn guest_status_passes_through_in_range_only() {
        assert_eq!(RunStatus::of_guest_status(0), RunStatus::Guest(0));
        assert_eq!(RunStatus::of_guest_status(3).code(), 3);
        assert_eq!(RunStatus::of_guest_status(63).code(), 63);
        for wide in [64, 79, 255, 256, 1 << 32, u64::MAX] {
            assert_eq!(RunStatus::of_guest_status(wide), RunStatus::GuestStatusOutOfRange, "{wide}");
        }
    }

    #[test]
    fn precedence_follows_the_table() {
        assert!(RunStatus::Refused.precedence() < RunStatus::QemuFailed.precedence());
        assert!(RunStatus::GuestPanic.precedence() < RunStatus::Timeout.precedence());
        assert!(RunStatus::TraceDamaged.precedence() < RunStatus::Guest(5).precedence());
        assert_eq!(RunStatus::Guest(5).precedence(), RunStatus::Guest(0).precedence());
        let t = run_table_markdown();
        assert!(t.contains("| 0-63 | `guest` |"), "{t}");
        assert!(t.contains("| 124 | `timeout` |"), "{t}");
        assert!(run_table_text().contains("   65  trace_damaged: "), "{}", run_table_text());
    }
}
