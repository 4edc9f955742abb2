//! The hypervisor's options inside the kernel command line.
//!
//! QEMU's `-append` becomes `/chosen/bootargs`. [`split`] takes every word
//! that starts with `porwatch.` as a hypervisor option and copies every other
//! word, unchanged and in order, to the guest's command line (joined by single
//! spaces, no trailing space).
//!
//! Words are separated by ASCII space, tab, CR and LF. As in Linux's
//! `next_arg`, a double quote toggles "inside quotes", where separators do not
//! split (`foo="a b"` is one word; an unterminated quote runs to the end).
//! Guest words keep their quotes. A `porwatch.` word never needs quotes, and
//! one containing a quote is an error. Everything after a bare `--` belongs to
//! the guest's init and is passed through without looking for options.
//!
//! | option | values | default |
//! |---|---|---|
//! | `porwatch.guest=` | entry/load address of the guest image: `0x` hex or decimal | none |
//! | `porwatch.trace=` | UART node path (`/pl011@9040000`), MMIO address (`0x9040000`), `semihosting:FILE` (a host file written with Arm semihosting; needs `porwatch.semihosting`), or `none` | none (hypervisor's choice) |
//! | `porwatch.semihosting` | boolean | off |
//! | `porwatch.poe=` | `auto`, `virtual`, `native`, `off` | `auto` |
//! | `porwatch.eret` | boolean | off |
//! | `porwatch.tap` | boolean, or `step` (on, always with the execute-never, single-stepping mechanism) | on |
//! | `porwatch.por=` | `sample`, `trap` (native POE: how POR_EL1 changes are seen) | `sample` |
//! | `porwatch.policy=` | `report`, `fault` | `report` |
//! | `porwatch.verbose` | boolean | off |
//! | `porwatch.track` | boolean | on |
//! | `porwatch.audit=` | `off`, or a comma-separated list of `first-por`, `exit`, `every:MS` | first-por and exit, when the guest uses overlays |
//! | `porwatch.stream=` | `all`, `flight` (docs/flight.md) | `flight` |
//! | `porwatch.audit_por=` | the restrictive POR_EL1 value to audit against: `0x` hex or decimal | learned from the guest |
//!
//! Booleans accept `1`/`0`, `on`/`off`, `true`/`false`, or the bare key (`porwatch.verbose`)
//! meaning true. An unknown key, a malformed value, a missing value and an
//! option given twice are errors naming the key: the hypervisor prints them
//! and refuses to start rather than silently ignore a wrong option.

use core::fmt;

/// Where the trace goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceSel<'a> {
    /// A UART by device tree node path (starts with `/`).
    Path(&'a str),
    /// A UART by MMIO base address.
    Addr(u64),
    /// No trace output.
    None,
    /// A file on the host, written with Arm semihosting (SYS_OPEN "wb",
    /// SYS_WRITE): `semihosting:NAME`. NAME is what the debugger or model
    /// opens (QEMU: relative to its working directory), 1 to
    /// [`MAX_SEMIHOSTING_NAME`] bytes. Only usable with
    /// `porwatch.semihosting` (the hypervisor refuses it otherwise).
    Semihosting(&'a str),
}

/// Longest file name `porwatch.trace=semihosting:NAME` accepts (bytes).
pub const MAX_SEMIHOSTING_NAME: usize = 255;

/// The value prefix of a semihosting trace file.
const SEMIHOSTING_PREFIX: &str = "semihosting:";

/// How permission overlays (FEAT_S1POE) are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoeMode {
    /// Native if the CPU has FEAT_S1POE, virtual otherwise.
    #[default]
    Auto,
    /// Emulated by the hypervisor.
    Virtual,
    /// The hardware feature (error at start-up if absent).
    Native,
    /// Not offered to the guest.
    Off,
}

/// How porwatch sees the guest's POR_EL1 changes under native POE (virtual
/// POE always completes, and so sees, every access).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PorWatch {
    /// POR_EL1 writes run untrapped; porwatch reads POR_EL1 at every tapped
    /// exception entry and table-store trap and derives the changes
    /// (docs/tap.md).
    #[default]
    Sample,
    /// Every POR_EL1 write traps (FGT) and is recorded where it is made.
    Trap,
}

/// What the trace streams (docs/flight.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stream {
    /// Every record.
    All,
    /// The default: exception entries, returns, POR writes and expected
    /// traps stay in a per-CPU ring; hazards go out with their cause chain
    /// from it, entry transitions and everything else as with `All`.
    #[default]
    Flight,
}

/// What porwatch does with stores to last-level page tables while no
/// overlay can deny a privileged write (docs/costs.md, "Open leaf tables").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Leaves {
    /// The default: while TCR2_EL1.POE is clear on every CPU, a last-level
    /// table page is left writable at stage 2 after its first store (no
    /// such store can be a hazard, none links a table); every one is
    /// write-protected again before any CPU runs with POE set.
    #[default]
    Open,
    /// Every tracked table page stays write-protected: each store traps,
    /// is counted in `pt_stats` and DMA into any table is stopped.
    Trap,
}

/// Whether porwatch rewrites hot `MRS/MSR POR_EL1` sites under virtual
/// POE (docs/tap.md, "Patched POR_EL1 sites").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PorSites {
    /// The default: a site that UNDEFs often runs, in a shadow of its code
    /// page, as the same access of a carrier register (reads untrapped,
    /// writes one trap instead of two).
    #[default]
    Patch,
    /// Every access UNDEFs and is completed by EL2.
    Off,
}

/// What to do when the guest violates a watched permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Record and let the guest continue.
    #[default]
    Report,
    /// Record and inject a fault into the guest.
    Fault,
}

