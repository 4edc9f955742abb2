//! Platform discovery: what the hypervisor needs to know about the machine.
//!
//! A node counts as present only if it and all its ancestors have no `status`
//! or `status = "okay"`/`"ok"`. `secure-status` is ignored: porwatch runs in
//! the Non-secure world, and Secure-only devices (QEMU `secure=on` marks them
//! `status = "disabled"; secure-status = "okay"`) must not be touched.

use heapless::{String, Vec};

use super::address::{child_cells, translate, RegIter, Region};
use super::reader::{prop_as_u64, read_cells, Fdt, Node, StrList};
use super::FdtError;

type Result<T> = core::result::Result<T, FdtError>;

/// Capacity of [`Platform::cpus`]: the most CPUs porwatch runs
/// ([`crate::cpus::MAX_CPUS`]); more are counted in [`Platform::cpus_listed`].
pub const MAX_CPUS: usize = crate::cpus::MAX_CPUS;
/// Capacity of [`Platform::memory`].
pub const MAX_MEMORY: usize = 16;
/// Capacity of [`Platform::uarts`].
pub const MAX_UARTS: usize = 8;
/// Capacity of [`Platform::mmio`].
pub const MAX_MMIO: usize = 64;
/// Capacity of [`Gic::redist`].
pub const MAX_REDIST: usize = 8;
/// Capacity of a node path ([`Uart::path`]).
pub const PATH_CAP: usize = 128;
/// Granule that [`Platform::mmio`] ranges are rounded out to.
pub const MMIO_GRANULE: u64 = 4096;

/// A PL011 UART.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uart {
    /// Node path, e.g. `/pl011@9000000`.
    pub path: String<PATH_CAP>,
    /// Registers (first `reg` entry), CPU physical.
    pub regs: Region,
    /// True if `/chosen/stdout-path` names this node.
    pub console: bool,
    /// Structure-block offset of the node in the discovered DTB.
    pub node: usize,
}

/// GIC architecture version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv2 (`arm,cortex-a15-gic`, `arm,gic-400`): memory-mapped CPU interface.
    V2,
    /// GICv3 (`arm,gic-v3`): redistributors, system-register CPU interface.
    V3,
}

/// The interrupt controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gic {
    /// Version.
    pub version: GicVersion,
    /// Distributor (GICD), `reg[0]`.
    pub dist: Region,
    /// GICv3 redistributor regions, `reg[1..1 + #redistributor-regions]`;
    /// empty for GICv2.
    pub redist: Vec<Region, MAX_REDIST>,
    /// CPU interface (GICC): GICv2 `reg[1]`; GICv3 optional legacy entry.
    pub cpu: Option<Region>,
    /// Virtual interface control (GICH), if listed.
    pub hyp: Option<Region>,
    /// Virtual CPU interface (GICV), if listed.
    pub vcpu: Option<Region>,
    /// `#interrupt-cells` (3, or 4 with PPI partitions).
    pub interrupt_cells: u32,
}

/// PSCI conduit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciMethod {
    /// `method = "smc"`.
    Smc,
    /// `method = "hvc"`.
    Hvc,
}

/// Highest PSCI binding version listed in `compatible`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PsciVersion {
    /// `arm,psci` (0.1, function ids from the node).
    V0_1,
    /// `arm,psci-0.2`.
    V0_2,
    /// `arm,psci-1.0`.
    V1_0,
}

/// The PSCI node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Psci {
    /// Conduit.
    pub method: PsciMethod,
    /// Highest listed version.
    pub version: PsciVersion,
    /// The compatible string of that version (`"arm,psci-1.0"`, ...).
    pub compatible: &'static str,
}

/// Architected timer interrupts, as GIC INTIDs (PPI number + 16, SPI + 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    /// Secure physical timer (CNTPS), usually INTID 29.
    pub secure_phys: u32,
    /// Non-secure physical timer (CNTP), usually INTID 30.
    pub phys: u32,
    /// Virtual timer (CNTV), usually INTID 27.
    pub virt: u32,
    /// Hypervisor physical timer (CNTHP), usually INTID 26.
    pub hyp_phys: u32,
    /// Hypervisor virtual timer (CNTHV, FEAT_VHE), 5th entry if listed (28).
    pub hyp_virt: Option<u32>,
    /// `clock-frequency`: the counter frequency in Hz, given only where no
    /// firmware programs CNTFRQ_EL0 (an FVP started without TF-A; porwatch
    /// writes it at EL3 then).
    pub clock_frequency: Option<u32>,
}

