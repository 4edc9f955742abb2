//! State for the fast paths in vectors.S (`lower_sync`): virtual POE, the
//! tap's single steps, stores to last-level page tables, and TCR_EL1 reads.
//!
//! Under virtual POE every guest `MRS/MSR POR_EL1` at EL1 UNDEFs, and the
//! guest's fetch of its EL1h synchronous vector faults to EL2 (the tap). The
//! Rust path for that (save every register, decode ESR, lock the tap, read
//! the instruction, emulate, restore) costs ~270 instructions; vectors.S
//! completes the two common cases itself in ~60, saving only x0-x5: a read
//! of POR_EL1, and a write of the value it already holds (kpkeys code sets
//! the level it is already at); likewise for POR_EL0 from EL1 (Linux 6.12
//! reads it, and writes it back unchanged, at every context switch). Anything
//! else -- a change of value (it is traced, POR_EL1's with the entry-window
//! rule, POR_EL0's changes `pt_deny`), an access from EL0, the tap stepping --
//! goes the full way.
//!
//! The second fast path is the tap's single step: while the tap steps the
//! guest through its vector page (tap.rs), every instruction traps. A step
//! that lands inside the page and not on a vector slot only means "step
//! again": vectors.S sets SPSR_EL2.SS, records the PC (`prev_pc`) and
//! returns, ~25 instructions instead of ~160. A step onto a slot (maybe an
//! exception taken during the step) or out of the page goes to Rust.
//!
//! The third is the page-table watch's common store (pt.rs) at EL1,
//! little-endian, naturally aligned, to a page that holds one last-level
//! table (`LEAF_PAGES`, kept by pt.rs from `Tracker::is_leaf_page`: such a
//! store never changes what is tracked): a single general-purpose register
//! store (`STR`/`STUR`/`STLR` of 1-8 bytes, no writeback: the CPU describes
//! it in ESR_EL2, ISV = 1), or a 64-bit SWP, LD<op> or CAS (the instruction
//! is read), which EL2 performs as the same atomic on the same location.
//! vectors.S finds the IPA with `AT S1E1R`, checks the overlay (below),
//! performs the store and counts it (`pt_stores`): 87-135 instructions,
//! 171-176 for an atomic, instead of ~1,400-2,400 (docs/costs.md). Everything else
//! -- STP, DC ZVA, exclusives, writeback forms, stores to higher-level
//! tables, EL0, a step in progress -- and every possible hazard take the
//! Rust path.
//!
//! The overlay check is exact for the hazard rule: `pt_deny` holds, for
//! SCTLR_EL1.WXN = 0 and 1, the POIndex values through which a privileged
//! or an unprivileged write could be denied (`s1::write_deny_mask`). When
//! only an unprivileged one could be, the leaf's AP[1] says whether EL0 may
//! access the page at all (if not, an STTR would have faulted at stage 1),
//! else the instruction is read: ESR does not tell STR from STTR (Linux's
//! kernel threads run with POR_EL0 = 0, which denies every pkey to STTR but
//! not the kernel's own stores). When no write can be denied (overlays
//! off, as in stock Linux, or native POE: there a write that
//! reaches a stage-2 fault already passed the CPU's own overlay check) no
//! walk is needed. Otherwise vectors.S walks the guest's stage-1 tables
//! (`pt_walk`, from the TTBR/TCR writes pt.rs sees) to the leaf mapping FAR
//! and goes to Rust when its POIndex bit is set; a walk it cannot finish
//! (invalid, outside guest RAM, a level -1/0 block) goes to Rust too.
//!
//! `pt_deny` depends on POR_EL1, POR_EL0 and TCR2_EL1 only (both WXN
//! variants are in it). When the assembly changes POR_EL1 it takes the new
//! value's mask from `deny_cache` (monitor s1::deny_cache: the masks Rust
//! last computed, for the POR_EL0 and TCR2_EL1 in force), else marks it
//! stale until Rust computes it: a kpkeys kernel's two values both hit.
//!
//! With S1PIE on (TCR2_EL1.PIE), `pt_deny` assumes every PIR entry applies
//! the overlay, with WXN (a superset of what can deny: `s1::write_deny_mask`):
//! a store through a POIndex it names goes to Rust, which reads PIR_EL1 /
//! PIRE0_EL1 and decides exactly. `pt_pie` only stops the AP[1] shortcut
//! (bit 6 is PIIndex[0] then).
//!
//! The fourth is a trapped `MRS Xt, TCR_EL1`: under virtual POE with the
//! guest's TCR2_EL1 in the hardware (QEMU 11: S1PIE), the FGT bit that traps
//! TCR2_EL1 reads also traps TCR_EL1's, which LPA2 kernels read all the time;
//! vectors.S returns the register itself.
//!
//! The tap and pt.rs publish what the assembly needs into this per-CPU
//! block (the first member of the CPU's [`super::percpu::PerCpu`], which
//! TPIDR_EL2 points at); only the CPU itself reads or writes its block, at
//! EL2, never concurrently. `LEAF_PAGES` is shared (the tracker is global).
use super::percpu::{self, block as percpu_block};
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU64, Ordering};
use porwatch_monitor::s1::deny_cache::{DenyCache, DENY_CACHE_ENTRIES};
use porwatch_monitor::s1::{self, Layout};
use tock_registers::interfaces::Writeable;

