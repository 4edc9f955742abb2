//! DTB header validation, structure-block token walker and node/property helpers.
//!
//! [`Fdt::new`] validates the header *and* walks the whole structure block
//! once (balanced nodes, valid names and name offsets, bounded depth), so later
//! walks only fail on bugs, but they still return `Result`s rather than panic.

use super::FdtError;

/// `magic` of a flattened device tree.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Maximum node nesting (root is depth 0) accepted anywhere.
pub const MAX_DEPTH: usize = 32;
/// Size of a version-17 header.
pub const HEADER_SIZE: usize = 40;
/// Size of a version-16 header (no `size_dt_struct`).
const HEADER_SIZE_V16: usize = 36;

pub(crate) const TOK_BEGIN_NODE: u32 = 1;
pub(crate) const TOK_END_NODE: u32 = 2;
pub(crate) const TOK_PROP: u32 = 3;
pub(crate) const TOK_NOP: u32 = 4;
pub(crate) const TOK_END: u32 = 9;

type Result<T> = core::result::Result<T, FdtError>;

/// Big-endian u32 at `off`, if in bounds.
#[inline]
pub(crate) fn be32(data: &[u8], off: usize) -> Option<u32> {
    let end = off.checked_add(4)?;
    let b = data.get(off..end)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Big-endian u64 at `off`, if in bounds.
#[inline]
pub(crate) fn be64(data: &[u8], off: usize) -> Option<u64> {
    let hi = be32(data, off)?;
    let lo = be32(data, off.checked_add(4)?)?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// Reads `cells` (0..=4) big-endian 32-bit cells from the start of `data`.
pub fn read_cells(data: &[u8], cells: u32) -> Result<u128> {
    if cells > 4 {
        return Err(FdtError::BadCells(cells));
    }
    let mut v: u128 = 0;
    for i in 0..cells as usize {
        let c = be32(data, i * 4).ok_or(FdtError::BadPropLen("cells"))?;
        v = (v << 32) | u128::from(c);
    }
    Ok(v)
}

/// Interprets a property value as one NUL-terminated UTF-8 string (text up to
/// the first NUL).
pub fn prop_as_str(value: &[u8]) -> Result<&str> {
    let nul = value.iter().position(|&b| b == 0).ok_or(FdtError::BadString)?;
    core::str::from_utf8(&value[..nul]).map_err(|_| FdtError::BadString)
}

/// Interprets a property value as a u32 (`<x>`) or u64 (`<hi lo>`).
pub fn prop_as_u64(value: &[u8], what: &'static str) -> Result<u64> {
    match value.len() {
        4 => Ok(u64::from(be32(value, 0).ok_or(FdtError::BadPropLen(what))?)),
        8 => be64(value, 0).ok_or(FdtError::BadPropLen(what)),
        _ => Err(FdtError::BadPropLen(what)),
    }
}

/// Iterator over the strings of a string-list property (`"a\0b\0"`).
#[derive(Clone, Debug)]
pub struct StrList<'a> {
    rest: &'a [u8],
}

impl<'a> StrList<'a> {
    /// Validates `value` as a string list: empty, or NUL-terminated UTF-8 pieces.
    pub fn new(value: &'a [u8]) -> Result<Self> {
        if !value.is_empty() && value.last() != Some(&0) {
            return Err(FdtError::BadString);
        }
        core::str::from_utf8(value).map_err(|_| FdtError::BadString)?;
        Ok(StrList { rest: value })
    }

    /// True if one of the strings equals `s`.
    pub fn contains(&self, s: &str) -> bool {
        self.clone().any(|x| x == s)
    }
}

impl<'a> Iterator for StrList<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let nul = self.rest.iter().position(|&b| b == 0)?;
        let (s, rest) = self.rest.split_at(nul);
        self.rest = &rest[1..];
        // Validated as UTF-8 as a whole in `new`, and NUL is ASCII, so every
        // piece is valid UTF-8 too; still no unwrap.
        core::str::from_utf8(s).ok()
    }
}

