//! Producing the guest's DTB from the firmware's.
//!
//! [`rewrite`] copies the source tree token by token into a new packed blob
//! (header, memory reservations, structure block, strings block; version 17,
//! last compatible version 16, NOPs dropped), applying [`Edits`] on the way.
//!
//! # Memory nodes emptied by the carve-out
//!
//! A root-level `device_type = "memory"` node whose ranges are entirely
//! carved out keeps its node (other nodes may refer to it) but gets an
//! **empty `reg`** (zero-length property) **and `status = "disabled"`**
//! (an existing `status` is overwritten). Linux's `early_init_dt_scan_memory`
//! skips disabled memory nodes, and a zero-length `reg` yields no ranges even
//! in consumers that ignore `status`. `dtc` accepts the result (it may warn
//! about the empty `reg`).
//!
//! # A `/psci` node for a guest without firmware
//!
//! QEMU `secure=on` (and an FVP started without TF-A) describes no PSCI:
//! QEMU adds `/psci` only when it implements PSCI itself. When porwatch is
//! the PSCI implementation (entered at EL3), [`Edits::psci`] adds
//!
//! ```text
//! psci {
//!     compatible = "arm,psci-1.0", "arm,psci-0.2";
//!     method = "smc";
//! };
//! ```
//!
//! as the last child of the root, so that a guest such as Linux finds its
//! power-off and CPU calls where QEMU would have put them. An existing node
//! at `/psci` is kept as it is (nothing is added).

use heapless::Vec;

use super::address::{child_cells, Cells, RawReg};
use super::reader::{
    be32, prop_as_str, Fdt, Token, FDT_MAGIC, HEADER_SIZE, MAX_DEPTH, TOK_BEGIN_NODE, TOK_END, TOK_END_NODE,
    TOK_PROP,
};
use super::FdtError;

type Result<T> = core::result::Result<T, FdtError>;

/// Maximum number of nodes [`Edits::remove`] may name (the trace UART and
/// every hidden DMA-capable device, [`super::dma`]).
pub const MAX_REMOVE: usize = 80;
/// Maximum number of properties [`Edits::drop_props`] may name.
pub const MAX_DROP_PROPS: usize = 16;
/// Maximum number of ranges one memory node may have after the carve-out.
pub const MAX_CARVED: usize = 32;

/// What [`rewrite`] changes. `Edits::default()` changes nothing (but the
/// output is still repacked as version 17).
#[derive(Debug, Clone, Copy, Default)]
pub struct Edits<'e> {
    /// Absolute paths of nodes to delete with their subtrees (e.g. the trace
    /// UART `/pl011@9040000`). Properties of `/aliases` and `/__symbols__`
    /// whose value is a path into a removed subtree are dropped too. A path
    /// that names no node is [`FdtError::NotFound`]; `/` is
    /// [`FdtError::BadEdit`]. `/chosen/stdout-path` is left alone.
    pub remove: &'e [&'e str],
    /// `(base, size)` ranges subtracted from the `reg` (and
    /// `linux,usable-memory`, if any) of every root-level
    /// `device_type = "memory"` node, re-encoded with the root's
    /// `#address-cells`/`#size-cells`. See the module doc for nodes that end
    /// up empty. Empty slice: memory nodes are copied unchanged.
    pub carve_out: &'e [(u64, u64)],
    /// `None`: leave `/chosen/bootargs` alone. `Some("")`: remove it.
    /// `Some(s)`: set it to `s`, creating `/chosen` and the property if needed
    /// (`s` containing a NUL is [`FdtError::BadEdit`]).
    pub bootargs: Option<&'e str>,
    /// Extra `(address, size)` memory reservations appended after the
    /// source's own (which are copied verbatim).
    pub reserve: &'e [(u64, u64)],
    /// `Some(method)` (`"smc"` or `"hvc"`, else [`FdtError::BadEdit`]): add
    /// a PSCI 1.0 node `/psci` with that conduit unless the source has a
    /// node at `/psci` (see the module doc). `None`: no change.
    pub psci: Option<&'e str>,
    /// `(node path, property name)` pairs: properties deleted from kept
    /// nodes (e.g. the `iommu-map` of a PCI host bridge behind porwatch's
    /// SMMU). A path that names no node is [`FdtError::NotFound`]; a node
    /// without the property is left as it is.
    pub drop_props: &'e [(&'e str, &'e str)],
}