/// A deliberate hypervisor failure, for testing the failure path
/// (`porwatch.selftest=`). Never set in normal runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfTest {
    /// A Rust panic just before entering the guest.
    Panic,
    /// An exception taken at EL2 (an UNDEFINED instruction) at the same point.
    El2Fault,
    /// The trace queue refuses every record that may be dropped, as a full
    /// queue would: each is counted and reported by a `dropped` record
    /// before the next reliable one (tests the loss accounting).
    Drop,
    /// The trace queue refuses every other record that may be dropped: a
    /// CPU's droppable record goes out only right after its `dropped`
    /// report (tests the seq and time of the report before a record).
    DropHalf,
}

/// When the protection audit runs (`porwatch.audit=`; docs/audit.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditWhen {
    /// Once the guest first runs under a restrictive POR_EL1 with its MMU on.
    pub first_por: bool,
    /// When the guest stops.
    pub exit: bool,
    /// At most every this many milliseconds (0: not periodically).
    pub every_ms: u32,
    /// Given on the command line. The default audits only a guest that
    /// uses overlays; an explicit choice also says when there is nothing to
    /// audit.
    pub explicit: bool,
}

impl AuditWhen {
    /// Without `porwatch.audit=`.
    pub const DEFAULT: AuditWhen = AuditWhen { first_por: true, exit: true, every_ms: 0, explicit: false };
    /// `porwatch.audit=off`.
    pub const OFF: AuditWhen = AuditWhen { first_por: false, exit: false, every_ms: 0, explicit: true };

    /// Some audit may run.
    pub const fn any(&self) -> bool {
        self.first_por || self.exit || self.every_ms != 0
    }
}

/// The longest `every:MS` period: one hour.
pub const MAX_AUDIT_PERIOD_MS: u32 = 3_600_000;

/// `first-por`, `exit`, `every:MS` separated by commas, or `off`.
fn parse_audit(v: &str) -> Option<AuditWhen> {
    if v == "off" {
        return Some(AuditWhen::OFF);
    }
    let mut w = AuditWhen { first_por: false, exit: false, every_ms: 0, explicit: true };
    for item in v.split(',') {
        match item {
            "first-por" if !w.first_por => w.first_por = true,
            "exit" if !w.exit => w.exit = true,
            _ => {
                let ms = item.strip_prefix("every:").and_then(parse_u64)?;
                if w.every_ms != 0 || ms == 0 || ms > MAX_AUDIT_PERIOD_MS as u64 {
                    return None;
                }
                w.every_ms = ms as u32;
            }
        }
    }
    Some(w)
}

/// The hypervisor's options, with their defaults from [`Options::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options<'a> {
    /// `porwatch.guest`: guest image entry/load address.
    pub guest: Option<u64>,
    /// `porwatch.trace`: trace UART selection (`None`: not given).
    pub trace: Option<TraceSel<'a>>,
    /// `porwatch.semihosting` (default off).
    pub semihosting: bool,
    /// `porwatch.poe` (default auto).
    pub poe: PoeMode,
    /// `porwatch.eret`: trace exception returns (default off).
    pub exc_return: bool,
    /// `porwatch.tap` (default on).
    pub tap: bool,
    /// `porwatch.tap=step`: the tap on, always with its execute-never,
    /// single-stepping mechanism (for comparison; docs/tap.md).
    pub tap_step: bool,
    /// `porwatch.policy` (default report).
    pub policy: Policy,
    /// `porwatch.verbose` (default off).
    pub verbose: bool,
    /// `porwatch.selftest=panic|el2-fault|drop|drop-half`: fail on purpose (tests only).
    pub selftest: Option<SelfTest>,
    /// `porwatch.track`: watch the guest's page tables (default on).
    pub track: bool,
    /// `porwatch.audit`: when the protection audit runs.
    pub audit: AuditWhen,
    /// `porwatch.audit_por`: the restrictive POR_EL1 value the audit checks
    /// against (default: learned from the guest).
    pub audit_por: Option<u64>,
    /// `porwatch.por` (default sample).
    pub por: PorWatch,
    /// `porwatch.stream` (default flight).
    pub stream: Stream,
    /// `porwatch.leaves` (default open).
    pub leaves: Leaves,
    /// `porwatch.por_sites` (default patch).
    pub por_sites: PorSites,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Options<'_> {
    /// All defaults.
    pub const DEFAULT: Options<'static> = Options {
        guest: None,
        trace: None,
        semihosting: false,
        poe: PoeMode::Auto,
        exc_return: false,
        tap: true,
        tap_step: false,
        policy: Policy::Report,
        verbose: false,
        selftest: None,
        track: true,
        audit: AuditWhen::DEFAULT,
        audit_por: None,
        por: PorWatch::Sample,
        stream: Stream::Flight,
        leaves: Leaves::Open,
        por_sites: PorSites::Patch,
    };

    /// Stable bitmask summary for the trace header.
    ///
    /// Bit assignments never change; new options take new bits; unused bits are 0.
    ///
    /// | bits | meaning |
    /// |---|---|
    /// | 0..=1, 12 | trace (bit 12 is its bit 2): 0 not given, 1 node path, 2 address, 3 `none`, 4 `semihosting:FILE` (bit 12 was reserved and 0, so older headers read the same) |
    /// | 2 | semihosting |
    /// | 3..=4 | poe: 0 auto, 1 virtual, 2 native, 3 off |
    /// | 5 | eret (exception-return tracing) |
    /// | 6 | tap |
    /// | 7 | policy: 0 report, 1 fault |
    /// | 8 | verbose |
    /// | 9 | guest address given |
    /// | 10 | a selftest failure was requested |
    /// | 11 | track (page-table watch) |
    /// | 13 | audit given (`porwatch.audit=`); bits 14..=16 then say when |
    /// | 14 | audit at first-por |
    /// | 15 | audit at exit |
    /// | 16 | periodic audit (`every:MS`) |
    /// | 17 | audit_por given |
    /// | 18 | por: 0 sample, 1 trap |
    /// | 19 | tap=step |
    /// | 20 | stream: 0 all, 1 flight |
    /// | 21 | leaves: 0 open, 1 trap |
    /// | 22 | por_sites: 0 patch, 1 off |
    /// | 23..=63 | reserved, 0 |
    pub fn bits(&self) -> u64 {
        let trace = match self.trace {
            None => 0,
            Some(TraceSel::Path(_)) => 1,
            Some(TraceSel::Addr(_)) => 2,
            Some(TraceSel::None) => 3,
            Some(TraceSel::Semihosting(_)) => 4,
        };
        let poe = match self.poe {
            PoeMode::Auto => 0,
            PoeMode::Virtual => 1,
            PoeMode::Native => 2,
            PoeMode::Off => 3,
        };
        (trace & 3)
            | (trace >> 2) << 12
            | u64::from(self.semihosting) << 2
            | poe << 3
            | u64::from(self.exc_return) << 5
            | u64::from(self.tap) << 6
            | u64::from(self.policy == Policy::Fault) << 7
            | u64::from(self.verbose) << 8
            | u64::from(self.guest.is_some()) << 9
            | u64::from(self.selftest.is_some()) << 10
            | u64::from(self.track) << 11
            | u64::from(self.audit.explicit) << 13
            | u64::from(self.audit.explicit && self.audit.first_por) << 14
            | u64::from(self.audit.explicit && self.audit.exit) << 15
            | u64::from(self.audit.explicit && self.audit.every_ms != 0) << 16
            | u64::from(self.audit_por.is_some()) << 17
            | u64::from(self.por == PorWatch::Trap) << 18
            | u64::from(self.tap_step) << 19
            | u64::from(self.stream == Stream::Flight) << STREAM_FLIGHT_BIT
            | u64::from(self.leaves == Leaves::Trap) << 21
            | u64::from(self.por_sites == PorSites::Off) << 22
    }
}

