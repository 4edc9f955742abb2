//! The hazard report: a kernel-splat-style block printed before each
//! `hazard` record in text mode, naming the descriptor fields the write
//! changed, the overlay permission that forbids it, the fault the hardware
//! would raise, and the cause chain (the exception entry and the POR write
//! the record points at, by seq).

use std::fmt::Write as _;

use porwatch_trace::{FieldValue, Record, HALF_NAMES, VECTOR_NAMES};

use crate::annotate::enum_text;
use crate::esr;
use crate::symbols::Symbolizer;

/// One field of a 4 KiB-granule stage-1 descriptor: name, low bit, width.
const DESCRIPTOR_FIELDS: &[(&str, u32, u32)] = &[
    ("valid", 0, 1),
    ("table/page", 1, 1),
    ("AttrIndx", 2, 3),
    ("AP", 6, 2),
    ("SH", 8, 2),
    ("AF", 10, 1),
    ("nG", 11, 1),
    ("output address", 12, 36),
    ("DBM", 51, 1),
    ("PXN", 53, 1),
    ("UXN", 54, 1),
    ("POIndex", 60, 3),
];

/// The fields of a table descriptor (levels -1..2, bits [1:0] = 0b11).
const TABLE_FIELDS: &[(&str, u32, u32)] = &[
    ("next-level table", 12, 36),
    ("PXNTable", 59, 1),
    ("UXNTable", 60, 1),
    ("APTable", 61, 2),
    ("NSTable", 63, 1),
];

fn bits(v: u64, lo: u32, width: u32) -> u64 {
    (v >> lo) & ((1u64 << width) - 1)
}

/// What a descriptor is, at the level of the table that holds it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum DescKind {
    /// Bit 0 = 0: the hardware ignores every other bit.
    Invalid,
    /// Bits [1:0] = 0b01 at level 3: reserved, treated as invalid.
    Reserved,
    Table,
    Block,
    Page,
}

impl DescKind {
    fn of(d: u64, level: i64) -> Self {
        match (d & 0b11, level) {
            (0b00 | 0b10, _) => DescKind::Invalid,
            (0b01, 3) => DescKind::Reserved,
            (0b01, _) => DescKind::Block,
            (_, 3) => DescKind::Page,
            // 0b11 at levels -1..2 (or a level the record does not give).
            (_, l) if (-1..3).contains(&l) => DescKind::Table,
            _ => DescKind::Page,
        }
    }

    fn name(self) -> &'static str {
        match self {
            DescKind::Invalid => "invalid",
            DescKind::Reserved => "reserved",
            DescKind::Table => "table",
            DescKind::Block => "block",
            DescKind::Page => "page",
        }
    }

    /// The fields the hardware reads in a descriptor of this kind (none for
    /// an invalid or reserved one).
    fn fields(self) -> &'static [(&'static str, u32, u32)] {
        match self {
            DescKind::Invalid | DescKind::Reserved => &[],
            DescKind::Table => TABLE_FIELDS,
            DescKind::Block | DescKind::Page => &DESCRIPTOR_FIELDS[2..],
        }
    }
}

fn field_text(name: &str, lo: u32, v: u64) -> String {
    if name == "output address" || name == "next-level table" {
        format!("{name} {:#x}", v << lo)
    } else {
        format!("{name} {v}")
    }
}