/// `compatible` of the node [`Edits::psci`] adds: PSCI 1.0 and 0.2 (the
/// standard function IDs; no 0.1 IDs are listed, so no plain `arm,psci`).
pub const PSCI_COMPATIBLE: &[u8] = b"arm,psci-1.0\0arm,psci-0.2\0";

/// Bounds-checked output cursor.
struct Out<'o> {
    buf: &'o mut [u8],
    pos: usize,
}

impl Out<'_> {
    fn bytes(&mut self, b: &[u8]) -> Result<()> {
        let end = self.pos.checked_add(b.len()).ok_or(FdtError::OutputTooSmall)?;
        self.buf.get_mut(self.pos..end).ok_or(FdtError::OutputTooSmall)?.copy_from_slice(b);
        self.pos = end;
        Ok(())
    }

    fn u32(&mut self, v: u32) -> Result<()> {
        self.bytes(&v.to_be_bytes())
    }

    fn u64(&mut self, v: u64) -> Result<()> {
        self.bytes(&v.to_be_bytes())
    }

    fn pad4(&mut self) -> Result<()> {
        while !self.pos.is_multiple_of(4) {
            self.bytes(&[0])?;
        }
        Ok(())
    }

    fn begin_node(&mut self, name: &str) -> Result<()> {
        self.u32(TOK_BEGIN_NODE)?;
        self.bytes(name.as_bytes())?;
        self.bytes(&[0])?;
        self.pad4()
    }

    fn prop(&mut self, nameoff: u32, value: &[u8]) -> Result<()> {
        self.prop_parts(nameoff, &[value])
    }

    fn prop_parts(&mut self, nameoff: u32, parts: &[&[u8]]) -> Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(len).map_err(|_| FdtError::OutputTooSmall)?;
        self.u32(TOK_PROP)?;
        self.u32(len)?;
        self.u32(nameoff)?;
        for p in parts {
            self.bytes(p)?;
        }
        self.pad4()
    }

    fn cells(&mut self, v: u128, cells: u32) -> Result<()> {
        if cells < 4 && v >> (32 * cells) != 0 {
            return Err(FdtError::AddressOverflow);
        }
        for i in (0..cells).rev() {
            self.u32((v >> (32 * i)) as u32)?;
        }
        Ok(())
    }
}

/// Offset of `name` (NUL-terminated, possibly as the tail of a longer
/// string) in a strings block.
fn find_string(strings: &[u8], name: &str) -> Option<u32> {
    let n = name.as_bytes();
    let mut start = 0;
    while start < strings.len() {
        let end = start + strings[start..].iter().position(|&b| b == 0)?;
        let s = &strings[start..end];
        if s.ends_with(n) {
            return u32::try_from(end - n.len()).ok();
        }
        start = end + 1;
    }
    None
}

/// Name offsets in the output strings block; names missing from the source
/// are appended after it.
struct Names<'e> {
    appended: Vec<&'e str, 4>,
    base: usize,
    bootargs: u32,
    status: u32,
    compatible: u32,
    method: u32,
}

impl<'e> Names<'e> {
    fn new(strings: &[u8], need_bootargs: bool, need_status: bool, need_psci: bool) -> Result<Self> {
        let mut n = Names {
            appended: Vec::new(),
            base: strings.len(),
            bootargs: 0,
            status: 0,
            compatible: 0,
            method: 0,
        };
        if need_bootargs {
            n.bootargs = n.get(strings, "bootargs")?;
        }
        if need_status {
            n.status = n.get(strings, "status")?;
        }
        if need_psci {
            n.compatible = n.get(strings, "compatible")?;
            n.method = n.get(strings, "method")?;
        }
        Ok(n)
    }

