//! `porwatch`: run the hypervisor under QEMU, or decode its trace.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use porwatch::{decode_cmd, run};

#[derive(Parser)]
#[command(name = "porwatch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Launch the hypervisor and guest under QEMU and decode the trace live.
    Run(run::RunArgs),
    /// Decode a trace from a file, stdin, TCP or a serial device (exit 3 if not
    /// clean, 4 on a hazard).
    Decode(decode_cmd::DecodeArgs),
    /// Write a synthetic trace of RECORDS records to FILE (scripts/bench-decoder).
    #[command(hide = true)]
    BenchTrace { records: u64, file: std::path::PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::main(args),
        Command::Decode(args) => decode_cmd::main(args),
        Command::BenchTrace { records, file } => bench_trace(records, &file),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("porwatch: error: {e:#}");
            ExitCode::from(decode_cmd::EXIT_ERROR as u8)
        }
    }
}

fn bench_trace(records: u64, file: &std::path::Path) -> anyhow::Result<i32> {
    use anyhow::Context;
    let f = std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?;
    porwatch::sample::write_bench_trace(records, &mut std::io::BufWriter::new(f))?;
    Ok(0)
}
