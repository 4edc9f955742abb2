//! `porwatch run`: launch porwatch (the hypervisor) and a guest under QEMU
//! `virt` with EL2, show the guest's console and the decoded trace live, and
//! exit with the run's status.
//!
//! The guest console is QEMU's first PL011 (piped through this process so its
//! lines and the trace lines do not tear each other); the trace is the second
//! PL011, written by QEMU to a FIFO this process reads, decoded as it
//! arrives. With `--secure` (QEMU `secure=on`, where that PL011 is
//! Secure-only) porwatch writes the trace with Arm semihosting to a file in
//! the run's temporary directory instead, which this process follows as it
//! grows and decodes the same way.
//!
//! The run ends with the closing summary, printed once QEMU has exited and
//! the console and trace are drained (so it never lands inside a console
//! line), and an exit status from [`crate::exit_status`]: the guest's test
//! status when nothing else happened, else porwatch's own.

use crate::decode::{decode_to_end, DecodeOptions, DecodeStats, Ending};
use crate::decode_cmd::ViewArgs;
use crate::exit_status::RunStatus;
use crate::follow::Follow;
use crate::guest_console::ConsoleWatch;
use crate::guest_image::{self, GuestKind, Layout, Reserved};
use crate::json::RunEnd;
use crate::linux;
use crate::outcome::{self, Observed, QemuEnd};
use crate::qemu::{self, GuestImage, QemuConfig};
use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `--secure`: how often the semihosting trace file is checked for new bytes.
const FILE_POLL: Duration = Duration::from_millis(10);
/// QEMU's last stderr lines kept for the failure message.
const QEMU_STDERR_KEPT: usize = 8;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Guest to run: the name of a guest-tests kernel (default: seed, the
    /// kpkeys crash reproduced; others: pt_stress, pt_store, exceptions,
    /// por_regs, bench, kpkeys_bench, hello, hostile, smp_seed, audit, dma,
    /// fidelity, pie, tap_slots),
    /// or a path to an AArch64 ELF (loaded at its own addresses), an arm64
    /// Image (loaded at --load-addr) or, with --raw, any other file (loaded
    /// as raw bytes at --load-addr).
    #[arg(long, default_value = "seed")]
    pub guest: String,
    /// Load address for a raw guest image (also its entry point).
    #[arg(long, default_value = "0x44000000", value_parser = parse_u64)]
    pub load_addr: u64,
    /// Load the --guest file as raw bytes at --load-addr even though it is
    /// neither an AArch64 ELF nor an arm64 Image (without it, such a file
    /// is refused).
    #[arg(long, conflicts_with = "linux")]
    pub raw: bool,
    /// Write the raw trace bytes, as streamed, to FILE (decode later with
    /// `porwatch decode FILE`).
    #[arg(long, value_name = "FILE")]
    pub trace_out: Option<PathBuf>,
    /// Stream and print every record (porwatch.stream=all: every exception
    /// entry, return, POR write and trap). Without it porwatch keeps those
    /// in its per-CPU flight recorder and streams hazards with their cause
    /// chains, entry transitions and findings (docs/flight.md), and the
    /// text output is the guest console, hazard reports with their chains,
    /// entry transitions, findings and the summary (--kind, --addr, --pkey
    /// and --symbol select from every record streamed). Same as --hyp-opt
    /// stream=all.
    #[arg(long)]
    pub all: bool,
    /// Print the trace as JSON lines on stdout (the guest console goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// QEMU binary.
    #[arg(long, default_value = "qemu-system-aarch64", value_name = "PATH")]
    pub qemu: PathBuf,
    /// Kill the run after S seconds (exit status 124). Default: 60, or 900
    /// with --linux.
    #[arg(long, value_name = "S")]
    pub timeout: Option<u64>,
    /// Run Linux as the guest: `bookworm` (Debian 12's 6.1 kernel, 4 levels),
    /// `trixie` (Debian 13's 6.12, 5 levels with LPA2) or `trixie-backports`
    /// (Debian's newest, 7.x), fetched once by
    /// `scripts/fetch-linux SUITE` (scripts/run does it), with its initramfs
    /// and System.map; or a path to an arm64 Image (a System.map beside it is
    /// used for symbols). The Image is loaded at --load-addr.
    #[arg(long, value_name = "SUITE|IMAGE", conflicts_with = "guest")]
    pub linux: Option<String>,
    /// An initramfs for the guest (QEMU's -initrd; it lands at RAM base +
    /// 128 MiB and /chosen tells Linux where).
    #[arg(long, value_name = "FILE")]
    pub initrd: Option<PathBuf>,
    /// Directory with porwatch-hyp.bin and guests/ (default: next to this
    /// binary, else target/porwatch).
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// Extra kernel command-line words for the guest.
    #[arg(long, value_name = "ARGS")]
    pub append: Option<String>,
    /// porwatch options, as KEY=VALUE (passed as porwatch.KEY=VALUE; see README).
    #[arg(long = "hyp-opt", value_name = "KEY=VALUE")]
    pub hyp_opts: Vec<String>,
    /// What porwatch does with a hazard: `report` (perform the write, log
    /// it, the guest never faults) or `fault` (inject the overlay permission
    /// fault the hardware would raise). Same as --hyp-opt policy=...;
    /// default: report.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub policy: Option<HazardPolicy>,
    /// Deterministic instruction counting (-icount shift=0), for benchmarks.
    #[arg(long)]
    pub icount: bool,
    /// CPUs of the machine (QEMU -smp; at most 8, porwatch's limit: more is
    /// refused before QEMU starts). porwatch monitors every one; the guest
    /// starts the others with PSCI CPU_ON. `-- -smp N` works too.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub smp: u32,
    /// Start porwatch at EL3, as on an Arm FVP: QEMU `virt,secure=on` (no
    /// PSCI from QEMU; a three-instruction -bios stub enters porwatch, which
    /// drops to EL2 itself and answers the guest's PSCI). The second PL011
    /// is Secure-only there, so the trace goes through Arm semihosting to a
    /// temporary file (porwatch.trace=semihosting:FILE), followed and
    /// decoded live as in a normal run; porwatch writes it in batches (at
    /// 4 KiB, after 20 ms, and at once for hazards and the guest's exit), so
    /// trace lines may trail the console a little.
    #[arg(long)]
    pub secure: bool,
    /// How the trace leaves porwatch: `uart` (QEMU's second PL011, as on
    /// hardware) or `semihosting` (Arm semihosting writes to a host file in
    /// 4 KiB chunks: one host call per chunk instead of one per byte, about
    /// a third faster for a Linux guest). --secure always uses semihosting.
    /// Default: uart.
    #[arg(long, value_enum, value_name = "HOW")]
    pub trace_via: Option<TraceVia>,
    /// Print the QEMU command line before running it.
    #[arg(long, short)]
    pub verbose: bool,
    /// Symbols (default: the guest ELF), KASLR offset, --hazards-only,
    /// --fail-on-hazard; -v also adds file:line to symbols.
    #[command(flatten)]
    pub view: ViewArgs,
    /// Extra QEMU arguments (after --).
    #[arg(last = true, value_name = "QEMU-ARGS")]
    pub qemu_args: Vec<String>,
}