/// `/chosen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Chosen<'a> {
    /// `bootargs`, borrowed from the DTB.
    pub bootargs: Option<&'a str>,
    /// `(linux,initrd-start, linux,initrd-end)`; end is exclusive.
    pub initrd: Option<(u64, u64)>,
    /// `stdout-path` (or `linux,stdout-path`) as written, options included.
    pub stdout_path: Option<&'a str>,
}

/// Everything [`discover`] finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform<'a> {
    /// RAM: `reg` (or `linux,usable-memory`, which Linux prefers) of every
    /// enabled `device_type = "memory"` child of the root, in tree order.
    pub memory: Vec<Region, MAX_MEMORY>,
    /// Enabled PL011s, in tree order.
    pub uarts: Vec<Uart, MAX_UARTS>,
    /// The `reg` (MPIDR_EL1 affinity: Aff3 [39:32], Aff2..Aff0 [23:0]) of
    /// every enabled `device_type = "cpu"` child of `/cpus`, in tree order,
    /// up to [`MAX_CPUS`].
    pub cpus: Vec<u64, MAX_CPUS>,
    /// How many such CPU nodes the tree lists (beyond [`MAX_CPUS`] too).
    pub cpus_listed: usize,
    /// First enabled GICv2/v3.
    pub gic: Option<Gic>,
    /// PSCI, if an enabled node lists a PSCI compatible.
    pub psci: Option<Psci>,
    /// Architected timer.
    pub timer: Option<Timer>,
    /// `/chosen`.
    pub chosen: Chosen<'a>,
    /// Device regions to pass through at stage 2: sorted, merged, rounded out
    /// to [`MMIO_GRANULE`]. See [`discover`] for what is included.
    pub mmio: Vec<Region, MAX_MMIO>,
    /// Number of `reg`/`ranges` entries of enabled nodes that could not be
    /// translated to CPU addresses (e.g. children of I²C buses, PCI config
    /// space) and were therefore not added to `mmio`/`uarts`.
    pub untranslatable: u32,
}

impl Default for Platform<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Platform<'a> {
    /// An empty platform (usable in a `static`).
    pub const fn new() -> Self {
        Platform {
            memory: Vec::new(),
            uarts: Vec::new(),
            cpus: Vec::new(),
            cpus_listed: 0,
            gic: None,
            psci: None,
            timer: None,
            chosen: Chosen { bootargs: None, initrd: None, stdout_path: None },
            mmio: Vec::new(),
            untranslatable: 0,
        }
    }

    /// The console UART (`stdout-path`), if it is an enabled PL011.
    pub fn console(&self) -> Option<&Uart> {
        self.uarts.iter().find(|u| u.console)
    }

    /// The UART whose node path is exactly `path`.
    pub fn uart_by_path(&self, path: &str) -> Option<&Uart> {
        self.uarts.iter().find(|u| u.path.as_str() == path)
    }

    /// The UART whose registers start at `base`.
    pub fn uart_by_base(&self, base: u64) -> Option<&Uart> {
        self.uarts.iter().find(|u| u.regs.base == base)
    }

    /// True if `[base, base + size)` lies inside one [`Platform::mmio`] range.
    pub fn mmio_covers(&self, base: u64, size: u64) -> bool {
        self.mmio.iter().any(|r| r.contains(base, size))
    }

    /// True if `[base, base + size)` overlaps RAM.
    pub fn overlaps_memory(&self, base: u64, size: u64) -> bool {
        let end = u128::from(base) + u128::from(size);
        self.memory.iter().any(|m| u128::from(m.base) < end && u128::from(base) < m.end())
    }

    /// Adds a device region to [`Platform::mmio`]: rounded out to
    /// [`MMIO_GRANULE`], merged with overlapping or adjacent entries, kept
    /// sorted. Zero-sized regions are ignored. Needing more than [`MAX_MMIO`]
    /// entries is [`FdtError::Capacity`].
    pub fn add_mmio(&mut self, r: Region) -> Result<()> {
        if r.size == 0 {
            return Ok(());
        }
        let g = u128::from(MMIO_GRANULE);
        let mut lo = u128::from(r.base) & !(g - 1);
        let mut hi = (r.end() + g - 1) & !(g - 1);
        // Entries are sorted and disjoint (not even adjacent): the ones that
        // overlap or touch [lo, hi) are contiguous, j..k.
        let j = self.mmio.iter().position(|e| e.end() >= lo).unwrap_or(self.mmio.len());
        let k = self.mmio.iter().position(|e| u128::from(e.base) > hi).unwrap_or(self.mmio.len());
        if k > j {
            lo = lo.min(u128::from(self.mmio[j].base));
            hi = hi.max(self.mmio[k - 1].end());
        }
        let size = u64::try_from(hi - lo).map_err(|_| FdtError::AddressOverflow)?;
        let merged = Region { base: lo as u64, size };
        if k > j {
            self.mmio[j] = merged;
            for _ in j + 1..k {
                self.mmio.remove(j + 1);
            }
            Ok(())
        } else {
            self.mmio.insert(j, merged).map_err(|_| FdtError::Capacity("mmio regions"))
        }
    }
}