/// The descriptor fields that differ between `old` and `new`, a descriptor
/// of a level-`level` table, in bit order: `valid 1->0`, `AF 0->1`,
/// `POIndex 1->0`, `output address 0x44033000->0x44034000` (the address
/// shown as a physical address), `other bits 0x..` for bits no field
/// covers. Fields are decoded only where the hardware reads them: an
/// invalid descriptor (bit 0 = 0) is shown whole, not field by field, and
/// a table descriptor has its own fields. When the kind changes
/// (`invalid -> page`) the new descriptor's non-zero fields are listed.
pub fn changed_fields(old: u64, new: u64, level: i64) -> Vec<String> {
    let (ko, kn) = (DescKind::of(old, level), DescKind::of(new, level));
    let mut out = Vec::new();
    if ko != kn {
        out.push(format!("{} -> {}", ko.name(), kn.name()));
        for (kind, d) in [(ko, old), (kn, new)] {
            if kind.fields().is_empty() {
                out.push(format!("{} {d:#x} (not decoded)", kind.name()));
            }
        }
        // What the hardware reads from now on (nothing, if now invalid).
        for &(name, lo, width) in kn.fields() {
            let v = bits(new, lo, width);
            if v != 0 {
                out.push(field_text(name, lo, v));
            }
        }
        return out;
    }
    if ko.fields().is_empty() {
        if old != new {
            out.push(format!("{} {old:#x}->{new:#x} (not decoded)", ko.name()));
        }
        return out;
    }
    let mut covered = 0b11u64;
    for &(name, lo, width) in ko.fields() {
        let mask = ((1u64 << width) - 1) << lo;
        covered |= mask;
        let (a, b) = (bits(old, lo, width), bits(new, lo, width));
        if a == b {
            continue;
        }
        out.push(if name == "output address" || name == "next-level table" {
            format!("{name} {:#x}->{:#x}", a << lo, b << lo)
        } else {
            format!("{name} {a}->{b}")
        });
    }
    let other = (old ^ new) & !covered;
    if other != 0 {
        out.push(format!("other bits {other:#x}"));
    }
    out
}

/// A 4-bit overlay permission as `rwx` letters (R = 1, X = 2, W = 4);
/// `reserved(0xN)` for the 0b1xxx encodings.
pub fn perm_rwx(perm: u64) -> String {
    if perm & !7 != 0 {
        return format!("reserved({perm:#x})");
    }
    let r = if perm & 1 != 0 { 'r' } else { '-' };
    let w = if perm & 4 != 0 { 'w' } else { '-' };
    let x = if perm & 2 != 0 { 'x' } else { '-' };
    format!("{r}{w}{x}")
}

/// `hazard.pir`: S1PIE was on; the low 4 bits are the PIR entry.
const PIR_ON: u64 = 0x10;
/// The PIR value whose base permission is RWX with WXN (Arm ARM R_HJYGR).
const PIR_RWX_WXN: u64 = 0b0110;

/// What a permission means for a store, for the verdict line; `pir` is the
/// record's `pir` field (S1PIE).
fn perm_words(perm: u64, pir: u64) -> &'static str {
    match perm {
        // With WXN an overlay that grants X loses W (R_NPBXC).
        6 | 7 if pir == PIR_ON | PIR_RWX_WXN => "loses write to WXN (S1PIE entry 0b0110)",
        0 => "has no access",
        1 => "is read-only",
        2 => "is execute-only",
        3 => "is read/execute only",
        _ if perm & !7 != 0 => "has a reserved permission",
        _ => "lacks write",
    }
}

/// The ESR of the overlay permission fault the hardware raises for this
/// store at EL1: EC 0x25 (data abort, current EL), IL, WnR, DFSC =
/// permission fault at `leaf_level` (0x0c + level), ISS2.Overlay (bit 38).
pub fn overlay_fault_esr(leaf_level: u64) -> u64 {
    (1u64 << 38) | (0x25 << 26) | (1 << 25) | (1 << 6) | (0x0c + leaf_level.min(3))
}

/// `IRQ`, `FIQ`, `SError`, `synchronous exception` from a vector name.
fn exception_kind(vector: &str) -> &'static str {
    match vector.split('_').next() {
        Some("irq") => "IRQ",
        Some("fiq") => "FIQ",
        Some("serror") => "SError",
        Some("sync") => "synchronous exception",
        _ => "exception",
    }
}

/// Indent of the kernel-style ESR decoding under a report line.
const DECODE_INDENT: &str = "            ";

