//! `porwatch decode`: decode a trace from a file, stdin or a TCP stream.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::decode::{decode_stream, DecodeOptions, DecodeStats};
use crate::filter::Filter;
use crate::follow::Follow;
use crate::printer::ViewOptions;
use crate::symbols::Symbols;

pub use crate::exit_status::{
    DECODE_CLEAN as EXIT_CLEAN, DECODE_DAMAGED as EXIT_DIRTY, DECODE_ERROR as EXIT_ERROR,
    DECODE_HAZARD as EXIT_HAZARD, DECODE_RUN_FAILED as EXIT_RUN_FAILED,
};

/// Options shared by `porwatch decode` and `porwatch run`: symbols and views.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ViewArgs {
    /// Symbolize guest code addresses (PCs, ELRs, entry, VBAR) with FILE: an
    /// AArch64 ELF (its symbols; DWARF line info for -v) or a Linux System.map.
    #[arg(long, value_name = "FILE")]
    pub symbols: Option<PathBuf>,
    /// KASLR offset (runtime minus link address, hex). Default: tap_arm's
    /// vbar minus the `vectors` symbol when there is one, else 0.
    #[arg(long, value_name = "HEX", value_parser = parse_hex)]
    pub kaslr_offset: Option<u64>,
    /// Print only hazard records, their cause-chain records (exc_entry,
    /// por_write), UNDEFs porwatch injected (unknown_trap with action
    /// undef_injected) and problems (corrupt frames, gaps), then the summary.
    #[arg(long)]
    pub hazards_only: bool,
    /// Fail when the trace has a hazard and the status would otherwise be 0:
    /// `porwatch run` exits 83, `porwatch decode` 4 (it does by default and
    /// accepts this as a no-op).
    #[arg(long)]
    pub fail_on_hazard: bool,
    /// At the end, one more stderr line: hazards, page-table pages tracked
    /// (from pt_stats), exception entries, traps and traps per second (the
    /// per-kind counts and drops are in the summary line above it).
    #[arg(long, visible_alias = "summary")]
    pub counts: bool,
    /// Also write the trace as a Chrome Trace Event Format JSON file for
    /// ui.perfetto.dev / chrome://tracing (exception slices, POR counter,
    /// hazard/POR/coverage-gap and trap instants).
    #[arg(long, value_name = "FILE")]
    pub perfetto: Option<PathBuf>,
    /// Show only records of these kinds (comma-separated, e.g. hazard,por_write).
    #[arg(long = "kind", value_name = "KIND[,KIND...]", value_delimiter = ',', value_parser = crate::filter::parse_kind)]
    pub kinds: Option<Vec<String>>,
    /// Show only records with a va/ipa/pc/elr/far field in LO-HI (hex, inclusive).
    #[arg(long, value_name = "LO-HI", value_parser = crate::filter::parse_range)]
    pub addr: Option<(u64, u64)>,
    /// Show only hazard records whose poindex (pkey) is N.
    #[arg(long, value_name = "N")]
    pub pkey: Option<u64>,
    /// Show only records whose symbolized PC/ELR is in function NAME (needs symbols).
    #[arg(long, value_name = "NAME")]
    pub symbol: Option<String>,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{s:?} is not a number of seconds: {e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_hex(s: &str) -> Result<u64, String> {
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    u64::from_str_radix(h, 16).map_err(|e| format!("{s:?} is not a hex number: {e}"))
}

impl ViewArgs {
    /// The printer's options. `--symbols` must load; `default_symbols` (the
    /// guest ELF of `porwatch run`) is used when it is absent, and only
    /// warned about if it does not load.
    pub fn view(&self, default_symbols: Option<&Path>, verbose: bool) -> anyhow::Result<ViewOptions> {
        let symbols = match (&self.symbols, default_symbols) {
            (Some(p), _) => Some(Arc::new(Symbols::load(p)?)),
            (None, Some(p)) => match Symbols::load(p) {
                Ok(s) => Some(Arc::new(s)),
                Err(e) => {
                    eprintln!("porwatch: no symbols: {e:#}");
                    None
                }
            },
            (None, None) => None,
        };
        if let (Some(name), None) = (&self.symbol, &symbols) {
            anyhow::bail!("--symbol {name} needs symbols (--symbols FILE)");
        }
        Ok(ViewOptions {
            symbols,
            kaslr_offset: self.kaslr_offset,
            verbose,
            hazards_only: self.hazards_only,
            counts: self.counts,
            filter: Filter {
                kinds: self.kinds.clone(),
                addr: self.addr,
                pkey: self.pkey,
                symbol: self.symbol.clone(),
            },
            perfetto: self.perfetto.clone(),
            brief: false,
        })
    }
}

/// `porwatch decode`'s exit status for `stats`: 3 if the trace is damaged,
/// else 5 if it records a failed run, else 4 if `fail_on_hazard` and it has
/// a hazard, else 0 (crate::exit_status::DECODE_STATUSES).
pub fn decode_status(stats: &DecodeStats, fail_on_hazard: bool) -> i32 {
    if !stats.trace_intact() {
        EXIT_DIRTY
    } else if !stats.is_clean() {
        EXIT_RUN_FAILED
    } else if fail_on_hazard && stats.count("hazard") > 0 {
        EXIT_HAZARD
    } else {
        EXIT_CLEAN
    }
}

/// Options of `porwatch decode`.
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// Trace file (or a serial device, in raw mode); `-` or absent for stdin.
    #[arg(value_name = "FILE", conflicts_with = "tcp")]
    pub file: Option<PathBuf>,

    /// Keep reading FILE as it grows, like `tail -f`, until Ctrl-C or
    /// `--follow-timeout`; then print the summary.
    #[arg(long, requires = "file")]
    pub follow: bool,

    /// With --follow: stop when FILE has not grown for SECONDS (default:
    /// follow until Ctrl-C).
    #[arg(long, value_name = "SECONDS", requires = "follow", value_parser = parse_seconds)]
    pub follow_timeout: Option<Duration>,

    /// Print JSON lines (schema in docs/trace-format.md) instead of text.
    #[arg(long)]
    pub json: bool,

    /// Read the trace from a TCP stream, e.g. QEMU's `-serial tcp:HOST:PORT,server`.
    #[arg(long, value_name = "HOST:PORT")]
    pub tcp: Option<String>,

    /// Also save the raw bytes read to FILE.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,

    /// Do not print the summary at the end.
    #[arg(long)]
    pub no_summary: bool,

    /// With symbols: add the source `file:line` (ELF with DWARF) to each.
    #[arg(long, short)]
    pub verbose: bool,

    /// Exit 0 rather than 4 when the trace has a hazard (a damaged trace
    /// still exits 3, the trace of a failed run 5).
    #[arg(long, conflicts_with = "fail_on_hazard")]
    pub no_fail_on_hazard: bool,

    #[command(flatten)]
    pub view: ViewArgs,
}

