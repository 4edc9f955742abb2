//! porwatch: an EL2 hypervisor that runs one guest at EL1 and traces it.
//!
//! Layout: `arch/` is the mechanism (asm, system registers, MMU, vectors,
//! UART), the bottom floor that uses nothing above it; the decisions live in the porwatch-monitor crate (host-tested) and
//! the trace format in porwatch-trace. `boot.rs` is the start-up flow,
//! `traps.rs` the trap path, `psci.rs` the guest's SMC/HVC calls.
#![no_std]
#![no_main]

mod arch;
mod audit;
mod boot;
mod console;
mod cpu_view;
mod dma;
mod fatal;
mod gicr;
mod guest_access;
mod integrity;
mod placement;
mod por_sites;
mod psci;
mod pt;
mod run_end;
mod sysreg;
mod take_once;
mod tap;
mod trace_out;
mod traps;
mod unwind;
