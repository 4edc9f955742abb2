//! The QEMU command line for a porwatch run, and where its images come from.

use anyhow::{bail, Context, Result};
use porwatch_monitor::cmdline::MAX_SEMIHOSTING_NAME;
use porwatch_monitor::cpus::MAX_CPUS;
use std::path::{Path, PathBuf};

/// QEMU virt with EL2, GICv3, one CPU, 1 GiB: the configuration porwatch is
/// developed and tested on.
pub const MACHINE: &str = "virt,virtualization=on,gic-version=3";
pub const CPU: &str = "max";
/// `--secure`: the same machine with EL3 (TrustZone). QEMU then provides no
/// PSCI and starts the CPU at EL3, as an Arm FVP does; porwatch's boot.S
/// drops to EL2 itself. The second PL011 is Secure-only there, so the trace
/// goes to a host file through semihosting instead
/// (porwatch.trace=semihosting:FILE, [`QemuConfig::trace_file`]).
pub const MACHINE_SECURE: &str = "virt,virtualization=on,secure=on,gic-version=3";
/// `--secure`: where porwatch-hyp.bin is loaded (RAM base + 2 MiB, where
/// QEMU puts a Linux Image).
pub const SECURE_HYP_ADDR: u64 = 0x4020_0000;
/// `--secure`: where QEMU puts the device tree when firmware (`-bios`) is
/// loaded: the base of RAM, with `-append` in /chosen/bootargs.
pub const SECURE_DTB_ADDR: u64 = 0x4000_0000;

/// `--secure`: the "firmware" QEMU starts at EL3 from flash address 0: three
/// instructions that enter porwatch as a boot loader would, x0 = DTB.
pub fn el3_reset_stub() -> Vec<u8> {
    // MOVZ Xd, #imm16, LSL #16: 0xd2a00000 | imm16 << 5 | d.
    let movz_hi = |d: u32, v: u64| {
        assert_eq!(v & 0xffff, 0, "stub addresses are 64 KiB aligned");
        assert!(v >> 32 == 0);
        0xd2a0_0000 | ((v >> 16) as u32) << 5 | d
    };
    const BR_X1: u32 = 0xd61f_0020;
    [movz_hi(0, SECURE_DTB_ADDR), movz_hi(1, SECURE_HYP_ADDR), BR_X1]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}
pub const MEMORY: &str = "1G";

/// The CPU count an `-smp` value asks for (`4`, `cpus=4,...`, `4,sockets=1`),
/// None if it names none.
fn smp_cpus(value: &str) -> Option<u32> {
    value.split(',').find_map(|part| match part.split_once('=') {
        Some(("cpus", n)) => n.parse().ok(),
        Some(_) => None,
        None => part.parse().ok(),
    })
}

/// The CPUs of the machine: `smp` (`--smp`), unless the extra QEMU
/// arguments have their own `-smp` (QEMU takes the last one). More than
/// porwatch supports is refused here, before QEMU starts (porwatch itself
/// would refuse at boot, exit 78).
pub fn machine_cpus(smp: u32, extra: &[String]) -> Result<u32> {
    let mut cpus = smp;
    let mut it = extra.iter();
    while let Some(a) = it.next() {
        if a == "-smp" || a == "--smp" {
            let v = it.next().map(String::as_str).unwrap_or("");
            cpus = smp_cpus(v).with_context(|| format!("-smp {v:?}: no CPU count"))?;
        }
    }
    if cpus as usize > MAX_CPUS {
        bail!("-smp {cpus}: porwatch runs at most {MAX_CPUS} CPUs");
    }
    if cpus == 0 {
        bail!("-smp 0: at least one CPU is needed");
    }
    Ok(cpus)
}
/// Where QEMU's -kernel puts porwatch-hyp.bin (an arm64 Image with
/// text_offset 0): RAM base + 2 MiB.
pub const HYP_ADDR: u64 = 0x4020_0000;
/// Where QEMU puts -initrd next to a -kernel Image: RAM base +
/// min(RAM / 2, 128 MiB) (hw/arm/boot.c).
pub const INITRD_ADDR: u64 = 0x4800_0000;

