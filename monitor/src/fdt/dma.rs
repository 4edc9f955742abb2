//! DMA isolation: which devices of a device tree can write memory on their
//! own (bus masters), and what porwatch does with each.
//!
//! Stage 2 confines the guest's CPU, not its devices: a device the guest
//! programs writes wherever it is told, porwatch's memory included. So
//! every DMA-capable device the guest could reach is either put behind an
//! SMMUv3 that porwatch programs with the guest's stage-2 translation, or
//! hidden: removed from the guest's device tree and left unmapped at
//! stage 2 (an access faults and the guest gets a synchronous external
//! abort).
//!
//! [`survey`] lists the candidates; [`Survey::decide`] turns the list into
//! tree edits and stage-2 holes once porwatch knows whether it has an SMMU
//! running. A node is DMA-capable if it is
//!
//! * a known bus master by `compatible`: QEMU's `fw_cfg` (its DMA interface
//!   writes any physical address), `virtio,mmio`, a GICv3 ITS (it reads and
//!   writes its tables in memory), an SMMU (its queues and tables), Arm's
//!   DMA controllers (PL080/PL081/PL330) and display controllers (PL110,
//!   PL111, HDLCD: they read a frame buffer from memory);
//! * a PCI host bridge (`device_type = "pci"` or a generic ECAM/CAM
//!   `compatible`): its devices are bus masters;
//! * any other node with a DMA property: `dma-coherent`,
//!   `dma-noncoherent`, `iommus`, `iommu-map`, `msi-parent`, `msi-map`
//!   (an MSI is a memory write), `dmas`, `#dma-cells`.
//!
//! Only PCI host bridges can stay visible: when every requester ID
//! (0..=0xffff) of the bridge is sent by its `iommu-map` to the SMMUv3
//! porwatch runs (QEMU `-M virt,iommu=smmuv3`). Their `iommu-map` is then
//! removed (the SMMU is porwatch's; the guest sees devices doing DMA to
//! IPAs, which the SMMU translates exactly as stage 2 does for the CPU),
//! and so is an `msi-map`/`msi-parent` that names a hidden node (the ITS).
//! Every other candidate is hidden, SMMUs and ITSes always.
//!
//! Not covered (documented in README): a device tree that does not mark a
//! bus master at all, and QEMU options that make PCI devices bypass the
//! SMMU while the tree still says otherwise (`default-bus-bypass-iommu`).

use heapless::{String, Vec};

use super::address::{RegIter, Region};
use super::platform::{for_each_pci_window, NON_DEVICE_SUBTREES, PATH_CAP};
use super::reader::{be32, Fdt, Node};
use super::FdtError;

type Result<T> = core::result::Result<T, FdtError>;

/// Capacity of [`Survey::devices`] (QEMU virt lists 32 virtio-mmio
/// transports, fw_cfg, the ITS, the SMMU and the PCIe host).
pub const MAX_DMA_DEVICES: usize = 64;
/// Address regions kept per device (`reg` entries, PCI windows).
pub const MAX_DEVICE_REGIONS: usize = 6;
/// Properties [`Decision::drop_props`] may name.
pub const MAX_DROPPED_PROPS: usize = 16;

/// What a DMA-capable node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaKind {
    /// QEMU's firmware configuration device (`qemu,fw-cfg-mmio`).
    FwCfg,
    /// A virtio-mmio transport.
    VirtioMmio,
    /// A GICv3 Interrupt Translation Service.
    GicIts,
    /// An Arm SMMUv3 (`arm,smmu-v3`).
    Smmu,
    /// Another IOMMU (SMMUv1/v2, MMU-500): porwatch does not drive it.
    OtherIommu,
    /// A PCI host bridge.
    PciHost,
    /// Another bus master (a known `compatible` or a DMA property).
    Other,
}

/// `compatible` strings of bus masters, most specific kinds first.
const DMA_COMPATIBLE: [(&str, DmaKind); 13] = [
    ("qemu,fw-cfg-mmio", DmaKind::FwCfg),
    ("virtio,mmio", DmaKind::VirtioMmio),
    ("arm,gic-v3-its", DmaKind::GicIts),
    ("arm,smmu-v3", DmaKind::Smmu),
    ("arm,mmu-500", DmaKind::OtherIommu),
    ("arm,smmu-v2", DmaKind::OtherIommu),
    ("pci-host-ecam-generic", DmaKind::PciHost),
    ("pci-host-cam-generic", DmaKind::PciHost),
    ("arm,pl080", DmaKind::Other),
    ("arm,pl330", DmaKind::Other),
    ("arm,pl110", DmaKind::Other),
    ("arm,pl111", DmaKind::Other),
    ("arm,hdlcd", DmaKind::Other),
];