const GICV3_COMPAT: &str = "arm,gic-v3";
const GICV2_COMPAT: [&str; 2] = ["arm,cortex-a15-gic", "arm,gic-400"];
const PSCI_COMPAT: [(&str, PsciVersion); 3] = [
    ("arm,psci-1.0", PsciVersion::V1_0),
    ("arm,psci-0.2", PsciVersion::V0_2),
    ("arm,psci", PsciVersion::V0_1),
];

/// Root children whose subtrees are not devices to pass through.
/// `/cpus` (cpu `reg` = MPIDR), `/chosen` (framebuffers live in RAM),
/// `/reserved-memory` (RAM carve-outs), `/aliases`, `/__symbols__`.
pub(crate) const NON_DEVICE_SUBTREES: [&str; 5] =
    ["cpus", "chosen", "reserved-memory", "aliases", "__symbols__"];

/// Reads `dtb` and fills `out` (cleared first).
///
/// `mmio` gets, for every enabled node outside `/cpus`, `/chosen`,
/// `/reserved-memory`, `/aliases` and `/__symbols__` that is not a
/// `device_type = "memory"` node: each translated `reg` entry of non-zero
/// size; and for each enabled `device_type = "pci"` host bridge, the CPU side
/// of every `ranges` entry (I/O, 32- and 64-bit memory windows). Entries that
/// are not translatable are skipped and counted in
/// [`Platform::untranslatable`]. More than [`MAX_MMIO`] merged ranges (or
/// [`MAX_MEMORY`] RAM ranges, [`MAX_UARTS`] UARTs, [`MAX_REDIST`]
/// redistributor regions) is an error, never a silent drop.
///
/// The mmio list is not checked against RAM; use
/// [`Platform::overlaps_memory`] if the caller wants to refuse such a tree.
pub fn discover<'a>(dtb: &'a [u8], out: &mut Platform<'a>) -> Result<()> {
    *out = Platform::new();
    let fdt = Fdt::new(dtb)?;
    let mut walker = fdt.walk();
    // Depth of the shallowest disabled ancestor-or-self, if any.
    let mut disabled_at: Option<usize> = None;
    let mut in_non_device = false;
    // `#address-cells` of /cpus while inside it.
    let mut cpu_cells: Option<u32> = None;
    let mut timer_node: Option<usize> = None;

    while let Some(node) = walker.next_node()? {
        let chain = walker.chain();
        let depth = chain.len() - 1;
        if depth == 0 {
            continue;
        }
        if disabled_at.is_some_and(|d| depth <= d) {
            disabled_at = None;
        }
        if disabled_at.is_none() && !node.is_enabled()? {
            disabled_at = Some(depth);
        }
        if disabled_at.is_some() {
            continue;
        }
        if depth == 1 {
            in_non_device = NON_DEVICE_SUBTREES.contains(&node.base_name());
            cpu_cells = if node.base_name() == "cpus" { Some(child_cells(&node)?.address) } else { None };
        }
        if let (Some(cells), 2) = (cpu_cells, depth) {
            add_cpu(&node, cells, out)?;
        }
        if in_non_device {
            continue;
        }
        let is_memory = node.prop_str("device_type")? == Some("memory");
        if is_memory {
            if depth == 1 {
                add_memory(&fdt, chain, &node, out)?;
            }
            continue;
        }

        if node.is_compatible("arm,pl011")? {
            add_uart(&fdt, chain, &node, out)?;
        }
        if out.gic.is_none() {
            out.gic = gic(&fdt, chain, &node)?;
        }
        if out.psci.is_none() {
            out.psci = psci(&node)?;
        }
        if timer_node.is_none() && node.is_compatible("arm,armv8-timer")? {
            timer_node = Some(node.offset());
        }

        if let Some(regs) = RegIter::of_node(&fdt, chain)? {
            for r in regs {
                match r {
                    Ok(r) => out.add_mmio(r)?,
                    Err(FdtError::NotTranslatable) => out.untranslatable += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        if node.prop_str("device_type")? == Some("pci") {
            add_pci_windows(&fdt, chain, &node, out)?;
        }
    }

    out.chosen = chosen(&fdt)?;
    mark_console(&fdt, out)?;
    if let Some(off) = timer_node {
        let cells = out.gic.as_ref().map_or(3, |g| g.interrupt_cells);
        out.timer = Some(timer(&fdt.node_at(off)?, cells)?);
    }
    Ok(())
}

fn add_memory<'a>(fdt: &Fdt<'a>, chain: &[usize], node: &Node<'a>, out: &mut Platform<'a>) -> Result<()> {
    let value = match node.prop("linux,usable-memory")? {
        Some(v) => v,
        None => match node.prop("reg")? {
            Some(v) => v,
            None => return Ok(()),
        },
    };
    for r in RegIter::new(fdt, chain, value)? {
        let r = r?;
        if r.size != 0 {
            out.memory.push(r).map_err(|_| FdtError::Capacity("memory ranges"))?;
        }
    }
    Ok(())
}

/// A `/cpus` child: counted and its `reg` kept if it is a CPU.
fn add_cpu(node: &Node<'_>, cells: u32, out: &mut Platform<'_>) -> Result<()> {
    if node.prop_str("device_type")? != Some("cpu") {
        return Ok(()); // cpu-map, idle-states, l2-cache, ...
    }
    let reg = node.prop("reg")?.ok_or(FdtError::BadPropLen("reg"))?;
    let mpidr = u64::try_from(read_cells(reg, cells)?).map_err(|_| FdtError::BadValue("cpu reg"))?;
    out.cpus_listed += 1;
    // Beyond capacity: only counted (the hypervisor refuses such a machine).
    let _ = out.cpus.push(mpidr);
    Ok(())
}

fn add_uart<'a>(fdt: &Fdt<'a>, chain: &[usize], node: &Node<'a>, out: &mut Platform<'a>) -> Result<()> {
    let first = match RegIter::of_node(fdt, chain)? {
        Some(mut it) => it.next(),
        None => None,
    };
    let regs = match first {
        Some(Ok(r)) => r,
        Some(Err(FdtError::NotTranslatable)) => {
            // Counted once, by the generic mmio pass over the same `reg`.
            return Ok(());
        }
        Some(Err(e)) => return Err(e),
        None => return Err(FdtError::BadPropLen("reg")),
    };
    let mut path = String::new();
    fdt.write_path(chain, &mut path)?;
    out.uarts
        .push(Uart { path, regs, console: false, node: node.offset() })
        .map_err(|_| FdtError::Capacity("uarts"))
}

