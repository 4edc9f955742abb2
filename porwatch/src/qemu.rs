//! The QEMU command line for a porwatch run, and where its images come from.

use anyhow::{bail, Context, Result};
use porwatch_monitor::cmdline::MAX_SEMIHOSTING_NAME;
use porwatch_monitor::cpus::MAX_CPUS;
use std::path::{Path, PathBuf};

/// QEMU virt with EL2, GICv3, one CPU, 1 GiB: the configuration porwatch is
/// developed and tested on. `iommu=smmuv3` puts the PCIe root complex
/// behind an SMMUv3 (QEMU 10's virt makes it `stage=nested`, so stage 2 is
/// there): porwatch takes it and translates every device's DMA with the
/// guest's stage 2, so PCIe devices added with `-- -device ...` are safe to
/// give the guest (README, "Devices").
pub const MACHINE: &str = "virt,virtualization=on,gic-version=3,iommu=smmuv3";
pub const CPU: &str = "max";
/// `--secure`: the same machine with EL3 (TrustZone). QEMU then provides no
/// PSCI and starts the CPU at EL3, as an Arm FVP does; porwatch's boot.S
/// drops to EL2 itself. The second PL011 is Secure-only there, so the trace
/// goes to a host file through semihosting instead
/// (porwatch.trace=semihosting:FILE, [`QemuConfig::trace_file`]).
pub const MACHINE_SECURE: &str = "virt,virtualization=on,secure=on,gic-version=3,iommu=smmuv3";
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
/// [`MEMORY`] in bytes.
pub const DEFAULT_RAM: u64 = 1 << 30;
/// The most guest RAM porwatch supports (porwatch_monitor::layout, which
/// the hyp's own refusal uses too): a larger `-- -m` is refused before QEMU
/// starts.
pub const MAX_GUEST_RAM: u64 = porwatch_monitor::layout::MAX_GUEST_RAM;
/// Base of RAM on QEMU virt.
pub const RAM_BASE: u64 = 0x4000_0000;

/// Where porwatch will live once it has moved to the top of guest RAM at
/// boot (porwatch_monitor::layout::plan, as the hyp decides it): RAM of
/// `ram` bytes from [`RAM_BASE`], the image loaded at [`HYP_ADDR`] with
/// `image_size` (its Image header's). The host does not know QEMU's device
/// regions, whose stage-2 tables the hyp also counts, so one more
/// [`porwatch_monitor::layout::HYP_ALIGN`] is added below: the result covers
/// the hyp's memory whatever the devices. An initrd (`initrd`, start and
/// end) at the very top pushes porwatch lower, as it does the hyp; QEMU's
/// device tree, placed after the initrd, can do the same with tiny RAM
/// sizes, which this does not model.
pub fn hyp_at_top(ram: u64, image_size: u64, initrd: Option<(u64, u64)>) -> Option<(u64, u64)> {
    use porwatch_monitor::layout::{self, Occupant, Occupied, Span, HYP_ALIGN};
    let ram_span = [Span::new(RAM_BASE, RAM_BASE.checked_add(ram)?)];
    let kept: Vec<Occupied> =
        initrd.map(|(s, e)| Occupied { span: Span::new(s, e), what: Occupant::Initrd }).into_iter().collect();
    let keep: &[Occupied] = &kept;
    let req = layout::Request {
        ram: &ram_span,
        loaded: Span::new(HYP_ADDR, HYP_ADDR.checked_add(image_size)?),
        static_size: image_size,
        devices: &[],
        keep,
    };
    let plan = layout::plan(&req).ok()?;
    Some((plan.hyp.start.saturating_sub(HYP_ALIGN).max(RAM_BASE), plan.hyp.end))
}
/// QEMU virt's first PL011: the guest console (`-serial stdio`).
pub const VIRT_CONSOLE_UART: u64 = 0x0900_0000;
/// Every virtio PCI device's DMA goes through the IOMMU (the SMMU).
pub const VIRTIO_THROUGH_IOMMU: &str = "virtio-pci.iommu_platform=on";

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
/// Where QEMU puts -initrd next to a -kernel Image with the default 1 GiB:
/// [`initrd_addr`].
pub const INITRD_ADDR: u64 = 0x4800_0000;
/// [`initrd_addr`]: at most this far into RAM.
const INITRD_MAX_OFFSET: u64 = 128 << 20;