/// Properties that say a node does DMA (or sends MSIs, which are writes).
const DMA_PROPS: [&str; 8] =
    ["dma-coherent", "dma-noncoherent", "iommus", "iommu-map", "msi-parent", "msi-map", "dmas", "#dma-cells"];

/// Properties removed from a PCI host bridge kept behind porwatch's SMMU:
/// the IOMMU binding (always: the SMMU is hidden), and the MSI binding when
/// it names a hidden node.
const IOMMU_PROPS: [&str; 2] = ["iommu-map", "iommu-map-mask"];
const MSI_PROPS: [&str; 3] = ["msi-map", "msi-map-mask", "msi-parent"];

/// Requester IDs a PCI `iommu-map` must cover for the whole bridge to be
/// behind one IOMMU.
const PCI_RID_COUNT: u64 = 0x1_0000;

/// One DMA-capable node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmaDevice {
    /// Node path.
    pub path: String<PATH_CAP>,
    pub kind: DmaKind,
    /// Its registers (translated `reg` entries) and, for a PCI host bridge,
    /// its ECAM and address windows: what stage 2 must not map when it is
    /// hidden.
    pub regions: Vec<Region, MAX_DEVICE_REGIONS>,
    /// Entries that could not be translated to CPU addresses (never mapped
    /// at stage 2 in the first place).
    pub untranslatable: u32,
    /// `phandle`, if any.
    pub phandle: Option<u32>,
    /// PCI host bridge: the IOMMU (phandle) its `iommu-map` sends every
    /// requester ID through, if one does.
    pub iommu: Option<u32>,
    /// PCI host bridge: the MSI controller its `msi-map` / `msi-parent`
    /// names first.
    pub msi: Option<u32>,
}

/// The DMA-capable nodes of a tree, in tree order.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    pub devices: Vec<DmaDevice, MAX_DMA_DEVICES>,
}

impl Survey {
    /// An empty survey (usable in a `static`).
    pub const fn new() -> Self {
        Survey { devices: Vec::new() }
    }

    /// The SMMUv3 to take: the one that every PCI host bridge's `iommu-map`
    /// sends all requester IDs through (index into `devices`). `None` when
    /// there is no PCI host bridge, no SMMUv3, or the bridges disagree.
    pub fn smmu_for_pci(&self) -> Option<usize> {
        let mut target = None;
        for d in self.devices.iter().filter(|d| d.kind == DmaKind::PciHost) {
            let ph = d.iommu?;
            if target.is_some_and(|t| t != ph) {
                return None;
            }
            target = Some(ph);
        }
        let ph = target?;
        self.devices
            .iter()
            .position(|d| d.kind == DmaKind::Smmu && d.phandle == Some(ph) && !d.regions.is_empty())
    }

    /// The edits: with `smmu` (an index into `devices`: the SMMUv3 porwatch
    /// runs), PCI host bridges behind it stay; everything else is hidden.
    pub fn decide<'s>(&'s self, smmu: Option<usize>, out: &mut Decision<'s>) -> Result<()> {
        *out = Decision::default();
        let smmu_ph = smmu
            .and_then(|i| self.devices.get(i))
            .filter(|d| d.kind == DmaKind::Smmu)
            .and_then(|d| d.phandle);
        let kept = |d: &DmaDevice| d.kind == DmaKind::PciHost && smmu_ph.is_some() && d.iommu == smmu_ph;
        for d in self.devices.iter() {
            if kept(d) {
                out.protected += 1;
                let hidden_msi =
                    d.msi.is_some_and(|ph| self.devices.iter().any(|o| o.phandle == Some(ph) && !kept(o)));
                let names = IOMMU_PROPS.iter().chain(if hidden_msi { &MSI_PROPS[..] } else { &[] });
                for &p in names {
                    out.drop_props
                        .push((d.path.as_str(), p))
                        .map_err(|_| FdtError::Capacity("dropped properties"))?;
                }
                continue;
            }
            out.remove.push(d.path.as_str()).map_err(|_| FdtError::Capacity("hidden devices"))?;
            for r in d.regions.iter() {
                out.hidden.push(*r).map_err(|_| FdtError::Capacity("hidden regions"))?;
            }
        }
        Ok(())
    }
}

