//! How a `porwatch run` ended: from what QEMU did, what the trace says and
//! what the guest console showed, the exit status ([`RunStatus`]) and one
//! line per thing that went wrong. Pure, so every rule is unit-tested.

use porwatch_trace::{test_exit_status, ExitReason};

use crate::decode::Ending;
use crate::exit_status::RunStatus;
use crate::stats::Problem;

/// How the QEMU process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QemuEnd {
    /// It could not be started (the error).
    NotStarted(String),
    /// It exited with this status.
    Exited(i32),
    /// A signal we did not send ended it.
    Signaled(i32),
    /// porwatch killed it at --timeout (seconds).
    TimedOut(u64),
}

/// Everything [`decide`] looks at.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    pub qemu: QemuEnd,
    /// The trace was expected (not `porwatch.trace=none`).
    pub traced: bool,
    /// What the trace decode ended with.
    pub ending: &'a Ending,
    /// Reading the trace failed part way (an I/O error).
    pub trace_error: Option<&'a str>,
    /// The first console line reporting a kernel death, and its kind.
    pub console_death: Option<(&'a str, &'a str)>,
    /// QEMU's last lines on stderr.
    pub qemu_said: &'a [String],
    /// --fail-on-hazard.
    pub fail_on_hazard: bool,
}

/// The exit status and why, one `porwatch: ...` line per finding (the
/// decode summary above them already counts the trace's problems).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: RunStatus,
    pub lines: Vec<String>,
    /// Problems of the run that the trace's own summary does not count
    /// (name, text), so that the summary's verdict names them too:
    /// `qemu_failed`, `timeout`, `hyp_failed`, `hyp_refused`,
    /// `guest_exit_contradicted`, `trace_unreadable`, `guest_panic`.
    pub extra_problems: Vec<(&'static str, &'static str)>,
}

/// The status the hypervisor stops the machine with (and QEMU exits with)
/// after the guest exit `reason` / `code`, when it is one porwatch ends a
/// run with through semihosting.
fn expected_qemu_status(reason: u64, code: u64) -> Option<i32> {
    match reason {
        r if r == ExitReason::TestExit.code() => Some(i32::from(test_exit_status(code))),
        r if r == ExitReason::SystemOff.code()
            || r == ExitReason::SystemReset.code()
            || r == ExitReason::CpuOff.code() =>
        {
            Some(0)
        }
        _ => None,
    }
}

/// The hypervisor's own statuses (hyp/src/run_end.rs, hyp/src/boot.rs):
/// through semihosting, QEMU exits with them.
const HYP_FAILURE_STATUS: i32 = 70;
const HYP_REFUSED_STATUS: i32 = 78;

fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        _ => return format!("signal {sig}"),
    };
    format!("signal {sig} ({name})")
}