/// `--policy`: porwatch.policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HazardPolicy {
    Report,
    Fault,
}

impl HazardPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            HazardPolicy::Report => "report",
            HazardPolicy::Fault => "fault",
        }
    }
}

/// `--trace-via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceVia {
    Uart,
    Semihosting,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?} is not a number: {e}"))
}

/// What a finished run produced.
pub struct RunOutcome {
    /// QEMU's exit status (None: it did not start, or a signal ended it).
    pub qemu_status: Option<i32>,
    pub timed_out: bool,
    pub stats: DecodeStats,
    /// porwatch run's exit status (`outcome.code()`).
    pub status: i32,
    pub outcome: RunStatus,
    /// The closing lines explaining it (also printed on stderr).
    pub verdict: Vec<String>,
    /// The first guest console line reporting a kernel death.
    pub console_death: Option<String>,
}

pub fn main(args: RunArgs) -> Result<i32> {
    let out = run(&args, Box::new(std::io::stdout()), console_sink(args.json))?;
    Ok(out.status)
}

fn console_sink(json: bool) -> Box<dyn Write + Send> {
    if json {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    }
}

/// Runs QEMU as `args` say, writing decoded trace lines to `trace_out` and
/// the guest console to `console_out` (whole lines, never torn), then the
/// closing summary once both are drained. An `Err` is a refusal before
/// QEMU started (exit status 78); anything that happens after is in the
/// returned outcome.
pub fn run(
    args: &RunArgs,
    trace_out: Box<dyn Write + Send>,
    console_out: Box<dyn Write + Send>,
) -> Result<RunOutcome> {
    let images = qemu::images_dir(args.images.as_deref())?;
    let hyp = images.join("porwatch-hyp.bin");
    let hyp_head = linux::read_head(&hyp, linux::IMAGE_HEAD_LEN)?;
    let (_, hyp_size) = linux::parse_image_header(&hyp_head).context("porwatch-hyp.bin")?;
    let ram = qemu::guest_ram(&args.qemu_args)?;
    let mut layout = Layout {
        ram_start: qemu::RAM_BASE,
        ram_end: qemu::RAM_BASE + ram,
        reserved: vec![Reserved {
            start: qemu::HYP_ADDR,
            end: qemu::HYP_ADDR.saturating_add(hyp_size),
            what:
                "the guest device tree window (where QEMU loads porwatch before it moves to the top of RAM)"
                    .into(),
        }],
    };
    let (guest, initrd, default_symbols) = match &args.linux {
        Some(spec) => {
            let l = linux::resolve(spec, args.initrd.as_deref(), args.load_addr)?;
            if let Some(p) = &l.initrd {
                reserve_initrd(&mut layout, p, ram)?;
            }
            reserve_hyp_top(&mut layout, ram, hyp_size);
            layout.check(&format!("the Linux Image {}", l.image.display()), l.load_addr, l.image_size)?;
            let g = GuestImage { path: l.image.clone(), entry: l.load_addr, raw_addr: Some(l.load_addr) };
            (g, l.initrd, l.system_map)
        }
        None => {
            if let Some(p) = &args.initrd {
                reserve_initrd(&mut layout, p, ram)?;
            }
            reserve_hyp_top(&mut layout, ram, hyp_size);
            let path = GuestImage::path_of(&images, &args.guest)?;
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let name = path.display().to_string();
            let g = match guest_image::check(&name, &bytes, args.raw, args.load_addr, &layout)? {
                GuestKind::Elf { entry } => GuestImage { path, entry, raw_addr: None },
                GuestKind::Raw => GuestImage { path, entry: args.load_addr, raw_addr: Some(args.load_addr) },
            };
            let symbols = if g.raw_addr.is_none() { Some(g.path.clone()) } else { None };
            (g, args.initrd.clone(), symbols)
        }
    };
    let timeout = args.timeout.unwrap_or(if args.linux.is_some() { 900 } else { 60 });
    if args.secure && args.trace_via == Some(TraceVia::Uart) {
        bail!("--secure has no trace UART (it is Secure-only there): the trace goes via semihosting");
    }
    let tmp = tempdir()?;
    let plan = RunPlan { hyp, guest, initrd, default_symbols, timeout };
    let r = run_in(args, &tmp, plan, trace_out, console_out);
    let _ = std::fs::remove_dir_all(&tmp);
    r
}

