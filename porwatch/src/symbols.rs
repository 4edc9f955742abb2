//! Guest symbolization: guest PCs as `func+0xoff/0xsize` (the kernel's
//! `%pS` style) from an AArch64 ELF (symbol table, plus DWARF line info for
//! `file:line` when present) or a Linux `System.map`.
//!
//! Symbols are kept at their link addresses; a KASLR offset (runtime minus
//! link address) is subtracted from each address before the lookup.

use std::borrow::Cow;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

/// One symbol: `[addr, addr + size)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub addr: u64,
    pub size: u64,
    pub name: String,
}

/// Where an address falls: `name+off/size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit<'a> {
    pub name: &'a str,
    pub off: u64,
    pub size: u64,
}

impl std::fmt::Display for Hit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{:#x}/{:#x}", self.name, self.off, self.size)
    }
}

type Reader = gimli::EndianArcSlice<gimli::RunTimeEndian>;

/// A symbol table (sorted by address, every size known) and, for an ELF
/// with DWARF, its line table.
pub struct Symbols {
    syms: Vec<Symbol>,
    /// addr2line's context caches lazily, hence the lock (it is `Send`, not `Sync`).
    lines: Option<Mutex<addr2line::Context<Reader>>>,
    /// What was loaded, for messages: `seed.elf (ELF, 52 symbols, line info)`.
    pub description: String,
    /// The kernel image `[_text, _end)` at link addresses, when both
    /// symbols are there (any type: `_end` is a bss symbol).
    pub kernel_image: Option<(u64, u64)>,
}

impl std::fmt::Debug for Symbols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbols")
            .field("symbols", &self.syms.len())
            .field("description", &self.description)
            .finish()
    }
}