/// Where QEMU puts -initrd next to a -kernel Image: RAM base +
/// min(RAM / 2, 128 MiB) (hw/arm/boot.c).
pub fn initrd_addr(ram: u64) -> u64 {
    RAM_BASE + (ram / 2).min(INITRD_MAX_OFFSET)
}

/// A QEMU size (`-m`): a number, maybe with a fraction, then an optional
/// unit B, K, M, G, T, P, E (any case); MiB without one (QEMU's
/// qemu_strtosz_MiB). None if it is not one.
fn parse_size_mib(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let shift = match unit.to_ascii_lowercase().as_str() {
        "b" => 0,
        "k" => 10,
        "" | "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        "e" => 60,
        _ => return None,
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole = int.parse::<u64>().ok()?.checked_mul(1u64.checked_shl(shift)?)?;
    // The fraction in bytes, from at most 9 digits (finer than a byte).
    let digits = frac.get(..frac.len().min(9)).unwrap_or("");
    let part = match digits {
        "" => 0,
        d => {
            u64::try_from((u128::from(d.parse::<u64>().ok()?) << shift) / 10u128.pow(d.len() as u32)).ok()?
        }
    };
    whole.checked_add(part)
}

/// The guest RAM size QEMU will use: the last `-m` among `extra` (QEMU
/// takes the last), else [`DEFAULT_RAM`]. Refuses a size it cannot read or
/// one above [`MAX_GUEST_RAM`].
pub fn guest_ram(extra: &[String]) -> Result<u64> {
    let mut ram = DEFAULT_RAM;
    let mut it = extra.iter();
    while let Some(a) = it.next() {
        if a != "-m" && a != "--m" {
            continue;
        }
        let Some(v) = it.next() else { bail!("-- {a}: a size is missing") };
        // -m [size=]SIZE[,slots=N,maxmem=SIZE]
        let size = v.split(',').find_map(|p| match p.split_once('=') {
            Some(("size", s)) => Some(s),
            Some(_) => None,
            None => Some(p),
        });
        ram = size.and_then(parse_size_mib).ok_or_else(|| {
            anyhow::anyhow!("-- {a} {v}: not a size porwatch can read (e.g. 2G, 512M, 1024)")
        })?;
    }
    if ram > MAX_GUEST_RAM {
        bail!(
            "-- -m: {} MiB of guest RAM is more than porwatch supports ({} MiB: the page-table watch \
             follows a Linux guest's tables up to that much); give -m {}G or less",
            ram >> 20,
            MAX_GUEST_RAM >> 20,
            MAX_GUEST_RAM >> 30
        );
    }
    Ok(ram)
}

/// Checks one `porwatch.` option given to `porwatch run` (`KEY=VALUE`,
/// without the prefix) for what the run itself owns or what cannot work:
/// `guest=` and `semihosting=` (porwatch run sets both), a `trace=` naming
/// the guest console. `from` says where it was given (`--hyp-opt`,
/// `--append`).
pub fn check_run_option(o: &str, from: &str) -> Result<()> {
    let (key, value) = o.split_once('=').unwrap_or((o, ""));
    match key {
        "guest" => bail!(
            "{from} porwatch.{o}: porwatch run sets porwatch.guest itself, to the guest's entry point \
             (the ELF's e_entry, or --load-addr for a raw image or a Linux Image)"
        ),
        "semihosting" => bail!(
            "{from} porwatch.{o}: porwatch run sets porwatch.semihosting=1 itself: the hypervisor ends \
             the run through semihosting so that the status reaches porwatch run"
        ),
        "trace" if value.starts_with("semihosting:") => bail!(
            "{from} porwatch.{o}: give --trace-via semihosting instead: porwatch run then names the \
             file and reads it (a trace written elsewhere would leave it none)"
        ),
        "trace" if names_console(value) => bail!(
            "{from} porwatch.{o}: that is the guest console (QEMU virt's first PL011, \
             {VIRT_CONSOLE_UART:#x}); the trace needs the second PL011 (the default) or \
             semihosting (--trace-via semihosting)"
        ),
        _ => Ok(()),
    }
}

/// True when a `porwatch.trace=` value names QEMU virt's first PL011, by
/// address (hex or decimal, as the hypervisor reads it) or by node path.
fn names_console(v: &str) -> bool {
    let addr = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse::<u64>().ok(),
    };
    let node = format!("@{:x}", VIRT_CONSOLE_UART);
    addr == Some(VIRT_CONSOLE_UART) || (v.starts_with('/') && v.ends_with(&node))
}

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
    /// The file of `name_or_path`: a guest-tests kernel name, or a file.
    pub fn path_of(images: &Path, name_or_path: &str) -> Result<PathBuf> {
        let named = images.join("guests").join(format!("{name_or_path}.elf"));
        if !name_or_path.contains('/') && named.is_file() {
            return Ok(named);
        }
        let p = PathBuf::from(name_or_path);
        if !p.is_file() {
            let known = list_guests(images).join(", ");
            bail!("no guest {name_or_path:?}: not a guest-tests kernel ({known}) nor a file");
        }
        Ok(p)
    }

    /// `name_or_path` ([`GuestImage::path_of`]) as an ELF at its own
    /// addresses, or else raw at `load_addr`, unchecked (`porwatch run`
    /// checks with [`crate::guest_image::check`]).
    pub fn resolve(images: &Path, name_or_path: &str, load_addr: u64) -> Result<Self> {
        let path = Self::path_of(images, name_or_path)?;
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
            check_run_option(o, "--hyp-opt")?;
            if let Some(t) = trace.as_ref().filter(|_| o.starts_with("trace=")) {
                bail!("--hyp-opt {o:?}: this run chooses the trace itself (porwatch.trace={t})");
            }
            append.push_str(" porwatch.");
            append.push_str(o);
        }
        for w in self.guest_args.split_whitespace() {
            if let Some(o) = w.strip_prefix("porwatch.") {
                check_run_option(o, "--append")?;
            }
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
            // QEMU's virtio devices do DMA through the SMMU only with
            // iommu_platform=on (otherwise straight to physical memory,
            // porwatch's included). A transitional device cannot have it:
            // QEMU refuses to start one rather than let it bypass the SMMU
            // (README, "Devices": use disable-legacy=on).
            "-global",
            VIRTIO_THROUGH_IOMMU,
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
        assert!(v.windows(2).any(|w| w[0] == "-global" && w[1] == VIRTIO_THROUGH_IOMMU));
        assert!(MACHINE.contains("iommu=smmuv3") && MACHINE_SECURE.contains("iommu=smmuv3"));
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
    fn options_porwatch_run_owns_or_that_cannot_work_are_refused() {
        let msg = |o: &str| check_run_option(o, "--hyp-opt").unwrap_err().to_string();
        assert!(msg("guest=0x44000000").contains("porwatch run sets porwatch.guest itself"));
        assert!(msg("semihosting=0").contains("porwatch run sets porwatch.semihosting=1 itself"));
        for console in ["0x9000000", "0x09000000", "0X9000000", "150994944", "/pl011@9000000"] {
            let e = msg(&format!("trace={console}"));
            assert!(e.contains("that is the guest console"), "{console}: {e}");
        }
        assert!(msg("trace=semihosting:/tmp/t.pwt").contains("give --trace-via semihosting instead"));
        for fine in ["trace=0x9040000", "trace=/pl011@9040000", "trace=none", "eret=on", "policy=fault"] {
            assert!(check_run_option(fine, "--hyp-opt").is_ok(), "{fine}");
        }
        // Through argv: --hyp-opt (with or without the prefix) and --append.
        let cfg = QemuConfig {
            qemu: "q".into(),
            hyp: "/i/porwatch-hyp.bin".into(),
            guest: GuestImage { path: "/g/hello.elf".into(), entry: 0x4400_0000, raw_addr: None },
            initrd: None,
            trace_pipe: "/t/trace".into(),
            trace_file: None,
            guest_args: String::new(),
            hyp_opts: vec!["porwatch.guest=0x1".into()],
            icount: false,
            extra: vec![],
            secure_stub: None,
            smp: 1,
        };
        assert!(cfg.argv().unwrap_err().to_string().contains("--hyp-opt porwatch.guest=0x1"));
        let cfg = QemuConfig { hyp_opts: vec![], guest_args: "quiet porwatch.trace=0x9000000".into(), ..cfg };
        assert!(cfg
            .argv()
            .unwrap_err()
            .to_string()
            .contains("--append porwatch.trace=0x9000000: that is the guest console"));
    }

    #[test]
    fn guest_ram_reads_the_last_m_and_refuses_more_than_porwatch_maps() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(guest_ram(&v(&[])).unwrap(), DEFAULT_RAM);
        assert_eq!(guest_ram(&v(&["-m", "512"])).unwrap(), 512 << 20);
        assert_eq!(guest_ram(&v(&["-m", "4G"])).unwrap(), MAX_GUEST_RAM);
        assert_eq!(guest_ram(&v(&["-m", "size=1536M,slots=2,maxmem=4G"])).unwrap(), 1536 << 20);
        assert_eq!(guest_ram(&v(&["-m", "1.5g"])).unwrap(), 1536 << 20);
        assert_eq!(guest_ram(&v(&["-m", "5G", "--m", "1G"])).unwrap(), 1 << 30, "the last one counts");
        for big in ["5G", "4097M", "size=8G", "1T"] {
            let e = guest_ram(&v(&["-m", big])).unwrap_err().to_string();
            assert!(
                e.contains("more than porwatch supports (4096 MiB") && e.contains("-m 4G or less"),
                "{big}: {e}"
            );
        }
        assert!(guest_ram(&v(&["-m", "lots"])).unwrap_err().to_string().contains("not a size"));
        assert!(guest_ram(&v(&["-m"])).is_err());
        assert!(guest_ram(&v(&["-m", "99999999999999999999G"])).is_err());
        assert_eq!(initrd_addr(DEFAULT_RAM), INITRD_ADDR);
        // porwatch's memory at the top of 1 GiB: 2 MiB aligned, ending at
        // the end of RAM, below it by at least its image.
        let (lo, hi) = hyp_at_top(DEFAULT_RAM, 2 << 20, None).unwrap();
        assert_eq!(hi, RAM_BASE + DEFAULT_RAM);
        assert!(lo % (2 << 20) == 0 && hi - lo >= 4 << 20, "{lo:#x}..{hi:#x}");
        // More RAM, a bigger stage-2 pool: porwatch takes more.
        let (lo4, hi4) = hyp_at_top(4 << 30, 2 << 20, None).unwrap();
        assert!(hi4 - lo4 > hi - lo);
        // An initrd at the top: porwatch goes below it.
        let top = (RAM_BASE + (80 << 20), RAM_BASE + (160 << 20));
        let (_, hi_below) = hyp_at_top(160 << 20, 2 << 20, Some(top)).unwrap();
        assert!(hi_below <= top.0, "{hi_below:#x}");
        assert_eq!(initrd_addr(128 << 20), RAM_BASE + (64 << 20));
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