/// `--all`: adds `stream=all` to the porwatch options unless it is there
/// already (porwatch refuses an option given twice); refuses another
/// `stream=` given with it (as an option or a kernel command-line word).
fn all_stream(hyp_opts: &mut Vec<String>, append: Option<&str>) -> Result<()> {
    let given: Vec<&str> = hyp_opts
        .iter()
        .map(|o| o.trim_start_matches("porwatch."))
        .chain(append.unwrap_or_default().split_whitespace().filter_map(|w| w.strip_prefix("porwatch.")))
        .filter_map(|o| o.strip_prefix("stream="))
        .collect();
    if let Some(v) = given.iter().find(|&&v| v != "all") {
        bail!("--all streams every record (porwatch.stream=all); it cannot be combined with stream={v}");
    }
    if given.is_empty() {
        hyp_opts.push("stream=all".into());
    }
    Ok(())
}

/// What [`run`] resolved before QEMU starts.
struct RunPlan {
    hyp: PathBuf,
    guest: GuestImage,
    initrd: Option<PathBuf>,
    default_symbols: Option<PathBuf>,
    timeout: u64,
}

/// Reserves where porwatch will move to at boot (the top of RAM, below an
/// initramfs there): a guest loaded there would be overwritten.
fn reserve_hyp_top(layout: &mut Layout, ram: u64, hyp_size: u64) {
    let initrd = layout.reserved.iter().find(|r| r.what.starts_with(INITRD_WHAT)).map(|r| (r.start, r.end));
    if let Some((start, end)) = qemu::hyp_at_top(ram, hyp_size, initrd) {
        layout.reserved.push(Reserved { start, end, what: "porwatch's memory at the top of RAM".into() });
    }
}