impl Symbols {
    /// Builds a table from `(address, size if known, name)` entries. A
    /// symbol without a size (size 0, as assembly labels and System.map
    /// entries are) extends to the next higher symbol address, as kallsyms
    /// does; the last one gets size 0 and matches only its own address.
    pub fn from_entries(mut entries: Vec<(u64, Option<u64>, String)>) -> Self {
        entries.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.unwrap_or(0).cmp(&a.1.unwrap_or(0))));
        // One symbol per address: the first (largest explicit size) wins.
        entries.dedup_by(|b, a| a.0 == b.0);
        let mut syms = Vec::with_capacity(entries.len());
        for i in 0..entries.len() {
            let (addr, size, name) = &entries[i];
            let size = match size {
                Some(s) if *s > 0 => *s,
                _ => entries.get(i + 1).map_or(0, |next| next.0 - addr),
            };
            syms.push(Symbol { addr: *addr, size, name: name.clone() });
        }
        Symbols { syms, lines: None, description: String::new(), kernel_image: None }
    }

    /// Loads an ELF (recognised by its magic) or a System.map text file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let data = std::fs::read(path).with_context(|| format!("reading symbols {}", path.display()))?;
        let name = path.display().to_string();
        if data.starts_with(b"\x7fELF") {
            Self::from_elf(&data, &name)
        } else {
            let text = std::str::from_utf8(&data)
                .with_context(|| format!("{name}: neither an ELF nor a System.map text file"))?;
            Self::from_system_map(text, &name)
        }
    }

    /// Parses `System.map` lines: `ADDRESS TYPE NAME` (hex address, one-letter
    /// nm type). Only text symbols (`t`/`T`, `w`/`W`) are kept; ignored:
    /// absolute and data symbols.
    pub fn from_system_map(text: &str, name: &str) -> anyhow::Result<Self> {
        let mut entries = Vec::new();
        let (mut text_start, mut end) = (None, None);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(addr), Some(ty), Some(sym)) = (words.next(), words.next(), words.next()) else {
                bail!("{name}:{}: not a System.map line: {line:?}", n + 1);
            };
            let addr = u64::from_str_radix(addr.trim_start_matches("0x"), 16)
                .with_context(|| format!("{name}:{}: bad address {addr:?}", n + 1))?;
            if matches!(ty, "t" | "T" | "w" | "W") {
                entries.push((addr, None, sym.to_string()));
            }
            match sym {
                "_text" => text_start = Some(addr),
                "_end" => end = Some(addr),
                _ => {}
            }
        }
        if entries.is_empty() {
            bail!("{name}: no text symbols");
        }
        let mut s = Self::from_entries(entries);
        s.description = format!("{name} (System.map, {} symbols)", s.syms.len());
        s.kernel_image = image_range(text_start, end);
        Ok(s)
    }

    /// Reads the symbol table of an ELF (function and untyped text symbols;
    /// not `$x`/`$d` mapping symbols, sections or files) and its DWARF line
    /// table if it has one; assembly labels (untyped, size 0, in an executable
    /// section) count as functions. Rust names are demangled without their hash.
    pub fn from_elf(data: &[u8], name: &str) -> anyhow::Result<Self> {
        let obj = object::File::parse(data).with_context(|| format!("{name}: not a readable ELF"))?;
        let mut entries = Vec::new();
        let (mut text_start, mut end) = (None, None);
        for sym in obj.symbols() {
            let Ok(sname) = sym.name() else { continue };
            match sname {
                "_text" => text_start = Some(sym.address()),
                "_end" => end = Some(sym.address()),
                _ => {}
            }
            let text = matches!(sym.kind(), SymbolKind::Text)
                || (matches!(sym.kind(), SymbolKind::Unknown)
                    && sym.section_index().is_some_and(|i| is_exec(&obj, i)));
            // Not is_definition(): it rejects size-0 untyped symbols, i.e. assembly labels.
            if sym.is_undefined()
                || !text
                || sname.is_empty()
                || sname.starts_with('$')
                || sname.starts_with(".L")
            {
                continue;
            }
            let demangled = format!("{:#}", rustc_demangle::demangle(sname));
            entries.push((sym.address(), Some(sym.size()), demangled));
        }
        if entries.is_empty() {
            bail!("{name}: no text symbols (stripped?)");
        }
        let mut s = Self::from_entries(entries);
        s.kernel_image = image_range(text_start, end);
        s.lines = dwarf_context(&obj).map(Mutex::new);
        s.description = format!(
            "{name} (ELF, {} symbols, {})",
            s.syms.len(),
            if s.lines.is_some() { "line info" } else { "no line info" }
        );
        Ok(s)
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.syms.len()
    }

    /// No symbols at all.
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// Whether `file:line` lookups are possible (ELF with DWARF).
    pub fn has_lines(&self) -> bool {
        self.lines.is_some()
    }

    /// Link address of the symbol called `name`.
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.syms.iter().find(|s| s.name == name).map(|s| s.addr)
    }

    /// The symbol containing link address `addr`.
    pub fn lookup(&self, addr: u64) -> Option<Hit<'_>> {
        let i = self.syms.partition_point(|s| s.addr <= addr).checked_sub(1)?;
        let s = self.syms.get(i)?;
        let off = addr - s.addr;
        (off < s.size || off == 0).then_some(Hit { name: &s.name, off, size: s.size })
    }

    /// `file:line` of link address `addr`, from DWARF.
    pub fn location(&self, addr: u64) -> Option<String> {
        let ctx = self.lines.as_ref()?.lock().unwrap_or_else(|e| e.into_inner());
        let loc = ctx.find_location(addr).ok()??;
        let file = loc.file?;
        Some(match loc.line {
            Some(l) => format!("{file}:{l}"),
            None => file.to_string(),
        })
    }
}

/// `[_text, _end)` when both are known and in order.
fn image_range(text: Option<u64>, end: Option<u64>) -> Option<(u64, u64)> {
    match (text, end) {
        (Some(a), Some(b)) if a < b => Some((a, b)),
        _ => None,
    }
}

fn is_exec(obj: &object::File<'_>, index: object::SectionIndex) -> bool {
    obj.section_by_index(index).is_ok_and(|s| s.kind() == object::SectionKind::Text)
}

fn dwarf_context(obj: &object::File<'_>) -> Option<addr2line::Context<Reader>> {
    obj.section_by_name(".debug_line")?;
    let endian =
        if obj.is_little_endian() { gimli::RunTimeEndian::Little } else { gimli::RunTimeEndian::Big };
    let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
        let data = obj
            .section_by_name(id.name())
            .and_then(|s| s.uncompressed_data().ok())
            .unwrap_or(Cow::Borrowed(&[]));
        Ok(gimli::EndianArcSlice::new(Arc::from(&*data), endian))
    };
    let dwarf = gimli::Dwarf::load(load).ok()?;
    addr2line::Context::from_dwarf(dwarf).ok()
}

/// Symbols plus the KASLR offset in force: what the printers use.
#[derive(Clone, Debug)]
pub struct Symbolizer {
    pub symbols: Arc<Symbols>,
    /// Runtime address minus link address.
    pub offset: u64,
    /// Print `file:line` too (`-v`).
    pub verbose: bool,
}