/// A guest and how QEMU's generic loader places it.
#[derive(Debug, Clone)]
pub struct GuestImage {
    pub path: PathBuf,
    /// Entry point handed to porwatch (porwatch.guest=).
    pub entry: u64,
    /// Some(addr): a raw image loaded at addr; None: an ELF loaded at its own addresses.
    pub raw_addr: Option<u64>,
}

impl GuestImage {
    /// `name_or_path`: a guest-tests kernel name, or a file.
    pub fn resolve(images: &Path, name_or_path: &str, load_addr: u64) -> Result<Self> {
        let named = images.join("guests").join(format!("{name_or_path}.elf"));
        let path = if !name_or_path.contains('/') && named.is_file() {
            named
        } else {
            let p = PathBuf::from(name_or_path);
            if !p.is_file() {
                let known = list_guests(images).join(", ");
                bail!("no guest {name_or_path:?}: not a guest-tests kernel ({known}) nor a file");
            }
            p
        };
        let head = read_head(&path)?;
        match elf_entry(&head) {
            Some(entry) => Ok(Self { path, entry, raw_addr: None }),
            None => Ok(Self { path, entry: load_addr, raw_addr: Some(load_addr) }),
        }
    }
}

fn read_head(p: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
    let mut buf = vec![0u8; 64];
    let n = f.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// e_entry of a little-endian ELF64 for AArch64, or None if not one.
pub fn elf_entry(head: &[u8]) -> Option<u64> {
    const EM_AARCH64: u16 = 183;
    if head.len() < 32 || &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return None;
    }
    let machine = u16::from_le_bytes([head[18], head[19]]);
    if machine != EM_AARCH64 {
        return None;
    }
    Some(u64::from_le_bytes(head[24..32].try_into().ok()?))
}

/// Names of the guest-tests kernels found in `images`.
pub fn list_guests(images: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(images.join("guests"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".elf").map(str::to_owned))
        .collect();
    v.sort();
    v
}

/// The images directory: `explicit`, $PORWATCH_IMAGES, the directory of this
/// executable (scripts/build puts porwatch there), or target/porwatch.
pub fn images_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_path_buf());
    } else {
        if let Some(p) = std::env::var_os("PORWATCH_IMAGES") {
            candidates.push(p.into());
        }
        if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
            candidates.push(dir);
        }
        candidates.push(PathBuf::from("target/porwatch"));
    }
    for c in candidates {
        if c.join("porwatch-hyp.bin").is_file() {
            return Ok(c);
        }
        tried.push(c.display().to_string());
    }
    bail!("porwatch-hyp.bin not found (looked in {}): run scripts/build", tried.join(", "))
}

#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub qemu: PathBuf,
    pub hyp: PathBuf,
    pub guest: GuestImage,
    /// QEMU's -initrd (placed at INITRD_ADDR, announced in /chosen).
    pub initrd: Option<PathBuf>,
    /// Base path of the FIFO pair of QEMU's `pipe` chardev for the trace
    /// UART (QEMU's second PL011): QEMU writes the UART's bytes to
    /// `<trace_pipe>.out`. A FIFO rather than a socket: QEMU makes one
    /// syscall per UART byte, and a FIFO write costs less than a socket
    /// send with its reader wake-up (Linux bookworm run: 37 s -> 32 s).
    /// Unused when `trace_file` is set.
    pub trace_pipe: PathBuf,
    /// Some(FILE): the trace goes to FILE on the host through Arm
    /// semihosting (porwatch.trace=semihosting:FILE, written by QEMU with
    /// `-semihosting-config target=native`), and there is no trace UART.
    /// FILE must be absolute (QEMU would resolve it against its own working
    /// directory), without whitespace or quotes (it is one command-line
    /// word), at most [`MAX_SEMIHOSTING_NAME`] bytes. `--secure` uses it.
    pub trace_file: Option<PathBuf>,
    pub guest_args: String,
    pub hyp_opts: Vec<String>,
    /// CPUs (`-smp`), checked by [`machine_cpus`].
    pub smp: u32,
    pub icount: bool,
    pub extra: Vec<String>,
    /// `--secure`: the EL3 reset stub file (el3_reset_stub) to load as
    /// `-bios`; the machine is MACHINE_SECURE and there is no trace UART
    /// (without `trace_file`, no trace at all: porwatch.trace=none).
    pub secure_stub: Option<PathBuf>,
}

