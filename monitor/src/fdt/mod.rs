//! Flattened device tree (DTB) support for the hypervisor: reading, platform
//! discovery and rewriting the tree handed to the guest.
//!
//! Everything works on caller-provided slices, with no heap and no panics on
//! malformed input: every failure is an [`FdtError`].
//!
//! * [`reader`]: header validation, token walker, node lookup, property helpers.
//! * [`address`]: `reg`/`ranges` translation to CPU physical addresses.
//! * [`platform`]: [`discover`] fills a [`Platform`] (RAM, UARTs, GIC, PSCI,
//!   timer, /chosen, MMIO regions for stage 2).
//! * [`mod@rewrite`]: [`rewrite()`] produces the guest's DTB (remove nodes, carve
//!   hypervisor memory out of RAM, set bootargs, add reservations, drop
//!   properties).
//! * [`reserved`]: the RAM the tree says is taken (`/memreserve/`,
//!   `/reserved-memory`).
//! * [`dma`]: which devices can do DMA, and which of them the guest keeps
//!   (behind porwatch's SMMU) or loses (removed, unmapped at stage 2).

pub mod address;
pub mod dma;
pub mod platform;
pub mod reader;
pub mod reserved;
pub mod rewrite;

mod error;

pub use address::Region;
pub use error::FdtError;
pub use platform::{discover, Platform};
pub use reader::{Fdt, Node, Token};
pub use rewrite::{rewrite, Edits};

#[cfg(test)]
mod tests;
