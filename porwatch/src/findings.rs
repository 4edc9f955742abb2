//! What a trace found, across records: call traces (kept by seq for the
//! hazard reports), hazards grouped by site (PC plus call trace), and
//! protection audits with their lists. The printer feeds it every record;
//! the summary (text and JSON) reports it at the end.

use std::collections::{BTreeMap, HashMap};

use porwatch_trace::{Event, Record, AUDIT_STATUS_NAMES, AUDIT_TRIGGER_NAMES, POR_SOURCE_NAMES};

use crate::annotate::enum_text;

/// How many `call_trace` records are kept (the hazard and its cause entry
/// refer back to the last few).
pub const CALL_TRACES_KEPT: usize = 256;
/// How many audits are kept (a periodic audit may run thousands of times;
/// the summary shows the last ones).
pub const AUDITS_KEPT: usize = 16;

/// A `call_trace` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallTrace {
    pub seq: u64,
    /// `hazard` or `exc_entry`.
    pub of: u64,
    pub ref_seq: u64,
    pub pc: u64,
    pub lr: u64,
    pub fp: u64,
    /// `call_trace.end` (porwatch_trace::UnwindEnd).
    pub end: u64,
    pub frames: Vec<u64>,
}

impl CallTrace {
    /// The record's call trace, if it is a `call_trace` record.
    pub fn from_record(r: &Record<'_>) -> Option<Self> {
        let Event::CallTrace { of, ref_seq, pc, lr, fp, end, frames } = r.event else { return None };
        let frames = porwatch_trace::FieldValue::Bytes(frames).addrs().collect();
        Some(CallTrace { seq: r.seq, of, ref_seq, pc, lr, fp, end, frames })
    }
}

/// The hazards written at one site: the same PC and the same call trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    pub pc: u64,
    /// The call trace's return addresses (empty without one).
    pub frames: Vec<u64>,
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// One unprotected table of an audit (`audit_table`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditTable {
    pub ipa: u64,
    pub level: i64,
    /// `ttbr0` / `ttbr1`.
    pub half: u64,
    pub reached: bool,
    pub base: u64,
    pub first: u64,
    pub last: u64,
    pub alias: u64,
    pub alias_level: i64,
    pub poindex: u64,
    pub perm: u64,
    pub aliases: u64,
}

/// One stale-pkey leaf of an audit (`audit_stale`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditStale {
    pub va: u64,
    pub ipa: u64,
    pub level: i64,
    pub poindex: u64,
    pub pages: u64,
}

/// An `audit` record and the lists that follow it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AuditRun {
    pub seq: u64,
    pub trigger: String,
    pub status: String,
    pub por: u64,
    pub por_source: String,
    pub tables: u64,
    pub unprotected: u64,
    pub protected: u64,
    pub unmapped: u64,
    pub listed: u64,
    pub table_pkeys: u64,
    pub stale_leaves: u64,
    pub stale_pages: u64,
    pub stale_listed: u64,
    pub leaves: u64,
    pub ticks: u64,
    pub va_bits: u64,
    pub vbar: u64,
    pub list: Vec<AuditTable>,
    pub stale: Vec<AuditStale>,
}

impl AuditRun {
    /// Every listed record has arrived.
    pub fn complete(&self) -> bool {
        self.list.len() as u64 >= self.listed && self.stale.len() as u64 >= self.stale_listed
    }
}

/// What one record meant to the findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Nothing,
    /// A hazard; `first` when it is the first of its site.
    Hazard {
        first: bool,
    },
    /// An audit's last record arrived (or it had no list): it can be
    /// reported (its index in [`Findings::audits`]).
    AuditComplete(usize),
}

/// Everything found so far.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    /// Per CPU (seqs count per CPU), by seq.
    calls: BTreeMap<u32, BTreeMap<u64, CallTrace>>,
    /// Sites in order of their first hazard.
    pub sites: Vec<Site>,
    site_of: HashMap<(u64, Vec<u64>), usize>,
    /// The last [`AUDITS_KEPT`] audits, oldest first.
    pub audits: Vec<AuditRun>,
    /// The last audit still waits for listed records.
    filling: bool,
    /// Audits run in all (some may have been dropped from `audits`).
    pub audit_count: u64,
}

impl Findings {
    /// CPU `cpu`'s call trace with seq `seq`, if still kept.
    pub fn call(&self, cpu: u32, seq: u64) -> Option<&CallTrace> {
        if seq == 0 {
            return None;
        }
        self.calls.get(&cpu)?.get(&seq)
    }