fn gic(fdt: &Fdt<'_>, chain: &[usize], node: &Node<'_>) -> Result<Option<Gic>> {
    let version = if node.is_compatible(GICV3_COMPAT)? {
        GicVersion::V3
    } else if GICV2_COMPAT
        .iter()
        .try_fold(false, |acc, c| Ok::<_, FdtError>(acc || node.is_compatible(c)?))?
    {
        GicVersion::V2
    } else {
        return Ok(None);
    };
    let mut regs: Vec<Region, { MAX_REDIST + 4 }> = Vec::new();
    if let Some(it) = RegIter::of_node(fdt, chain)? {
        for r in it {
            regs.push(r?).map_err(|_| FdtError::Capacity("gic reg entries"))?;
        }
    }
    let dist = *regs.first().ok_or(FdtError::BadPropLen("reg"))?;
    let interrupt_cells = node.prop_u32("#interrupt-cells")?.unwrap_or(3);
    let mut gic =
        Gic { version, dist, redist: Vec::new(), cpu: None, hyp: None, vcpu: None, interrupt_cells };
    let rest = match version {
        GicVersion::V3 => {
            let n = node.prop_u32("#redistributor-regions")?.unwrap_or(1) as usize;
            if n == 0 || n > MAX_REDIST {
                return Err(FdtError::BadValue("#redistributor-regions"));
            }
            let r = regs.get(1..1 + n).ok_or(FdtError::BadPropLen("reg"))?;
            for &x in r {
                gic.redist.push(x).map_err(|_| FdtError::Capacity("redistributor regions"))?;
            }
            &regs[1 + n..]
        }
        GicVersion::V2 => {
            if regs.len() < 2 {
                return Err(FdtError::BadPropLen("reg"));
            }
            &regs[1..]
        }
    };
    gic.cpu = rest.first().copied();
    gic.hyp = rest.get(1).copied();
    gic.vcpu = rest.get(2).copied();
    Ok(Some(gic))
}