/// Why the command line was refused. Keys are given without the
/// `porwatch.` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    /// `porwatch.<key>` is not an option.
    UnknownKey(&'a str),
    /// The value is not valid for the key.
    BadValue {
        /// Option key.
        key: &'a str,
        /// Offending value.
        value: &'a str,
    },
    /// A non-boolean option given without `=value`.
    MissingValue(&'a str),
    /// The option appears more than once.
    Duplicate(&'a str),
    /// A `porwatch.` word contains a double quote (the whole word).
    Quoted(&'a str),
    /// `guest_out` cannot hold the guest's command line.
    OutputTooSmall,
}

impl CmdlineError<'_> {
    /// The option key concerned, if any.
    pub fn key(&self) -> Option<&str> {
        match *self {
            CmdlineError::UnknownKey(k)
            | CmdlineError::BadValue { key: k, .. }
            | CmdlineError::MissingValue(k)
            | CmdlineError::Duplicate(k) => Some(k),
            CmdlineError::Quoted(_) | CmdlineError::OutputTooSmall => None,
        }
    }
}

impl fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CmdlineError::UnknownKey(k) => write!(f, "unknown option porwatch.{k}"),
            CmdlineError::BadValue { key, value } => {
                write!(f, "bad value \"{value}\" for porwatch.{key}")
            }
            CmdlineError::MissingValue(k) => write!(f, "porwatch.{k} needs a value"),
            CmdlineError::Duplicate(k) => write!(f, "porwatch.{k} given more than once"),
            CmdlineError::Quoted(w) => write!(f, "quotes are not allowed in {w}"),
            CmdlineError::OutputTooSmall => f.write_str("guest command line too long"),
        }
    }
}

const PREFIX: &str = "porwatch.";

fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Iterator over command-line words (quote-aware, see the module doc).
#[derive(Debug, Clone)]
pub struct Words<'a> {
    rest: &'a str,
}

