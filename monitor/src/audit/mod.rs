//! The protection audit: which page-table pages can the guest kernel write
//! under its own restrictive POR_EL1 (docs/audit.md)?
//!
//! Kernel pkeys protect page tables by giving every mapping of a table page
//! a pkey that the kernel's everyday POR_EL1 makes read-only. A table page
//! that kept pkey 0 in one of its mappings (an alias) is writable by any
//! stray store, and the hazard rule never fires for it: the overlay grants
//! the write. The audit finds those pages before anything writes them:
//!
//! * [`rule`]: would a privileged write through this leaf be allowed under
//!   the audited POR (base permissions, then the overlay)?
//! * [`reverse`]: the reverse map from tracked table pages to their aliases,
//!   one walk per live regime; the tables' VA placement; stale pkeys (pages
//!   with the tables' pkey that are not tables).
//! * [`region`]: Linux's arm64 layout, to group the findings (used by the
//!   reader).
//!
//! Pure logic, no allocation: the hypervisor keeps the arrays in static
//! storage.

pub mod region;
pub mod reverse;
pub mod rule;

#[cfg(test)]
mod tests;

pub use region::{LinuxLayout, Region};
pub use reverse::{Alias, Audit, PageState, Root, Stale, StaleList, TablePage, Totals, WalkStats};
pub use rule::{AliasVerdict, AuditRule};