impl Symbolizer {
    /// `func+0xoff/0xsize` of runtime address `addr`.
    pub fn sym(&self, addr: u64) -> Option<String> {
        self.symbols.lookup(addr.wrapping_sub(self.offset)).map(|h| h.to_string())
    }

    /// The kernel image `[_text, _end)` at runtime addresses.
    pub fn kernel_image(&self) -> Option<(u64, u64)> {
        self.symbols.kernel_image.map(|(a, b)| (a.wrapping_add(self.offset), b.wrapping_add(self.offset)))
    }

    /// Text form: `<func+0xoff/0xsize>`, or `<func+0xoff/0xsize at file:line>` when verbose.
    pub fn text(&self, addr: u64) -> Option<String> {
        let sym = self.sym(addr)?;
        let line = if self.verbose { self.symbols.location(addr.wrapping_sub(self.offset)) } else { None };
        Some(match line {
            Some(l) => format!("<{sym} at {l}>"),
            None => format!("<{sym}>"),
        })
    }
}

/// The code-address fields that are symbolized, by record kind.
pub fn is_code_field(kind: &str, field: &str) -> bool {
    matches!(
        (kind, field),
        ("trap" | "unknown_trap" | "exc_entry" | "exc_return", "elr")
            | ("por_write" | "tcr2_write" | "hazard" | "coverage_gap" | "call_trace", "pc")
            | ("call_trace", "lr")
            | ("guest_start", "entry")
            | ("tap_arm", "vbar")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Symbols {
        Symbols::from_entries(vec![
            (0x1000, Some(0x60), "pageattr_pte_entry".into()),
            (0x1080, None, "el1h_64_irq".into()),
            (0x1100, Some(0x10), "last".into()),
            (0x1080, None, "alias".into()),
        ])
    }

    #[test]
    fn lookup_and_format() {
        let t = table();
        assert_eq!(t.len(), 3, "one symbol per address");
        assert_eq!(t.lookup(0x1018).unwrap().to_string(), "pageattr_pte_entry+0x18/0x60");
        assert_eq!(t.lookup(0x1000).unwrap().to_string(), "pageattr_pte_entry+0x0/0x60");
        assert_eq!(t.lookup(0x1060), None, "past the explicit size");
        // Size inferred from the next symbol.
        assert_eq!(t.lookup(0x1084).unwrap().to_string(), "el1h_64_irq+0x4/0x80");
        assert_eq!(t.lookup(0x110f).unwrap().name, "last");
        assert_eq!(t.lookup(0x1110), None);
        assert_eq!(t.lookup(0xfff), None);
        assert_eq!(t.address_of("last"), Some(0x1100));
        assert!(!t.has_lines());
    }

    #[test]
    fn symbolizer_applies_offset() {
        let s = Symbolizer { symbols: Arc::new(table()), offset: 0x10_0000, verbose: true };
        assert_eq!(s.sym(0x10_1018).as_deref(), Some("pageattr_pte_entry+0x18/0x60"));
        assert_eq!(s.text(0x10_1018).as_deref(), Some("<pageattr_pte_entry+0x18/0x60>"), "no line info");
        assert_eq!(s.sym(0x1018), None);
    }

    #[test]
    fn system_map() {
        let map = "ffff800080000000 T _text\n\
                   ffff800080010000 T vectors\n\
                   ffff800080010800 t el1h_64_irq\n\
                   ffff800080011000 D some_data\n\
                   0000000000000000 A absolute\n\
                   ffff800080012000 W weak_fn\n\
                   ffff800080012040 T _etext\n";
        let s = Symbols::from_system_map(map, "System.map").unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s.address_of("vectors"), Some(0xffff_8000_8001_0000));
        assert_eq!(s.lookup(0xffff_8000_8001_0a00).unwrap().to_string(), "el1h_64_irq+0x200/0x1800");
        assert_eq!(s.lookup(0xffff_8000_8001_2004).unwrap().to_string(), "weak_fn+0x4/0x40");
        assert!(s.description.contains("System.map, 5 symbols"), "{}", s.description);
        assert!(Symbols::from_system_map("zz T x\n", "m").is_err());
        assert!(Symbols::from_system_map("1000 T\n", "m").is_err());
        assert!(Symbols::from_system_map("1000 D data\n", "m").is_err(), "no text symbols");
    }

    #[test]
    fn code_fields() {
        assert!(is_code_field("hazard", "pc"));
        assert!(is_code_field("tap_arm", "vbar"));
        assert!(is_code_field("exc_entry", "elr"));
        assert!(!is_code_field("hazard", "va"));
        assert!(!is_code_field("psci", "arg0"));
    }
}