/// What [`Survey::decide`] asks of the tree rewrite and of stage 2.
#[derive(Debug, Clone, Default)]
pub struct Decision<'s> {
    /// Nodes to remove from the guest's tree.
    pub remove: Vec<&'s str, MAX_DMA_DEVICES>,
    /// `(node path, property)` pairs to remove from kept nodes.
    pub drop_props: Vec<(&'s str, &'static str), MAX_DROPPED_PROPS>,
    /// Device regions stage 2 must leave unmapped (not rounded).
    pub hidden: Vec<Region, { MAX_DMA_DEVICES * 2 }>,
    /// PCI host bridges left visible behind the SMMU.
    pub protected: u32,
}

/// Fills `out` (cleared first) with the DMA-capable nodes of `dtb`. Nodes
/// that are disabled (or under a disabled ancestor), under `/cpus`,
/// `/chosen`, `/reserved-memory`, `/aliases` or `/__symbols__`, and the
/// root itself are not devices; the subtree of a DMA-capable node is not
/// listed separately (it goes with its parent).
pub fn survey(dtb: &[u8], out: &mut Survey) -> Result<()> {
    out.devices.clear();
    let fdt = Fdt::new(dtb)?;
    let mut walker = fdt.walk();
    let mut disabled_at: Option<usize> = None;
    let mut claimed_at: Option<usize> = None;
    let mut in_non_device = false;
    while let Some(node) = walker.next_node()? {
        let chain = walker.chain();
        let depth = chain.len() - 1;
        if depth == 0 {
            continue;
        }
        if disabled_at.is_some_and(|d| depth <= d) {
            disabled_at = None;
        }
        if claimed_at.is_some_and(|d| depth <= d) {
            claimed_at = None;
        }
        if disabled_at.is_none() && !node.is_enabled()? {
            disabled_at = Some(depth);
        }
        if depth == 1 {
            in_non_device = NON_DEVICE_SUBTREES.contains(&node.base_name());
        }
        if disabled_at.is_some() || claimed_at.is_some() || in_non_device {
            continue;
        }
        if node.prop_str("device_type")? == Some("memory") {
            continue;
        }
        let Some(kind) = classify(&node)? else { continue };
        claimed_at = Some(depth);
        let mut dev = DmaDevice {
            path: String::new(),
            kind,
            regions: Vec::new(),
            untranslatable: 0,
            phandle: phandle(&node)?,
            iommu: None,
            msi: None,
        };
        fdt.write_path(chain, &mut dev.path)?;
        let mut add = |r: Result<Region>| match r {
            Ok(r) if r.size == 0 => Ok(()),
            Ok(r) => dev.regions.push(r).map_err(|_| FdtError::Capacity("device regions")),
            Err(FdtError::NotTranslatable) => {
                dev.untranslatable += 1;
                Ok(())
            }
            Err(e) => Err(e),
        };
        if let Some(regs) = RegIter::of_node(&fdt, chain)? {
            for r in regs {
                add(r)?;
            }
        }
        if kind == DmaKind::PciHost {
            for_each_pci_window(&fdt, chain, &node, &mut add)?;
            dev.iommu = iommu_map_target(&node)?;
            dev.msi = msi_target(&node)?;
        }
        out.devices.push(dev).map_err(|_| FdtError::Capacity("DMA-capable devices"))?;
    }
    Ok(())
}

fn classify(node: &Node<'_>) -> Result<Option<DmaKind>> {
    for (c, kind) in DMA_COMPATIBLE {
        if node.is_compatible(c)? {
            return Ok(Some(kind));
        }
    }
    if node.prop_str("device_type")? == Some("pci") {
        return Ok(Some(DmaKind::PciHost));
    }
    for p in DMA_PROPS {
        if node.prop(p)?.is_some() {
            return Ok(Some(DmaKind::Other));
        }
    }
    Ok(None)
}

fn phandle(node: &Node<'_>) -> Result<Option<u32>> {
    match node.prop_u32("phandle")? {
        Some(p) => Ok(Some(p)),
        None => node.prop_u32("linux,phandle"),
    }
}