impl<'a> Words<'a> {
    /// Words of `s`.
    pub fn new(s: &'a str) -> Self {
        Words { rest: s }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let b = self.rest.as_bytes();
        let start = b.iter().position(|&c| !is_sep(c))?;
        let mut in_quote = false;
        let mut end = b.len();
        for (i, &c) in b.iter().enumerate().skip(start) {
            if c == b'"' {
                in_quote = !in_quote;
            } else if is_sep(c) && !in_quote {
                end = i;
                break;
            }
        }
        // Separators are ASCII, so both cuts are on char boundaries.
        let word = self.rest.get(start..end)?;
        self.rest = self.rest.get(end..).unwrap_or("");
        Some(word)
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        return u64::from_str_radix(hex, 16).ok();
    }
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_bool(v: Option<&str>) -> Option<bool> {
    match v {
        None => Some(true),
        Some("1" | "on" | "true") => Some(true),
        Some("0" | "off" | "false") => Some(false),
        Some(_) => None,
    }
}

/// `header.options` bit: `porwatch.stream=flight`.
pub const STREAM_FLIGHT_BIT: u32 = 20;

/// Bit per key in `seen`, to refuse duplicates.
const KEYS: [&str; 16] = [
    "guest",
    "trace",
    "semihosting",
    "poe",
    "eret",
    "tap",
    "policy",
    "verbose",
    "selftest",
    "track",
    "audit",
    "audit_por",
    "por",
    "stream",
    "leaves",
    "por_sites",
];

fn apply<'a>(opts: &mut Options<'a>, key: &'a str, value: Option<&'a str>) -> Result<(), CmdlineError<'a>> {
    let bad = |v: &'a str| CmdlineError::BadValue { key, value: v };
    let need = || value.ok_or(CmdlineError::MissingValue(key));
    let boolean = || parse_bool(value).ok_or_else(|| bad(value.unwrap_or("")));
    match key {
        "guest" => {
            let v = need()?;
            opts.guest = Some(parse_u64(v).ok_or_else(|| bad(v))?);
        }
        "trace" => {
            let v = need()?;
            opts.trace = Some(if v == "none" {
                TraceSel::None
            } else if let Some(name) = v.strip_prefix(SEMIHOSTING_PREFIX) {
                if name.is_empty() || name.len() > MAX_SEMIHOSTING_NAME {
                    return Err(bad(v));
                }
                TraceSel::Semihosting(name)
            } else if v.starts_with('/') {
                TraceSel::Path(v)
            } else {
                TraceSel::Addr(parse_u64(v).ok_or_else(|| bad(v))?)
            });
        }
        "semihosting" => opts.semihosting = boolean()?,
        "poe" => {
            let v = need()?;
            opts.poe = match v {
                "auto" => PoeMode::Auto,
                "virtual" => PoeMode::Virtual,
                "native" => PoeMode::Native,
                "off" => PoeMode::Off,
                _ => return Err(bad(v)),
            };
        }
        "eret" => opts.exc_return = boolean()?,
        "tap" if value == Some("step") => (opts.tap, opts.tap_step) = (true, true),
        "tap" => (opts.tap, opts.tap_step) = (boolean()?, false),
        "policy" => {
            let v = need()?;
            opts.policy = match v {
                "report" => Policy::Report,
                "fault" => Policy::Fault,
                _ => return Err(bad(v)),
            };
        }
        "verbose" => opts.verbose = boolean()?,
        "track" => opts.track = boolean()?,
        "audit" => {
            let v = need()?;
            opts.audit = parse_audit(v).ok_or_else(|| bad(v))?;
        }
        "audit_por" => {
            let v = need()?;
            opts.audit_por = Some(parse_u64(v).ok_or_else(|| bad(v))?);
        }
        "stream" => {
            let v = need()?;
            opts.stream = match v {
                "all" => Stream::All,
                "flight" => Stream::Flight,
                _ => return Err(bad(v)),
            };
        }
        "por" => {
            let v = need()?;
            opts.por = match v {
                "sample" => PorWatch::Sample,
                "trap" => PorWatch::Trap,
                _ => return Err(bad(v)),
            };
        }
        "leaves" => {
            let v = need()?;
            opts.leaves = match v {
                "open" => Leaves::Open,
                "trap" => Leaves::Trap,
                _ => return Err(bad(v)),
            };
        }
        "por_sites" => {
            let v = need()?;
            opts.por_sites = match v {
                "patch" => PorSites::Patch,
                "off" => PorSites::Off,
                _ => return Err(bad(v)),
            };
        }
        "selftest" => {
            let v = need()?;
            opts.selftest = match v {
                "panic" => Some(SelfTest::Panic),
                "el2-fault" => Some(SelfTest::El2Fault),
                "drop" => Some(SelfTest::Drop),
                "drop-half" => Some(SelfTest::DropHalf),
                _ => return Err(bad(v)),
            };
        }
        _ => return Err(CmdlineError::UnknownKey(key)),
    }
    Ok(())
}

/// True if `bootargs` asks for semihosting (`porwatch.semihosting` with a
/// true value, before any `--`), whatever else is wrong with the line: the
/// hypervisor needs it to report a refused command line to the host with a
/// non-zero exit status.
pub fn semihosting_requested(bootargs: &str) -> bool {
    let key = "semihosting";
    Words::new(bootargs)
        .take_while(|w| *w != "--")
        .filter_map(|w| w.strip_prefix(PREFIX))
        .filter_map(|w| {
            let (k, v) = match w.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (w, None),
            };
            (k == key).then_some(v)
        })
        .any(|v| parse_bool(v) == Some(true))
}