    fn get(&mut self, strings: &[u8], name: &'e str) -> Result<u32> {
        if let Some(off) = find_string(strings, name) {
            return Ok(off);
        }
        let off = self.base + self.appended.iter().map(|s| s.len() + 1).sum::<usize>();
        self.appended.push(name).map_err(|_| FdtError::BadEdit)?;
        u32::try_from(off).map_err(|_| FdtError::OutputTooSmall)
    }
}

/// Carves `cuts` out of the ranges of a `reg`-format value.
fn carve(value: &[u8], cells: Cells, cuts: &[(u64, u64)]) -> Result<Vec<(u128, u128), MAX_CARVED>> {
    let mut pieces: Vec<(u128, u128), MAX_CARVED> = Vec::new();
    for (a, s) in RawReg::new(value, cells)? {
        if s != 0 {
            let end = a.checked_add(s).ok_or(FdtError::AddressOverflow)?;
            pieces.push((a, end)).map_err(|_| FdtError::Capacity("memory ranges"))?;
        }
    }
    for &(cb, cs) in cuts {
        if cs == 0 {
            continue;
        }
        let (cb, ce) = (u128::from(cb), u128::from(cb) + u128::from(cs));
        let mut next: Vec<(u128, u128), MAX_CARVED> = Vec::new();
        for &(ps, pe) in &pieces {
            if ce <= ps || cb >= pe {
                next.push((ps, pe)).map_err(|_| FdtError::Capacity("memory ranges"))?;
                continue;
            }
            if ps < cb {
                next.push((ps, cb)).map_err(|_| FdtError::Capacity("memory ranges"))?;
            }
            if ce < pe {
                next.push((ce, pe)).map_err(|_| FdtError::Capacity("memory ranges"))?;
            }
        }
        pieces = next;
    }
    Ok(pieces)
}

/// Per-memory-node rewrite plan.
struct MemPlan {
    reg: Option<Vec<(u128, u128), MAX_CARVED>>,
    usable: Option<Vec<(u128, u128), MAX_CARVED>>,
    disable: bool,
    has_status: bool,
}

const DISABLED: &[u8] = b"disabled\0";