/// Appends [`esr::kernel_decode`] of `esr`, one indented line each.
fn push_kernel_decode(s: &mut String, esr: u64) {
    for line in esr::kernel_decode(esr) {
        let _ = writeln!(s, "{DECODE_INDENT}{line}");
    }
}

fn u(rec: &Record<'_>, name: &str) -> u64 {
    match rec.event.field(name) {
        Some(FieldValue::U64(v)) => v,
        Some(FieldValue::I64(v)) => v as u64,
        _ => 0,
    }
}

fn i(rec: &Record<'_>, name: &str) -> i64 {
    match rec.event.field(name) {
        Some(FieldValue::I64(v)) => v,
        Some(FieldValue::U64(v)) => v as i64,
        _ => 0,
    }
}

/// `0x440018c4 <func+0x38/0xb0>` (or just the hex without symbols).
fn addr(sym: Option<&Symbolizer>, a: u64) -> String {
    match sym.and_then(|s| s.text(a)) {
        Some(t) => format!("{a:#x} {t}"),
        None => format!("{a:#x}"),
    }
}

/// An `exc_entry` record and the VBAR_EL1 in force when it was taken (from
/// the latest `tap_arm`), if known.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    pub record: &'a Record<'a>,
    pub vbar: Option<u64>,
}