    /// Takes note of one record.
    pub fn observe(&mut self, r: &Record<'_>) -> Seen {
        match r.event {
            Event::Header { .. } if r.seq == 0 => {
                // The hypervisor restarted: seqs start again.
                self.calls.clear();
                self.filling = false;
                Seen::Nothing
            }
            Event::CallTrace { .. } => {
                if let Some(c) = CallTrace::from_record(r) {
                    let calls = self.calls.entry(r.cpu).or_default();
                    calls.insert(r.seq, c);
                    while calls.len() > CALL_TRACES_KEPT {
                        calls.pop_first();
                    }
                }
                Seen::Nothing
            }
            Event::Hazard { pc, trace_seq, .. } => {
                let frames = self.call(r.cpu, trace_seq).map(|c| c.frames.clone()).unwrap_or_default();
                let key = (pc, frames);
                match self.site_of.get(&key) {
                    Some(&i) => {
                        let s = &mut self.sites[i];
                        s.count += 1;
                        s.last_seq = r.seq;
                        Seen::Hazard { first: false }
                    }
                    None => {
                        self.site_of.insert(key.clone(), self.sites.len());
                        self.sites.push(Site {
                            pc,
                            frames: key.1,
                            count: 1,
                            first_seq: r.seq,
                            last_seq: r.seq,
                        });
                        Seen::Hazard { first: true }
                    }
                }
            }
            Event::Audit {
                trigger,
                status,
                por,
                por_source,
                tables,
                unprotected,
                protected,
                unmapped,
                listed,
                table_pkeys,
                stale_leaves,
                stale_pages,
                stale_listed,
                leaves,
                ticks,
                va_bits,
                vbar,
            } => {
                self.audit_count += 1;
                self.audits.push(AuditRun {
                    seq: r.seq,
                    trigger: enum_text(AUDIT_TRIGGER_NAMES, trigger),
                    status: enum_text(AUDIT_STATUS_NAMES, status),
                    por,
                    por_source: enum_text(POR_SOURCE_NAMES, por_source),
                    tables,
                    unprotected,
                    protected,
                    unmapped,
                    listed,
                    table_pkeys,
                    stale_leaves,
                    stale_pages,
                    stale_listed,
                    leaves,
                    ticks,
                    va_bits,
                    vbar,
                    list: Vec::new(),
                    stale: Vec::new(),
                });
                if self.audits.len() > AUDITS_KEPT {
                    self.audits.remove(0);
                }
                self.filling = true;
                self.check_complete()
            }
            Event::AuditTable {
                ipa,
                level,
                half,
                reached,
                base,
                first,
                last,
                alias,
                alias_level,
                poindex,
                perm,
                aliases,
            } => match self.filling_audit() {
                Some(a) => {
                    a.list.push(AuditTable {
                        ipa,
                        level,
                        half,
                        reached: reached != 0,
                        base,
                        first,
                        last,
                        alias,
                        alias_level,
                        poindex,
                        perm,
                        aliases,
                    });
                    self.check_complete()
                }
                None => Seen::Nothing,
            },
            Event::AuditStale { va, ipa, level, poindex, pages } => match self.filling_audit() {
                Some(a) => {
                    a.stale.push(AuditStale { va, ipa, level, poindex, pages });
                    self.check_complete()
                }
                None => Seen::Nothing,
            },
            _ => Seen::Nothing,
        }
    }

    fn filling_audit(&mut self) -> Option<&mut AuditRun> {
        if self.filling {
            self.audits.last_mut()
        } else {
            None
        }
    }

    fn check_complete(&mut self) -> Seen {
        match self.audits.last() {
            Some(a) if self.filling && a.complete() => {
                self.filling = false;
                Seen::AuditComplete(self.audits.len() - 1)
            }
            _ => Seen::Nothing,
        }
    }

    /// An audit whose lists never completed (the trace ended first).
    pub fn unfinished_audit(&self) -> Option<usize> {
        (self.filling && !self.audits.is_empty()).then(|| self.audits.len() - 1)
    }

    /// Hazards in all.
    pub fn hazards(&self) -> u64 {
        self.sites.iter().map(|s| s.count).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `call_trace.frames` bytes.
    fn frames(frames: &[u64]) -> Vec<u8> {
        frames.iter().flat_map(|f| f.to_le_bytes()).collect()
    }

    fn hazard(seq: u64, pc: u64, trace_seq: u64) -> Record<'static> {
        Record {
            cpu: 0,
            seq,
            ts: 0,
            event: Event::Hazard {
                va: 0,
                ipa: 0,
                level: 3,
                half: 1,
                old: 0,
                new: 0,
                pc,
                por: 0x17,
                poindex: 1,
                perm: 1,
                unprivileged: 0,
                entry_seq: 0,
                por_seq: 0,
                action: 0,
                leaf_level: 3,
                pir: 0,
                trace_seq,
                entry_trace_seq: 0,
            },
        }
    }

