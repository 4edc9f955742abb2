//! The protection audit as a user reads it: counts first, then the
//! writable page-table pages grouped by what each table maps (Linux's
//! arm64 regions, porwatch_monitor::audit::region), then the stale pkeys.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use porwatch_monitor::audit::region::{self, LinuxLayout, Region, VA_RANGE};
use porwatch_trace::HALF_NAMES;

use crate::annotate::enum_text;
use crate::findings::{AuditRun, AuditTable};
use crate::hazard::perm_rwx;
use crate::symbols::Symbolizer;

/// The Linux layout the audit's tables are read against: the guest uses
/// its TTBR1 half (`va_bits` != 0). The kernel image comes from the
/// symbols (`_text`..`_end`), else it is wherever VBAR_EL1 points.
pub fn layout(a: &AuditRun, sym: Option<&Symbolizer>) -> Option<LinuxLayout> {
    let va_bits = u8::try_from(a.va_bits).ok()?;
    let upper = a.vbar & (1 << 55) != 0;
    let kimage = sym.and_then(|s| s.kernel_image()).or(upper.then(|| (a.vbar, a.vbar + 1)));
    LinuxLayout::new(va_bits, kimage)
}

/// What a table maps, as its group's name: `fixmap`, `vmemmap`, `user`,
/// `page-table roots`, `VA 0x40000000-0x7fffffff`, `not walked`.
pub fn group(t: &AuditTable, layout: Option<&LinuxLayout>) -> String {
    if !t.reached {
        return "not reached by a walk (an address space not installed)".to_string();
    }
    let ttbr1 = enum_text(HALF_NAMES, t.half) == "ttbr1";
    if t.level <= 0 && layout.is_none_or(|l| !ttbr1 || t.base == l.page_offset) && (ttbr1 || t.base == 0) {
        return "page-table roots".to_string();
    }
    match (layout, ttbr1) {
        (Some(l), true) => l.table_region(t.first, t.last).name().to_string(),
        (Some(_), false) => Region::User.name().to_string(),
        (None, _) => match region::va_range(t.first) {
            Region::VaRange(lo) => format!("VA {:#x}-{:#x}", lo, lo.wrapping_add(VA_RANGE - 1)),
            r => r.name().to_string(),
        },
    }
}

/// The unprotected tables by group, groups in order of their first table.
pub fn by_group<'a>(a: &'a AuditRun, layout: Option<&LinuxLayout>) -> Vec<(String, Vec<&'a AuditTable>)> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<&'a AuditTable>> = BTreeMap::new();
    for t in &a.list {
        let g = group(t, layout);
        if !groups.contains_key(&g) {
            order.push(g.clone());
        }
        groups.entry(g).or_default().push(t);
    }
    order.into_iter().map(|g| (g.clone(), groups.remove(&g).unwrap_or_default())).collect()
}

/// `pkey 1`, `pkeys 1, 2` from a bit mask.
fn pkeys(mask: u64) -> String {
    let v: Vec<String> = (0..8).filter(|i| mask & (1 << i) != 0).map(|i| i.to_string()).collect();
    match v.len() {
        0 => "no pkey".to_string(),
        1 => format!("pkey {}", v[0]),
        _ => format!("pkeys {}", v.join(", ")),
    }
}

fn por_source_words(s: &str) -> &'static str {
    match s {
        "option" => "given with porwatch.audit_por",
        "at_entry" => "the value the guest's exception entry installs",
        "first_restrictive" => "the first restrictive value the guest set",
        _ => "no restrictive value known",
    }
}

/// `2.6 ms` from counter ticks.
fn duration(ticks: u64, cntfrq: u64) -> String {
    if cntfrq == 0 {
        return format!("{ticks} ticks");
    }
    let us = ticks as u128 * 1_000_000 / cntfrq as u128;
    if us >= 1000 {
        format!("{}.{} ms", us / 1000, (us % 1000) / 100)
    } else {
        format!("{us} µs")
    }
}

/// One line for the summary: `audit first_por #57: 4 of 20 page-table
/// pages writable under POR_EL1=0x17 (fixmap 1, vmemmap 3); 1 stale-pkey
/// page`.
pub fn summary_line(a: &AuditRun, sym: Option<&Symbolizer>) -> String {
    let head = format!("audit {} #{}", a.trigger, a.seq);
    match a.status.as_str() {
        "no_overlays" => {
            return format!("{head}: nothing to audit (overlays off, or no restrictive POR_EL1)")
        }
        "no_tables" => return format!("{head}: nothing to audit (MMU off, or no page table tracked)"),
        _ => {}
    }
    let l = layout(a, sym);
    let groups: Vec<String> =
        by_group(a, l.as_ref()).iter().map(|(g, ts)| format!("{g} {}", ts.len())).collect();
    let groups = if groups.is_empty() { String::new() } else { format!(" ({})", groups.join(", ")) };
    let incomplete = if a.status == "incomplete" { " [incomplete]" } else { "" };
    format!(
        "{head}: {} of {} page-table pages writable under POR_EL1={:#x}{groups}; {} stale-pkey page{}{incomplete}",
        a.unprotected,
        a.tables,
        a.por,
        a.stale_pages,
        if a.stale_pages == 1 { "" } else { "s" }
    )
}