/// Splits `bootargs` into the hypervisor's [`Options`] and the guest's
/// command line, written to `guest_out` (UTF-8; its length is returned).
pub fn split<'a>(bootargs: &'a str, guest_out: &mut [u8]) -> Result<(Options<'a>, usize), CmdlineError<'a>> {
    let mut opts = Options::DEFAULT;
    let mut seen = 0u32;
    let mut len = 0usize;
    let mut init_args = false;
    for word in Words::new(bootargs) {
        if !init_args {
            if let Some(rest) = word
                .strip_prefix(PREFIX)
                .or_else(|| word.strip_prefix('"').and_then(|w| w.strip_prefix(PREFIX)))
            {
                if word.contains('"') {
                    return Err(CmdlineError::Quoted(word));
                }
                let (key, value) = match rest.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (rest, None),
                };
                let bit = KEYS.iter().position(|&k| k == key).ok_or(CmdlineError::UnknownKey(key))?;
                if seen & (1 << bit) != 0 {
                    return Err(CmdlineError::Duplicate(key));
                }
                seen |= 1 << bit;
                apply(&mut opts, key, value)?;
                continue;
            }
            if word == "--" {
                init_args = true;
            }
        }
        let sep = usize::from(len != 0);
        let end = len.checked_add(sep + word.len()).ok_or(CmdlineError::OutputTooSmall)?;
        let dst = guest_out.get_mut(len..end).ok_or(CmdlineError::OutputTooSmall)?;
        if sep == 1 {
            dst[0] = b' ';
        }
        dst[sep..].copy_from_slice(word.as_bytes());
        len = end;
    }
    Ok((opts, len))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    fn run(s: &str) -> Result<(Options<'_>, String), CmdlineError<'_>> {
        let mut buf = vec![0u8; s.len()];
        let (o, n) = split(s, &mut buf)?;
        Ok((o, String::from_utf8(buf[..n].to_vec()).unwrap()))
    }

    #[test]
    fn defaults_and_plain_passthrough() {
        let (o, g) = run("console=ttyAMA0 root=/dev/vda rw").unwrap();
        assert_eq!(o, Options::DEFAULT);
        assert_eq!(o, Options::default());
        assert_eq!(g, "console=ttyAMA0 root=/dev/vda rw");
        assert_eq!(o.guest, None);
        assert_eq!(o.trace, None);
        assert!(!o.semihosting && !o.exc_return && !o.verbose && o.tap);
        assert_eq!(o.poe, PoeMode::Auto);
        assert_eq!(o.policy, Policy::Report);
        let (_, g) = run("").unwrap();
        assert_eq!(g, "");
        let (_, g) = run(" \t\n ").unwrap();
        assert_eq!(g, "");
    }

    #[test]
    fn all_options() {
        let s = "console=ttyAMA0 porwatch.guest=0x44000000 earlycon \
                 porwatch.trace=/pl011@9040000 porwatch.semihosting \
                 porwatch.poe=native porwatch.eret=on porwatch.tap=off \
                 porwatch.policy=fault porwatch.verbose=1 porwatch.por=trap quiet";
        let (o, g) = run(s).unwrap();
        assert_eq!(
            o,
            Options {
                guest: Some(0x4400_0000),
                trace: Some(TraceSel::Path("/pl011@9040000")),
                semihosting: true,
                poe: PoeMode::Native,
                exc_return: true,
                tap: false,
                tap_step: false,
                policy: Policy::Fault,
                verbose: true,
                selftest: None,
                track: true,
                audit: AuditWhen::DEFAULT,
                audit_por: None,
                por: PorWatch::Trap,
                stream: Stream::Flight,
                leaves: Leaves::Open,
                por_sites: PorSites::Patch,
            }
        );
        assert_eq!(g, "console=ttyAMA0 earlycon quiet");
    }

    #[test]
    fn values() {
        fn o(s: &str) -> Options<'_> {
            run(s).unwrap().0
        }
        assert_eq!(o("porwatch.guest=1140850688").guest, Some(0x4400_0000));
        assert_eq!(o("porwatch.guest=0X44000000").guest, Some(0x4400_0000));
        assert_eq!(o("porwatch.guest=0xffffffffffffffff").guest, Some(u64::MAX));
        assert_eq!(o("porwatch.trace=0x9040000").trace, Some(TraceSel::Addr(0x904_0000)));
        assert_eq!(o("porwatch.trace=151257088").trace, Some(TraceSel::Addr(0x904_0000)));
        assert_eq!(o("porwatch.trace=none").trace, Some(TraceSel::None));
        assert_eq!(
            o("porwatch.trace=semihosting:/tmp/run/trace.pwt").trace,
            Some(TraceSel::Semihosting("/tmp/run/trace.pwt"))
        );
        assert_eq!(o("porwatch.trace=semihosting:trace.pwt").trace, Some(TraceSel::Semihosting("trace.pwt")));
        // Only the first "semihosting:" is the selector; the rest is the name.
        assert_eq!(
            o("porwatch.trace=semihosting:semihosting:x").trace,
            Some(TraceSel::Semihosting("semihosting:x"))
        );
        for (v, b) in
            [("1", true), ("on", true), ("true", true), ("0", false), ("off", false), ("false", false)]
        {
            let s = std::format!(
                "porwatch.semihosting={v} porwatch.eret={v} porwatch.tap={v} porwatch.verbose={v}"
            );
            let x = o(&s);
            assert_eq!((x.semihosting, x.exc_return, x.tap, x.verbose), (b, b, b, b), "{v}");
        }
        let x = o("porwatch.semihosting porwatch.eret porwatch.tap porwatch.verbose");
        assert!(x.semihosting && x.exc_return && x.tap && x.verbose);
        for (v, m) in [
            ("auto", PoeMode::Auto),
            ("virtual", PoeMode::Virtual),
            ("native", PoeMode::Native),
            ("off", PoeMode::Off),
        ] {
            assert_eq!(o(&std::format!("porwatch.poe={v}")).poe, m);
        }
        assert_eq!(o("porwatch.policy=report").policy, Policy::Report);
        assert_eq!(o("porwatch.policy=fault").policy, Policy::Fault);
    }

    #[test]
    fn errors_name_the_key() {
        fn e(s: &str) -> CmdlineError<'_> {
            run(s).unwrap_err()
        }
        assert_eq!(e("porwatch.bogus=1"), CmdlineError::UnknownKey("bogus"));
        assert_eq!(e("porwatch.bogus"), CmdlineError::UnknownKey("bogus"));
        assert_eq!(e("porwatch."), CmdlineError::UnknownKey(""));
        assert_eq!(e("porwatch.=3"), CmdlineError::UnknownKey(""));
        assert_eq!(e("porwatch.Guest=1"), CmdlineError::UnknownKey("Guest"));
        for (s, key, value) in [
            ("porwatch.guest=", "guest", ""),
            ("porwatch.guest=0x", "guest", "0x"),
            ("porwatch.guest=0x1g", "guest", "0x1g"),
            ("porwatch.guest=-1", "guest", "-1"),
            ("porwatch.guest=+1", "guest", "+1"),
            ("porwatch.guest=0x+1", "guest", "0x+1"),
            ("porwatch.guest=0x_1", "guest", "0x_1"),
            ("porwatch.guest= 1", "guest", ""),
            ("porwatch.guest=0x10000000000000000", "guest", "0x10000000000000000"),
            ("porwatch.guest=18446744073709551616", "guest", "18446744073709551616"),
            ("porwatch.trace=serial1", "trace", "serial1"),
            ("porwatch.trace=", "trace", ""),
            ("porwatch.trace=semihosting:", "trace", "semihosting:"),
            ("porwatch.trace=semihosting", "trace", "semihosting"),
            ("porwatch.trace=Semihosting:x", "trace", "Semihosting:x"),
            ("porwatch.semihosting=yes", "semihosting", "yes"),
            ("porwatch.semihosting=", "semihosting", ""),
            ("porwatch.poe=on", "poe", "on"),
            ("porwatch.eret=2", "eret", "2"),
            ("porwatch.tap=ON", "tap", "ON"),
            ("porwatch.policy=panic", "policy", "panic"),
            ("porwatch.verbose=x", "verbose", "x"),
        ] {
            assert_eq!(e(s), CmdlineError::BadValue { key, value }, "{s}");
            assert_eq!(e(s).key(), Some(key));
        }
        for key in ["guest", "trace", "poe", "policy"] {
            let s = std::format!("porwatch.{key}");
            assert_eq!(run(&s).unwrap_err(), CmdlineError::MissingValue(key));
        }
        assert_eq!(
            e("porwatch.verbose porwatch.tap=on porwatch.verbose=0"),
            CmdlineError::Duplicate("verbose")
        );
        assert_eq!(e("porwatch.guest=\"1\""), CmdlineError::Quoted("porwatch.guest=\"1\""));
        assert_eq!(e("\"porwatch.guest=1\""), CmdlineError::Quoted("\"porwatch.guest=1\""));
        assert_eq!(e("porwatch.tap=on porwatch.x"), CmdlineError::UnknownKey("x"));
    }

    #[test]
    fn error_display() {
        let mut s = String::new();
        use core::fmt::Write;
        write!(s, "{}", CmdlineError::BadValue { key: "poe", value: "on" }).unwrap();
        assert_eq!(s, "bad value \"on\" for porwatch.poe");
        s.clear();
        write!(s, "{}", CmdlineError::UnknownKey("bogus")).unwrap();
        assert_eq!(s, "unknown option porwatch.bogus");
    }

    #[test]
    fn passthrough_preserves_words_and_quotes() {
        let s = "  root=/dev/vda\tinit=\"/bin/sh -c 'echo hi'\"\n porwatch.verbose \"a b\"  x=\"\" \
                 dyndbg=\"file foo.c +p\" porwatchx=1 my.porwatch.tap=9 ";
        let (o, g) = run(s).unwrap();
        assert!(o.verbose);
        assert_eq!(
            g,
            "root=/dev/vda init=\"/bin/sh -c 'echo hi'\" \"a b\" x=\"\" \
             dyndbg=\"file foo.c +p\" porwatchx=1 my.porwatch.tap=9"
        );
        // Unterminated quote: the rest is one word, as in Linux.
        let (_, g) = run("a \"b c porwatch.verbose").unwrap();
        assert_eq!(g, "a \"b c porwatch.verbose");
        // Non-ASCII passes through.
        let (_, g) = run("label=Größe  porwatch.tap=on  ü").unwrap();
        assert_eq!(g, "label=Größe ü");
    }

    #[test]
    fn init_args_after_double_dash_are_not_options() {
        let (o, g) = run("quiet porwatch.tap=off -- porwatch.tap=on single").unwrap();
        assert!(!o.tap);
        assert_eq!(g, "quiet -- porwatch.tap=on single");
    }

    #[test]
    fn output_buffer_bounds() {
        let s = "aa porwatch.verbose bb cc";
        let mut buf = [0u8; 8];
        let (o, n) = split(s, &mut buf).unwrap();
        assert!(o.verbose);
        assert_eq!(&buf[..n], b"aa bb cc");
        for len in 0..8 {
            let mut small = vec![0u8; len];
            assert_eq!(split(s, &mut small), Err(CmdlineError::OutputTooSmall), "{len}");
        }
        let mut empty: [u8; 0] = [];
        assert_eq!(split("porwatch.tap=off", &mut empty).unwrap().1, 0);
    }

    #[test]
    fn bits_are_stable() {
        assert_eq!(Options::DEFAULT.bits(), 1 << 6 | 1 << 11 | 1 << STREAM_FLIGHT_BIT);
        let all = Options {
            guest: Some(1),
            trace: Some(TraceSel::None),
            semihosting: true,
            poe: PoeMode::Off,
            exc_return: true,
            tap: true,
            tap_step: true,
            policy: Policy::Fault,
            verbose: true,
            selftest: Some(SelfTest::Panic),
            track: true,
            audit: AuditWhen::DEFAULT,
            audit_por: None,
            por: PorWatch::Trap,
            stream: Stream::Flight,
            leaves: Leaves::Trap,
            por_sites: PorSites::Off,
        };
        assert_eq!(all.bits(), 0x7c_0fff);
        let all = Options { trace: Some(TraceSel::Semihosting("f")), ..all };
        assert_eq!(all.bits(), 0x7c_1ffc);
        let mut o = Options::DEFAULT;
        o.trace = Some(TraceSel::Path("/x"));
        assert_eq!(o.bits() & 3, 1);
        o.trace = Some(TraceSel::Addr(0));
        assert_eq!(o.bits() & 3, 2);
        o.trace = Some(TraceSel::Semihosting("f"));
        assert_eq!(o.bits() & 3, 0, "4 = bit 12 set, bits 0..=1 clear");
        assert_eq!(o.bits() & (1 << 12), 1 << 12);
        o.trace = Some(TraceSel::None);
        assert_eq!(o.bits() & (3 | 1 << 12), 3);
        o.trace = Some(TraceSel::Addr(0));
        o.poe = PoeMode::Virtual;
        assert_eq!(o.bits() >> 3 & 3, 1);
        o.poe = PoeMode::Native;
        assert_eq!(o.bits() >> 3 & 3, 2);
        o.tap = false;
        assert_eq!(o.bits() & (1 << 6), 0);
        o.por = PorWatch::Trap;
        assert_eq!(o.bits() & (1 << 18), 1 << 18);
    }

    #[test]
    fn tap_values() {
        let mut buf = [0u8; 64];
        let o = split("porwatch.tap=step", &mut buf).unwrap().0;
        assert!(o.tap && o.tap_step);
        assert_eq!(o.bits() & (1 << 19 | 1 << 6), 1 << 19 | 1 << 6);
        let o = split("porwatch.tap=on", &mut buf).unwrap().0;
        assert!(o.tap && !o.tap_step);
        let o = split("porwatch.tap=off", &mut buf).unwrap().0;
        assert!(!o.tap && !o.tap_step);
        assert_eq!(
            split("porwatch.tap=steps", &mut buf).unwrap_err(),
            CmdlineError::BadValue { key: "tap", value: "steps" }
        );
    }

    #[test]
    fn stream_values() {
        let mut buf = [0u8; 64];
        let o = split("", &mut buf).unwrap().0;
        assert_eq!((o.stream, o.bits() & 1 << STREAM_FLIGHT_BIT), (Stream::Flight, 1 << STREAM_FLIGHT_BIT));
        assert_eq!(Stream::default(), Stream::Flight);
        let o = split("porwatch.stream=all", &mut buf).unwrap().0;
        assert_eq!((o.stream, o.bits() & 1 << STREAM_FLIGHT_BIT), (Stream::All, 0));
        assert_eq!(split("porwatch.stream=flight", &mut buf).unwrap().0.stream, Stream::Flight);
        assert_eq!(
            split("porwatch.stream=some", &mut buf).unwrap_err(),
            CmdlineError::BadValue { key: "stream", value: "some" }
        );
    }

    #[test]
    fn por_sites_values() {
        let mut buf = [0u8; 64];
        let o = split("", &mut buf).unwrap().0;
        assert_eq!((o.por_sites, o.bits() & 1 << 22), (PorSites::Patch, 0));
        let o = split("porwatch.por_sites=off", &mut buf).unwrap().0;
        assert_eq!((o.por_sites, o.bits() & 1 << 22), (PorSites::Off, 1 << 22));
        assert_eq!(split("porwatch.por_sites=patch", &mut buf).unwrap().0.por_sites, PorSites::Patch);
        assert_eq!(
            split("porwatch.por_sites=on", &mut buf).unwrap_err(),
            CmdlineError::BadValue { key: "por_sites", value: "on" }
        );
    }

    #[test]
    fn leaves_values() {
        let mut buf = [0u8; 64];
        let o = split("", &mut buf).unwrap().0;
        assert_eq!((o.leaves, o.bits() & 1 << 21), (Leaves::Open, 0));
        let o = split("porwatch.leaves=trap", &mut buf).unwrap().0;
        assert_eq!((o.leaves, o.bits() & 1 << 21), (Leaves::Trap, 1 << 21));
        assert_eq!(split("porwatch.leaves=open", &mut buf).unwrap().0.leaves, Leaves::Open);
        assert_eq!(
            split("porwatch.leaves=closed", &mut buf).unwrap_err(),
            CmdlineError::BadValue { key: "leaves", value: "closed" }
        );
        assert_eq!(split("porwatch.leaves", &mut buf).unwrap_err(), CmdlineError::MissingValue("leaves"));
    }

    #[test]
    fn por_values() {
        let mut buf = [0u8; 64];
        assert_eq!(split("", &mut buf).unwrap().0.por, PorWatch::Sample);
        assert_eq!(split("porwatch.por=trap", &mut buf).unwrap().0.por, PorWatch::Trap);
        assert_eq!(split("porwatch.por=sample", &mut buf).unwrap().0.por, PorWatch::Sample);
        assert_eq!(
            split("porwatch.por=off", &mut buf).unwrap_err(),
            CmdlineError::BadValue { key: "por", value: "off" }
        );
        assert_eq!(split("porwatch.por", &mut buf).unwrap_err(), CmdlineError::MissingValue("por"));
        assert_eq!(
            split("porwatch.por=trap porwatch.por=trap", &mut buf).unwrap_err(),
            CmdlineError::Duplicate("por")
        );
    }

    #[test]
    fn semihosting_is_found_even_on_a_bad_line() {
        assert!(semihosting_requested("porwatch.bogus=1 porwatch.semihosting=1"));
        assert!(semihosting_requested("a porwatch.semihosting b"));
        assert!(!semihosting_requested("porwatch.semihosting=0"));
        assert!(!semihosting_requested("porwatch.semihosting=maybe"));
        assert!(!semihosting_requested("-- porwatch.semihosting=1"));
        assert!(!semihosting_requested("xporwatch.semihosting=1 porwatch.semihostingx=1"));
    }

    #[test]
    fn semihosting_trace_file_name_bounds() {
        let name = "n".repeat(MAX_SEMIHOSTING_NAME);
        let s = std::format!("porwatch.trace=semihosting:{name} porwatch.semihosting=1");
        let (o, g) = run(&s).unwrap();
        assert_eq!(o.trace, Some(TraceSel::Semihosting(name.as_str())));
        assert!(o.semihosting);
        assert_eq!(g, "");
        let long = std::format!("porwatch.trace=semihosting:{name}n");
        assert_eq!(
            run(&long).unwrap_err(),
            CmdlineError::BadValue { key: "trace", value: &long["porwatch.trace=".len()..] }
        );
        // The option itself parses without porwatch.semihosting: refusing
        // that combination is the hypervisor's job (it knows what it can
        // tell the user, and how).
        let (o, _) = run("porwatch.trace=semihosting:t").unwrap();
        assert_eq!((o.trace, o.semihosting), (Some(TraceSel::Semihosting("t")), false));
    }

    #[test]
    fn audit_values() {
        let o = |s: &str| run(s).map(|(o, _)| (o.audit, o.audit_por)).ok();
        assert_eq!(o("").unwrap(), (AuditWhen::DEFAULT, None));
        assert_eq!(o("porwatch.audit=off").unwrap().0, AuditWhen::OFF);
        assert!(!AuditWhen::OFF.any() && AuditWhen::DEFAULT.any());
        let w = |first_por, exit, every_ms| AuditWhen { first_por, exit, every_ms, explicit: true };
        assert_eq!(o("porwatch.audit=first-por").unwrap().0, w(true, false, 0));
        assert_eq!(o("porwatch.audit=exit").unwrap().0, w(false, true, 0));
        assert_eq!(o("porwatch.audit=every:250").unwrap().0, w(false, false, 250));
        assert_eq!(o("porwatch.audit=exit,every:0x10,first-por").unwrap().0, w(true, true, 16));
        assert_eq!(o("porwatch.audit_por=0x17").unwrap().1, Some(0x17));
        assert_eq!(o("porwatch.audit_por=23").unwrap().1, Some(0x17));
        for bad in [
            "porwatch.audit=",
            "porwatch.audit=on",
            "porwatch.audit=off,exit",
            "porwatch.audit=exit,exit",
            "porwatch.audit=exit,",
            "porwatch.audit=every:",
            "porwatch.audit=every:0",
            "porwatch.audit=every:3600001",
            "porwatch.audit=every:1,every:2",
            "porwatch.audit=First-por",
            "porwatch.audit_por=x",
            "porwatch.audit_por=",
        ] {
            let key = if bad.contains("audit_por") { "audit_por" } else { "audit" };
            assert!(matches!(run(bad), Err(CmdlineError::BadValue { key: k, .. }) if k == key), "{bad}");
        }
        assert_eq!(run("porwatch.audit").unwrap_err(), CmdlineError::MissingValue("audit"));
        assert_eq!(run("porwatch.audit_por").unwrap_err(), CmdlineError::MissingValue("audit_por"));
        // The default audit leaves the header's audit bits (13-17) as they were.
        const AUDIT_BITS: u64 = 0b11111 << 13;
        assert_eq!(Options::DEFAULT.bits() & AUDIT_BITS, 0);
        let (x, _) = run("porwatch.audit=exit,every:5 porwatch.audit_por=0x17").unwrap();
        assert_eq!(x.bits() & AUDIT_BITS, 0b11101 << 13);
    }

    #[test]
    fn selftest_values() {
        let mut buf = [0u8; 64];
        let (o, _) = split("porwatch.selftest=panic", &mut buf).unwrap();
        assert_eq!(o.selftest, Some(SelfTest::Panic));
        let (o, _) = split("porwatch.selftest=el2-fault", &mut buf).unwrap();
        assert_eq!(o.selftest, Some(SelfTest::El2Fault));
        let (o, _) = split("porwatch.selftest=drop", &mut buf).unwrap();
        assert_eq!(o.selftest, Some(SelfTest::Drop));
        let (o, _) = split("porwatch.selftest=drop-half", &mut buf).unwrap();
        assert_eq!(o.selftest, Some(SelfTest::DropHalf));
        assert!(split("porwatch.selftest=oops", &mut buf).is_err());
        assert!(split("porwatch.selftest", &mut buf).is_err());
    }

    #[test]
    fn words_iterator() {
        let w: Vec<_> = Words::new(" a  b\"c d\"e\t\"f\" ").collect();
        assert_eq!(w, ["a", "b\"c d\"e", "\"f\""]);
    }

    #[test]
    fn fuzz_never_panics() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::default();
        let alphabet = proptest::sample::select(vec![
            "porwatch.",
            "guest",
            "trace",
            "=",
            "0x",
            "1",
            "\"",
            " ",
            "\t",
            "on",
            "/",
            "--",
            "poe",
            "é",
            "x",
        ]);
        runner
            .run(&proptest::collection::vec(alphabet, 0..24), |parts| {
                let s: String = parts.concat();
                let mut buf = vec![0u8; s.len()];
                if let Ok((_, n)) = split(&s, &mut buf) {
                    prop_assert!(core::str::from_utf8(&buf[..n]).is_ok());
                    // Only an unterminated quote keeps trailing blanks.
                    let odd_quotes = s.matches('"').count() % 2 == 1;
                    prop_assert!(!buf[..n].ends_with(b" ") || odd_quotes);
                    prop_assert!(!buf[..n].starts_with(b" "));
                }
                let mut small = [0u8; 3];
                let _ = split(&s, &mut small);
                Ok(())
            })
            .unwrap();
    }
}