/// The DTB header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Always [`FDT_MAGIC`].
    pub magic: u32,
    /// Total size of the blob.
    pub totalsize: u32,
    /// Offset of the structure block.
    pub off_dt_struct: u32,
    /// Offset of the strings block.
    pub off_dt_strings: u32,
    /// Offset of the memory reservation block.
    pub off_mem_rsvmap: u32,
    /// Format version (≥ 16).
    pub version: u32,
    /// Oldest version this blob is compatible with.
    pub last_comp_version: u32,
    /// Physical id of the boot CPU.
    pub boot_cpuid_phys: u32,
    /// Size of the strings block.
    pub size_dt_strings: u32,
    /// Size of the structure block (computed for version-16 blobs).
    pub size_dt_struct: u32,
}

/// A validated flattened device tree, borrowed from the caller's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Fdt<'a> {
    blob: &'a [u8],
    structs: &'a [u8],
    strings: &'a [u8],
    header: Header,
}

fn range(blob: &[u8], off: u32, size: u32) -> Result<&[u8]> {
    let start = off as usize;
    let end = start.checked_add(size as usize).ok_or(FdtError::BadHeader)?;
    if start < HEADER_SIZE_V16 {
        return Err(FdtError::BadHeader);
    }
    blob.get(start..end).ok_or(FdtError::BadHeader)
}

impl<'a> Fdt<'a> {
    /// Validates the header and the whole structure block of `data`.
    ///
    /// `data` may be longer than the blob's `totalsize` (e.g. a whole RAM
    /// window); only `totalsize` bytes are used.
    pub fn new(data: &'a [u8]) -> Result<Self> {
        let magic = be32(data, 0).ok_or(FdtError::Truncated)?;
        if magic != FDT_MAGIC {
            return Err(FdtError::BadMagic(magic));
        }
        let field = |i: usize| be32(data, i * 4).ok_or(FdtError::Truncated);
        let totalsize = field(1)?;
        let version = field(5)?;
        let last_comp = field(6)?;
        if version < 16 || last_comp > 17 {
            return Err(FdtError::BadVersion { version, last_comp });
        }
        let hsize = if version >= 17 { HEADER_SIZE } else { HEADER_SIZE_V16 };
        if data.len() < hsize {
            return Err(FdtError::Truncated);
        }
        if (totalsize as usize) < hsize {
            return Err(FdtError::BadHeader);
        }
        let blob = data.get(..totalsize as usize).ok_or(FdtError::Truncated)?;
        let off_dt_struct = field(2)?;
        let off_dt_strings = field(3)?;
        let off_mem_rsvmap = field(4)?;
        let boot_cpuid_phys = field(7)?;
        let size_dt_strings = field(8)?;
        let size_dt_struct = if version >= 17 {
            field(9)?
        } else {
            totalsize.checked_sub(off_dt_struct).ok_or(FdtError::BadHeader)?
        };
        let structs = range(blob, off_dt_struct, size_dt_struct)?;
        let strings = range(blob, off_dt_strings, size_dt_strings)?;
        if (off_mem_rsvmap as usize) < hsize || off_mem_rsvmap >= totalsize {
            return Err(FdtError::BadHeader);
        }
        let fdt = Fdt {
            blob,
            structs,
            strings,
            header: Header {
                magic,
                totalsize,
                off_dt_struct,
                off_dt_strings,
                off_mem_rsvmap,
                version,
                last_comp_version: last_comp,
                boot_cpuid_phys,
                size_dt_strings,
                size_dt_struct,
            },
        };
        fdt.reservations_len()?;
        fdt.validate()?;
        Ok(fdt)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The blob (`totalsize` bytes).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.blob
    }