/// How [`reserve_initrd`] names the initramfs.
const INITRD_WHAT: &str = "the initramfs ";

/// Reserves the initramfs QEMU will place, refusing one that does not fit.
fn reserve_initrd(layout: &mut Layout, p: &Path, ram: u64) -> Result<()> {
    let size = std::fs::metadata(p).with_context(|| format!("initramfs {}", p.display()))?.len();
    let at = qemu::initrd_addr(ram);
    let what = format!("{INITRD_WHAT}{}", p.display());
    layout.check(&what, at, size)?;
    layout.reserved.push(Reserved { start: at, end: at + size, what });
    Ok(())
}

fn run_in(
    args: &RunArgs,
    tmp: &Path,
    plan: RunPlan,
    trace_out: Box<dyn Write + Send>,
    console_out: Box<dyn Write + Send>,
) -> Result<RunOutcome> {
    let pipe_base = tmp.join("trace");
    let pipe_out = tmp.join("trace.out");
    // Where the trace comes from: the trace UART's FIFO, or (semihosting)
    // the semihosting file, created empty here so it can be opened before
    // QEMU (which truncates it) writes to it.
    let semihosting = args.secure || args.trace_via == Some(TraceVia::Semihosting);
    let trace_file = if semihosting { Some(tmp.join("trace.pwt")) } else { None };
    let secure_stub = if args.secure {
        let p = tmp.join("el3-stub.bin");
        std::fs::write(&p, qemu::el3_reset_stub())
            .with_context(|| format!("cannot write {}", p.display()))?;
        Some(p)
    } else {
        None
    };

    let cfg = QemuConfig {
        qemu: args.qemu.clone(),
        hyp: plan.hyp,
        guest: plan.guest,
        initrd: plan.initrd,
        trace_pipe: pipe_base,
        trace_file: trace_file.clone(),
        guest_args: args.append.clone().unwrap_or_default(),
        hyp_opts: {
            let mut v = args.hyp_opts.clone();
            if args.all {
                all_stream(&mut v, args.append.as_deref())?;
            }
            if let Some(p) = args.policy {
                if v.iter().any(|o| o.trim_start_matches("porwatch.").starts_with("policy=")) {
                    bail!("--policy and --hyp-opt policy=... both given");
                }
                v.push(format!("policy={}", p.as_str()));
            }
            v
        },
        icount: args.icount,
        smp: args.smp,
        extra: args.qemu_args.clone(),
        secure_stub,
    };
    let argv = cfg.argv()?;
    // porwatch.trace=none: no trace to read; the status is then QEMU's.
    let traced = !argv
        .windows(2)
        .any(|w| w[0] == "-append" && w[1].split_whitespace().any(|o| o == "porwatch.trace=none"));
    let mut view = args.view.view(plan.default_symbols.as_deref(), args.verbose)?;
    // The readable default (applies to a flight trace: the printer checks
    // the header's stream bit, so `--hyp-opt stream=all` prints everything).
    view.brief = !args.json && !args.all && !view.hazards_only && view.filter.is_empty();
    let mut raw = match &args.trace_out {
        Some(p) => Some(std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?),
        None => None,
    };
    let source = match &trace_file {
        None => {
            for p in [tmp.join("trace.in"), pipe_out.clone()] {
                mkfifo(&p)?;
            }
            TraceSource::Fifo(pipe_out.clone())
        }
        Some(p) => {
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
            let f = std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            TraceSource::File(f)
        }
    };
    if args.verbose {
        eprintln!("porwatch: {} {}", cfg.qemu.display(), shell_join(&argv));
    }

    // From here on nothing is refused: every way the run ends is an outcome.
    let mut command = Command::new(&cfg.qemu);
    command.args(&argv).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    die_with_parent(&mut command);
    let spawned = command.spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let what = format!("{}: {e} (run scripts/setup?)", cfg.qemu.display());
            let end = Drained {
                ending: Ending::default(),
                trace_error: None,
                watch: ConsoleWatch::default(),
                qemu_said: vec![],
            };
            return Ok(finish(args, QemuEnd::NotStarted(what), traced, end, trace_out));
        }
    };

    // Both output streams share one writer so lines never interleave mid-line.
    let shared: Arc<Mutex<Box<dyn Write + Send>>> = Arc::new(Mutex::new(trace_out));
    let console: Arc<Mutex<Box<dyn Write + Send>>> =
        if args.json { Arc::new(Mutex::new(console_out)) } else { shared.clone() };

    let qemu_stdout = child.stdout.take().context("no QEMU stdout")?;
    let console_thread = std::thread::spawn(move || pump_lines(qemu_stdout, console));
    let qemu_stderr = child.stderr.take().context("no QEMU stderr")?;
    let stderr_thread = std::thread::spawn(move || pass_stderr(qemu_stderr));

    let opts = DecodeOptions { json: args.json, summary: false, view };
    let trace_sink = shared.clone();
    // Set once QEMU has exited: the trace file is then complete.
    let qemu_done = Arc::new(AtomicBool::new(false));
    let file_done = qemu_done.clone();
    let trace_thread = std::thread::spawn(move || -> std::io::Result<Ending> {
        let mut w = LockedWriter(trace_sink);
        let tee = raw.as_mut().map(|f| f as &mut dyn Write);
        match source {
            TraceSource::Fifo(path) => {
                // Blocks until QEMU opens its end.
                let mut fifo = std::fs::File::open(&path)?;
                if !traced {
                    // porwatch.trace=none: nothing is expected; drain it.
                    std::io::copy(&mut fifo, &mut std::io::sink())?;
                    return Ok(Ending::default());
                }
                decode_to_end(fifo, &mut w, &opts, tee)
            }
            TraceSource::File(f) => {
                let follow = Follow::new(f, None)?.until(file_done).poll_every(FILE_POLL);
                decode_to_end(follow, &mut w, &opts, tee)
            }
        }
    });

    let deadline = Instant::now() + Duration::from_secs(plan.timeout);
    let end = loop {
        match child.try_wait() {
            Ok(Some(st)) => break exit_of(st),
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                break QemuEnd::NotStarted(format!("cannot wait for QEMU: {e}"));
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break QemuEnd::TimedOut(plan.timeout);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // A followed trace file ends at its end now that QEMU is gone.
    qemu_done.store(true, Ordering::SeqCst);
    if !semihosting {
        unblock_fifo_reader(&pipe_out, &trace_thread);
    }
    let (ending, trace_error) = match trace_thread.join() {
        Ok(Ok(e)) => (e, None),
        Ok(Err(e)) => (Ending::default(), Some(e.to_string())),
        Err(_) => (Ending::default(), Some("the trace reader panicked".to_string())),
    };
    // The console and QEMU's stderr are complete once QEMU is gone; only
    // then is the summary printed, so it never lands inside a console line.
    let watch = console_thread.join().unwrap_or_default();
    let qemu_said: Vec<String> = stderr_thread.join().unwrap_or_default().into();
    let drained = Drained { ending, trace_error, watch, qemu_said };
    Ok(finish(args, end, traced, drained, Box::new(LockedWriter(shared))))
}

/// The process status as a [`QemuEnd`].
fn exit_of(st: std::process::ExitStatus) -> QemuEnd {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => QemuEnd::Exited(c),
        (None, Some(sig)) => QemuEnd::Signaled(sig),
        (None, None) => QemuEnd::Exited(-1),
    }
}