use porwatch_monitor::cpus::MAX_CPUS;
/// Guest RAM ranges the assembly checks before it reads the instruction
/// (later ones take the Rust path). vectors.S unrolls exactly 4.
pub const RAM_RANGES: usize = 4;
/// Guest RAM the leaf-page bitmap covers from the start of the largest RAM
/// range: all of it (porwatch refuses more RAM, layout::MAX_GUEST_RAM).
const LEAF_MAP_BYTES: u64 = porwatch_monitor::layout::MAX_GUEST_RAM;
const PAGE_SHIFT: u32 = 12;
const LEAF_MAP_PAGES: u64 = LEAF_MAP_BYTES >> PAGE_SHIFT;
/// Words of the leaf-page bitmap (pt/open_leaves.rs keeps one alike).
pub const LEAF_MAP_WORDS: usize = (LEAF_MAP_PAGES / 64) as usize;
/// ESR_EL2 bits the store fast path requires (`pt_iss`): ISV = 1 (a single
/// register, no writeback: SAS/SRT/AR valid), VNCR/SET/FnV/EA/CM/S1PTW = 0,
/// WnR = 1, DFSC = permission fault (any level), ISS2 = 0.
const ISS_MASK: u64 = (0xff_ffff << 32) | (1 << 24) | 0x3ffc;
const ISS_WANT: u64 = (1 << 24) | (1 << 6) | 0x0c;
/// `pt_iss.1` while the store fast path is off: no ESR matches it.
const ISS_NEVER: u64 = u64::MAX;

