//! `porwatch decode`: decode a trace from a file, stdin or a TCP stream.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

use anyhow::Context;

use crate::decode::{decode_stream, DecodeOptions};

/// Exit status: clean trace.
pub const EXIT_CLEAN: i32 = 0;
/// Exit status: usage or IO error.
pub const EXIT_ERROR: i32 = 2;
/// Exit status: corrupt frames, truncated tail or unexplained sequence gaps.
pub const EXIT_DIRTY: i32 = 3;

/// Options of `porwatch decode`.
#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// Trace file; `-` or absent for stdin.
    #[arg(value_name = "FILE", conflicts_with = "tcp")]
    pub file: Option<PathBuf>,

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
}

/// Runs `porwatch decode`; returns the exit status (0 clean, 3 not clean).
/// IO errors are returned as errors (exit status 2).
pub fn main(args: DecodeArgs) -> anyhow::Result<i32> {
    let input: Box<dyn Read> = match (&args.tcp, &args.file) {
        (Some(addr), _) => {
            Box::new(TcpStream::connect(addr.as_str()).with_context(|| format!("connecting to {addr}"))?)
        }
        (None, Some(path)) if path.as_os_str() != "-" => {
            Box::new(File::open(path).with_context(|| format!("opening {}", path.display()))?)
        }
        (None, _) => Box::new(io::stdin().lock()),
    };
    let mut save = match &args.save {
        Some(path) => Some(File::create(path).with_context(|| format!("creating {}", path.display()))?),
        None => None,
    };
    let opts = DecodeOptions { json: args.json, summary: !args.no_summary };
    let mut out = BufWriter::new(io::stdout().lock());
    let tee = save.as_mut().map(|f| f as &mut dyn Write);
    match decode_stream(input, &mut out, &opts, tee) {
        Ok(stats) => Ok(if stats.is_clean() { EXIT_CLEAN } else { EXIT_DIRTY }),
        // The reader of our output went away (e.g. `| head`): not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(EXIT_CLEAN),
        Err(e) => Err(e).context("decoding"),
    }
}