/// What the run's readers collected once QEMU was gone.
struct Drained {
    ending: Ending,
    /// The trace could not be read to its end.
    trace_error: Option<String>,
    watch: ConsoleWatch,
    /// QEMU's last stderr lines.
    qemu_said: Vec<String>,
}

/// Decides the outcome and prints the closing lines: the trace summary
/// (stderr in text mode; the final JSON line on `out`, with the run's
/// outcome, in JSON mode), then the verdict lines and `--counts` on stderr.
fn finish(
    args: &RunArgs,
    end: QemuEnd,
    traced: bool,
    d: Drained,
    mut out: Box<dyn Write + Send>,
) -> RunOutcome {
    let console_death = d.watch.first.as_ref().map(|(l, k)| (l.as_str(), *k));
    let verdict = outcome::decide(&Observed {
        qemu: end.clone(),
        traced,
        ending: &d.ending,
        trace_error: d.trace_error.as_deref(),
        console_death,
        qemu_said: &d.qemu_said,
        fail_on_hazard: args.view.fail_on_hazard,
    });
    let (qemu_exit, qemu_signal) = match end {
        QemuEnd::Exited(c) => (Some(c), None),
        QemuEnd::Signaled(s) => (None, Some(s)),
        QemuEnd::TimedOut(_) | QemuEnd::NotStarted(_) => (None, None),
    };
    let timed_out = matches!(end, QemuEnd::TimedOut(_));
    let _ = out.flush();
    let run_end = RunEnd {
        status: verdict.outcome.code(),
        outcome: verdict.outcome.name(),
        qemu_exit,
        qemu_signal,
        timed_out,
        guest_failure: console_death.map(|(l, _)| l),
        extra_problems: &verdict.extra_problems,
    };
    // Without a trace (porwatch.trace=none) there is no trace summary, but
    // JSON still ends with its summary line, which carries the run.
    if traced || args.json {
        let _ = d.ending.write_summary(&mut out, args.json, Some(&run_end));
    }
    let _ = out.flush();
    {
        let mut err = std::io::stderr().lock();
        for l in &verdict.lines {
            let _ = writeln!(err, "{l}");
        }
    }
    d.ending.write_counts();
    RunOutcome {
        qemu_status: qemu_exit,
        timed_out,
        stats: d.ending.stats.clone(),
        status: verdict.outcome.code(),
        outcome: verdict.outcome,
        verdict: verdict.lines,
        console_death: d.watch.first.map(|(l, _)| l),
    }
}