/// The semihosting trace file as a `porwatch.trace=` value.
fn semihosting_trace_value(file: &Path) -> Result<String> {
    let Some(name) = file.to_str() else {
        bail!("trace file {}: not UTF-8", file.display());
    };
    if !file.is_absolute() {
        bail!("trace file {name:?}: must be an absolute path (QEMU opens it from its own directory)");
    }
    if name.contains(|c: char| c.is_whitespace() || c == '"') {
        bail!("trace file {name:?}: a path without spaces or quotes is needed (set TMPDIR?)");
    }
    if name.len() > MAX_SEMIHOSTING_NAME {
        bail!("trace file {name:?}: longer than {MAX_SEMIHOSTING_NAME} bytes (set TMPDIR?)");
    }
    Ok(format!("semihosting:{name}"))
}

impl QemuConfig {
    pub fn argv(&self) -> Result<Vec<String>> {
        let smp = machine_cpus(self.smp, &self.extra)?.to_string();
        let mut append = format!("porwatch.guest={:#x} porwatch.semihosting=1", self.guest.entry);
        let trace = match (&self.trace_file, &self.secure_stub) {
            (Some(f), _) => Some(semihosting_trace_value(f)?),
            (None, Some(_)) => Some("none".to_string()),
            (None, None) => None,
        };
        if let Some(t) = &trace {
            append.push_str(" porwatch.trace=");
            append.push_str(t);
        }
        for o in &self.hyp_opts {
            let o = o.strip_prefix("porwatch.").unwrap_or(o);
            if !o.contains('=') || o.contains(char::is_whitespace) {
                bail!("--hyp-opt {o:?}: expected KEY=VALUE without spaces");
            }
            if let Some(t) = trace.as_ref().filter(|_| o.starts_with("trace=")) {
                bail!("--hyp-opt {o:?}: this run chooses the trace itself (porwatch.trace={t})");
            }
            append.push_str(" porwatch.");
            append.push_str(o);
        }
        if !self.guest_args.is_empty() {
            append.push(' ');
            append.push_str(&self.guest_args);
        }
        let loader = match self.guest.raw_addr {
            Some(a) => format!("loader,file={},addr={a:#x},force-raw=on", self.guest.path.display()),
            None => format!("loader,file={}", self.guest.path.display()),
        };
        let mut v: Vec<String> = [
            // No default devices (virt's virtio NIC needs an iPXE ROM that a
            // fresh machine lacks, and would be a DMA-capable device the
            // guest could aim past stage 2): only what is listed here.
            "-nodefaults",
            "-M",
            if self.secure_stub.is_some() { MACHINE_SECURE } else { MACHINE },
            "-cpu",
            CPU,
            "-smp",
            &smp,
            "-m",
            MEMORY,
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-semihosting-config",
            "enable=on,target=native",
            "-serial",
            "stdio",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        match &self.secure_stub {
            None => {
                if self.trace_file.is_none() {
                    v.push("-chardev".into());
                    v.push(format!("pipe,id=trace,path={}", self.trace_pipe.display()));
                    v.extend(["-serial", "chardev:trace"].map(String::from));
                }
                v.push("-kernel".into());
                v.push(self.hyp.display().to_string());
            }
            // With firmware loaded, QEMU only puts -kernel in fw_cfg (unused);
            // it is needed for -append. The generic loader places porwatch.
            Some(stub) => {
                v.push("-bios".into());
                v.push(stub.display().to_string());
                v.push("-kernel".into());
                v.push(self.hyp.display().to_string());
                v.push("-device".into());
                v.push(format!("loader,file={},addr={SECURE_HYP_ADDR:#x}", self.hyp.display()));
            }
        }
        v.push("-append".into());
        v.push(append);
        v.push("-device".into());
        v.push(loader);
        if let Some(p) = &self.initrd {
            v.push("-initrd".into());
            v.push(p.display().to_string());
        }
        if self.icount {
            v.extend(["-icount", "shift=0"].map(String::from));
        }
        v.extend(self.extra.iter().cloned());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_entry_reads_aarch64_elf64_only() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18] = 183;
        h[24..32].copy_from_slice(&0x4400_0000u64.to_le_bytes());
        assert_eq!(elf_entry(&h), Some(0x4400_0000));
        h[18] = 62; // x86-64
        assert_eq!(elf_entry(&h), None);
        assert_eq!(elf_entry(b"ARM\x64"), None);
    }