/// Runs `porwatch decode`; returns the exit status ([`decode_status`]).
/// IO errors are returned as errors (exit status 2).
pub fn main(args: DecodeArgs) -> anyhow::Result<i32> {
    let input: Box<dyn Read> = match (&args.tcp, &args.file) {
        (Some(addr), _) => {
            Box::new(TcpStream::connect(addr.as_str()).with_context(|| format!("connecting to {addr}"))?)
        }
        (None, Some(path)) if path.as_os_str() != "-" => {
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            if args.follow {
                crate::follow::catch_sigint().context("catching Ctrl-C")?;
                Box::new(Follow::new(file, args.follow_timeout)?)
            } else {
                Box::new(file)
            }
        }
        (None, _) if args.follow => anyhow::bail!("--follow needs a FILE (not stdin)"),
        (None, _) => Box::new(io::stdin().lock()),
    };
    let mut save = match &args.save {
        Some(path) => Some(File::create(path).with_context(|| format!("creating {}", path.display()))?),
        None => None,
    };
    let view = args.view.view(None, args.verbose)?;
    let opts = DecodeOptions { json: args.json, summary: !args.no_summary, view };
    let mut out = BufWriter::new(io::stdout().lock());
    let tee = save.as_mut().map(|f| f as &mut dyn Write);
    match decode_stream(input, &mut out, &opts, tee) {
        Ok(stats) => Ok(decode_status(&stats, !args.no_fail_on_hazard)),
        // The reader of our output went away (e.g. `| head`): not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(EXIT_CLEAN),
        Err(e) => Err(e).context("decoding"),
    }
}