/// One CPU's block. Layout shared with vectors.S (offsets passed to it).
#[derive(Clone, Copy)]
#[repr(C, align(64))] // blocks of different CPUs never share a cache line
pub struct FastPath {
    /// Non-zero: virtual POE, the tap armed and not stepping.
    pub enabled: u64,
    /// The virtual POR_EL1.
    pub por_el1: u64,
    /// The virtual POR_EL0 (only Rust changes it: a change is traced and
    /// alters `pt_deny`'s inputs).
    pub por_el0: u64,
    /// Non-zero: the shadow registers below are valid (the innermost
    /// exception's ELR/SPSR/ESR/FAR_EL1, which the UNDEF overwrote).
    pub shadow_valid: u64,
    pub shadow_elr: u64,
    pub shadow_spsr: u64,
    pub shadow_esr: u64,
    pub shadow_far: u64,
    /// Non-zero: the tap is single-stepping the guest through `step_page`.
    pub stepping: u64,
    /// Guest RAM [start, end) (unused: 0, 0).
    pub ram: [(u64, u64); RAM_RANGES],
    /// The VA page being stepped through.
    pub step_page: u64,
    /// The guest's vector table (VBAR_EL1, bits [10:0] clear), while the
    /// tap steps or its trampoline is armed.
    pub vbar: u64,
    /// The PC of the last step; written by the assembly, read back by the
    /// tap when it takes its lock.
    pub prev_pc: u64,
    /// ESR_EL2 (mask, value) a fast store must match (one LDP).
    pub pt_iss: (u64, u64),
    /// `LEAF_PAGES` and the IPA of its bit 0 (one LDP), then its length in
    /// pages.
    pub pt_map: (u64, u64),
    pub pt_map_pages: u64,
    /// POIndex bits that may deny a write: privileged accesses in byte 0
    /// (SCTLR_EL1.WXN = 0) and byte 1 (WXN = 1), unprivileged ones (STTR*)
    /// in bytes 2 and 3 (0: no walk).
    pub pt_deny: u64,
    /// Non-zero: the guest's TCR2_EL1.PIE is set (descriptor bit 6 is not
    /// AP[1]).
    pub pt_pie: u64,
    /// Per half (TTBR0, TTBR1; VA bit 55 picks).
    pub pt_walk: [WalkHalf; 2],
    /// Guest RAM the walk reads tables from: (start, size) (one LDP).
    pub pt_walk_ram: (u64, u64),
    /// Stores the assembly completed (added into pt_stats).
    pub pt_stores: u64,
    /// Non-zero while the store fast path may store to a page it found in
    /// `LEAF_PAGES` (set before it reads the bitmap, cleared after the store
    /// or when it gives up): see [`quiesce`].
    pub pt_busy: u64,
    /// The overlay registers `pt_deny` holds the mask of (virtual POE):
    /// POR_EL1, which the assembly also writes when it changes POR_EL1 and
    /// the mask with it, and (POR_EL0, TCR2_EL1), which only Rust changes.
    /// A publish whose registers differ takes the mask from the cache again
    /// (a hit: nothing recomputed). Were the assembly's change not
    /// recorded, Rust setting POR_EL1 back to the value it last computed
    /// the mask of (a kpkeys entry's reset after a raise) would keep the
    /// raised level's mask, and stores would pass the fast path unchecked.
    pub deny_por: u64,
    deny_regs: (u64, u64),
    /// `pt_deny` for recent POR_EL1 values, which Rust fills and the
    /// assembly looks a new value up in (monitor s1::deny_cache).
    deny_cache: DenyCache,
    /// Non-zero: the tap's trampoline is armed (and the tap not stepping):
    /// the assembly recognises its hooks' HVCs. An exception entry then
    /// completes there (queued, the guest resumed at `resume[slot]`) unless
    /// `entry_slow`; virtual POE's UNDEFs complete there either way.
    pub tap_hvc: u64,
    /// Non-zero: entries go to Rust (exception returns are traced: the
    /// shadow stack lives in Rust).
    pub entry_slow: u64,
    /// Flight mode (docs/flight.md "The hot path"): this CPU's flight ring
    /// (a `porwatch_monitor::flight::FlightRing`), which the assembly
    /// pushes completed entries and POR_EL1 changes into itself, numbered
    /// from `seq` (the CPU's sequence counter, trace_out `SEQ`); 0: they
    /// are queued for Rust instead.
    pub ring: u64,
    pub seq: u64,
    /// The entry window (monitor::tap::EntryWindow), kept here for the
    /// assembly: 1 while it is open (a POR_EL1 change now would be
    /// at_entry: the assembly records it itself unless it takes write away,
    /// monitor flight::streams_transition, which Rust streams).
    pub win_open: u64,
    /// Non-zero: POR_EL1 changes go to Rust even in flight mode (the
    /// protection audit learns the kernel's values), unless the new value is
    /// one of `por_known` (values the audit has no use for; 0, which grants
    /// nothing, when there are none).
    pub por_slow: u64,
    /// The seq of this CPU's latest exc_entry and por_write (the cause
    /// chain: tap.rs `cause_chain`), and the latest entry's call-trace
    /// note: seq, ELR, x29, x30 (unwind.rs).
    pub chain_entry: u64,
    pub chain_por: u64,
    pub note_entry: [u64; 4],
    /// Non-zero: the assembly wrote the shadow registers since Rust last
    /// looked (tap.rs takes them into its shadow stack).
    pub shadow_new: u64,
    /// See `por_slow` (one LDP).
    pub por_known: (u64, u64),
    /// Where the guest resumes after slot s's hook (its displaced
    /// instruction out of line, or the target of a `B`).
    pub resume: [u64; SLOTS],
    /// What the assembly records as the POR_EL1 in force at an entry:
    /// [`POR_NONE`], [`POR_VIRTUAL`] (`por_el1`) or [`POR_NATIVE`] (the
    /// register).
    pub por_mode: u64,
    /// Non-zero: native POE traps POR_EL1 writes (`porwatch.por=trap`) and
    /// the assembly completes them, queueing the changes.
    pub native_msr: u64,
    /// Non-zero: synchronous entries whose ESR_EL1 is a data abort from EL1
    /// go to Rust (native POE with the page-table watch: an overlay fault on
    /// a table is a hazard).
    pub sync_dabt_slow: u64,
    /// Non-zero: native POE sampling (`porwatch.por=sample`): a store the
    /// assembly would complete goes to Rust when POR_EL1 is no longer
    /// `por_sample`, the value Rust last sampled.
    pub sampling: u64,
    pub por_sample: u64,
    /// Virtual POE: (non-zero, the bits to OR into the hardware CPACR_EL1):
    /// the assembly completes the guest's trapped `MRS CPACR_EL1` itself
    /// (Linux reads it on every syscall) with the virtual E0POE merged in,
    /// as sysreg.rs would. (0, 0): reads go to Rust.
    pub cpacr_read: (u64, u64),
    /// Non-zero: SCXTNUM_EL1 carries the virtual POR_EL1 at patched sites
    /// (monitor por_sites.rs): the assembly completes the carrier's trapped
    /// writes as POR_EL1 writes and keeps the register equal to `por_el1`.
    pub carrier: u64,
    /// Virtual POR_EL1 accesses that UNDEF count this down; the one that
    /// would reach 0 goes to Rust, which patches its site and sets it again
    /// (u64::MAX: never, sites are not patched).
    pub patch_countdown: u64,
    /// Records the assembly made, for Rust to emit in order at its next
    /// trap (tap.rs `drain`): `queue_len` of `queue` are valid.
    pub queue_len: u64,
    pub queue: [[u64; QUEUE_WORDS]; QUEUE_LEN],
}