/// Writes a new DTB into `out` from `src` with `edits` applied; returns its size.
///
/// The result is validated with [`Fdt::new`] before returning.
pub fn rewrite(src: &[u8], edits: &Edits<'_>, out: &mut [u8]) -> Result<usize> {
    let fdt = Fdt::new(src)?;

    // Removed subtrees as structure-offset ranges [begin, end).
    let mut removed: Vec<(usize, usize), MAX_REMOVE> = Vec::new();
    for path in edits.remove {
        let chain = fdt.locate(path)?.ok_or(FdtError::NotFound)?;
        let s = chain.as_slice();
        if s.len() < 2 {
            return Err(FdtError::BadEdit);
        }
        let node = fdt.node_at(s[s.len() - 1])?;
        removed.push((node.offset(), node.end_offset()?)).map_err(|_| FdtError::Capacity("removed nodes"))?;
    }
    let is_removed = |off: usize| removed.iter().any(|&(b, e)| off >= b && off < e);
    let mut dropped: Vec<(usize, &str), MAX_DROP_PROPS> = Vec::new();
    for &(path, prop) in edits.drop_props {
        let chain = fdt.locate(path)?.ok_or(FdtError::NotFound)?;
        let node = *chain.as_slice().last().ok_or(FdtError::NotFound)?;
        dropped.push((node, prop)).map_err(|_| FdtError::Capacity("dropped properties"))?;
    }

    let root = fdt.root()?;
    let root_cells = child_cells(&root)?;
    let chosen = match fdt.find_node("/chosen")? {
        Some(n) if !is_removed(n.offset()) => Some(n),
        _ => None,
    };
    let aliases = fdt.find_node("/aliases")?.map(|n| n.offset());
    let symbols = fdt.find_node("/__symbols__")?.map(|n| n.offset());

    if edits.bootargs.is_some_and(|s| s.contains('\0')) {
        return Err(FdtError::BadEdit);
    }
    let set_bootargs = edits.bootargs.filter(|s| !s.is_empty());
    let add_psci = match edits.psci {
        None => None,
        Some(m @ ("smc" | "hvc")) => fdt.find_node("/psci")?.is_none().then_some(m),
        Some(_) => return Err(FdtError::BadEdit),
    };
    let names = Names::new(
        fdt.strings_block(),
        set_bootargs.is_some(),
        !edits.carve_out.is_empty(),
        add_psci.is_some(),
    )?;
    let chosen_has_bootargs = match chosen {
        Some(c) => c.prop("bootargs")?.is_some(),
        None => false,
    };

    let mut w = Out { buf: out, pos: 0 };
    // Header placeholder, then the reservation block.
    w.bytes(&[0; HEADER_SIZE])?;
    let off_rsvmap = w.pos;
    w.bytes(fdt.reservation_bytes())?;
    for &(a, s) in edits.reserve {
        w.u64(a)?;
        w.u64(s)?;
    }
    w.u64(0)?;
    w.u64(0)?;
    let off_struct = w.pos;

    // Node stack: offsets of open nodes (to know whose property a token is).
    let mut stack = [0usize; MAX_DEPTH];
    // Pending end-of-properties insertions for the innermost open node.
    let mut pending_bootargs = false;
    let mut pending_status = false;
    let mut in_props = false;
    let mut mem: Option<MemPlan> = None;
    let mut skip_until = 0usize;

    for t in fdt.tokens() {
        let t = t?;
        if t.offset < skip_until {
            continue;
        }
        // Leaving the property list of the innermost node: flush insertions.
        if in_props && !matches!(t.token, Token::Prop { .. }) {
            in_props = false;
            if pending_bootargs {
                if let Some(s) = set_bootargs {
                    w.prop_parts(names.bootargs, &[s.as_bytes(), b"\0"])?;
                }
                pending_bootargs = false;
            }
            if pending_status {
                w.prop(names.status, DISABLED)?;
                pending_status = false;
            }
        }
        match t.token {
            Token::BeginNode(name) => {
                if let Some(&(_, end)) = removed.iter().find(|&&(b, _)| b == t.offset) {
                    skip_until = end;
                    continue;
                }
                if let Some(slot) = stack.get_mut(t.depth) {
                    *slot = t.offset;
                }
                w.begin_node(name)?;
                in_props = true;
                mem = None;
                if Some(t.offset) == chosen.map(|c| c.offset()) {
                    pending_bootargs = set_bootargs.is_some() && !chosen_has_bootargs;
                }
                if t.depth == 1 && !edits.carve_out.is_empty() {
                    let node = fdt.node_at(t.offset)?;
                    if node.prop_str("device_type")? == Some("memory") {
                        let reg =
                            node.prop("reg")?.map(|v| carve(v, root_cells, edits.carve_out)).transpose()?;
                        let usable = node
                            .prop("linux,usable-memory")?
                            .map(|v| carve(v, root_cells, edits.carve_out))
                            .transpose()?;
                        let effective = usable.as_ref().or(reg.as_ref());
                        let disable = effective.is_some_and(|v| v.is_empty());
                        let has_status = node.prop("status")?.is_some();
                        pending_status = disable && !has_status;
                        mem = Some(MemPlan { reg, usable, disable, has_status });
                    }
                }
            }
            Token::Prop { name, value } => {
                let owner = stack.get(t.depth).copied().unwrap_or(usize::MAX);
                let prop_nameoff = nameoff_of(&fdt, t.offset)?;
                if dropped.iter().any(|&(n, p)| n == owner && p == name) {
                    continue;
                }
                if Some(owner) == chosen.map(|c| c.offset()) && name == "bootargs" {
                    match edits.bootargs {
                        None => w.prop(prop_nameoff, value)?,
                        Some("") => {}
                        Some(s) => w.prop_parts(prop_nameoff, &[s.as_bytes(), b"\0"])?,
                    }
                    continue;
                }
                if (Some(owner) == aliases || Some(owner) == symbols)
                    && !removed.is_empty()
                    && points_into_removed(&fdt, value, &is_removed)
                {
                    continue;
                }
                if let Some(plan) = mem.as_ref() {
                    let ranges = match name {
                        "reg" => plan.reg.as_ref(),
                        "linux,usable-memory" => plan.usable.as_ref(),
                        _ => None,
                    };
                    if let Some(ranges) = ranges {
                        write_ranges(&mut w, prop_nameoff, ranges, root_cells)?;
                        continue;
                    }
                    if name == "status" && plan.disable && plan.has_status {
                        w.prop(prop_nameoff, DISABLED)?;
                        continue;
                    }
                }
                w.prop(prop_nameoff, value)?;
            }
            Token::EndNode => {
                if t.depth == 0 && chosen.is_none() {
                    if let Some(s) = set_bootargs {
                        w.begin_node("chosen")?;
                        w.prop_parts(names.bootargs, &[s.as_bytes(), b"\0"])?;
                        w.u32(TOK_END_NODE)?;
                    }
                }
                if let (0, Some(method)) = (t.depth, add_psci) {
                    w.begin_node("psci")?;
                    w.prop(names.compatible, PSCI_COMPATIBLE)?;
                    w.prop_parts(names.method, &[method.as_bytes(), b"\0"])?;
                    w.u32(TOK_END_NODE)?;
                }
                mem = None;
                w.u32(TOK_END_NODE)?;
            }
            Token::End => {
                w.u32(TOK_END)?;
                break;
            }
        }
    }
    let size_struct = w.pos - off_struct;
    let off_strings = w.pos;
    w.bytes(fdt.strings_block())?;
    for n in &names.appended {
        w.bytes(n.as_bytes())?;
        w.bytes(&[0])?;
    }
    let size_strings = w.pos - off_strings;
    let total = w.pos;

    let h = fdt.header();
    let fields = [
        FDT_MAGIC,
        total as u32,
        off_struct as u32,
        off_strings as u32,
        off_rsvmap as u32,
        17,
        16,
        h.boot_cpuid_phys,
        size_strings as u32,
        size_struct as u32,
    ];
    if u32::try_from(total).is_err() {
        return Err(FdtError::OutputTooSmall);
    }
    w.pos = 0;
    for f in fields {
        w.u32(f)?;
    }
    // Self-check: the output must parse.
    Fdt::new(&w.buf[..total])?;
    Ok(total)
}

