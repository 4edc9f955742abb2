//! porwatch's decisions, as plain data in and out: no registers, no asm.
//! Everything here builds for the host and is unit-tested with `cargo test`.
#![no_std]

pub mod audit;
pub mod cmdline;
pub mod cpus;
pub mod digest;
pub mod esr;
pub mod fdt;
pub mod flight;
pub mod gic;
pub mod gicr;
pub mod idregs;
pub mod inject;
pub mod layout;
pub mod pgtable;
pub mod por_sites;
pub mod psci;
pub mod s1;
pub mod smmu;
pub mod store;
pub mod sysreg;
pub mod tap;
pub mod trampoline;
pub mod unwind;
pub mod vpoe;