/// Vector slots (the tap's hooks).
pub const SLOTS: usize = porwatch_monitor::trampoline::SLOTS;
/// Records the assembly may queue before it hands over to Rust.
pub const QUEUE_LEN: usize = 32;
/// Words per queued record (vectors.S: `Q_SHIFT`).
pub const QUEUE_WORDS: usize = 16;
pub const QUEUE_SHIFT: usize = 7;
/// Queued record kinds (word 0's low byte; the high bits carry the slot or
/// the register): an exception entry (ts, ELR, SPSR, ESR, FAR, POR_EL1, and
/// the interrupted code's x29 and x30 for its call trace) and a POR change
/// (ts, PC, old, new).
pub const Q_ENTRY: u64 = 1;
pub const Q_POR: u64 = 2;
pub const Q_ARG_SHIFT: u32 = 8;
/// Flight mode: a `flight_stats` record every this many ring events of a
/// CPU (trace_out); the assembly leaves the push that makes one due to
/// Rust.
pub const FLIGHT_STATS_PERIOD: u64 = 65_536;
const _: () = assert!(FLIGHT_STATS_PERIOD.is_power_of_two());
/// `por_mode` values.
pub const POR_NONE: u64 = 0;
pub const POR_VIRTUAL: u64 = 1;
pub const POR_NATIVE: u64 = 2;
/// `pt_deny` after the assembly changed POR_EL1 to a value the cache does
/// not hold: every POIndex may deny, so stores walk and go to Rust until
/// the tap computes the mask.
pub use porwatch_monitor::s1::deny_cache::DENY_STALE;

/// Where vectors.S finds the deny cache (a private field: only Rust fills
/// it).
pub const DENY_CACHE_OFFSET: usize = offset_of!(FastPath, deny_cache);

/// One half's walk parameters. Layout shared with vectors.S.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct WalkHalf {
    /// The root table (0: the assembly does not walk this half).
    pub root: u64,
    /// The start level's index: `(va >> shift) & index_mask`.
    pub shift: u64,
    pub index_mask: u64,
    /// Where vectors.S's `walk_entry` continues: start level + 1, plus
    /// [`ENTRY_NO_DS`] without TCR_EL1.DS (no NLTA[51:50] check).
    pub entry: u64,
}

/// log2 of `size_of::<WalkHalf>()` (vectors.S indexes the halves with it).
pub const WALK_HALF_SHIFT: usize = 5;
const ENTRY_NO_DS: u64 = 5;

impl WalkHalf {
    const OFF: Self = Self { root: 0, shift: 0, index_mask: 0, entry: 0 };
}

// vectors.S gets the offsets from Rust (arch/mod.rs); what it assumes
// beyond them: pairs it loads with one LDP, the unrolled RAM check, the
// walk's half stride, and immediates that fit LDP's scaled offsets.
const _: () = {
    assert!(offset_of!(FastPath, shadow_spsr) == offset_of!(FastPath, shadow_elr) + 8);
    assert!(offset_of!(FastPath, shadow_far) == offset_of!(FastPath, shadow_esr) + 8);
    assert!(RAM_RANGES == 4);
    assert!(size_of::<WalkHalf>() == 1 << WALK_HALF_SHIFT);
    assert!(offset_of!(WalkHalf, shift) == 8 && offset_of!(WalkHalf, entry) == 24);
    assert!(offset_of!(FastPath, pt_walk_ram) < 504 && offset_of!(FastPath, pt_walk) + 48 < 504);
    // The flight ring's fields stored in pairs (STP reaches 504).
    assert!(offset_of!(FastPath, chain_por) == offset_of!(FastPath, chain_entry) + 8);
    assert!(offset_of!(FastPath, por_slow) == offset_of!(FastPath, win_open) + 8);
    assert!(offset_of!(FastPath, note_entry) + 24 < 504);
    // The deny cache: (value, mask) pairs, each one LDP.
    assert!(DENY_CACHE_ENTRIES == 2 && offset_of!(FastPath, deny_cache) + 16 < 504);
    assert!(offset_of!(DenyCache, entries) == 0);
    assert!(offset_of!(FastPath, ring) % 8 == 0 && offset_of!(FastPath, por_known) < 496);
    // Queued entries copy (ELR, SPSR) and (ESR, FAR) to the shadow pair by
    // pair; the queue is reached with an ADD immediate.
    assert!(size_of::<[u64; QUEUE_WORDS]>() == 1 << QUEUE_SHIFT);
    assert!(offset_of!(FastPath, queue) < 4096);
};

