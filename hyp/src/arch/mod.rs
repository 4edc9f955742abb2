//! Architecture mechanism: boot and vector assembly, system registers, the
//! EL2 stage-1 MMU, stage 2, the SMMUv3, the UART and semihosting.
//!
//! The bottom floor: nothing here uses the modules above it (boot, the trap
//! path, the tap, the page-table watch). What they decide is passed down as
//! arguments or set once at boot (e.g. `inject::set_mte`, `el2::GuestSetup`);
//! the only way up is the assembly's calls into the Rust entry points
//! (`hyp_main`, `handle_guest_exception`, `hyp_fault`, ...).
pub mod at;
pub mod code_shadow;
pub mod cpu;
pub mod debug;
pub mod el2;
pub mod el3;
pub mod fast_path;
pub mod frame;
pub mod gic_el3;
pub mod idregs;
pub mod inject;
pub mod layout;
pub mod mmu;
pub mod pen;
pub mod percpu;
pub mod pl011;
pub mod regs;
pub mod semihosting;
pub mod shadow_pages;
pub mod smmu;
pub mod stage2;
pub mod table_pool;
pub mod trampoline;

core::arch::global_asm!(
    include_str!("boot.S"),
    max_cpus = const porwatch_monitor::cpus::MAX_CPUS,
    pen_slot = const core::mem::size_of::<pen::PenSlot>(),
    pen_arrived = const core::mem::offset_of!(pen::PenSlot, arrived),
    pen_go = const core::mem::offset_of!(pen::PenSlot, go),
    pen_index = const core::mem::offset_of!(pen::PenSlot, index),
    pen_valid = const pen::PEN_VALID,
    stack_stride_lo = const layout::STACK_STRIDE & 0xffff,
    stack_stride_hi = const layout::STACK_STRIDE >> 16,
);
const _: () = assert!(layout::STACK_STRIDE >> 32 == 0);
use porwatch_monitor::flight::asm as flight;
core::arch::global_asm!(
    include_str!("vectors.S"),
    fp_enabled = const core::mem::offset_of!(fast_path::FastPath, enabled),
    fp_por_el1 = const core::mem::offset_of!(fast_path::FastPath, por_el1),
    fp_por_el0 = const core::mem::offset_of!(fast_path::FastPath, por_el0),
    fp_shadow_valid = const core::mem::offset_of!(fast_path::FastPath, shadow_valid),
    fp_shadow_elr = const core::mem::offset_of!(fast_path::FastPath, shadow_elr),
    fp_shadow_esr = const core::mem::offset_of!(fast_path::FastPath, shadow_esr),
    fp_stepping = const core::mem::offset_of!(fast_path::FastPath, stepping),
    fp_ram = const core::mem::offset_of!(fast_path::FastPath, ram),
    fp_step_page = const core::mem::offset_of!(fast_path::FastPath, step_page),
    fp_vbar = const core::mem::offset_of!(fast_path::FastPath, vbar),
    fp_prev_pc = const core::mem::offset_of!(fast_path::FastPath, prev_pc),
    fp_pt_iss = const core::mem::offset_of!(fast_path::FastPath, pt_iss),
    fp_pt_map = const core::mem::offset_of!(fast_path::FastPath, pt_map),
    fp_pt_map_pages = const core::mem::offset_of!(fast_path::FastPath, pt_map_pages),
    fp_pt_deny = const core::mem::offset_of!(fast_path::FastPath, pt_deny),
    fp_pt_pie = const core::mem::offset_of!(fast_path::FastPath, pt_pie),
    fp_deny_cache = const fast_path::DENY_CACHE_OFFSET,
    fp_pt_walk = const core::mem::offset_of!(fast_path::FastPath, pt_walk),
    fp_pt_walk_ram = const core::mem::offset_of!(fast_path::FastPath, pt_walk_ram),
    fp_pt_stores = const core::mem::offset_of!(fast_path::FastPath, pt_stores),
    fp_pt_busy = const core::mem::offset_of!(fast_path::FastPath, pt_busy),
    walk_half_shift = const fast_path::WALK_HALF_SHIFT,
    fp_tap_hvc = const core::mem::offset_of!(fast_path::FastPath, tap_hvc),
    fp_entry_slow = const core::mem::offset_of!(fast_path::FastPath, entry_slow),
    fp_resume = const core::mem::offset_of!(fast_path::FastPath, resume),
    fp_por_mode = const core::mem::offset_of!(fast_path::FastPath, por_mode),
    fp_native_msr = const core::mem::offset_of!(fast_path::FastPath, native_msr),
    fp_sync_dabt_slow = const core::mem::offset_of!(fast_path::FastPath, sync_dabt_slow),
    fp_sampling = const core::mem::offset_of!(fast_path::FastPath, sampling),
    fp_por_sample = const core::mem::offset_of!(fast_path::FastPath, por_sample),
    fp_cpacr_read = const core::mem::offset_of!(fast_path::FastPath, cpacr_read),
    fp_carrier = const core::mem::offset_of!(fast_path::FastPath, carrier),
    fp_deny_por = const core::mem::offset_of!(fast_path::FastPath, deny_por),
    fp_patch_countdown = const core::mem::offset_of!(fast_path::FastPath, patch_countdown),
    iss_msr_carrier = const porwatch_monitor::por_sites::carrier_write_iss(),
    iss_msr_carrier_el0 = const porwatch_monitor::por_sites::carrier_el0_write_iss(),
    fp_queue_len = const core::mem::offset_of!(fast_path::FastPath, queue_len),
    fp_queue = const core::mem::offset_of!(fast_path::FastPath, queue),
    queue_len = const fast_path::QUEUE_LEN,
    q_shift = const fast_path::QUEUE_SHIFT,
    q_entry = const fast_path::Q_ENTRY,
    q_por = const fast_path::Q_POR,
    q_arg_shift = const fast_path::Q_ARG_SHIFT,
    fp_ring = const core::mem::offset_of!(fast_path::FastPath, ring),
    fp_seq = const core::mem::offset_of!(fast_path::FastPath, seq),
    fp_win_open = const core::mem::offset_of!(fast_path::FastPath, win_open),
    fp_chain_entry = const core::mem::offset_of!(fast_path::FastPath, chain_entry),
    fp_chain_por = const core::mem::offset_of!(fast_path::FastPath, chain_por),
    fp_note_entry = const core::mem::offset_of!(fast_path::FastPath, note_entry),
    fp_shadow_new = const core::mem::offset_of!(fast_path::FastPath, shadow_new),
    fp_por_known = const core::mem::offset_of!(fast_path::FastPath, por_known),
    ring_next = const flight::RING_NEXT,
    ring_slots_off = const flight::RING_SLOTS,
    ring_recorded = const flight::RING_RECORDED,
    ring_lost_streamed = const flight::RING_LOST_STREAMED,
    ring_slots = const porwatch_monitor::flight::FLIGHT_SLOTS,
    ev_bytes = const flight::EVENT_BYTES,
    ev_seq = const flight::EV_SEQ,
    ev_kind = const flight::EV_KIND,
    ev_streamed = const flight::EV_STREAMED,
    ev_fields = const flight::EV_FIELDS,
    kind_exc_entry = const flight::KIND_EXC_ENTRY,
    kind_por_write = const flight::KIND_POR_WRITE,
    flight_stats_mask = const fast_path::FLIGHT_STATS_PERIOD - 1,
    por_virtual = const fast_path::POR_VIRTUAL,
    por_native = const fast_path::POR_NATIVE,
    deny_stale = const fast_path::DENY_STALE,
    tap_imm_base = const porwatch_monitor::trampoline::HVC_IMM_BASE,
);

unsafe extern "C" {
    /// vectors.S: loads the guest registers from `frame` and ERETs.
    pub fn enter_guest(frame: *mut frame::GuestRegs) -> !;
}