fn psci(node: &Node<'_>) -> Result<Option<Psci>> {
    let Some(compat) = node.prop("compatible")? else {
        return Ok(None);
    };
    let list = StrList::new(compat)?;
    let Some(&(compatible, version)) = PSCI_COMPAT.iter().find(|(c, _)| list.contains(c)) else {
        return Ok(None);
    };
    let method = match node.prop_str("method")? {
        Some("smc") => PsciMethod::Smc,
        Some("hvc") => PsciMethod::Hvc,
        _ => return Err(FdtError::BadValue("method")),
    };
    Ok(Some(Psci { method, version, compatible }))
}

fn add_pci_windows<'a>(
    fdt: &Fdt<'a>,
    chain: &[usize],
    node: &Node<'a>,
    out: &mut Platform<'a>,
) -> Result<()> {
    for_each_pci_window(fdt, chain, node, |w| match w {
        Ok(r) => out.add_mmio(r),
        Err(FdtError::NotTranslatable) => {
            out.untranslatable += 1;
            Ok(())
        }
        Err(e) => Err(e),
    })
}

/// Calls `f` with the CPU side of every `ranges` entry of the PCI host
/// bridge `node` (I/O, 32- and 64-bit memory windows): `Ok(region)`, or
/// `Err(NotTranslatable)` for an entry the CPU cannot address. Malformed
/// `ranges` and `f`'s own errors end the walk.
pub(crate) fn for_each_pci_window<'a>(
    fdt: &Fdt<'a>,
    chain: &[usize],
    node: &Node<'a>,
    mut f: impl FnMut(Result<Region>) -> Result<()>,
) -> Result<()> {
    let Some(ranges) = node.prop("ranges")? else {
        return Ok(());
    };
    if ranges.is_empty() {
        return Ok(());
    }
    let parent = fdt.node_at(chain[chain.len() - 2])?;
    let cc = child_cells(node)?;
    let pc = child_cells(&parent)?;
    let entry = ((cc.address + pc.address + cc.size) * 4) as usize;
    if entry == 0 || !ranges.len().is_multiple_of(entry) {
        return Err(FdtError::BadPropLen("ranges"));
    }
    let bus = &chain[..chain.len() - 1];
    for e in ranges.chunks_exact(entry) {
        let paddr = read_cells(&e[(cc.address * 4) as usize..], pc.address)?;
        let size = read_cells(&e[((cc.address + pc.address) * 4) as usize..], cc.size)?;
        let size = u64::try_from(size).map_err(|_| FdtError::AddressOverflow)?;
        match translate(fdt, bus, paddr) {
            Ok(base) => {
                if u128::from(base) + u128::from(size) > 1u128 << 64 {
                    return Err(FdtError::AddressOverflow);
                }
                f(Ok(Region { base, size }))?;
            }
            Err(FdtError::NotTranslatable) => f(Err(FdtError::NotTranslatable))?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn chosen<'a>(fdt: &Fdt<'a>) -> Result<Chosen<'a>> {
    let Some(node) = fdt.find_node("/chosen")? else {
        return Ok(Chosen::default());
    };
    let bootargs = node.prop_str("bootargs")?;
    let stdout_path = match node.prop_str("stdout-path")? {
        Some(s) => Some(s),
        None => node.prop_str("linux,stdout-path")?,
    };
    let start = node.prop("linux,initrd-start")?.map(|v| prop_as_u64(v, "linux,initrd-start")).transpose()?;
    let end = node.prop("linux,initrd-end")?.map(|v| prop_as_u64(v, "linux,initrd-end")).transpose()?;
    let initrd = match (start, end) {
        (None, None) => None,
        (Some(s), Some(e)) if e >= s => Some((s, e)),
        (Some(_), _) => return Err(FdtError::BadValue("linux,initrd-end")),
        (None, Some(_)) => return Err(FdtError::BadValue("linux,initrd-start")),
    };
    Ok(Chosen { bootargs, initrd, stdout_path })
}

/// Resolves `stdout-path` (`path[:options]` or `alias[:options]`) to a node
/// offset; `Ok(None)` if it names nothing.
pub fn resolve_stdout(fdt: &Fdt<'_>, stdout_path: &str) -> Result<Option<usize>> {
    let target = stdout_path.split(':').next().unwrap_or("");
    let path = if target.starts_with('/') {
        target
    } else if target.is_empty() {
        return Ok(None);
    } else {
        match fdt.alias(target)? {
            Some(p) => p,
            None => return Ok(None),
        }
    };
    Ok(fdt.locate(path)?.and_then(|c| c.as_slice().last().copied()))
}

fn mark_console(fdt: &Fdt<'_>, out: &mut Platform<'_>) -> Result<()> {
    let Some(sp) = out.chosen.stdout_path else {
        return Ok(());
    };
    if let Some(off) = resolve_stdout(fdt, sp)? {
        for u in out.uarts.iter_mut() {
            u.console = u.node == off;
        }
    }
    Ok(())
}

fn timer(node: &Node<'_>, cells: u32) -> Result<Timer> {
    if !(3..=4).contains(&cells) {
        return Err(FdtError::BadValue("#interrupt-cells"));
    }
    let v = node.prop("interrupts")?.ok_or(FdtError::BadValue("interrupts"))?;
    let stride = (cells * 4) as usize;
    if !v.len().is_multiple_of(stride) || v.len() / stride < 4 {
        return Err(FdtError::BadPropLen("interrupts"));
    }
    let mut ids = [0u32; 5];
    let n = (v.len() / stride).min(5);
    for (i, id) in ids.iter_mut().enumerate().take(n) {
        let e = &v[i * stride..];
        let kind = read_cells(e, 1)? as u32;
        let num = read_cells(&e[4..], 1)? as u32;
        let base = match kind {
            0 => 32,
            1 => 16,
            _ => return Err(FdtError::BadValue("interrupts")),
        };
        *id = num.checked_add(base).ok_or(FdtError::BadValue("interrupts"))?;
    }
    Ok(Timer {
        secure_phys: ids[0],
        phys: ids[1],
        virt: ids[2],
        hyp_phys: ids[3],
        hyp_virt: (n >= 5).then_some(ids[4]),
        clock_frequency: node.prop_u32("clock-frequency")?,
    })
}
