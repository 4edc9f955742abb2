//! Record filters of `porwatch decode` / `porwatch run`: `--kind`, `--addr`,
//! `--pkey`, `--symbol`. All given filters must match for a record to be
//! shown; problems (corrupt frames, gaps, ...) and the summary are always
//! shown and the summary counts every record.

use porwatch_trace::{FieldValue, Record, KINDS};

use crate::symbols::{is_code_field, Symbolizer};

/// Fields `--addr` looks at.
pub const ADDR_FIELDS: &[&str] = &["va", "ipa", "pc", "elr", "far"];

/// Which records to show.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// `--kind`: only these record kinds.
    pub kinds: Option<Vec<String>>,
    /// `--addr LO-HI`: only records with a va/ipa/pc/elr/far field in
    /// `[lo, hi]` (inclusive).
    pub addr: Option<(u64, u64)>,
    /// `--pkey N`: only `hazard` records with `poindex` N.
    pub pkey: Option<u64>,
    /// `--symbol NAME`: only records whose symbolized PC/ELR is in NAME.
    pub symbol: Option<String>,
}

impl Filter {
    /// No filter given.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether `rec` is shown.
    pub fn matches(&self, rec: &Record<'_>, sym: Option<&Symbolizer>) -> bool {
        let kind = rec.event.kind_name();
        if let Some(kinds) = &self.kinds {
            if !kinds.iter().any(|k| k == kind) {
                return false;
            }
        }
        let u64s = || {
            rec.event.fields().filter_map(|(spec, v)| match v {
                FieldValue::U64(v) => Some((spec.name, v)),
                _ => None,
            })
        };
        if let Some((lo, hi)) = self.addr {
            if !u64s().any(|(n, v)| ADDR_FIELDS.contains(&n) && (lo..=hi).contains(&v)) {
                return false;
            }
        }
        if let Some(pkey) = self.pkey {
            if kind != "hazard" || !u64s().any(|(n, v)| n == "poindex" && v == pkey) {
                return false;
            }
        }
        if let Some(name) = &self.symbol {
            let Some(sym) = sym else { return false };
            let in_func =
                |v: u64| sym.symbols.lookup(v.wrapping_sub(sym.offset)).is_some_and(|h| h.name == name);
            if !u64s().any(|(n, v)| is_code_field(kind, n) && in_func(v)) {
                return false;
            }
        }
        true
    }
}

/// `--kind`: a known record kind name.
pub fn parse_kind(s: &str) -> Result<String, String> {
    if KINDS.iter().any(|k| k.name == s) || s == "unknown" {
        Ok(s.to_string())
    } else {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        Err(format!("unknown record kind {s:?} (kinds: {})", names.join(", ")))
    }
}

/// `--addr LO-HI` (hex, `0x` optional; inclusive).
pub fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (lo, hi) = s.split_once('-').ok_or_else(|| format!("{s:?} is not LO-HI"))?;
    let hex = |x: &str| {
        let h = x.trim().strip_prefix("0x").or_else(|| x.trim().strip_prefix("0X")).unwrap_or(x.trim());
        u64::from_str_radix(h, 16).map_err(|e| format!("{x:?} is not a hex address: {e}"))
    };
    let (lo, hi) = (hex(lo)?, hex(hi)?);
    if lo > hi {
        return Err(format!("{s:?}: LO is above HI"));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::Symbols;
    use porwatch_trace::Event;
    use std::sync::Arc;

    fn trap(elr: u64) -> Record<'static> {
        Record { cpu: 0, seq: 1, ts: 1, event: Event::Trap { esr: 0x5a00_0000, elr, outcome: 0 } }
    }

    fn hazard(poindex: u64) -> Record<'static> {
        Record {
            cpu: 0,
            seq: 2,
            ts: 2,
            event: Event::Hazard {
                va: 0x8000,
                ipa: 0x9000,
                level: 3,
                half: 1,
                old: 0,
                new: 0,
                pc: 0x1020,
                por: 0x17,
                poindex,
                perm: 1,
                unprivileged: 0,
                entry_seq: 0,
                por_seq: 0,
                action: 0,
                leaf_level: 3,
                pir: 0,
                trace_seq: 0,
                entry_trace_seq: 0,
            },
        }
    }

    #[test]
    fn each_filter() {
        assert!(Filter::default().is_empty());
        assert!(Filter::default().matches(&trap(0), None));
        let f = Filter { kinds: Some(vec!["hazard".into(), "psci".into()]), ..Default::default() };
        assert!(f.matches(&hazard(1), None) && !f.matches(&trap(0), None));
        let f = Filter { addr: Some((0x9000, 0x9fff)), ..Default::default() };
        assert!(f.matches(&hazard(1), None), "ipa in range");
        assert!(!f.matches(&trap(0x8000), None) && f.matches(&trap(0x9fff), None));
        let f = Filter { pkey: Some(1), ..Default::default() };
        assert!(f.matches(&hazard(1), None) && !f.matches(&hazard(2), None) && !f.matches(&trap(1), None));
        let syms = Symbolizer {
            symbols: Arc::new(Symbols::from_entries(vec![
                (0x1000, Some(0x40), "pageattr_pte_entry".into()),
                (0x2000, Some(0x40), "other".into()),
            ])),
            offset: 0x100,
            verbose: false,
        };
        let f = Filter { symbol: Some("pageattr_pte_entry".into()), ..Default::default() };
        assert!(!f.matches(&trap(0x1104), None), "no symbols: nothing matches");
        assert!(f.matches(&trap(0x1104), Some(&syms)), "KASLR offset applied");
        assert!(!f.matches(&trap(0x1004), Some(&syms)) && !f.matches(&trap(0x2104), Some(&syms)));
        assert!(!f.matches(&hazard(0), Some(&syms)), "hazard pc 0x1020 - offset is in no symbol");
        // Combined: all must match.
        let f = Filter { kinds: Some(vec!["trap".into()]), addr: Some((0, 0x10)), ..Default::default() };
        assert!(
            f.matches(&trap(0x10), None) && !f.matches(&trap(0x11), None) && !f.matches(&hazard(1), None)
        );
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_kind("hazard"), Ok("hazard".into()));
        assert!(parse_kind("hazzard").unwrap_err().contains("por_write"));
        assert_eq!(parse_range("0x1000-0x1fff"), Ok((0x1000, 0x1fff)));
        assert_eq!(parse_range("ffff0000-ffffffff"), Ok((0xffff_0000, 0xffff_ffff)));
        assert!(parse_range("0x2000-0x1000").is_err());
        assert!(parse_range("0x1000").is_err());
        assert!(parse_range("0xg-0x1").is_err());
    }
}
