//! The guest's stage-1 translation regime (EL1&0) as data, the tracker of
//! the guest's translation tables, and the permission-overlay hazard rule.
//!
//! * [`regime`]: TCR_EL1 / TTBRn_EL1 decoded into a [`Layout`] per half
//!   (4 KiB granule, 48-bit and 52-bit LPA2 VAs, start levels -1..=3);
//!   16 KiB / 64 KiB granules give [`Unsupported`] (a coverage gap to
//!   report).
//! * [`desc`]: 4 KiB-granule descriptors with and without LPA2 (DS), levels
//!   -1..=3: kind, table/output address, POIndex, PIIndex, AP, UXN/PXN.
//! * [`walk`]: a software walk to the leaf (PAR_EL1 has no POIndex) and the
//!   enumeration of every table reachable from a root.
//! * [`tracker`]: the set of table pages porwatch write-protects at stage 2,
//!   reference counted, with a bounded LRU of TTBR0 roots, explicit
//!   overflow, and per-descriptor splitting of partial and multi-descriptor
//!   stores.
//! * [`overlay`]: POR_EL1/POR_EL0 + TCR2_EL1 (+ PIR with S1PIE) → does the
//!   overlay grant write?
//!
//! The hazard check for a trapped store at VA `far` (IPA `ipa`):
//! `tracker.on_store(ipa, ..)` says whether it hit a tracked table;
//! `walk_regime(mem, far, &regime, ttbr0, ttbr1)` finds the leaf that maps
//! `far`; `overlay::verdict(&regs, leaf.desc, Privilege::Privileged)` says
//! whether POR_EL1 grants write to that leaf's pkey.
//!
//! Pure logic, no allocation, no panics on any input.

pub mod deny_cache;
pub mod desc;
pub mod overlay;
pub mod regime;
mod sorted_slots;
pub mod tracker;
pub mod walk;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

pub use overlay::{
    may_deny_write, perm_name, verdict, write_deny_mask, OverlayRegs, OverlayVerdict, Privilege,
};
pub use regime::{Half, Layout, Regime, Ttbr, Unsupported};
pub use tracker::{Action, RootMask, Stats, TableInfo, Tracker};
pub use walk::{for_each_table, walk, walk_regime, GuestMem, Leaf, TablePage, Visit, WalkError};
