//! Watching the guest console for a kernel that died: Linux's panic, Oops
//! and BUG lines. `porwatch run` names the first one in its closing summary
//! and exits [`crate::exit_status::RunOutcome::GuestPanic`].

/// Line starts (after the printk prefix) that mean the kernel died, and
/// what to call it. From Linux: `panic()` (kernel/panic.c), arm64 `die()`
/// ("Internal error: Oops..." in arch/arm64/kernel/traps.c),
/// `__do_kernel_fault()` ("Unable to handle kernel ..." in
/// arch/arm64/mm/fault.c), and the generic `BUG()` report (lib/bug.c).
const DEATH_LINES: [(&str, &str); 4] = [
    ("Kernel panic - not syncing", "kernel panic"),
    ("Internal error: ", "Oops"),
    ("Unable to handle kernel ", "Oops"),
    ("kernel BUG at ", "BUG"),
];

/// What kind of kernel death `line` reports, if any. The line is matched
/// after its printk prefix: an optional `<N>` log level and any `[...]`
/// groups (the timestamp, `[    T1]` caller ids), so that a guest merely
/// mentioning these words inside other text is not taken for one.
pub fn kernel_death(line: &str) -> Option<&'static str> {
    let mut rest = line.trim_start();
    if let Some(r) = rest.strip_prefix('<') {
        if let Some((level, after)) = r.split_once('>') {
            if !level.is_empty() && level.bytes().all(|b| b.is_ascii_digit()) {
                rest = after.trim_start();
            }
        }
    }
    while let Some(r) = rest.strip_prefix('[') {
        match r.split_once(']') {
            Some((_, after)) => rest = after.trim_start(),
            None => break,
        }
    }
    DEATH_LINES.iter().find(|(start, _)| rest.starts_with(start)).map(|&(_, kind)| kind)
}

/// The console lines seen so far that report a kernel death.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsoleWatch {
    /// The first such line (without its line end) and its kind.
    pub first: Option<(String, &'static str)>,
    /// How many there were.
    pub count: u64,
}

impl ConsoleWatch {
    /// Looks at one console line.
    pub fn line(&mut self, line: &str) {
        if let Some(kind) = kernel_death(line) {
            self.count += 1;
            if self.first.is_none() {
                self.first = Some((line.trim_end().to_string(), kind));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_death_lines_are_recognised() {
        for (line, kind) in [
            (
                "[    2.345678] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b",
                "kernel panic",
            ),
            ("Kernel panic - not syncing: VFS: Unable to mount root fs", "kernel panic"),
            (
                "[    1.000000] Internal error: Oops - Undefined instruction: 0000000002000000 [#1] SMP",
                "Oops",
            ),
            ("[    1.000000][    T1] Internal error: Oops: 0000000096000004 [#1] PREEMPT SMP", "Oops"),
            ("<0>[    1.0] Unable to handle kernel paging request at virtual address dead", "Oops"),
            ("[    3.1] Unable to handle kernel NULL pointer dereference at virtual address 0", "Oops"),
            ("[    3.1] kernel BUG at mm/slub.c:123!", "BUG"),
        ] {
            assert_eq!(kernel_death(line), Some(kind), "{line}");
        }
    }

    #[test]
    fn other_lines_are_not() {
        for line in [
            "",
            "hello: bootargs \"Kernel panic - not syncing\"",
            "seed: Unable to handle kernel write to read-only memory at virtual address 0",
            "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x000f0510]",
            "[    0.1] WARNING: CPU: 0 PID: 1 at mm/x.c:1",
            "[unterminated Kernel panic - not syncing",
            "<x> Kernel panic",
        ] {
            assert_eq!(kernel_death(line), None, "{line}");
        }
    }

    #[test]
    fn the_first_line_is_kept_and_all_counted() {
        let mut w = ConsoleWatch::default();
        w.line("[ 1.0] Internal error: Oops: 96000004 [#1] SMP\r\n");
        w.line("[ 1.1] Modules linked in:");
        w.line("[ 1.2] Kernel panic - not syncing: Oops: Fatal exception");
        assert_eq!(w.count, 2);
        assert_eq!(w.first, Some(("[ 1.0] Internal error: Oops: 96000004 [#1] SMP".to_string(), "Oops")));
    }
}