    #[test]
    fn argv_passes_entry_options_and_loader() {
        let cfg = QemuConfig {
            qemu: "q".into(),
            hyp: "/i/porwatch-hyp.bin".into(),
            guest: GuestImage { path: "/g/Image".into(), entry: 0x4800_0000, raw_addr: Some(0x4800_0000) },
            initrd: Some("/g/initrd.gz".into()),
            trace_pipe: "/t/trace".into(),
            trace_file: None,
            guest_args: "console=ttyAMA0".into(),
            hyp_opts: vec!["eret=on".into()],
            smp: 1,
            icount: true,
            extra: vec!["-d".into(), "guest_errors".into()],
            secure_stub: None,
        };
        let v = cfg.argv().unwrap();
        let append = &v[v.iter().position(|a| a == "-append").unwrap() + 1];
        assert_eq!(
            append,
            "porwatch.guest=0x48000000 porwatch.semihosting=1 porwatch.eret=on console=ttyAMA0"
        );
        assert!(v.contains(&"loader,file=/g/Image,addr=0x48000000,force-raw=on".to_string()));
        assert!(v.windows(2).any(|w| w[0] == "-icount" && w[1] == "shift=0"));
        assert!(v.windows(2).any(|w| w[0] == "-initrd" && w[1] == "/g/initrd.gz"));
        assert_eq!(&v[v.len() - 2..], &["-d".to_string(), "guest_errors".to_string()]);
        assert!(v.windows(2).any(|w| w[0] == "-M" && w[1] == MACHINE));
        assert!(v.windows(2).any(|w| w[0] == "-serial" && w[1] == "chardev:trace"));
        let bad = QemuConfig { hyp_opts: vec!["eret on".into()], ..cfg };
        assert!(bad.argv().is_err());
    }