/// Where the trace bytes come from.
enum TraceSource {
    /// The trace UART, through the FIFO QEMU's pipe chardev writes.
    Fifo(PathBuf),
    /// The file porwatch writes with semihosting (`--secure`).
    File(std::fs::File),
}

/// QEMU goes when porwatch goes: killed (SIGTERM from a CI timeout, `kill`)
/// porwatch cannot stop it, and an orphaned QEMU would run its guest to
/// the end on a machine that has better uses for the CPU. Linux's parent-
/// death signal does it; it follows the spawning thread, which lives until
/// the run ends.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid before the fork; in the child only async-signal-safe
    // calls (prctl, getppid, _exit) run before exec.
    let parent = unsafe { libc::getpid() };
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        })
    };
}

/// If QEMU died before opening the FIFO, the reader is blocked in open(),
/// or about to be: opening the write end (and closing it) gives it an empty
/// stream. A non-blocking open fails (ENXIO) while no reader has the FIFO
/// open yet, so it is retried until it succeeds or the reader is done.
fn unblock_fifo_reader<T>(fifo: &std::path::Path, reader: &std::thread::JoinHandle<T>) {
    use std::os::unix::fs::OpenOptionsExt;
    while !reader.is_finished() {
        let opened = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo);
        match opened {
            Ok(_) => return, // closed at once: the reader sees end of file
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return, // no FIFO: the reader failed its open too
        }
    }
}