impl FastPath {
    pub const OFF: Self = Self {
        enabled: 0,
        por_el1: 0,
        por_el0: 0,
        shadow_valid: 0,
        shadow_elr: 0,
        shadow_spsr: 0,
        shadow_esr: 0,
        shadow_far: 0,
        stepping: 0,
        ram: [(0, 0); RAM_RANGES],
        step_page: 0,
        vbar: 0,
        prev_pc: 0,
        pt_iss: (ISS_MASK, ISS_NEVER),
        pt_map: (0, 0),
        pt_map_pages: 0,
        pt_deny: 0,
        pt_pie: 0,
        pt_walk: [WalkHalf::OFF; 2],
        pt_walk_ram: (0, 0),
        pt_stores: 0,
        pt_busy: 0,
        deny_por: 0,
        deny_regs: (0, 0),
        deny_cache: DenyCache::EMPTY,
        tap_hvc: 0,
        entry_slow: 0,
        ring: 0,
        seq: 0,
        win_open: 0,
        por_slow: 1,
        chain_entry: 0,
        chain_por: 0,
        note_entry: [0; 4],
        shadow_new: 0,
        por_known: (0, 0),
        resume: [0; SLOTS],
        por_mode: POR_NONE,
        native_msr: 0,
        sync_dabt_slow: 0,
        sampling: 0,
        por_sample: 0,
        cpacr_read: (0, 0),
        carrier: 0,
        patch_countdown: u64::MAX,
        queue_len: 0,
        queue: [[0; QUEUE_WORDS]; QUEUE_LEN],
    };
}

/// What the tap publishes.
pub struct Published<'a> {
    pub enabled: bool,
    pub por_el1: u64,
    /// (ELR, SPSR, ESR, FAR)_EL1 of the innermost exception, if known.
    pub shadow: Option<(u64, u64, u64, u64)>,
    /// Some((page, vbar, prev_pc)) while the tap single-steps.
    pub stepping: Option<(u64, u64, u64)>,
    /// Virtual POE's (POR_EL1, POR_EL0, TCR2_EL1), for `pt_deny` (None:
    /// not virtual POE; `pt_deny` stays 0).
    pub overlay: Option<(u64, u64, u64)>,
    /// Some((vector table VA, resume addresses)): entries through the
    /// trampoline may complete in the assembly.
    pub hooks: Option<(u64, &'a [u64; SLOTS])>,
    /// The entry window: (latest entry's seq, open).
    pub window: (u64, bool),
    /// POR_EL1 changes that must go to Rust in flight mode: None, or all
    /// but these (the audit learns, and has no use for them).
    pub por_slow: Option<[Option<u64>; 2]>,
    /// Virtual POE: the bits a CPACR_EL1 read adds to the hardware value
    /// (the virtual E0POE); None: reads go to Rust.
    pub cpacr_or: Option<u64>,
}

/// CPU `cpu`'s block.
fn block(cpu: usize) -> *mut FastPath {
    // SAFETY: `fast` is a member of the CPU's PerCpu (see percpu).
    unsafe { &raw mut (*percpu_block(cpu)).fast }
}

/// Pages of guest RAM holding one last-level table each (bit set: stores
/// there may take the fast path). Bit i is the page at `pt_map.1 + i * 4 KiB`.
static LEAF_PAGES: [AtomicU64; LEAF_MAP_WORDS] = [const { AtomicU64::new(0) }; LEAF_MAP_WORDS];

/// Guest RAM for every CPU's block (boot, before the guest runs).
pub fn set_ram(ranges: &[(u64, u64)]) {
    // The store path covers the largest range (on QEMU virt, RAM above
    // porwatch's own reservation); tables elsewhere take the Rust path.
    let (lo, size) = ranges.iter().map(|&(s, e)| (s, e - s)).max_by_key(|r| r.1).unwrap_or((0, 0));
    for cpu in 0..MAX_CPUS {
        // SAFETY: boot, single-threaded.
        let b = unsafe { &mut *block(cpu) };
        for (slot, r) in b.ram.iter_mut().zip(ranges.iter().chain(core::iter::repeat(&(0, 0)))) {
            *slot = *r;
        }
        b.pt_map = (LEAF_PAGES.as_ptr() as u64, lo);
        b.pt_map_pages = (size >> PAGE_SHIFT).min(LEAF_MAP_PAGES);
        b.pt_walk_ram = (lo, size);
    }
}

/// Lets stores to leaf tables take the fast path (the page-table watch is
/// on); boot, before the guest runs.
pub fn enable_stores() {
    for cpu in 0..MAX_CPUS {
        // SAFETY: boot, single-threaded.
        unsafe { (*block(cpu)).pt_iss = (ISS_MASK, ISS_WANT) };
    }
}

/// The word and bit of `page` in the leaf-page bitmap (None: outside the
/// RAM range it covers).
pub fn leaf_bit(page: u64) -> Option<(usize, u64)> {
    // SAFETY: read-only after boot (set_ram).
    let b = unsafe { &*block(0) };
    let i = page.checked_sub(b.pt_map.1)? >> PAGE_SHIFT;
    (i < b.pt_map_pages).then_some(((i / 64) as usize, 1 << (i % 64)))
}

/// The guest RAM address of the leaf-page bitmap's bit 0 (None before
/// [`set_ram`] or without RAM to cover).
pub fn leaf_map_base() -> Option<u64> {
    // SAFETY: read-only after boot (set_ram).
    let b = unsafe { &*block(0) };
    (b.pt_map_pages != 0).then_some(b.pt_map.1)
}