/// The name offset of the property token at structure offset `tok`.
fn nameoff_of(fdt: &Fdt<'_>, tok: usize) -> Result<u32> {
    be32(fdt.struct_block(), tok + 8).ok_or(FdtError::BadStructure { offset: tok })
}

/// True if `value` is a path string naming a node inside a removed subtree.
fn points_into_removed(fdt: &Fdt<'_>, value: &[u8], is_removed: &dyn Fn(usize) -> bool) -> bool {
    let Ok(path) = prop_as_str(value) else {
        return false;
    };
    if !path.starts_with('/') {
        return false;
    }
    match fdt.locate(path) {
        Ok(Some(chain)) => chain.as_slice().last().is_some_and(|&o| is_removed(o)),
        _ => false,
    }
}

fn write_ranges(w: &mut Out<'_>, nameoff: u32, ranges: &[(u128, u128)], cells: Cells) -> Result<()> {
    if cells.address == 0 || cells.size == 0 {
        return Err(FdtError::BadCells(0));
    }
    let len = ranges.len() * ((cells.address + cells.size) * 4) as usize;
    w.u32(TOK_PROP)?;
    w.u32(u32::try_from(len).map_err(|_| FdtError::OutputTooSmall)?)?;
    w.u32(nameoff)?;
    for &(s, e) in ranges {
        w.cells(s, cells.address)?;
        w.cells(e - s, cells.size)?;
    }
    Ok(())
}