    /// The structure block.
    pub fn struct_block(&self) -> &'a [u8] {
        self.structs
    }

    /// The strings block.
    pub fn strings_block(&self) -> &'a [u8] {
        self.strings
    }

    /// Length in bytes of the memory reservation block entries, excluding the
    /// terminating (0, 0) entry.
    pub(crate) fn reservations_len(&self) -> Result<usize> {
        let mut off = self.header.off_mem_rsvmap as usize;
        let start = off;
        loop {
            let addr = be64(self.blob, off).ok_or(FdtError::BadReservations)?;
            let size = be64(self.blob, off + 8).ok_or(FdtError::BadReservations)?;
            if addr == 0 && size == 0 {
                return Ok(off - start);
            }
            off += 16;
        }
    }

    /// The memory reservation entries (address, size), without the terminator.
    pub fn reservations(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        let start = self.header.off_mem_rsvmap as usize;
        let len = self.reservations_len().unwrap_or(0);
        let bytes = self.blob.get(start..start + len).unwrap_or(&[]);
        bytes.chunks_exact(16).map(|c| (be64(c, 0).unwrap_or(0), be64(c, 8).unwrap_or(0)))
    }

    /// The raw reservation entries as they appear in the blob (16 bytes each).
    pub(crate) fn reservation_bytes(&self) -> &'a [u8] {
        let start = self.header.off_mem_rsvmap as usize;
        let len = self.reservations_len().unwrap_or(0);
        self.blob.get(start..start + len).unwrap_or(&[])
    }

    /// The NUL-terminated name at `nameoff` in the strings block.
    pub fn string_at(&self, nameoff: u32) -> Result<&'a str> {
        let rest = self
            .strings
            .get(nameoff as usize..)
            .filter(|r| !r.is_empty())
            .ok_or(FdtError::BadStringOffset(nameoff))?;
        prop_as_str(rest)
    }

    /// Token iterator over the whole structure block.
    pub fn tokens(&self) -> Tokens<'a> {
        self.tokens_at(0)
    }

    /// Token iterator starting at structure offset `offset` (depth counted
    /// relative to there).
    pub fn tokens_at(&self, offset: usize) -> Tokens<'a> {
        Tokens { fdt: *self, pos: offset, open: 0, done: false }
    }

    /// Tokens starting at `body`, the first token after a node's
    /// `FDT_BEGIN_NODE`: that node counts as open (depth 0), so its
    /// properties have depth 0 and its children depth 1.
    fn tokens_inside(&self, body: usize) -> Tokens<'a> {
        Tokens { fdt: *self, pos: body, open: 1, done: false }
    }

    /// Checks the whole structure block: one root, balanced nodes, bounded
    /// depth, valid names and name offsets, `FDT_END` after the root, and
    /// every node's properties before its subnodes (as the specification
    /// requires; the rewriter relies on it).
    fn validate(&self) -> Result<()> {
        let mut toks = self.tokens();
        let mut root_seen = false;
        let mut root_closed = false;
        // has_child[d]: the open node at depth d has had a subnode already.
        let mut has_child = [false; MAX_DEPTH];
        for t in toks.by_ref() {
            let t = t?;
            match t.token {
                Token::BeginNode(_) => {
                    if t.depth == 0 {
                        if root_seen {
                            return Err(FdtError::BadStructure { offset: t.offset });
                        }
                        root_seen = true;
                    } else if let Some(h) = has_child.get_mut(t.depth - 1) {
                        *h = true;
                    }
                    if let Some(h) = has_child.get_mut(t.depth) {
                        *h = false;
                    }
                }
                Token::Prop { .. } => {
                    if has_child.get(t.depth).copied().unwrap_or(true) {
                        return Err(FdtError::BadStructure { offset: t.offset });
                    }
                }
                Token::EndNode => {
                    if t.depth == 0 {
                        root_closed = true;
                    }
                }
                Token::End => {
                    return if root_closed {
                        Ok(())
                    } else {
                        Err(FdtError::BadStructure { offset: t.offset })
                    };
                }
            }
        }
        Err(FdtError::BadStructure { offset: self.structs.len() })
    }

    /// The root node.
    pub fn root(&self) -> Result<Node<'a>> {
        // `validate` guarantees the first non-NOP token is the root BeginNode.
        let mut toks = self.tokens();
        match toks.next() {
            Some(Ok(TokenAt { offset, token: Token::BeginNode(_), .. })) => self.node_at(offset),
            Some(Err(e)) => Err(e),
            _ => Err(FdtError::BadStructure { offset: 0 }),
        }
    }

    /// The node whose `FDT_BEGIN_NODE` token is at structure offset `offset`.
    pub fn node_at(&self, offset: usize) -> Result<Node<'a>> {
        match self.tokens_at(offset).next() {
            Some(Ok(TokenAt { offset, next, token: Token::BeginNode(name), .. })) => {
                Ok(Node { fdt: *self, offset, body: next, name })
            }
            Some(Err(e)) => Err(e),
            _ => Err(FdtError::BadStructure { offset }),
        }
    }

    /// A walker over all nodes that keeps the chain of ancestors.
    pub fn walk(&self) -> Walker<'a> {
        Walker { tokens: self.tokens(), stack: [0; MAX_DEPTH], depth: 0 }
    }

    /// Finds the node at `path` (absolute, `/`-separated). A component without
    /// `@` also matches a node name with a unit address (`/chosen` matches
    /// `chosen@0`), like libfdt.
    pub fn find_node(&self, path: &str) -> Result<Option<Node<'a>>> {
        match self.locate(path)? {
            Some(chain) => match chain.as_slice().last() {
                Some(&off) => self.node_at(off).map(Some),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// Like [`Fdt::find_node`], but returns the chain of node offsets from the
    /// root to the node (inclusive), as needed by address translation.
    pub fn locate(&self, path: &str) -> Result<Option<NodeChain>> {
        if !path.starts_with('/') {
            return Err(FdtError::BadPath);
        }
        let ncomp = path.split('/').filter(|c| !c.is_empty()).count();
        let mut walker = self.walk();
        let mut matched = 0usize;
        while let Some(node) = walker.next_node()? {
            let chain = walker.chain();
            let depth = chain.len() - 1;
            if depth == 0 {
                if ncomp == 0 {
                    return Ok(Some(NodeChain::from_slice(chain)));
                }
                continue;
            }
            matched = matched.min(depth - 1);
            if depth == matched + 1 {
                let comp = path.split('/').filter(|c| !c.is_empty()).nth(matched);
                if let Some(comp) = comp {
                    if name_matches(node.name(), comp) {
                        matched += 1;
                        if matched == ncomp {
                            return Ok(Some(NodeChain::from_slice(chain)));
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// Resolves an alias name (a property of `/aliases`) to its path.
    /// Returns `Ok(None)` if there is no such alias. An alias whose value is
    /// not an absolute path is [`FdtError::BadPath`] (no alias chains, so no loops).
    pub fn alias(&self, name: &str) -> Result<Option<&'a str>> {
        let Some(aliases) = self.find_node("/aliases")? else {
            return Ok(None);
        };
        match aliases.prop(name)? {
            Some(v) => {
                let p = prop_as_str(v)?;
                if p.starts_with('/') {
                    Ok(Some(p))
                } else {
                    Err(FdtError::BadPath)
                }
            }
            None => Ok(None),
        }
    }

    /// Writes the path of the node chain `chain` (root..=node offsets) into `out`.
    pub fn write_path<const N: usize>(&self, chain: &[usize], out: &mut heapless::String<N>) -> Result<()> {
        out.clear();
        if chain.len() <= 1 {
            return out.push('/').map_err(|_| FdtError::PathTooLong);
        }
        for &off in &chain[1..] {
            let node = self.node_at(off)?;
            out.push('/').map_err(|_| FdtError::PathTooLong)?;
            out.push_str(node.name()).map_err(|_| FdtError::PathTooLong)?;
        }
        Ok(())
    }
}

/// True if a node called `name` matches path component `comp`.
pub fn name_matches(name: &str, comp: &str) -> bool {
    if name == comp {
        return true;
    }
    !comp.contains('@')
        && name.len() > comp.len()
        && name.starts_with(comp)
        && name.as_bytes()[comp.len()] == b'@'
}

/// One structure-block token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// Start of a node, with its name (`""` for the root).
    BeginNode(&'a str),
    /// A property of the current node.
    Prop {
        /// Property name (from the strings block).
        name: &'a str,
        /// Raw value.
        value: &'a [u8],
    },
    /// End of the current node.
    EndNode,
    /// End of the structure block.
    End,
}

/// A token with its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenAt<'a> {
    /// Structure-block offset of the token.
    pub offset: usize,
    /// Offset of the following token.
    pub next: usize,
    /// For `BeginNode`/`EndNode`: depth of that node; for `Prop`: depth of the
    /// node holding it; for `End`: 0. Relative to where the walk started.
    pub depth: usize,
    /// The token.
    pub token: Token<'a>,
}

/// Token walker; skips `FDT_NOP`. Yields an error once and then stops.
#[derive(Clone, Debug)]
pub struct Tokens<'a> {
    fdt: Fdt<'a>,
    pos: usize,
    open: usize,
    done: bool,
}

impl<'a> Tokens<'a> {
    fn read(&mut self) -> Result<Option<TokenAt<'a>>> {
        let s = self.fdt.structs;
        loop {
            let offset = self.pos;
            let tok = be32(s, offset).ok_or(FdtError::BadStructure { offset })?;
            let body = offset + 4;
            match tok {
                TOK_NOP => {
                    self.pos = body;
                }
                TOK_BEGIN_NODE => {
                    let rest = s.get(body..).ok_or(FdtError::BadStructure { offset })?;
                    let nul = rest.iter().position(|&b| b == 0).ok_or(FdtError::BadString)?;
                    let name = core::str::from_utf8(&rest[..nul]).map_err(|_| FdtError::BadString)?;
                    let next = align4(body + nul + 1);
                    if next > s.len() {
                        return Err(FdtError::BadStructure { offset });
                    }
                    if self.open >= MAX_DEPTH {
                        return Err(FdtError::TooDeep);
                    }
                    let depth = self.open;
                    self.open += 1;
                    self.pos = next;
                    return Ok(Some(TokenAt { offset, next, depth, token: Token::BeginNode(name) }));
                }
                TOK_END_NODE => {
                    if self.open == 0 {
                        return Err(FdtError::BadStructure { offset });
                    }
                    self.open -= 1;
                    self.pos = body;
                    return Ok(Some(TokenAt { offset, next: body, depth: self.open, token: Token::EndNode }));
                }
                TOK_PROP => {
                    if self.open == 0 {
                        return Err(FdtError::BadStructure { offset });
                    }
                    let len = be32(s, body).ok_or(FdtError::BadStructure { offset })?;
                    let nameoff = be32(s, body + 4).ok_or(FdtError::BadStructure { offset })?;
                    let vstart = body + 8;
                    let vend = vstart.checked_add(len as usize).ok_or(FdtError::BadStructure { offset })?;
                    let value = s.get(vstart..vend).ok_or(FdtError::BadStructure { offset })?;
                    let next = align4(vend);
                    if next > s.len() {
                        return Err(FdtError::BadStructure { offset });
                    }
                    let name = self.fdt.string_at(nameoff)?;
                    self.pos = next;
                    return Ok(Some(TokenAt {
                        offset,
                        next,
                        depth: self.open - 1,
                        token: Token::Prop { name, value },
                    }));
                }
                TOK_END => {
                    if self.open != 0 {
                        return Err(FdtError::BadStructure { offset });
                    }
                    self.done = true;
                    return Ok(Some(TokenAt { offset, next: body, depth: 0, token: Token::End }));
                }
                token => return Err(FdtError::BadToken { offset, token }),
            }
        }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Result<TokenAt<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read() {
            Ok(Some(t)) => Some(Ok(t)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[inline]
pub(crate) const fn align4(x: usize) -> usize {
    (x + 3) & !3
}

/// Offsets of the nodes from the root to a node (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeChain {
    offsets: [usize; MAX_DEPTH],
    len: usize,
}

impl NodeChain {
    fn from_slice(s: &[usize]) -> Self {
        let mut offsets = [0; MAX_DEPTH];
        let len = s.len().min(MAX_DEPTH);
        offsets[..len].copy_from_slice(&s[..len]);
        NodeChain { offsets, len }
    }

    /// Root..=node offsets.
    pub fn as_slice(&self) -> &[usize] {
        &self.offsets[..self.len]
    }
}

/// Depth-first node walker that tracks the ancestors of the current node.
#[derive(Clone, Debug)]
pub struct Walker<'a> {
    tokens: Tokens<'a>,
    stack: [usize; MAX_DEPTH],
    depth: usize,
}

impl<'a> Walker<'a> {
    /// Advances to the next node in document order; `Ok(None)` at the end.
    pub fn next_node(&mut self) -> Result<Option<Node<'a>>> {
        for t in self.tokens.by_ref() {
            let t = t?;
            match t.token {
                Token::BeginNode(name) => {
                    let slot = self.stack.get_mut(t.depth).ok_or(FdtError::TooDeep)?;
                    *slot = t.offset;
                    self.depth = t.depth + 1;
                    return Ok(Some(Node { fdt: self.tokens.fdt, offset: t.offset, body: t.next, name }));
                }
                Token::EndNode => self.depth = t.depth,
                Token::Prop { .. } => {}
                Token::End => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Offsets from the root to the node last returned (inclusive).
    pub fn chain(&self) -> &[usize] {
        &self.stack[..self.depth]
    }
}

/// A node of the tree.
#[derive(Clone, Copy, Debug)]
pub struct Node<'a> {
    fdt: Fdt<'a>,
    offset: usize,
    body: usize,
    name: &'a str,
}

impl<'a> Node<'a> {
    /// Full name, e.g. `pl011@9000000` (`""` for the root).
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Name without the unit address.
    pub fn base_name(&self) -> &'a str {
        self.name.split('@').next().unwrap_or(self.name)
    }

    /// Structure-block offset of the node's `FDT_BEGIN_NODE` token.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The tree this node belongs to.
    pub fn fdt(&self) -> &Fdt<'a> {
        &self.fdt
    }

    /// Properties of this node (not of its children).
    pub fn props(&self) -> Props<'a> {
        Props { tokens: self.fdt.tokens_inside(self.body) }
    }

    /// Value of property `name`, if present.
    pub fn prop(&self, name: &str) -> Result<Option<&'a [u8]>> {
        for p in self.props() {
            let (n, v) = p?;
            if n == name {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Property `name` as a u32 cell, if present.
    pub fn prop_u32(&self, name: &'static str) -> Result<Option<u32>> {
        match self.prop(name)? {
            Some(v) if v.len() == 4 => Ok(be32(v, 0)),
            Some(_) => Err(FdtError::BadPropLen(name)),
            None => Ok(None),
        }
    }

    /// Property `name` as a string, if present.
    pub fn prop_str(&self, name: &str) -> Result<Option<&'a str>> {
        match self.prop(name)? {
            Some(v) => prop_as_str(v).map(Some),
            None => Ok(None),
        }
    }

    /// True if `compatible` lists `compat`.
    pub fn is_compatible(&self, compat: &str) -> Result<bool> {
        match self.prop("compatible")? {
            Some(v) => Ok(StrList::new(v)?.contains(compat)),
            None => Ok(false),
        }
    }

    /// True unless `status` is present and neither `"okay"` nor `"ok"`.
    /// (`secure-status` is ignored: this is the Non-secure view.)
    pub fn is_enabled(&self) -> Result<bool> {
        match self.prop("status")? {
            Some(v) => {
                let s = prop_as_str(v)?;
                Ok(s == "okay" || s == "ok")
            }
            None => Ok(true),
        }
    }

    /// Direct children.
    pub fn children(&self) -> Children<'a> {
        Children { tokens: self.fdt.tokens_inside(self.body), fdt: self.fdt, done: false }
    }

    /// Structure offset just past this node's `FDT_END_NODE`.
    pub fn end_offset(&self) -> Result<usize> {
        let mut toks = self.fdt.tokens_at(self.offset);
        for t in toks.by_ref() {
            let t = t?;
            if t.token == Token::EndNode && t.depth == 0 {
                return Ok(t.next);
            }
        }
        Err(FdtError::BadStructure { offset: self.offset })
    }
}

/// Iterator over a node's properties: `(name, value)`.
#[derive(Clone, Debug)]
pub struct Props<'a> {
    tokens: Tokens<'a>,
}

impl<'a> Iterator for Props<'a> {
    type Item = Result<(&'a str, &'a [u8])>;
    fn next(&mut self) -> Option<Self::Item> {
        match self.tokens.next()? {
            Ok(TokenAt { token: Token::Prop { name, value }, .. }) => Some(Ok((name, value))),
            Ok(_) => {
                self.tokens.done = true;
                None
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// Iterator over a node's direct children.
#[derive(Clone, Debug)]
pub struct Children<'a> {
    tokens: Tokens<'a>,
    fdt: Fdt<'a>,
    done: bool,
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<Node<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        // The walk starts inside the parent (open = 1): children begin at
        // depth 1 and the parent's own EndNode is reported at depth 0.
        loop {
            match self.tokens.next() {
                Some(Ok(TokenAt { offset, next, depth: 1, token: Token::BeginNode(name) })) => {
                    return Some(Ok(Node { fdt: self.fdt, offset, body: next, name }))
                }
                Some(Ok(TokenAt { depth: 0, token: Token::EndNode, .. })) | None => {
                    self.done = true;
                    return None;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