/// After a leaf-page bit is cleared: waits until no other CPU's fast path
/// can still store to a page it saw in the bitmap before the clear. The
/// assembly sets its `pt_busy` before it reads the bitmap (DMB between)
/// and clears it after the store; this clears the bit, then (DMB) reads
/// the flags: either that CPU read the cleared bit (it takes the Rust path,
/// which waits for the WATCH lock the caller holds), or this sees its flag
/// and waits for the store to finish. Without it a store could land on a
/// page that has just stopped being a plain last-level table (its tracker
/// state changed under the lock) without the tracker seeing it.
fn quiesce() {
    core::sync::atomic::fence(Ordering::SeqCst);
    let me = percpu::index();
    for cpu in (0..MAX_CPUS).filter(|&c| c != me) {
        // SAFETY: reading another CPU's flag, which it writes with
        // single stores; a torn value is impossible for an aligned u64.
        let busy = unsafe { &raw const (*block(cpu)).pt_busy };
        while unsafe { busy.read_volatile() } != 0 {
            core::hint::spin_loop();
        }
    }
    core::sync::atomic::fence(Ordering::Acquire);
}

/// Stores to the table page at `page` may take the fast path (the caller
/// checked `Tracker::is_leaf_page`).
pub fn set_leaf_page(page: u64) {
    if let Some((w, bit)) = leaf_bit(page) {
        LEAF_PAGES[w].fetch_or(bit, Ordering::Relaxed);
    }
}

/// Stores to `page` take the Rust path again; no fast store to it is in
/// flight when this returns.
pub fn clear_leaf_page(page: u64) {
    if let Some((w, bit)) = leaf_bit(page) {
        if LEAF_PAGES[w].fetch_and(!bit, Ordering::Relaxed) & bit != 0 {
            quiesce();
        }
    }
}

/// Every page takes the Rust path again (the tracker rebuilt); no fast
/// store is in flight when this returns.
pub fn clear_leaf_pages() {
    for w in LEAF_PAGES.iter() {
        w.store(0, Ordering::Relaxed);
    }
    quiesce();
}

/// The walk parameters of one half for the current CPU: `root` the root
/// table (None: the fast path does not walk that half).
pub fn set_walk(half: s1::Half, walk: Option<(u64, &Layout)>) {
    // SAFETY: only this CPU touches its block (see Blocks).
    let b = unsafe { &mut *current() };
    let (lo, size) = b.pt_walk_ram;
    let h = walk
        .filter(|(root, l)| {
            // The assembly reads the root without a range check.
            l.enabled && *root >= lo && root + l.root_bytes() <= lo + size
        })
        .map_or(WalkHalf::OFF, |(root, l)| {
            let shift = (PAGE_SHIFT as i64 + 9 * (s1::desc::LAST_LEVEL - l.start_level) as i64) as u64;
            let entry = (l.start_level + 1) as u64 + if l.ds { 0 } else { ENTRY_NO_DS };
            WalkHalf { root, shift, index_mask: l.root_entries() as u64 - 1, entry }
        });
    b.pt_walk[half as usize] = h;
}

/// Stores the assembly completed, all CPUs.
pub fn fast_stores() -> u64 {
    // SAFETY: a racy read of counters only their CPUs write; pt_stats is
    // emitted when the guest stops.
    (0..MAX_CPUS).map(|c| unsafe { (*block(c)).pt_stores }).sum()
}

/// This CPU's block.
fn current() -> *mut FastPath {
    // SAFETY: `fast` is a member of the CPU's PerCpu.
    unsafe { &raw mut (*percpu::current()).fast }
}

