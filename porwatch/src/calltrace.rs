//! The "Call trace:" section of a hazard report, kernel-splat style: the
//! store's PC, then the return addresses of the guest's frame records
//! (`call_trace` record), symbolized as `func+0xoff/0xsize`; then the same
//! for the code the cause entry interrupted.

use std::fmt::Write as _;

use porwatch_trace::UNWIND_END_NAMES;

use crate::annotate::enum_text;
use crate::findings::CallTrace;
use crate::symbols::Symbolizer;

/// One frame: `func+0xoff/0xsize`, or the address without symbols.
fn frame(sym: Option<&Symbolizer>, a: u64) -> String {
    match sym.and_then(|s| s.sym(a)) {
        Some(t) => t,
        None => format!("{a:#x}"),
    }
}

/// The function a code address is in, by name (None without symbols).
fn function(sym: Option<&Symbolizer>, a: u64) -> Option<String> {
    let s = sym?.sym(a)?;
    Some(s.split('+').next().unwrap_or(&s).to_string())
}

/// Whether x30 names a caller the frame records leave out: a function
/// that has not stored its frame record (a leaf) is called from `lr`,
/// while the first record already belongs to its caller's caller. Not when
/// `lr` is the first return address, or (with symbols) inside the
/// function of `pc` (a call it made earlier).
fn lr_adds_a_caller(c: &CallTrace, sym: Option<&Symbolizer>) -> bool {
    if c.lr == 0 || c.frames.first() == Some(&c.lr) {
        return false;
    }
    match (function(sym, c.lr), function(sym, c.pc)) {
        (Some(a), Some(b)) => a != b,
        _ => true,
    }
}

/// Why the walk stopped, when it did not reach the outermost frame.
fn end_note(end: u64) -> Option<String> {
    let why = match enum_text(UNWIND_END_NAMES, end).as_str() {
        "complete" => return None,
        "depth" => "16 frames shown; the chain goes on".to_string(),
        "unreadable" => "the next frame record is not readable".to_string(),
        "misaligned" => "the next frame pointer is misaligned".to_string(),
        "loop" => "the frame records loop".to_string(),
        other => other.to_string(),
    };
    Some(format!("({why})"))
}

/// The lines of one chain, each indented by `indent`.
pub fn chain_lines(c: &CallTrace, sym: Option<&Symbolizer>, indent: &str) -> Vec<String> {
    let mut out = vec![format!("{indent}{}", frame(sym, c.pc))];
    if lr_adds_a_caller(c, sym) {
        out.push(format!("{indent}{} (lr)", frame(sym, c.lr)));
    }
    out.extend(c.frames.iter().map(|&f| format!("{indent}{}", frame(sym, f))));
    if let Some(n) = end_note(c.end) {
        out.push(format!("{indent}{n}"));
    }
    out
}

/// The section appended to a hazard report: `store` is the hazard's call
/// trace, `entry` the one of its cause entry (`entry_seq`).
pub fn section(
    store: Option<&CallTrace>,
    entry: Option<&CallTrace>,
    entry_seq: u64,
    sym: Option<&Symbolizer>,
) -> String {
    let mut s = String::new();
    if let Some(c) = store {
        s.push_str("  Call trace:\n");
        for l in chain_lines(c, sym, "   ") {
            let _ = writeln!(s, "{l}");
        }
    }
    if let Some(c) = entry {
        let _ = writeln!(s, "  Interrupted code (#{entry_seq} exc_entry):");
        for l in chain_lines(c, sym, "   ") {
            let _ = writeln!(s, "{l}");
        }
    }
    s
}

/// A site on one line: `pc <- caller <- ...` (at most `depth` frames).
pub fn one_line(pc: u64, frames: &[u64], sym: Option<&Symbolizer>, depth: usize) -> String {
    let mut parts = vec![frame(sym, pc)];
    parts.extend(frames.iter().take(depth).map(|&f| frame(sym, f)));
    if frames.len() > depth {
        parts.push("...".to_string());
    }
    parts.join(" <- ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::Symbols;
    use std::sync::Arc;

    fn syms() -> Symbolizer {
        let s = Symbols::from_entries(vec![
            (0x1000, Some(0x40), "copy_to_kernel_nofault".into()),
            (0x1040, Some(0x40), "kunit_write_linear_map_pte".into()),
            (0x2000, Some(0x1000), "test_main".into()),
        ]);
        Symbolizer { symbols: Arc::new(s), offset: 0, verbose: false }
    }

    fn trace(lr: u64, end: u64) -> CallTrace {
        CallTrace { seq: 9, of: 0, ref_seq: 0, pc: 0x1008, lr, fp: 0x8000, end, frames: vec![0x2874, 0x2f00] }
    }

    #[test]
    fn section_reads_like_a_kernel_call_trace() {
        let sym = syms();
        let c = trace(0x2874, 0);
        let s = section(Some(&c), None, 0, Some(&sym));
        assert_eq!(s, "  Call trace:\n   copy_to_kernel_nofault+0x8/0x40\n   test_main+0x874/0x1000\n   test_main+0xf00/0x1000\n");
        // A leaf: x30 names the caller the records skip.
        let c = trace(0x1064, 0);
        let lines = chain_lines(&c, Some(&sym), " ");
        assert_eq!(lines[1], " kunit_write_linear_map_pte+0x24/0x40 (lr)");
        assert_eq!(lines.len(), 4);
        // x30 inside the same function: an earlier call's return, left out.
        assert_eq!(chain_lines(&trace(0x1020, 0), Some(&sym), " ").len(), 3);
        // Without symbols: addresses; an unfinished walk says why.
        let lines = chain_lines(&trace(0x2874, 2), None, "");
        assert_eq!(lines, ["0x1008", "0x2874", "0x2f00", "(the next frame record is not readable)"]);
        let e = trace(0, 1);
        let s = section(None, Some(&e), 71, None);
        assert!(s.starts_with("  Interrupted code (#71 exc_entry):\n   0x1008\n"), "{s}");
        assert!(s.ends_with("   (16 frames shown; the chain goes on)\n"), "{s}");
        assert_eq!(section(None, None, 0, None), "");
    }

    #[test]
    fn one_line_sites() {
        let sym = syms();
        assert_eq!(
            one_line(0x1008, &[0x1064, 0x2874], Some(&sym), 1),
            "copy_to_kernel_nofault+0x8/0x40 <- kunit_write_linear_map_pte+0x24/0x40 <- ..."
        );
        assert_eq!(one_line(0x1008, &[], None, 4), "0x1008");
    }
}
