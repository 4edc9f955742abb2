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
    /// Decode a trace from a file, stdin or TCP (exit 3 if not clean).
    Decode(decode_cmd::DecodeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::main(args),
        Command::Decode(args) => decode_cmd::main(args),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("porwatch: error: {e:#}");
            ExitCode::from(decode_cmd::EXIT_ERROR as u8)
        }
    }
}