/// Publishes CPU `cpu`'s tap state for the assembly.
#[inline]
pub fn publish(cpu: usize, p: &Published) {
    // SAFETY: only this CPU touches its block (see Blocks).
    let b = unsafe { &mut *block(cpu) };
    b.enabled = p.enabled as u64;
    b.por_el1 = p.por_el1;
    b.por_el0 = p.overlay.map_or(0, |o| o.1);
    if b.carrier != 0 && cpu == percpu::index() {
        // The patched sites read the virtual POR_EL1/POR_EL0 from the
        // carriers.
        super::regs::SCXTNUM_EL1_REG.set(b.por_el1);
        super::regs::SCXTNUM_EL0_REG.set(b.por_el0);
    }
    b.chain_entry = p.window.0;
    b.win_open = p.window.1 as u64;
    // 0 stands for "none": a POR_EL1 of 0 grants nothing, so the audit
    // never learns from it.
    (b.por_slow, b.por_known) = match p.por_slow {
        None => (0, (0, 0)),
        Some([a, b]) => (1, (a.unwrap_or(0), b.unwrap_or(0))),
    };
    match p.hooks {
        Some((vbar, r)) => {
            b.vbar = vbar;
            b.resume = *r;
            b.tap_hvc = 1;
        }
        None => b.tap_hvc = 0,
    }
    if let Some(o) = p.overlay {
        if (o.0, (o.1, o.2)) != (b.deny_por, b.deny_regs) || b.pt_deny == DENY_STALE {
            (b.deny_por, b.deny_regs) = (o.0, (o.1, o.2));
            b.pt_deny = b.deny_cache.get(o.0, o.1, o.2);
            b.pt_pie = o.2 & s1::overlay::TCR2_PIE;
        }
    }
    b.cpacr_read = match p.cpacr_or {
        Some(bits) => (1, bits),
        None => (0, 0),
    };
    match p.stepping {
        Some((page, vbar, prev_pc)) => {
            b.stepping = 1;
            b.step_page = page;
            b.vbar = vbar;
            b.prev_pc = prev_pc;
        }
        None => b.stepping = 0,
    }
    if !p.enabled && p.hooks.is_none() {
        return; // nothing else is read (e.g. while the tap steps)
    }
    match p.shadow {
        Some((elr, spsr, esr, far)) => {
            b.shadow_valid = 1;
            b.shadow_elr = elr;
            b.shadow_spsr = spsr;
            b.shadow_esr = esr;
            b.shadow_far = far;
        }
        None => b.shadow_valid = 0,
    }
}

/// Sends this CPU's software steps to Rust until the tap publishes again:
/// the page-table watch single-steps one store (pt/step.rs) and must see
/// the step that ends it, even inside the tap's stepped page.
pub fn pause_steps() {
    // SAFETY: only this CPU touches its block (see Blocks).
    unsafe { (*current()).stepping = 0 };
}

/// The PC of the last step the assembly handled for CPU `cpu` (valid while
/// the tap steps).
#[inline]
pub fn prev_pc(cpu: usize) -> u64 {
    // SAFETY: only this CPU touches its block (see Blocks).
    unsafe { (*block(cpu)).prev_pc }
}

/// The tap's configuration for the assembly, every CPU (boot, before the
/// guest runs): what an entry records as POR_EL1, whether native POR_EL1
/// writes complete in the assembly, whether EL1 data-abort entries need
/// Rust, whether POR_EL1 is sampled.
pub fn configure_tap(
    por_mode: u64,
    native_msr: bool,
    sync_dabt_slow: bool,
    sampling: bool,
    entry_slow: bool,
) {
    for cpu in 0..MAX_CPUS {
        // SAFETY: boot, before any other CPU runs.
        let b = unsafe { &mut *block(cpu) };
        b.entry_slow = entry_slow as u64;
        b.por_mode = por_mode;
        b.native_msr = native_msr as u64;
        b.sync_dabt_slow = sync_dabt_slow as u64;
        b.sampling = sampling as u64;
    }
}

/// Patched POR_EL1 sites (por_sites.rs): whether this CPU's carrier is in
/// use, and after how many UNDEFed POR_EL1 accesses the next one goes to
/// Rust to have its site patched (None: never). Boot and CPU start.
pub fn configure_carrier(cpu: usize, carrier: bool, every: Option<u64>) {
    // SAFETY: only this CPU touches its block (see Blocks), or boot.
    let b = unsafe { &mut *block(cpu) };
    b.carrier = carrier as u64;
    b.patch_countdown = every.unwrap_or(u64::MAX);
}

/// The assembly sent this CPU's UNDEFed POR_EL1 access to Rust because its
/// countdown ran out: true once (the countdown is set to `every` again).
pub fn take_patch_due(cpu: usize, every: u64) -> bool {
    // SAFETY: only this CPU touches its block (see Blocks).
    let b = unsafe { &mut *block(cpu) };
    if b.patch_countdown > 1 {
        return false;
    }
    b.patch_countdown = every;
    true
}

/// Virtual POR_EL1 as the assembly left it (it completes writes).
#[inline]
pub fn por_el1(cpu: usize) -> u64 {
    // SAFETY: only this CPU touches its block (see Blocks).
    unsafe { (*block(cpu)).por_el1 }
}

/// Native POE sampling: the POR_EL1 value Rust saw last.
#[inline]
pub fn set_por_sample(cpu: usize, v: u64) {
    // SAFETY: only this CPU touches its block (see Blocks).
    unsafe { (*block(cpu)).por_sample = v };
}

/// True if the assembly queued records for CPU `cpu`.
#[inline]
pub fn has_queued(cpu: usize) -> bool {
    // SAFETY: only this CPU touches its block (see Blocks).
    unsafe { (*block(cpu)).queue_len != 0 }
}

/// True if CPU `cpu` (another one, at the end of the run) has published
/// queued records.
pub fn has_queued_at_stop(cpu: usize) -> bool {
    queue_len_acquire(cpu) != 0
}

