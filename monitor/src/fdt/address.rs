//! `reg` / `ranges` address translation to CPU physical addresses.
//!
//! A node's `reg` is expressed in its parent's address space (the parent's
//! `#address-cells` / `#size-cells`). To reach the CPU's address space, the
//! address climbs through every ancestor bus below the root: each bus must
//! have a `ranges` property; an empty `ranges` is the identity, a missing one
//! means the bus's children are not memory-mapped (I²C, SPI, MDIO, ...) and
//! the translation fails with [`FdtError::NotTranslatable`].
//!
//! PCI buses (`device_type = "pci"`) match child addresses the way Linux does:
//! the space code (bits 24..=25 of `phys.hi`) must be equal and the 64-bit
//! `phys.mid:phys.lo` must fall in the range; other `phys.hi` bits are ignored.
//!
//! Depth is bounded by [`MAX_DEPTH`] (the chain of
//! ancestors), cell counts by 4, so there are no loops and no overflow.

use super::reader::{read_cells, Fdt, Node, MAX_DEPTH};
use super::FdtError;

type Result<T> = core::result::Result<T, FdtError>;

/// A CPU physical address range `[base, base + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Region {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Region {
    /// `[base, base + size)`.
    pub const fn new(base: u64, size: u64) -> Self {
        Region { base, size }
    }

    /// Exclusive end, as u128 so that a range ending at 2^64 is representable.
    pub const fn end(&self) -> u128 {
        self.base as u128 + self.size as u128
    }

    /// True if `[base, base + size)` lies entirely inside this region.
    pub const fn contains(&self, base: u64, size: u64) -> bool {
        base >= self.base && (base as u128 + size as u128) <= self.end()
    }
}

/// `#address-cells` / `#size-cells` of a node, i.e. the format of its
/// children's `reg` and of the child side of its `ranges`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cells {
    /// `#address-cells` (default 2).
    pub address: u32,
    /// `#size-cells` (default 1).
    pub size: u32,
}

/// The cell counts a node defines for its children (defaults 2 and 1, as in
/// the devicetree specification). Counts above 4 are [`FdtError::BadCells`].
pub fn child_cells(node: &Node<'_>) -> Result<Cells> {
    let address = node.prop_u32("#address-cells")?.unwrap_or(2);
    let size = node.prop_u32("#size-cells")?.unwrap_or(1);
    if address > 4 {
        return Err(FdtError::BadCells(address));
    }
    if size > 4 {
        return Err(FdtError::BadCells(size));
    }
    Ok(Cells { address, size })
}

fn is_pci(node: &Node<'_>) -> Result<bool> {
    Ok(node.prop_str("device_type")? == Some("pci"))
}

const PCI_SPACE_MASK: u32 = 0x0300_0000;

/// Translates `addr`, an address in the child address space of the bus
/// `bus_chain.last()` (`bus_chain` = offsets from the root to that bus,
/// inclusive), to a CPU physical address.
pub fn translate(fdt: &Fdt<'_>, bus_chain: &[usize], addr: u128) -> Result<u64> {
    if bus_chain.is_empty() || bus_chain.len() > MAX_DEPTH {
        return Err(FdtError::NotTranslatable);
    }
    let mut addr = addr;
    let mut i = bus_chain.len() - 1;
    while i > 0 {
        let bus = fdt.node_at(bus_chain[i])?;
        let parent = fdt.node_at(bus_chain[i - 1])?;
        let bc = child_cells(&bus)?;
        let pc = child_cells(&parent)?;
        let ranges = bus.prop("ranges")?.ok_or(FdtError::NotTranslatable)?;
        if !ranges.is_empty() {
            addr = translate_one(ranges, bc, pc, is_pci(&bus)?, addr)?;
        }
        i -= 1;
    }
    u64::try_from(addr).map_err(|_| FdtError::AddressOverflow)
}

