//! Where porwatch's own memory is at run time (hyp is position independent
//! and moves itself to the top of RAM): the image's sections from the linker
//! script, then what the placement plan adds (the stage-2 table pool and the
//! guest's DTB window).

use porwatch_monitor::cpus::MAX_CPUS;

/// The unmapped page below each CPU's stack (linker/hyp.ld: HYP_STACK_GUARD).
pub const STACK_GUARD: u64 = 4096;
/// Each CPU's EL2 stack (HYP_STACK_SIZE).
pub const STACK_SIZE: u64 = 64 * 1024;
/// Guard + stack (HYP_STACK_STRIDE); boot.S computes a CPU's stack with it.
pub const STACK_STRIDE: u64 = STACK_GUARD + STACK_SIZE;

/// Where hyp is at run time: its image, the stage-2 pool after it, and
/// the guest DTB window (porwatch_monitor::layout::Plan).
#[derive(Clone, Copy)]
pub struct Layout {
    pub start: u64,
    pub text_end: u64,
    pub rodata_end: u64,
    /// The per-CPU EL2 stacks [stacks, stacks_end): [`STACK_STRIDE`] bytes
    /// per CPU, an unmapped guard page then the stack.
    pub stacks: u64,
    pub stacks_end: u64,
    /// The stage-2 table pool [pool_start, pool_end): after the image,
    /// .bss and stack (2 MiB aligned), up to `end`.
    pub pool_start: u64,
    pub pool_end: u64,
    /// End of hyp-owned memory (exclusive).
    pub end: u64,
    /// The guest DTB window: guest RAM, where the loader put porwatch (or
    /// just below porwatch).
    pub dtb_window: u64,
    pub dtb_window_size: u64,
}

unsafe extern "C" {
    static __hyp_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __stacks: u8;
    static __stacks_end: u8;
    static __hyp_end: u8;
}

impl Layout {
    /// Nothing known yet (stands in before boot reads the linker symbols).
    pub const EMPTY: Self = Self {
        start: 0,
        text_end: 0,
        rodata_end: 0,
        stacks: 0,
        stacks_end: 0,
        pool_start: 0,
        pool_end: 0,
        end: 0,
        dtb_window: 0,
        dtb_window_size: 0,
    };

    /// The image where it runs now, without a pool or DTB window yet.
    pub fn from_linker() -> Self {
        let a = |s: *const u8| s as u64;
        let start = a(&raw const __hyp_start);
        let end = a(&raw const __hyp_end);
        Self {
            start,
            text_end: a(&raw const __text_end),
            rodata_end: a(&raw const __rodata_end),
            stacks: a(&raw const __stacks),
            stacks_end: a(&raw const __stacks_end),
            pool_start: end,
            pool_end: end,
            end,
            dtb_window: 0,
            dtb_window_size: 0,
        }
    }

    /// Image, .bss and stack: what the loader keeps free (`image_size`).
    pub fn static_size(&self) -> u64 {
        self.pool_start - self.start
    }

    /// With the stage-2 pool and DTB window `plan` gives porwatch, now
    /// running at `plan.hyp.start`.
    pub fn with_plan(self, plan: &porwatch_monitor::layout::Plan) -> Self {
        Self {
            pool_start: plan.pool.start,
            pool_end: plan.pool.end,
            end: plan.hyp.end,
            dtb_window: plan.dtb_window.start,
            dtb_window_size: plan.dtb_window.len(),
            ..self
        }
    }

    /// The top of CPU `cpu`'s EL2 stack (the first guest frame sits there).
    pub fn stack_top(&self, cpu: usize) -> u64 {
        self.stacks + (cpu as u64 + 1) * STACK_STRIDE
    }

    /// The stacks the linker script laid out are the ones this file
    /// describes (boot checks it once).
    pub fn stacks_as_expected(&self) -> bool {
        self.stacks_end - self.stacks == MAX_CPUS as u64 * STACK_STRIDE
    }
}