/// The report block (lines ending in `\n`).
pub fn report(a: &AuditRun, sym: Option<&Symbolizer>, cntfrq: u64) -> String {
    let mut s = String::new();
    let head = format!("porwatch: AUDIT ({}, #{})", a.trigger, a.seq);
    match a.status.as_str() {
        "no_overlays" => {
            let _ = writeln!(
                s,
                "{head}: nothing to audit: the overlay is off (TCR2_EL1.POE = 0), or no POR_EL1 value that \
                 protects anything is known (POR_EL1={:#x}: {})",
                a.por,
                por_source_words(&a.por_source)
            );
            return s;
        }
        "no_tables" => {
            let _ =
                writeln!(s, "{head}: nothing to audit: the guest's MMU is off or no page table is tracked");
            return s;
        }
        _ => {}
    }
    let _ = writeln!(
        s,
        "{head}: {} of {} page-table pages are writable under POR_EL1={:#x} ({})",
        a.unprotected,
        a.tables,
        a.por,
        por_source_words(&a.por_source)
    );
    let l = layout(a, sym);
    let groups = by_group(a, l.as_ref());
    if !groups.is_empty() {
        let counts: Vec<String> = groups.iter().map(|(g, ts)| format!("{g} {}", ts.len())).collect();
        let _ = writeln!(s, "  writable, by what the table maps: {}", counts.join(", "));
    }
    let _ = writeln!(
        s,
        "  protected {}, unmapped {}; the tables' {} ({}); {} stale-pkey page{}; {} leaves walked in {}",
        a.protected,
        a.unmapped,
        pkeys(a.table_pkeys),
        if a.table_pkeys == 0 {
            "no alias is protected by a pkey".to_string()
        } else {
            format!("mask {:#x}", a.table_pkeys)
        },
        a.stale_pages,
        if a.stale_pages == 1 { "" } else { "s" },
        a.leaves,
        duration(a.ticks, cntfrq)
    );
    if a.status == "incomplete" {
        let _ = writeln!(
            s,
            "  incomplete: the tracker overflowed or the walk ran out of budget; some tables may be missing"
        );
    }
    for (g, ts) in &groups {
        let _ = writeln!(s, "  {g}:");
        for t in ts {
            let maps = if t.reached { format!(" maps {:#x}-{:#x}", t.first, t.last) } else { String::new() };
            let _ = writeln!(
                s,
                "    table {:#x} (level {}, {}){maps}: writable through {:#x} (level {} leaf, pkey {}, {}; {} alias{})",
                t.ipa,
                t.level,
                enum_text(HALF_NAMES, t.half),
                t.alias,
                t.alias_level,
                t.poindex,
                perm_rwx(t.perm),
                t.aliases,
                if t.aliases == 1 { "" } else { "es" }
            );
        }
    }
    if a.unprotected > a.list.len() as u64 {
        let _ =
            writeln!(s, "  ... {} more not listed (porwatch lists 128)", a.unprotected - a.list.len() as u64);
    }
    if a.stale_pages > 0 {
        let _ = writeln!(
            s,
            "  stale pkeys: the tables' {} on pages that are not page tables:",
            pkeys(a.table_pkeys)
        );
        for st in &a.stale {
            let _ = writeln!(
                s,
                "    {:#x} -> {:#x} (level {} leaf, pkey {}): {} page{}",
                st.va,
                st.ipa,
                st.level,
                st.poindex,
                st.pages,
                if st.pages == 1 { "" } else { "s" }
            );
        }
        if a.stale_leaves > a.stale.len() as u64 {
            let _ = writeln!(s, "    ... {} more leaves not listed", a.stale_leaves - a.stale.len() as u64);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ipa: u64, level: i64, half: u64, base: u64, first: u64, last: u64) -> AuditTable {
        AuditTable {
            ipa,
            level,
            half,
            reached: true,
            base,
            first,
            last,
            alias: 0xffff_0000_0000_0000 + ipa,
            alias_level: 3,
            poindex: 0,
            perm: 7,
            aliases: 1,
        }
    }

    /// The audit kernel's four forgotten tables.
    fn run() -> AuditRun {
        AuditRun {
            seq: 57,
            trigger: "first_por".into(),
            status: "done".into(),
            por: 0x17,
            por_source: "first_restrictive".into(),
            tables: 20,
            unprotected: 4,
            protected: 16,
            unmapped: 0,
            listed: 4,
            table_pkeys: 2,
            stale_leaves: 1,
            stale_pages: 1,
            stale_listed: 1,
            leaves: 111,
            ticks: 2_616_850,
            va_bits: 48,
            vbar: 0x4400_3000,
            list: vec![
                t(0x4401_1000, 3, 1, 0xffff_fbff_fde0_0000, 0xffff_fbff_fdff_f000, 0xffff_fbff_fdff_ffff),
                t(0x4402_2000, 1, 1, 0xffff_fc80_0000_0000, 0xffff_fc80_0000_0000, 0xffff_fc80_3fff_ffff),
                t(0x4402_3000, 2, 1, 0xffff_fc80_0000_0000, 0xffff_fc80_0000_0000, 0xffff_fc80_001f_ffff),
                t(0x4402_4000, 3, 1, 0xffff_fc80_0000_0000, 0xffff_fc80_0000_0000, 0xffff_fc80_0000_0fff),
            ],
            stale: vec![crate::findings::AuditStale {
                va: 0xffff_0000_4402_7000,
                ipa: 0x4402_7000,
                level: 3,
                poindex: 1,
                pages: 1,
            }],
        }
    }

    #[test]
    fn report_counts_first_then_groups() {
        let r = report(&run(), None, 1_000_000_000);
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(
            lines[0],
            "porwatch: AUDIT (first_por, #57): 4 of 20 page-table pages are writable under POR_EL1=0x17 \
             (the first restrictive value the guest set)"
        );
        assert_eq!(lines[1], "  writable, by what the table maps: fixmap 1, vmemmap 3");
        assert!(lines[2].contains("protected 16, unmapped 0; the tables' pkey 1 (mask 0x2); 1 stale-pkey page; 111 leaves walked in 2.6 ms"), "{r}");
        assert_eq!(lines[3], "  fixmap:");
        assert!(lines[4].starts_with("    table 0x44011000 (level 3, ttbr1) maps 0xfffffbfffdfff000-0xfffffbfffdffffff: writable through 0xffff000044011000 (level 3 leaf, pkey 0, rwx; 1 alias)"), "{r}");
        assert_eq!(lines[5], "  vmemmap:");
        assert_eq!(lines.iter().filter(|l| l.starts_with("    table ")).count(), 4);
        assert_eq!(
            lines[lines.len() - 2],
            "  stale pkeys: the tables' pkey 1 on pages that are not page tables:"
        );
        assert_eq!(
            lines[lines.len() - 1],
            "    0xffff000044027000 -> 0x44027000 (level 3 leaf, pkey 1): 1 page"
        );
        assert_eq!(
            summary_line(&run(), None),
            "audit first_por #57: 4 of 20 page-table pages writable under POR_EL1=0x17 (fixmap 1, vmemmap 3); 1 stale-pkey page"
        );
    }

    #[test]
    fn groups_without_linux_layout_and_special_cases() {
        let mut a = run();
        a.va_bits = 0;
        a.list = vec![t(0x4401_0000, 3, 0, 0x4400_0000, 0x4400_0000, 0x441f_ffff)];
        assert_eq!(by_group(&a, None)[0].0, "VA 0x40000000-0x7fffffff");
        let l = LinuxLayout::new(48, None).unwrap();
        assert_eq!(group(&t(1, 0, 1, l.page_offset, l.page_offset, u64::MAX), Some(&l)), "page-table roots");
        assert_eq!(group(&t(1, 3, 0, 0x40_0000, 0x40_0000, 0x40_0fff), Some(&l)), "user");
        let mut nw = t(1, 3, 1, 0, 0, 0);
        nw.reached = false;
        assert!(group(&nw, Some(&l)).starts_with("not reached"));
        // The kernel image from VBAR_EL1 when the symbols do not say.
        let mut k = run();
        k.vbar = 0xffff_8000_8001_0800;
        let lk = layout(&k, None).unwrap();
        assert_eq!(
            group(
                &t(1, 3, 1, 0xffff_8000_8000_0000, 0xffff_8000_8000_0000, 0xffff_8000_801f_ffff),
                Some(&lk)
            ),
            "kernel image"
        );
        a.status = "no_overlays".into();
        assert!(report(&a, None, 0).contains("nothing to audit: the overlay is off"));
        assert!(
            summary_line(&a, None).ends_with("nothing to audit (overlays off, or no restrictive POR_EL1)")
        );
        a.status = "no_tables".into();
        assert_eq!(report(&a, None, 0).lines().count(), 1);
        assert_eq!(duration(1500, 1_000_000), "1.5 ms");
        assert_eq!(duration(15, 1_000_000), "15 µs");
        assert_eq!(pkeys(0b110), "pkeys 1, 2");
    }
}