/// Decides the run's exit status. Every applicable finding gets a line; the
/// first outcome in the table's order wins.
pub fn decide(o: &Observed<'_>) -> Verdict {
    let stats = &o.ending.stats;
    let started = stats.count("guest_start") > 0;
    let mut found: Vec<(RunStatus, String)> = Vec::new();
    let mut extra: Vec<(&'static str, &'static str)> = Vec::new();
    const QEMU_FAILED: (&str, &str) = ("qemu_failed", "QEMU failed");
    const HYP_FAILED: (&str, &str) = ("hyp_failed", "hypervisor failed");
    const HYP_REFUSED: (&str, &str) = ("hyp_refused", "hypervisor refused its configuration");
    let qemu_said = match o.qemu_said.last() {
        Some(l) => format!("; QEMU said: {l}"),
        None => String::new(),
    };
    let mut guest: Option<RunStatus> = None;

    match &o.qemu {
        QemuEnd::NotStarted(e) => {
            extra.push(QEMU_FAILED);
            found.push((RunStatus::QemuFailed, format!("QEMU failed: cannot start it: {e}")))
        }
        QemuEnd::Signaled(sig) => {
            extra.push(QEMU_FAILED);
            found.push((
                RunStatus::QemuFailed,
                format!("QEMU failed: it was killed by {}{qemu_said}", signal_name(*sig)),
            ))
        }
        QemuEnd::TimedOut(secs) => {
            extra.push(("timeout", "timed out"));
            found.push((RunStatus::Timeout, format!("timed out after {secs} s: QEMU killed")))
        }
        QemuEnd::Exited(c) if !o.traced => {
            // No trace (porwatch.trace=none): QEMU's status is all there
            // is: the hypervisor's, i.e. the guest's test status cut to 8
            // bits (255 for wider codes), or a QEMU failure.
            let c = *c;
            match c {
                HYP_FAILURE_STATUS => {
                    extra.push(HYP_FAILED);
                    found.push((RunStatus::HypFailed, format!("the hypervisor failed (status {c})")))
                }
                HYP_REFUSED_STATUS => {
                    extra.push(HYP_REFUSED);
                    found.push((
                        RunStatus::Refused,
                        format!(
                            "the hypervisor refused its configuration (status {c}; its message is above)"
                        ),
                    ))
                }
                _ => {
                    guest = Some(RunStatus::of_guest_status(c as u64));
                    found.push((
                        RunStatus::Guest(0),
                        format!(
                            "no trace (porwatch.trace=none): the status is QEMU's exit status {c}, which a QEMU \
                             failure would also give{qemu_said}"
                        ),
                    ));
                }
            }
        }
        QemuEnd::Exited(c) => {
            let c = *c;
            match stats.guest_exit {
                Some(e) if e.reason == ExitReason::HypError.code() => {
                    found.push((RunStatus::HypFailed, "the hypervisor failed (guest_exit hyp_error)".into()))
                }
                Some(e) => {
                    if let Some(want) = expected_qemu_status(e.reason, e.code).filter(|&w| w != c) {
                        extra.push((
                            "guest_exit_contradicted",
                            "guest_exit contradicted by QEMU's exit status",
                        ));
                        found.push((
                            RunStatus::TraceDamaged,
                            format!(
                                "the trace's guest_exit ({} code {}) means QEMU exits with {want}, but it exited \
                                 with {c}: the guest_exit is not the one that ended the run{qemu_said}",
                                e.reason_name(),
                                e.code
                            ),
                        ));
                    }
                    if e.reason == ExitReason::TestExit.code() {
                        let g = RunStatus::of_guest_status(e.code);
                        if g == RunStatus::GuestStatusOutOfRange {
                            found.push((
                                g,
                                format!(
                                    "the guest's test status {} ({:#x}) is above 63, the largest porwatch run \
                                     passes on",
                                    e.code, e.code
                                ),
                            ));
                        }
                        guest = Some(g);
                    } else {
                        guest = Some(RunStatus::Guest(0));
                    }
                }
                None if c == HYP_FAILURE_STATUS => {
                    if stats.panics == 0 {
                        extra.push(HYP_FAILED);
                    }
                    found.push((
                        RunStatus::HypFailed,
                        match &stats.last_panic {
                            Some(m) => format!("the hypervisor failed: {m}"),
                            None => "the hypervisor failed (status 70; its message is above)".into(),
                        },
                    ))
                }
                None if c == HYP_REFUSED_STATUS && !started => {
                    extra.push(HYP_REFUSED);
                    found.push((
                        RunStatus::Refused,
                        "the hypervisor refused its configuration (status 78; its message is above)".into(),
                    ))
                }
                None => {
                    extra.push(QEMU_FAILED);
                    found.push((
                        RunStatus::QemuFailed,
                        if started {
                            format!(
                                "QEMU failed: it exited with status {c} while the guest was running (the trace \
                                 has no guest_exit){qemu_said}"
                            )
                        } else {
                            format!("QEMU failed: it exited with status {c} before the guest started{qemu_said}")
                        },
                    ))
                }
            }
        }
    }

    if o.traced {
        if stats.panics > 0 && !found.iter().any(|(f, _)| *f == RunStatus::HypFailed) {
            let m = stats.last_panic.as_deref().unwrap_or("");
            found.push((RunStatus::HypFailed, format!("the hypervisor failed: {m}")));
        }
        let damage: Vec<Problem> = stats.problems().into_iter().filter(|p| p.damages_trace()).collect();
        // No records because QEMU or the hypervisor stopped before writing
        // any is a consequence, not news.
        let explained = damage == [Problem::NoRecords]
            && found
                .iter()
                .any(|(f, _)| matches!(f, RunStatus::QemuFailed | RunStatus::Refused | RunStatus::HypFailed));
        if !damage.is_empty() && !explained {
            let damage: Vec<&str> = damage.into_iter().map(Problem::text).collect();
            found.push((RunStatus::TraceDamaged, format!("the trace is damaged: {}", damage.join(", "))));
        }
        if let Some(e) = o.trace_error {
            extra.push(("trace_unreadable", "trace not read to its end"));
            found.push((RunStatus::TraceDamaged, format!("the trace could not be read to its end: {e}")));
        }
        if stats.undefs_injected > 0 {
            found.push((
                RunStatus::GuestUndef,
                format!(
                    "the guest failed: porwatch injected {} UNDEF(s) for instructions it could not handle \
                     (first shown above)",
                    stats.undefs_injected
                ),
            ));
        }
        if stats.tables_unwatched > 0 {
            found.push((
                RunStatus::TrackerOverflow,
                format!(
                    "{} page-table page(s) went unwatched (tracker over capacity, or released)",
                    stats.tables_unwatched
                ),
            ));
        }
    }
    if let Some((line, kind)) = o.console_death {
        extra.push(("guest_panic", "guest kernel died"));
        found.push((RunStatus::GuestPanic, format!("the guest kernel died ({kind}): {line}")));
    }

    let worst = found
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| !matches!(f, RunStatus::Guest(_)))
        .min_by_key(|f| f.precedence());
    let mut outcome = match (worst, guest) {
        (Some(w), Some(g)) if g.precedence() < w.precedence() => g,
        (Some(w), _) => w,
        (None, Some(g)) => g,
        // Nothing found and no guest exit: cannot happen (every QEMU end
        // without a guest_exit is a finding); be safe.
        (None, None) => RunStatus::QemuFailed,
    };
    if outcome == RunStatus::Guest(0) && o.fail_on_hazard && stats.count("hazard") > 0 {
        outcome = RunStatus::Hazard;
        found.push((RunStatus::Hazard, format!("{} hazard(s) (--fail-on-hazard)", stats.count("hazard"))));
    }
    let mut lines: Vec<String> = found.into_iter().map(|(_, l)| format!("porwatch: {l}")).collect();
    lines.push(format!("porwatch: exit status {} ({})", outcome.code(), outcome.name()));
    Verdict { outcome, lines, extra_problems: extra }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{DecodeStats, GuestExit};

    /// An intact trace of a started guest that exited with `exit`.
    fn stats(exit: Option<(ExitReason, u64)>) -> DecodeStats {
        let mut s = DecodeStats { records: 5, ..Default::default() };
        s.per_kind.insert("header", 1);
        s.per_kind.insert("guest_start", 1);
        s.guest_exit = exit.map(|(r, code)| GuestExit { reason: r.code(), code });
        s
    }

    fn run(qemu: QemuEnd, s: DecodeStats) -> Verdict {
        run_with(qemu, s, |_| {})
    }

    fn run_with(qemu: QemuEnd, stats: DecodeStats, f: impl FnOnce(&mut Observed<'_>)) -> Verdict {
        let ending = Ending { stats, ..Ending::default() };
        let said = vec!["qemu-system-aarch64: boom".to_string()];
        let mut o = Observed {
            qemu,
            traced: true,
            ending: &ending,
            trace_error: None,
            console_death: None,
            qemu_said: &said,
            fail_on_hazard: false,
        };
        f(&mut o);
        decide(&o)
    }

    #[test]
    fn the_guest_status_comes_from_the_trace_in_full() {
        let v = run(QemuEnd::Exited(0), stats(Some((ExitReason::TestExit, 0))));
        assert_eq!(v.outcome, RunStatus::Guest(0));
        assert_eq!(v.lines, ["porwatch: exit status 0 (guest)"]);
        assert!(v.extra_problems.is_empty());
        let v = run(QemuEnd::Exited(3), stats(Some((ExitReason::TestExit, 3))));
        assert_eq!(v.outcome.code(), 3);
        // 256 and 2^32 are not passes: QEMU saw 255 (the hypervisor's cut).
        for code in [64, 256, 1 << 32, u64::MAX] {
            let v = run(
                QemuEnd::Exited(i32::from(test_exit_status(code))),
                stats(Some((ExitReason::TestExit, code))),
            );
            assert_eq!(v.outcome, RunStatus::GuestStatusOutOfRange, "{code}");
            assert!(v.lines[0].contains(&format!("test status {code} ({code:#x}) is above 63")), "{v:?}");
        }
        let v = run(QemuEnd::Exited(0), stats(Some((ExitReason::SystemOff, 0))));
        assert_eq!(v.outcome, RunStatus::Guest(0));
    }

    #[test]
    fn a_guest_exit_that_qemu_contradicts_is_damage() {
        let v = run(QemuEnd::Exited(1), stats(Some((ExitReason::TestExit, 0))));
        assert_eq!(v.outcome, RunStatus::TraceDamaged);
        assert!(v.lines[0].contains("means QEMU exits with 0, but it exited with 1"), "{v:?}");
    }

    #[test]
    fn qemu_failures_are_named_with_status_and_message() {
        let mut s = stats(None);
        s.per_kind.remove("guest_start");
        let v = run(QemuEnd::Exited(1), s.clone());
        assert_eq!(v.outcome, RunStatus::QemuFailed);
        assert_eq!(
            v.lines[0],
            "porwatch: QEMU failed: it exited with status 1 before the guest started; QEMU said: \
             qemu-system-aarch64: boom"
        );
        let v = run(QemuEnd::Exited(0), stats(None));
        assert!(v.lines[0].contains("exited with status 0 while the guest was running"), "{v:?}");
        let v = run(QemuEnd::Signaled(libc::SIGSEGV), stats(None));
        assert!(v.lines[0].contains("killed by signal 11 (SIGSEGV)"), "{v:?}");
        assert_eq!(v.extra_problems, [("qemu_failed", "QEMU failed")]);
        assert_eq!(v.outcome, RunStatus::QemuFailed);
        let v = run(QemuEnd::NotStarted("No such file".into()), DecodeStats::default());
        assert_eq!(v.outcome, RunStatus::QemuFailed);
        assert!(v.lines[0].contains("cannot start it: No such file"), "{v:?}");
        // An empty trace follows from that: not named as damage.
        assert!(!v.lines.iter().any(|l| l.contains("damaged")), "{v:?}");
        // An empty trace from a QEMU that ran the guest is.
        let v = run(QemuEnd::Exited(0), DecodeStats { records: 0, ..stats(Some((ExitReason::TestExit, 0))) });
        assert_eq!(v.outcome, RunStatus::TraceDamaged);
        assert!(v.lines.iter().any(|l| l.contains("trace is damaged: no records")), "{v:?}");
    }

    #[test]
    fn hypervisor_statuses_without_a_guest_exit() {
        let mut s = stats(None);
        s.panics = 1;
        s.last_panic = Some("boom at x.rs:1".into());
        let v = run(QemuEnd::Exited(70), s);
        assert_eq!(v.outcome, RunStatus::HypFailed);
        assert_eq!(v.lines[0], "porwatch: the hypervisor failed: boom at x.rs:1");
        let v = run(QemuEnd::Exited(78), DecodeStats::default());
        assert_eq!(v.outcome, RunStatus::Refused);
        // 78 once the guest ran is not the hypervisor's refusal.
        let v = run(QemuEnd::Exited(78), stats(None));
        assert_eq!(v.outcome, RunStatus::QemuFailed);
    }

    #[test]
    fn guest_failures_and_precedence() {
        let mut s = stats(Some((ExitReason::TestExit, 0)));
        s.undefs_injected = 2;
        let v = run(QemuEnd::Exited(0), s.clone());
        assert_eq!(v.outcome, RunStatus::GuestUndef);
        // A kernel panic on the console wins over the UNDEF and the timeout.
        let mut t = s.clone();
        t.guest_exit = None;
        let v = run_with(QemuEnd::TimedOut(60), t, |o| {
            o.console_death = Some(("[ 1.0] Kernel panic - not syncing: x", "kernel panic"))
        });
        assert_eq!(v.outcome, RunStatus::GuestPanic);
        assert!(v.lines.iter().any(|l| l.contains("timed out after 60 s")), "{v:?}");
        let names: Vec<&str> = v.extra_problems.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["timeout", "guest_panic"], "{v:?}");
        assert!(
            v.lines.iter().any(|l| l.contains("guest kernel died (kernel panic): [ 1.0] Kernel panic")),
            "{v:?}"
        );
        // Tracker overflow beats the guest's own status, damage beats both.
        let mut s = stats(Some((ExitReason::TestExit, 5)));
        s.tables_unwatched = 523;
        assert_eq!(run(QemuEnd::Exited(5), s.clone()).outcome, RunStatus::TrackerOverflow);
        s.mid_stream_headers = 1;
        let v = run(QemuEnd::Exited(5), s);
        assert_eq!(v.outcome, RunStatus::TraceDamaged);
        assert!(v.lines.iter().any(|l| l.contains("damaged: mid-stream header")), "{v:?}");
        // A timeout with a cut-off tail is a timeout.
        let mut s = stats(None);
        s.truncated_tail = true;
        assert_eq!(run(QemuEnd::TimedOut(5), s).outcome, RunStatus::Timeout);
    }

    #[test]
    fn hazard_replaces_only_a_pass() {
        let mut s = stats(Some((ExitReason::TestExit, 0)));
        s.per_kind.insert("hazard", 1);
        assert_eq!(run(QemuEnd::Exited(0), s.clone()).outcome, RunStatus::Guest(0));
        let v = run_with(QemuEnd::Exited(0), s.clone(), |o| o.fail_on_hazard = true);
        assert_eq!(v.outcome, RunStatus::Hazard);
        s.guest_exit = Some(GuestExit { reason: ExitReason::TestExit.code(), code: 2 });
        let v = run_with(QemuEnd::Exited(2), s, |o| o.fail_on_hazard = true);
        assert_eq!(v.outcome.code(), 2);
    }

    #[test]
    fn without_a_trace_qemus_status_is_used() {
        let v = run_with(QemuEnd::Exited(0), DecodeStats::default(), |o| o.traced = false);
        assert_eq!(v.outcome, RunStatus::Guest(0));
        assert!(v.lines[0].contains("porwatch.trace=none"), "{v:?}");
        let v = run_with(QemuEnd::Exited(255), DecodeStats::default(), |o| o.traced = false);
        assert_eq!(v.outcome, RunStatus::GuestStatusOutOfRange);
        let v = run_with(QemuEnd::Exited(70), DecodeStats::default(), |o| o.traced = false);
        assert_eq!(v.outcome, RunStatus::HypFailed);
    }
}