/// One step through a non-empty `ranges` property.
fn translate_one(ranges: &[u8], bc: Cells, pc: Cells, pci: bool, addr: u128) -> Result<u128> {
    let entry = ((bc.address + pc.address + bc.size) * 4) as usize;
    if entry == 0 || !ranges.len().is_multiple_of(entry) {
        return Err(FdtError::BadPropLen("ranges"));
    }
    let pci = pci && bc.address == 3;
    for e in ranges.chunks_exact(entry) {
        let child = read_cells(e, bc.address)?;
        let parent = read_cells(&e[(bc.address * 4) as usize..], pc.address)?;
        let size = read_cells(&e[((bc.address + pc.address) * 4) as usize..], bc.size)?;
        let (a, c) = if pci {
            let hi_a = (addr >> 64) as u32;
            let hi_c = (child >> 64) as u32;
            if (hi_a ^ hi_c) & PCI_SPACE_MASK != 0 {
                continue;
            }
            (addr & u128::from(u64::MAX), child & u128::from(u64::MAX))
        } else {
            (addr, child)
        };
        if a >= c && a - c < size {
            return parent.checked_add(a - c).ok_or(FdtError::AddressOverflow);
        }
    }
    Err(FdtError::NotTranslatable)
}

/// Iterator over the raw `(address, size)` pairs of a `reg`-format property.
#[derive(Clone, Debug)]
pub struct RawReg<'a> {
    rest: &'a [u8],
    cells: Cells,
}

impl<'a> RawReg<'a> {
    /// Splits `value` into entries of `cells.address + cells.size` cells.
    pub fn new(value: &'a [u8], cells: Cells) -> Result<Self> {
        if cells.address > 4 || cells.size > 4 {
            return Err(FdtError::BadCells(cells.address.max(cells.size)));
        }
        let entry = ((cells.address + cells.size) * 4) as usize;
        if entry == 0 {
            return Err(FdtError::BadCells(0));
        }
        if !value.len().is_multiple_of(entry) {
            return Err(FdtError::BadPropLen("reg"));
        }
        Ok(RawReg { rest: value, cells })
    }
}

impl Iterator for RawReg<'_> {
    type Item = (u128, u128);
    fn next(&mut self) -> Option<(u128, u128)> {
        let entry = ((self.cells.address + self.cells.size) * 4) as usize;
        if self.rest.len() < entry || entry == 0 {
            return None;
        }
        let (e, rest) = self.rest.split_at(entry);
        self.rest = rest;
        let a = read_cells(e, self.cells.address).ok()?;
        let s = read_cells(&e[(self.cells.address * 4) as usize..], self.cells.size).ok()?;
        Some((a, s))
    }
}

/// Iterator over a node's `reg` (or another `reg`-format property), each
/// entry translated to a CPU physical [`Region`].
#[derive(Clone, Debug)]
pub struct RegIter<'a> {
    fdt: Fdt<'a>,
    chain: [usize; MAX_DEPTH],
    len: usize,
    raw: RawReg<'a>,
}

impl<'a> RegIter<'a> {
    /// `chain`: offsets from the root to the node (inclusive); `value`: the
    /// node's `reg`-format property value.
    pub fn new(fdt: &Fdt<'a>, chain: &[usize], value: &'a [u8]) -> Result<Self> {
        if chain.len() < 2 || chain.len() > MAX_DEPTH {
            // The root's own `reg` has no parent to give its format.
            return Err(FdtError::NotTranslatable);
        }
        let parent = fdt.node_at(chain[chain.len() - 2])?;
        let raw = RawReg::new(value, child_cells(&parent)?)?;
        let mut c = [0; MAX_DEPTH];
        c[..chain.len()].copy_from_slice(chain);
        Ok(RegIter { fdt: *fdt, chain: c, len: chain.len(), raw })
    }

    /// The node's `reg` property translated; `Ok(None)` if it has none.
    pub fn of_node(fdt: &Fdt<'a>, chain: &[usize]) -> Result<Option<Self>> {
        let Some(&off) = chain.last() else {
            return Err(FdtError::NotTranslatable);
        };
        match fdt.node_at(off)?.prop("reg")? {
            Some(v) => Self::new(fdt, chain, v).map(Some),
            None => Ok(None),
        }
    }
}

impl Iterator for RegIter<'_> {
    type Item = Result<Region>;
    fn next(&mut self) -> Option<Result<Region>> {
        let (a, s) = self.raw.next()?;
        let bus = &self.chain[..self.len - 1];
        Some(translate(&self.fdt, bus, a).and_then(|base| {
            let size = u64::try_from(s).map_err(|_| FdtError::AddressOverflow)?;
            if u128::from(base) + u128::from(size) > 1u128 << 64 {
                return Err(FdtError::AddressOverflow);
            }
            Ok(Region { base, size })
        }))
    }
}