/// CPU `cpu`'s queue length as its assembly published it (STLR after the
/// record: vectors.S QUEUE_COMMIT).
fn queue_len_acquire(cpu: usize) -> u64 {
    // SAFETY: an aligned u64 its CPU writes with single stores; read as an
    // atomic for the acquire.
    unsafe { (*(&raw const (*block(cpu)).queue_len as *const AtomicU64)).load(Ordering::Acquire) }
}

/// Hands another CPU's published queued records to `f` in order (the end
/// of the run: tap.rs `drain_others_at_stop`). The queue is left as it is:
/// that CPU drains nothing any more.
pub fn take_queued_at_stop(cpu: usize, mut f: impl FnMut(&[u64; QUEUE_WORDS])) {
    let n = (queue_len_acquire(cpu) as usize).min(QUEUE_LEN);
    for i in 0..n {
        // SAFETY: records below the published length are whole and no
        // longer written (the assembly only appends).
        let r = unsafe { (&raw const (*block(cpu)).queue[i]).read_volatile() };
        f(&r);
    }
}

/// Hands CPU `cpu`'s queued records to `f` in order and empties the queue.
pub fn take_queued(cpu: usize, mut f: impl FnMut(&[u64; QUEUE_WORDS])) {
    // SAFETY: only this CPU touches its block (see Blocks); its assembly
    // does not run while its Rust does.
    let b = unsafe { &mut *block(cpu) };
    let n = (b.queue_len as usize).min(QUEUE_LEN);
    for r in &b.queue[..n] {
        f(r);
    }
    b.queue_len = 0;
}

/// Flight mode: the assembly pushes this CPU's completed entries and
/// POR_EL1 changes into `ring` (a `FlightRing`, which only this CPU writes)
/// instead of queueing them (boot, before the guest runs).
pub fn set_ring(cpu: usize, ring: u64) {
    // SAFETY: boot, before any other CPU runs.
    unsafe { (*block(cpu)).ring = ring };
}

/// CPU `cpu`'s sequence counter, as an atomic: its own CPU (Rust, or the
/// assembly with plain loads and stores: never at the same time) and, at
/// the end of the run, the CPU that ends it (for a parked one).
fn seq_counter(cpu: usize) -> &'static AtomicU64 {
    // SAFETY: an aligned u64 in a static block.
    unsafe { &*(&raw const (*block(cpu)).seq as *const AtomicU64) }
}

/// Takes CPU `cpu`'s next sequence number.
#[inline]
pub fn take_seq(cpu: usize) -> u64 {
    seq_counter(cpu).fetch_add(1, Ordering::Relaxed)
}

/// CPU `cpu`'s next sequence number, not taken.
pub fn peek_seq(cpu: usize) -> u64 {
    seq_counter(cpu).load(Ordering::Relaxed)
}

/// The entry window as the assembly may have left it: (latest entry's
/// seq, open).
#[inline]
pub fn window(cpu: usize) -> (u64, bool) {
    // SAFETY: only this CPU touches its block (see Blocks).
    let b = unsafe { &*block(cpu) };
    (b.chain_entry, b.win_open != 0)
}

/// Publishes the entry window (the tap changed it).
#[inline]
pub fn set_window(cpu: usize, last_entry: u64, open: bool) {
    // SAFETY: only this CPU touches its block (see Blocks).
    let b = unsafe { &mut *block(cpu) };
    b.chain_entry = last_entry;
    b.win_open = open as u64;
}

/// The seq of CPU `cpu`'s latest exc_entry and por_write (0: none yet).
#[inline]
pub fn chain(cpu: usize) -> (u64, u64) {
    // SAFETY: only this CPU touches its block (see Blocks).
    let b = unsafe { &*block(cpu) };
    (b.chain_entry, b.chain_por)
}

/// Records CPU `cpu`'s latest por_write.
#[inline]
pub fn set_chain_por(cpu: usize, seq: u64) {
    // SAFETY: only this CPU touches its block (see Blocks).
    unsafe { (*block(cpu)).chain_por = seq };
}

/// The shadow registers (ELR, SPSR, ESR, FAR) the assembly wrote at an
/// entry since the last call, if any.
#[inline]
pub fn take_new_shadow(cpu: usize) -> Option<(u64, u64, u64, u64)> {
    // SAFETY: only this CPU touches its block (see Blocks).
    let b = unsafe { &mut *block(cpu) };
    if b.shadow_new == 0 {
        return None;
    }
    b.shadow_new = 0;
    Some((b.shadow_elr, b.shadow_spsr, b.shadow_esr, b.shadow_far))
}

/// This CPU's latest entry's call-trace note: (seq, ELR, x29, x30).
pub fn note_entry() -> [u64; 4] {
    // SAFETY: only this CPU touches its block (see Blocks).
    unsafe { (*current()).note_entry }
}

/// Notes this CPU's latest entry for its call trace.
#[inline]
pub fn set_note_entry(note: [u64; 4]) {
    // SAFETY: only this CPU touches its block (see Blocks).
    unsafe { (*current()).note_entry = note };
}