    #[test]
    fn secure_argv_boots_from_the_el3_stub_without_a_trace_uart() {
        let cfg = QemuConfig {
            qemu: "q".into(),
            hyp: "/i/porwatch-hyp.bin".into(),
            guest: GuestImage { path: "/g/hello.elf".into(), entry: 0x4400_0000, raw_addr: None },
            initrd: None,
            trace_pipe: "/t/trace".into(),
            trace_file: None,
            guest_args: String::new(),
            hyp_opts: vec![],
            smp: 1,
            icount: false,
            extra: vec![],
            secure_stub: Some("/t/el3-stub.bin".into()),
        };
        let v = cfg.argv().unwrap();
        assert!(v.windows(2).any(|w| w[0] == "-M" && w[1] == MACHINE_SECURE));
        assert!(v.windows(2).any(|w| w[0] == "-bios" && w[1] == "/t/el3-stub.bin"));
        assert!(v.contains(&"loader,file=/i/porwatch-hyp.bin,addr=0x40200000".to_string()));
        assert_eq!(v.iter().filter(|a| *a == "-serial").count(), 1, "{v:?}");
        assert!(!v.iter().any(|a| a.contains("chardev:trace") || a.contains("pipe,")), "{v:?}");
        let append = &v[v.iter().position(|a| a == "-append").unwrap() + 1];
        assert_eq!(append, "porwatch.guest=0x44000000 porwatch.semihosting=1 porwatch.trace=none");

        // With a semihosting trace file: still no trace UART, and the file
        // (absolute) is named on the command line.
        let cfg = QemuConfig { trace_file: Some("/t/trace.pwt".into()), ..cfg };
        let v = cfg.argv().unwrap();
        assert_eq!(v.iter().filter(|a| *a == "-serial").count(), 1, "{v:?}");
        assert!(!v.iter().any(|a| a.contains("chardev:trace") || a.contains("pipe,")), "{v:?}");
        assert!(v.windows(2).any(|w| w[0] == "-semihosting-config" && w[1] == "enable=on,target=native"));
        let append = &v[v.iter().position(|a| a == "-append").unwrap() + 1];
        assert_eq!(
            append,
            "porwatch.guest=0x44000000 porwatch.semihosting=1 porwatch.trace=semihosting:/t/trace.pwt"
        );
        // The run picks the trace: a --hyp-opt trace= would be refused by
        // porwatch as a duplicate, so it is refused here, clearly.
        let dup = QemuConfig { hyp_opts: vec!["trace=none".into()], ..cfg };
        let e = dup.argv().unwrap_err().to_string();
        assert!(e.contains("chooses the trace itself"), "{e}");
        let cfg = QemuConfig { hyp_opts: vec![], ..dup };
        let long = format!("/{}", "x".repeat(MAX_SEMIHOSTING_NAME));
        for bad in ["rel/trace.pwt", "/t/a b.pwt", "/t/a\"b.pwt", long.as_str()] {
            let c = QemuConfig { trace_file: Some(bad.into()), ..cfg.clone() };
            assert!(c.argv().is_err(), "{bad}");
        }
        let c = QemuConfig { trace_file: Some(long[..MAX_SEMIHOSTING_NAME].into()), ..cfg };
        assert!(c.argv().is_ok());
    }

    #[test]
    fn smp_is_checked_before_qemu_starts() {
        let x = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(machine_cpus(1, &[]).unwrap(), 1);
        assert_eq!(machine_cpus(4, &[]).unwrap(), 4);
        assert_eq!(machine_cpus(8, &[]).unwrap(), 8);
        assert_eq!(machine_cpus(1, &x(&["-smp", "4"])).unwrap(), 4);
        assert_eq!(machine_cpus(1, &x(&["-smp", "cpus=2,sockets=1"])).unwrap(), 2);
        assert_eq!(machine_cpus(1, &x(&["-smp", "3,sockets=1", "-m", "2G"])).unwrap(), 3);
        let e = machine_cpus(9, &[]).unwrap_err().to_string();
        assert_eq!(e, "-smp 9: porwatch runs at most 8 CPUs");
        assert!(machine_cpus(1, &x(&["-smp", "16"])).is_err());
        assert!(machine_cpus(1, &x(&["-smp", "sockets=2"])).is_err());
        assert!(machine_cpus(0, &[]).is_err());
    }

    #[test]
    fn el3_stub_is_movz_movz_br() {
        let w: Vec<u32> =
            el3_reset_stub().chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
        // movz x0, #0x4000, lsl #16; movz x1, #0x4020, lsl #16; br x1
        assert_eq!(w, [0xd2a8_0000, 0xd2a8_0401, 0xd61f_0020]);
    }
}