    #[test]
    fn hazards_group_by_pc_and_call_trace() {
        let mut f = Findings::default();
        let a = frames(&[0x100, 0x200]);
        let b = frames(&[0x100, 0x300]);
        let ct = |seq, frames: &'static [u8]| Record {
            cpu: 0,
            seq,
            ts: 0,
            event: Event::CallTrace { of: 0, ref_seq: 0, pc: 0x10, lr: 0, fp: 0, end: 0, frames },
        };
        let a: &'static [u8] = Box::leak(a.into_boxed_slice());
        let b: &'static [u8] = Box::leak(b.into_boxed_slice());
        let seen: Vec<Seen> = [
            ct(1, a),
            hazard(2, 0x10, 1),
            ct(3, a),
            hazard(4, 0x10, 3),
            ct(5, b),
            hazard(6, 0x10, 5),
            hazard(7, 0x10, 0),
            hazard(8, 0x20, 0),
            hazard(9, 0x10, 0),
        ]
        .iter()
        .map(|r| f.observe(r))
        .collect();
        let firsts: Vec<bool> = seen
            .iter()
            .filter_map(|s| if let Seen::Hazard { first } = s { Some(*first) } else { None })
            .collect();
        assert_eq!(firsts, [true, false, true, true, true, false]);
        assert_eq!(f.sites.len(), 4);
        assert_eq!((f.sites[0].count, f.sites[0].first_seq, f.sites[0].last_seq), (2, 2, 4));
        assert_eq!(f.sites[0].frames, [0x100, 0x200]);
        assert_eq!(f.sites[1].frames, [0x100, 0x300]);
        assert_eq!((f.sites[2].count, f.sites[2].frames.len()), (2, 0), "untraced hazards: by PC");
        assert_eq!(f.hazards(), 6);
    }

    fn audit(seq: u64, listed: u64, stale_listed: u64) -> Record<'static> {
        Record {
            cpu: 0,
            seq,
            ts: 0,
            event: Event::Audit {
                trigger: 0,
                status: 0,
                por: 0x17,
                por_source: 2,
                tables: 20,
                unprotected: listed,
                protected: 20 - listed,
                unmapped: 0,
                listed,
                table_pkeys: 2,
                stale_leaves: stale_listed,
                stale_pages: stale_listed,
                stale_listed,
                leaves: 100,
                ticks: 1000,
                va_bits: 48,
                vbar: 0,
            },
        }
    }

    fn table(seq: u64, ipa: u64) -> Record<'static> {
        Record {
            cpu: 0,
            seq,
            ts: 0,
            event: Event::AuditTable {
                ipa,
                level: 3,
                half: 1,
                reached: 1,
                base: 0,
                first: 0,
                last: 0,
                alias: 0,
                alias_level: 3,
                poindex: 0,
                perm: 7,
                aliases: 1,
            },
        }
    }

    #[test]
    fn audits_complete_when_their_lists_have_arrived() {
        let mut f = Findings::default();
        assert_eq!(f.observe(&audit(1, 0, 0)), Seen::AuditComplete(0));
        assert_eq!(f.observe(&audit(2, 2, 1)), Seen::Nothing);
        assert_eq!(f.observe(&table(3, 0x1000)), Seen::Nothing);
        assert_eq!(f.unfinished_audit(), Some(1));
        assert_eq!(f.observe(&table(4, 0x2000)), Seen::Nothing);
        let stale = Record {
            cpu: 0,
            seq: 5,
            ts: 0,
            event: Event::AuditStale { va: 1, ipa: 2, level: 3, poindex: 1, pages: 1 },
        };
        assert_eq!(f.observe(&stale), Seen::AuditComplete(1));
        assert_eq!(f.unfinished_audit(), None);
        let a = &f.audits[1];
        assert_eq!(
            (a.trigger.as_str(), a.status.as_str(), a.por_source.as_str()),
            ("first_por", "done", "first_restrictive")
        );
        assert_eq!(a.list.iter().map(|t| t.ipa).collect::<Vec<_>>(), [0x1000, 0x2000]);
        assert_eq!(a.stale.len(), 1);
        // A stray list record (no audit waiting) is ignored.
        assert_eq!(f.observe(&table(6, 0x3000)), Seen::Nothing);
        assert_eq!(f.audits[1].list.len(), 2);
        for i in 0..AUDITS_KEPT as u64 + 3 {
            f.observe(&audit(10 + i, 0, 0));
        }
        assert_eq!(f.audits.len(), AUDITS_KEPT);
        assert_eq!(f.audit_count, AUDITS_KEPT as u64 + 5);
    }
}