/// The report block for hazard `h` (lines ending in `\n`). `entry` and
/// `por` are the records `h.entry_seq` and `h.por_seq` name, when the
/// printer still has them.
pub fn report(
    h: &Record<'_>,
    entry: Option<Entry<'_>>,
    por: Option<&Record<'_>>,
    sym: Option<&Symbolizer>,
) -> String {
    let mut s = String::new();
    let (old, new, por_val, poindex, perm) =
        (u(h, "old"), u(h, "new"), u(h, "por"), u(h, "poindex"), u(h, "perm"));
    let reg = if u(h, "unprivileged") != 0 { "POR_EL0" } else { "POR_EL1" };
    let (entry_seq, por_seq) = (u(h, "entry_seq"), u(h, "por_seq"));
    let _ = writeln!(s, "porwatch: HAZARD: page-table write under an insufficient permission overlay");
    let _ = writeln!(
        s,
        "  write:  pc={}  va={:#x}  ipa={:#x}  level {} table ({})",
        addr(sym, u(h, "pc")),
        u(h, "va"),
        u(h, "ipa"),
        i(h, "level"),
        enum_text(HALF_NAMES, u(h, "half"))
    );
    let changed = changed_fields(old, new, i(h, "level"));
    let changed = if changed.is_empty() { "nothing".to_string() } else { changed.join(", ") };
    let _ = writeln!(s, "          old={old:#x} -> new={new:#x}  (changed: {changed})");
    let level = i(h, "leaf_level").clamp(0, 3) as u64;
    let fault = overlay_fault_esr(level);
    let pir = u(h, "pir");
    let pie = if pir & PIR_ON != 0 {
        format!(" with S1PIE entry {:#x} (the overlay applies)", pir & 0xf)
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "  overlay: pkey {poindex} perm {} under {reg}={por_val:#x}{pie} (hardware would fault: ESR {fault:#018x}: \
         data abort, level {level} permission fault, Overlay=1)",
        perm_rwx(perm)
    );
    push_kernel_decode(&mut s, fault);
    // Cause chain.
    // The cause entry's ESR, kernel-style, when ESR_EL1 means something.
    let mut entry_decode = String::new();
    let entry_line = match (entry_seq, entry) {
        (0, _) => "no exception entry before this write".to_string(),
        (seq, None) => format!("#{seq} exc_entry (not in this trace)"),
        (seq, Some(e)) => {
            let vector_n = u(e.record, "vector");
            let vector = enum_text(VECTOR_NAMES, vector_n);
            let slot =
                e.vbar.map(|v| format!(" (vector {})", addr(sym, v + vector_n * 0x80))).unwrap_or_default();
            let esr_v = u(e.record, "esr");
            let esr_text = match exception_kind(&vector) {
                kind @ ("IRQ" | "FIQ") => {
                    let _ = writeln!(
                        entry_decode,
                        "{DECODE_INDENT}(ESR not decoded: an {kind} does not write ESR_EL1, so the value is stale)"
                    );
                    "stale".to_string()
                }
                _ => {
                    push_kernel_decode(&mut entry_decode, esr_v);
                    esr::describe(esr_v)
                }
            };
            format!(
                "#{seq} exc_entry {vector}{slot} ESR={esr_v:#x} ({esr_text}) at elr={}",
                addr(sym, u(e.record, "elr"))
            )
        }
    };
    let por_line = match (por_seq, por) {
        (0, _) => "no POR write before this write".to_string(),
        (seq, None) => format!("#{seq} por_write (not in this trace)"),
        (seq, Some(p)) => format!(
            "#{seq} por_write {:#x} -> {:#x} at pc={} (at_entry={})",
            u(p, "old"),
            u(p, "new"),
            addr(sym, u(p, "pc")),
            u(p, "at_entry")
        ),
    };
    let _ = writeln!(s, "  cause:  {entry_line}");
    s.push_str(&entry_decode);
    let _ = writeln!(s, "          {por_line}");
    // Verdict.
    let set_by = match por {
        Some(p) if u(p, "new") == por_val && u(p, "at_entry") == 1 => {
            let kind = match entry {
                Some(e) if u(p, "entry_seq") == entry_seq => {
                    exception_kind(&enum_text(VECTOR_NAMES, u(e.record, "vector")))
                }
                _ => "exception",
            };
            format!(" set by exception-entry code of {kind} #{}", u(p, "entry_seq"))
        }
        Some(p) if u(p, "new") == por_val => format!(" set at pc={} (#{por_seq})", addr(sym, u(p, "pc"))),
        _ if por_seq == 0 => " (not written by the guest in this trace)".to_string(),
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        "  verdict: the write happens under {reg} {por_val:#x}{set_by}; pkey {poindex} {}",
        perm_words(perm, pir)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::Symbols;
    use porwatch_trace::Event;
    use std::sync::Arc;

    #[test]
    fn descriptor_diff() {
        // The seed's write: POIndex 1 -> 0, nothing else.
        assert_eq!(changed_fields(0x1060_0000_4403_3703, 0x0060_0000_4403_3703, 3), ["POIndex 1->0"]);
        assert_eq!(
            changed_fields(0x0060_0000_4403_3703, 0x0060_0000_4403_4703, 3),
            ["output address 0x44033000->0x44034000"]
        );
        // A page made invalid: the new value is not decoded field by field.
        assert_eq!(
            changed_fields(0x0060_0000_4403_3703, 0x0060_0000_4403_4302, 3),
            ["page -> invalid", "invalid 0x60000044034302 (not decoded)"]
        );
        // A page installed: its fields, as the hardware will read them.
        let pte = (1 << 54) | (1 << 53) | (1 << 51) | (2 << 8) | (1 << 6) | (5 << 2) | (1 << 11) | 3;
        assert_eq!(
            changed_fields(0, pte, 3),
            [
                "invalid -> page",
                "invalid 0x0 (not decoded)",
                "AttrIndx 5",
                "AP 1",
                "SH 2",
                "nG 1",
                "DBM 1",
                "PXN 1",
                "UXN 1"
            ]
        );
        // Software bits of an invalid descriptor (Linux's swap entries).
        assert_eq!(changed_fields(0, 1 << 55, 3), ["invalid 0x0->0x80000000000000 (not decoded)"]);
        assert_eq!(changed_fields(0x1004, 0x2008, 2), ["invalid 0x1004->0x2008 (not decoded)"]);
        assert_eq!(changed_fields(0, 1 << 55 | 3, 3), ["invalid -> page", "invalid 0x0 (not decoded)"]);
        // A table descriptor (level 0-2) has table fields, not AttrIndx/AP/SH.
        assert_eq!(
            changed_fields(0x4403_3003, 0x8000_0000_4403_4003, 1),
            ["next-level table 0x44033000->0x44034000", "NSTable 0->1"]
        );
        assert_eq!(
            changed_fields(0x4403_3003, 0x4403_3001, 1),
            ["table -> block", "output address 0x44033000"]
        );
        assert_eq!(
            changed_fields(0x4403_3001, 0x4403_3003, 3),
            ["reserved -> page", "reserved 0x44033001 (not decoded)", "output address 0x44033000"]
        );
        assert!(changed_fields(7, 7, 3).is_empty());
    }

    #[test]
    fn perms_and_esr() {
        assert_eq!(perm_rwx(0x1), "r--");
        assert_eq!(perm_rwx(0x7), "rwx");
        assert_eq!(perm_rwx(0x5), "rw-");
        assert_eq!(perm_rwx(0x0), "---");
        assert_eq!(perm_rwx(0x8), "reserved(0x8)");
        assert_eq!(overlay_fault_esr(3), 0x0000_0040_9600_004f, "the seed's ESR");
        assert_eq!(overlay_fault_esr(2), 0x0000_0040_9600_004e);
    }

    fn seed_records() -> (Record<'static>, Record<'static>, Record<'static>) {
        let entry = Record {
            cpu: 0,
            seq: 91,
            ts: 0,
            event: Event::ExcEntry {
                vector: 5,
                esr: 0x200_0000,
                elr: 0x4400_14d8,
                spsr: 0x2000_0345,
                far: 0,
                por: 0x57,
                depth: 0,
            },
        };
        let por = Record {
            cpu: 0,
            seq: 92,
            ts: 0,
            event: Event::PorWrite {
                pc: 0x4400_4860,
                reg: 0,
                old: 0x57,
                new: 0x17,
                at_entry: 1,
                entry_seq: 91,
                sampled: 0,
            },
        };
        let hazard = Record {
            cpu: 0,
            seq: 93,
            ts: 0,
            event: Event::Hazard {
                va: 0xffff_0000_4403_2198,
                ipa: 0x4403_2198,
                level: 3,
                half: 1,
                old: 0x1060_0000_4403_3703,
                new: 0x0060_0000_4403_3703,
                pc: 0x4400_18c4,
                por: 0x17,
                poindex: 1,
                perm: 1,
                unprivileged: 0,
                entry_seq: 91,
                por_seq: 92,
                action: 0,
                leaf_level: 3,
                pir: 0,
                trace_seq: 0,
                entry_trace_seq: 0,
            },
        };
        (entry, por, hazard)
    }

    #[test]
    fn splat_block() {
        let (entry, por, hazard) = seed_records();
        let syms = Symbols::from_entries(vec![
            (0x4400_188c, Some(0xb0), "pageattr_pte_entry".into()),
            (0x4400_1448, Some(0x1f8), "__vunmap_range_noflush".into()),
            (0x4400_4000, None, "kentry_vectors".into()),
            (0x4400_4280, None, "el1h_64_irq".into()),
            (0x4400_4800, None, "kentry_entry".into()),
            (0x4400_4860, None, "kentry_entry_por_msr".into()),
            (0x4400_4894, None, "kentry_exit".into()),
        ]);
        let sym = Symbolizer { symbols: Arc::new(syms), offset: 0, verbose: false };
        let e = Entry { record: &entry, vbar: Some(0x4400_4000) };
        let r = report(&hazard, Some(e), Some(&por), Some(&sym));
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(lines.len(), 18, "{r}");
        assert_eq!(lines[0], "porwatch: HAZARD: page-table write under an insufficient permission overlay");
        assert!(lines[1].contains("pc=0x440018c4 <pageattr_pte_entry+0x38/0xb0>"), "{r}");
        assert!(lines[1].contains("va=0xffff000044032198  ipa=0x44032198  level 3 table (ttbr1)"), "{r}");
        assert!(lines[2].contains("(changed: POIndex 1->0)"), "{r}");
        assert!(lines[3].contains("pkey 1 perm r-- under POR_EL1=0x17"), "{r}");
        assert!(lines[3].contains("ESR 0x000000409600004f"), "{r}");
        // The fault, kernel-style, indented under the overlay line.
        let decoded: Vec<&str> =
            lines[4..14].iter().map(|l| l.strip_prefix(DECODE_INDENT).unwrap()).collect();
        assert_eq!(decoded, esr::kernel_decode(0x0000_0040_9600_004f), "{r}");
        assert_eq!(lines[5], "              ESR = 0x000000409600004f");
        assert_eq!(lines[13], "              GCS = 0, Overlay = 1, DirtyBit = 0, Xs = 0");
        assert!(
            lines[14].contains("#91 exc_entry irq_el1h (vector 0x44004280 <el1h_64_irq+0x0/0x580>)"),
            "{r}"
        );
        assert!(
            lines[14].contains("ESR=0x2000000 (stale) at elr=0x440014d8 <__vunmap_range_noflush+0x90/0x1f8>")
        );
        assert_eq!(
            lines[15],
            "            (ESR not decoded: an IRQ does not write ESR_EL1, so the value is stale)"
        );
        assert!(lines[16].contains(
            "#92 por_write 0x57 -> 0x17 at pc=0x44004860 <kentry_entry_por_msr+0x0/0x34> (at_entry=1)"
        ));
        assert_eq!(
            lines[17],
            "  verdict: the write happens under POR_EL1 0x17 set by exception-entry code of IRQ #91; pkey 1 is read-only"
        );
    }

    #[test]
    fn splat_without_cause_records_or_symbols() {
        let (_, _, hazard) = seed_records();
        let r = report(&hazard, None, None, None);
        assert!(r.contains("pc=0x440018c4  va="), "{r}");
        assert!(r.contains("#91 exc_entry (not in this trace)"), "{r}");
        assert!(r.contains("#92 por_write (not in this trace)"), "{r}");
        assert!(r.contains("verdict: the write happens under POR_EL1 0x17; pkey 1 is read-only"), "{r}");
    }

    #[test]
    fn s1pie_wxn_is_named() {
        let (_, _, mut hazard) = seed_records();
        if let Event::Hazard { perm, pir, .. } = &mut hazard.event {
            (*perm, *pir) = (7, PIR_ON | PIR_RWX_WXN);
        }
        let r = report(&hazard, None, None, None);
        assert!(r.contains("perm rwx under POR_EL1=0x17 with S1PIE entry 0x6 (the overlay applies)"), "{r}");
        assert!(r.contains("pkey 1 loses write to WXN (S1PIE entry 0b0110)"), "{r}");
        // Without S1PIE (pir 0, as in traces from before the field) nothing changes.
        let (_, _, plain) = seed_records();
        assert!(!report(&plain, None, None, None).contains("S1PIE"));
    }

    #[test]
    fn synchronous_cause_entry_esr_is_decoded() {
        let (mut entry, por, hazard) = seed_records();
        // A sync_el1h entry (vector 4) for an SVC #1.
        if let Event::ExcEntry { vector, esr, .. } = &mut entry.event {
            *vector = 4;
            *esr = 0x5600_0001;
        }
        let r = report(&hazard, Some(Entry { record: &entry, vbar: None }), Some(&por), None);
        let cause = r.find("  cause:").unwrap();
        let after: Vec<&str> = r[cause..].lines().skip(1).take(4).collect();
        assert_eq!(
            after,
            [
                "            Exception info:",
                "              ESR = 0x0000000056000001",
                "              EC = 0x15: SVC (AArch64), IL = 32 bits",
                "              ISS = 0x00000001, ISS2 = 0x00000000"
            ],
            "{r}"
        );
        assert!(!r.contains("not decoded"), "{r}");
    }
}