/// `iommu-map = <rid-base iommu iommu-base length>...` (PCI IOMMU binding,
/// one-cell IOMMU specifiers): the IOMMU every requester ID 0..=0xffff is
/// sent to, if the entries name one IOMMU and together cover them all.
fn iommu_map_target(node: &Node<'_>) -> Result<Option<u32>> {
    const ENTRY: usize = 16;
    let Some(v) = node.prop("iommu-map")? else { return Ok(None) };
    if v.is_empty() || !v.len().is_multiple_of(ENTRY) {
        return Err(FdtError::BadPropLen("iommu-map"));
    }
    let mut target = None;
    // Covered requester IDs, as sorted disjoint [start, end) runs.
    let mut runs: Vec<(u64, u64), 16> = Vec::new();
    for e in v.chunks_exact(ENTRY) {
        let cell = |i: usize| be32(e, 4 * i).map(u64::from).ok_or(FdtError::BadPropLen("iommu-map"));
        let (rid, ph, len) = (cell(0)?, cell(1)? as u32, cell(3)?);
        if target.is_some_and(|t| t != ph) {
            return Ok(None);
        }
        target = Some(ph);
        if runs.push((rid, rid + len)).is_err() {
            return Ok(None);
        }
    }
    runs.sort_unstable();
    let mut covered = 0;
    for (s, e) in runs {
        if s > covered {
            return Ok(None);
        }
        covered = covered.max(e);
    }
    Ok(target.filter(|_| covered >= PCI_RID_COUNT))
}

/// The MSI controller an `msi-map` (second cell) or `msi-parent` (first
/// cell) names.
fn msi_target(node: &Node<'_>) -> Result<Option<u32>> {
    if let Some(v) = node.prop("msi-map")? {
        return Ok(be32(v, 4));
    }
    Ok(node.prop("msi-parent")?.and_then(|v| be32(v, 0)))
}

/// Calls `f` with each piece of `ranges` (sorted, disjoint `[start, end)`
/// ranges) that lies outside every one of `holes` (any order, may overlap;
/// each rounded out to `granule`, a power of two). Used for the device
/// regions stage 2 maps: the device tree's MMIO minus hidden devices.
pub fn subtract(ranges: &[Region], holes: &[Region], granule: u64, mut f: impl FnMut(u64, u64)) {
    for r in ranges {
        let mut start = u128::from(r.base);
        let end = r.end();
        while start < end {
            // The first hole (rounded) that overlaps [start, end).
            let mut cut: Option<(u128, u128)> = None;
            for h in holes.iter().filter(|h| h.size != 0) {
                let g = u128::from(granule);
                let (hs, he) = (u128::from(h.base) & !(g - 1), (h.end() + g - 1) & !(g - 1));
                if he <= start || hs >= end {
                    continue;
                }
                let hs = hs.max(start);
                if cut.is_none_or(|(cs, _)| hs < cs) {
                    cut = Some((hs, he));
                } else if let Some((cs, ce)) = cut.as_mut() {
                    if hs == *cs {
                        *ce = (*ce).max(he);
                    }
                }
            }
            match cut {
                None => {
                    f(start as u64, end.min(u128::from(u64::MAX)) as u64);
                    break;
                }
                Some((cs, ce)) => {
                    if cs > start {
                        f(start as u64, cs as u64);
                    }
                    start = ce.min(end);
                }
            }
        }
    }
}

/// Calls `f` with the union of `holes`, each rounded out to `granule` (a
/// power of two), as sorted, disjoint, non-adjacent `[start, end)` ranges:
/// what stage 2 leaves unmapped, for the trace.
pub fn merged(holes: &[Region], granule: u64, mut f: impl FnMut(u64, u64)) -> Result<()> {
    let g = u128::from(granule);
    let mut v: Vec<(u128, u128), { MAX_DMA_DEVICES * 2 }> = Vec::new();
    for h in holes.iter().filter(|h| h.size != 0) {
        let r = (u128::from(h.base) & !(g - 1), (h.end() + g - 1) & !(g - 1));
        v.push(r).map_err(|_| FdtError::Capacity("hidden regions"))?;
    }
    v.sort_unstable();
    let mut cur: Option<(u128, u128)> = None;
    for (s, e) in v {
        cur = match cur {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                f(cs as u64, ce.min(u128::from(u64::MAX)) as u64);
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = cur {
        f(cs as u64, ce.min(u128::from(u64::MAX)) as u64);
    }
    Ok(())
}
