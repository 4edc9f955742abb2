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

use crate::decode::{decode_stream, DecodeOptions, DecodeStats};
use crate::decode_cmd::ViewArgs;
use crate::follow::Follow;
use crate::linux;
use crate::qemu::{self, GuestImage, QemuConfig};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Exit status when the run exceeded --timeout (as timeout(1) does).
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit status when the trace was corrupt, truncated or had unexplained gaps.
pub const EXIT_TRACE_DAMAGED: i32 = 3;
/// `--secure`: how often the semihosting trace file is checked for new bytes.
const FILE_POLL: Duration = Duration::from_millis(10);

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Guest to run: the name of a guest-tests kernel (default: seed, the
    /// kpkeys crash reproduced; others: pt_stress, pt_store, exceptions,
    /// por_regs, bench, hello, hostile),
    /// or a path to an ELF (loaded at its own addresses) or a raw image such
    /// as a Linux Image (loaded at --load-addr).
    #[arg(long, default_value = "seed")]
    pub guest: String,
    /// Load address for a raw guest image (also its entry point).
    #[arg(long, default_value = "0x44000000", value_parser = parse_u64)]
    pub load_addr: u64,
    /// Write the raw trace bytes to FILE (decode later with `porwatch decode FILE`).
    #[arg(long, value_name = "FILE")]
    pub trace_out: Option<PathBuf>,
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
    pub qemu_status: Option<i32>,
    pub timed_out: bool,
    pub stats: DecodeStats,
    pub status: i32,
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
/// the guest console to `console_out` (whole lines, never torn).
pub fn run(
    args: &RunArgs,
    trace_out: Box<dyn Write + Send>,
    console_out: Box<dyn Write + Send>,
) -> Result<RunOutcome> {
    let images = qemu::images_dir(args.images.as_deref())?;
    let hyp = images.join("porwatch-hyp.bin");
    let (guest, initrd, default_symbols) = match &args.linux {
        Some(spec) => {
            let l = linux::resolve(spec, args.initrd.as_deref(), args.load_addr)?;
            check_linux_placement(&hyp, &l)?;
            let g = GuestImage { path: l.image.clone(), entry: l.load_addr, raw_addr: Some(l.load_addr) };
            (g, l.initrd, l.system_map)
        }
        None => {
            let g = GuestImage::resolve(&images, &args.guest, args.load_addr)?;
            let symbols = if g.raw_addr.is_none() { Some(g.path.clone()) } else { None };
            (g, args.initrd.clone(), symbols)
        }
    };
    let timeout = args.timeout.unwrap_or(if args.linux.is_some() { 900 } else { 60 });
    let tmp = tempdir()?;
    let pipe_base = tmp.join("trace");
    let pipe_out = tmp.join("trace.out");
    // Where the trace comes from: the trace UART's FIFO, or (semihosting)
    // the semihosting file, created empty here so it can be opened before
    // QEMU (which truncates it) writes to it.
    if args.secure && args.trace_via == Some(TraceVia::Uart) {
        bail!("--secure has no trace UART (it is Secure-only there): the trace goes via semihosting");
    }
    let semihosting = args.secure || args.trace_via == Some(TraceVia::Semihosting);
    let trace_file = if semihosting { Some(tmp.join("trace.pwt")) } else { None };
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
        hyp,
        guest,
        initrd,
        trace_pipe: pipe_base,
        trace_file,
        guest_args: args.append.clone().unwrap_or_default(),
        hyp_opts: {
            let mut v = args.hyp_opts.clone();
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
    if args.verbose {
        eprintln!("porwatch: {} {}", cfg.qemu.display(), shell_join(&argv));
    }

    let mut child = Command::new(&cfg.qemu)
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {} (run scripts/setup?)", cfg.qemu.display()))?;

    // Both output streams share one writer so lines never interleave mid-line.
    let shared: Arc<Mutex<Box<dyn Write + Send>>> = Arc::new(Mutex::new(trace_out));
    let same_sink = !args.json;
    let console: Arc<Mutex<Box<dyn Write + Send>>> =
        if same_sink { shared.clone() } else { Arc::new(Mutex::new(console_out)) };

    let qemu_stdout = child.stdout.take().context("no QEMU stdout")?;
    let console_thread = std::thread::spawn(move || pump_lines(qemu_stdout, console));

    // The summary closes the run: one stderr line (text) or a final JSON line.
    let view = args.view.view(default_symbols.as_deref(), args.verbose)?;
    let opts = DecodeOptions { json: args.json, summary: true, view };
    let mut raw = match &args.trace_out {
        Some(p) => Some(std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?),
        None => None,
    };
    let trace_sink = shared.clone();
    // Set once QEMU has exited: the trace file is then complete.
    let qemu_done = Arc::new(AtomicBool::new(false));
    let file_done = qemu_done.clone();
    let trace_thread = std::thread::spawn(move || -> std::io::Result<DecodeStats> {
        let mut w = LockedWriter(trace_sink);
        let tee = raw.as_mut().map(|f| f as &mut dyn Write);
        match source {
            TraceSource::Fifo(path) => {
                // Blocks until QEMU opens its end.
                let fifo = std::fs::File::open(&path)?;
                decode_stream(fifo, &mut w, &opts, tee)
            }
            TraceSource::File(f) => {
                let follow = Follow::new(f, None)?.until(file_done).poll_every(FILE_POLL);
                decode_stream(follow, &mut w, &opts, tee)
            }
        }
    });

    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // If QEMU died before opening the FIFO, the reader is still blocked in
    // open(): opening the write end (and closing it) gives it an empty
    // stream. A followed trace file ends at its end now that QEMU is gone.
    qemu_done.store(true, Ordering::SeqCst);
    if !semihosting {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&pipe_out);
    }
    let stats = trace_thread.join().map_err(|_| anyhow::anyhow!("trace reader panicked"))??;
    let _ = console_thread.join();
    let _ = std::fs::remove_dir_all(&tmp);

    let qemu_status = status.code();
    let code = if timed_out {
        eprintln!("porwatch: timed out after {timeout} s: QEMU killed");
        EXIT_TIMEOUT
    } else {
        match qemu_status {
            Some(0) if !stats.is_clean() => EXIT_TRACE_DAMAGED,
            Some(c) => c,
            None => {
                eprintln!("porwatch: QEMU was killed by a signal");
                128
            }
        }
    };
    let code = args.view.exit_status(code, &stats);
    Ok(RunOutcome { qemu_status, timed_out, stats, status: code })
}

/// Refuses a Linux placement that would overlap porwatch (loaded at
/// qemu::HYP_ADDR, its header's image_size covering the guest DTB window)
/// or the initramfs (QEMU puts it at qemu::INITRD_ADDR).
fn check_linux_placement(hyp: &std::path::Path, l: &linux::LinuxGuest) -> Result<()> {
    let head = std::fs::read(hyp).with_context(|| format!("cannot read {}", hyp.display()))?;
    let (_, hyp_size) = linux::parse_image_header(&head).context("porwatch-hyp.bin")?;
    let hyp_end = qemu::HYP_ADDR + hyp_size;
    let end = l.load_addr + l.image_size;
    if l.load_addr < hyp_end {
        bail!("--load-addr {:#x} overlaps porwatch (up to {hyp_end:#x})", l.load_addr);
    }
    if l.initrd.is_some() && end > qemu::INITRD_ADDR {
        bail!(
            "the Image needs {:#x}..{end:#x}, past the initramfs at {:#x}: choose a lower --load-addr",
            l.load_addr,
            qemu::INITRD_ADDR
        );
    }
    Ok(())
}

/// Where the trace bytes come from.
enum TraceSource {
    /// The trace UART, through the FIFO QEMU's pipe chardev writes.
    Fifo(PathBuf),
    /// The file porwatch writes with semihosting (`--secure`).
    File(std::fs::File),
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

/// Copies `r` to the shared writer a whole line at a time.
fn pump_lines(r: impl Read, out: Arc<Mutex<Box<dyn Write + Send>>>) {
    let mut r = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let clean: Vec<u8> = line.iter().copied().filter(|&b| b != b'\r').collect();
                let mut w = out.lock().unwrap_or_else(|e| e.into_inner());
                let _ = w.write_all(&clean);
                let _ = w.flush();
            }
        }
    }
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
