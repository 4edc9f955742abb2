//! `porwatch`: run the hypervisor under QEMU, or decode its trace.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use porwatch::exit_status::{self, RunStatus};
use porwatch::{decode_cmd, run};

#[derive(Parser)]
#[command(name = "porwatch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Launch the hypervisor and guest under QEMU and decode the trace live
    /// (exit status: the guest's 0-63, else porwatch's own: see --help).
    Run(run::RunArgs),
    /// Decode a trace from a file, stdin, TCP or a serial device (exit 3 if
    /// damaged, 5 if it records a failed run, 4 on a hazard).
    Decode(decode_cmd::DecodeArgs),
    /// Write a synthetic trace of RECORDS records to FILE (scripts/bench-decoder).
    #[command(hide = true)]
    BenchTrace { records: u64, file: std::path::PathBuf },
}

/// The command line definition, with the exit-status tables (from
/// porwatch::exit_status) in `run --help` and `decode --help`.
fn command() -> clap::Command {
    Cli::command().mut_subcommand("run", |c| c.after_long_help(exit_status::run_table_text())).mut_subcommand(
        "decode",
        |c| {
            let mut t = String::from("Exit status, the first that applies:\n");
            for (code, meaning) in exit_status::DECODE_STATUSES {
                t.push_str(&format!("  {code}  {}\n", meaning.replace('`', "")));
            }
            c.after_long_help(t)
        },
    )
}

fn main() -> ExitCode {
    let matches = match command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            // Help and version are not errors. A usage error of `run` is a
            // refusal (78: no guest status may be mistaken for it); other
            // commands keep clap's 2.
            let _ = e.print();
            let code = if !e.use_stderr() {
                0
            } else if std::env::args().nth(1).as_deref() == Some("run") {
                RunStatus::Refused.code()
            } else {
                decode_cmd::EXIT_ERROR
            };
            return exit(code);
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return exit(decode_cmd::EXIT_ERROR);
        }
    };
    let code = match cli.command {
        Command::Run(args) => match run::main(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("porwatch: refused: {e:#}");
                eprintln!(
                    "porwatch: exit status {} ({})",
                    RunStatus::Refused.code(),
                    RunStatus::Refused.name()
                );
                RunStatus::Refused.code()
            }
        },
        Command::Decode(args) => decode_cmd::main(args).unwrap_or_else(|e| {
            eprintln!("porwatch: error: {e:#}");
            decode_cmd::EXIT_ERROR
        }),
        Command::BenchTrace { records, file } => bench_trace(records, &file).unwrap_or_else(|e| {
            eprintln!("porwatch: error: {e:#}");
            decode_cmd::EXIT_ERROR
        }),
    };
    exit(code)
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
}

fn bench_trace(records: u64, file: &std::path::Path) -> anyhow::Result<i32> {
    use anyhow::Context;
    let f = std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?;
    porwatch::sample::write_bench_trace(records, &mut std::io::BufWriter::new(f))?;
    Ok(0)
}