fn mkfifo(p: &std::path::Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).context("path with a NUL byte")?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        bail!("cannot create FIFO {}: {}", p.display(), std::io::Error::last_os_error());
    }
    Ok(())
}

/// Copies `r` (the guest console) to the shared writer a whole line at a
/// time, watching each for a kernel death; a last line without its line end
/// gets one, so what follows starts on a line of its own.
fn pump_lines(r: impl Read, out: Arc<Mutex<Box<dyn Write + Send>>>) -> ConsoleWatch {
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    let mut watch = ConsoleWatch::default();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return watch,
            Ok(_) => {
                let mut clean: Vec<u8> = line.iter().copied().filter(|&b| b != b'\r').collect();
                if clean.last() != Some(&b'\n') {
                    clean.push(b'\n');
                }
                watch.line(&String::from_utf8_lossy(&clean));
                let mut w = out.lock().unwrap_or_else(|e| e.into_inner());
                let _ = w.write_all(&clean);
                let _ = w.flush();
            }
        }
    }
}

/// Passes QEMU's stderr on to ours a line at a time, keeping the last
/// [`QEMU_STDERR_KEPT`] non-empty lines for the failure message.
fn pass_stderr(r: impl Read) -> VecDeque<String> {
    let mut kept = VecDeque::new();
    for line in BufReader::new(r).split(b'\n') {
        let Ok(line) = line else { break };
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        eprintln!("{text}");
        if !text.is_empty() {
            if kept.len() == QEMU_STDERR_KEPT {
                kept.pop_front();
            }
            kept.push_back(text);
        }
    }
    kept
}

/// A Write that takes the shared lock per write (decode_stream writes whole lines).
struct LockedWriter(Arc<Mutex<Box<dyn Write + Send>>>);

impl Write for LockedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

fn tempdir() -> Result<PathBuf> {
    // Absolute: the semihosting trace file is named to QEMU by this path.
    let base = std::env::temp_dir();
    let base = base.canonicalize().unwrap_or(base);
    for i in 0..1000u32 {
        let p = base.join(format!("porwatch-{}-{}", std::process::id(), i));
        if std::fs::create_dir(&p).is_ok() {
            return Ok(p);
        }
    }
    bail!("cannot create a temporary directory in {}", base.display())
}

fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a.clone() })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::all_stream;

    #[test]
    fn all_adds_stream_all_once_and_refuses_flight() {
        let mut v = vec!["tap=on".to_string()];
        all_stream(&mut v, None).unwrap();
        assert_eq!(v, ["tap=on", "stream=all"]);
        // Already asked for: not twice (porwatch refuses a repeated option).
        for (opts, append) in
            [(vec!["porwatch.stream=all".to_string()], None), (vec![], Some("porwatch.stream=all"))]
        {
            let mut v = opts.clone();
            all_stream(&mut v, append).unwrap();
            assert_eq!(v, opts);
        }
        let e = all_stream(&mut vec!["stream=flight".into()], None).unwrap_err();
        assert!(e.to_string().contains("cannot be combined with stream=flight"), "{e}");
        assert!(all_stream(&mut vec![], Some("quiet porwatch.stream=flight")).is_err());
    }
}
