//! The guest's CPUs: which exist (the device tree's `/cpus`) and their
//! dense index, used for every per-CPU structure in the hypervisor and for
//! the CPU named in every trace record.
//!
//! The boot CPU (the one that entered porwatch first, or the EL3 primary)
//! is index 0; the others follow in `/cpus` order. Linux numbers its
//! logical CPUs the same way (the boot CPU is CPU 0, then the device tree's
//! order), so porwatch's `cpuN` is Linux's CPU N. The index is looked up
//! by the whole affinity (Aff3..Aff0): CPUs that differ only in Aff1 or
//! Aff2 (an FVP's clusters) are different CPUs.

/// The most CPUs porwatch runs. A machine with more is refused at start.
pub const MAX_CPUS: usize = 8;

/// MPIDR_EL1 affinity fields Aff3 [39:32], Aff2..Aff0 [23:0] (Linux
/// `MPIDR_HWID_BITMASK`): what a `/cpus` `reg` and PSCI's target_cpu hold.
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// Why a machine's CPUs cannot be run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyError {
    /// The tree lists more CPUs than [`MAX_CPUS`].
    TooMany { listed: usize },
    /// The CPU porwatch started on is not in `/cpus`.
    BootCpuMissing { mpidr: u64 },
    /// Two `/cpus` entries have the same `reg`.
    Duplicate { mpidr: u64 },
}

impl core::fmt::Display for TopologyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            TopologyError::TooMany { listed } => {
                write!(f, "the machine has {listed} CPUs, more than porwatch supports ({MAX_CPUS})")
            }
            TopologyError::BootCpuMissing { mpidr } => {
                write!(f, "the boot CPU (MPIDR {mpidr:#x}) is not in the device tree's /cpus")
            }
            TopologyError::Duplicate { mpidr } => write!(f, "/cpus lists MPIDR {mpidr:#x} twice"),
        }
    }
}

/// The CPUs porwatch runs, by dense index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Affinity of CPU i (MPIDR & [`MPIDR_AFFINITY_MASK`]).
    mpidrs: [u64; MAX_CPUS],
    len: usize,
}

impl Topology {
    /// One CPU: the boot CPU (before the device tree is read, or a tree
    /// without `/cpus`).
    pub const fn single(boot_mpidr: u64) -> Self {
        let mut mpidrs = [0; MAX_CPUS];
        mpidrs[0] = boot_mpidr & MPIDR_AFFINITY_MASK;
        Self { mpidrs, len: 1 }
    }

    /// From the `/cpus` `reg` values in tree order (`listed` of them in the
    /// tree, `regs` the first [`MAX_CPUS`]) and the boot CPU's MPIDR_EL1.
    /// An empty `/cpus` means the boot CPU alone.
    pub fn new(regs: &[u64], listed: usize, boot_mpidr: u64) -> Result<Self, TopologyError> {
        let boot = boot_mpidr & MPIDR_AFFINITY_MASK;
        if listed == 0 {
            return Ok(Self::single(boot));
        }
        if listed > MAX_CPUS || regs.len() != listed {
            return Err(TopologyError::TooMany { listed: listed.max(regs.len()) });
        }
        for (i, r) in regs.iter().enumerate() {
            if regs[..i].iter().any(|p| p & MPIDR_AFFINITY_MASK == r & MPIDR_AFFINITY_MASK) {
                return Err(TopologyError::Duplicate { mpidr: *r });
            }
        }
        if !regs.iter().any(|r| r & MPIDR_AFFINITY_MASK == boot) {
            return Err(TopologyError::BootCpuMissing { mpidr: boot });
        }
        let mut t = Self::single(boot);
        for r in regs.iter().map(|r| r & MPIDR_AFFINITY_MASK).filter(|&r| r != boot) {
            t.mpidrs[t.len] = r;
            t.len += 1;
        }
        Ok(t)
    }

    /// Number of CPUs (1..=[`MAX_CPUS`]).
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Never empty (the boot CPU is always there); for clippy's sake.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The dense index of the CPU whose MPIDR_EL1 (or PSCI target) is
    /// `mpidr`; None if it is not one of porwatch's CPUs, or non-affinity
    /// bits (other than MPIDR's RES1 bit 31, U and MT) are set in a PSCI
    /// target.
    pub fn index_of(&self, mpidr: u64) -> Option<usize> {
        let aff = mpidr & MPIDR_AFFINITY_MASK;
        self.mpidrs[..self.len].iter().position(|&m| m == aff)
    }

    /// The affinity of CPU `index`.
    pub fn mpidr(&self, index: usize) -> Option<u64> {
        self.mpidrs[..self.len].get(index).copied()
    }

    /// Affinities by index.
    pub fn mpidrs(&self) -> &[u64] {
        &self.mpidrs[..self.len]
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn boot_cpu_is_zero_others_in_tree_order() {
        // FVP Base RevC: two clusters (Aff1) of four; booting on cluster 1's
        // second core.
        let regs = [0x0, 0x100, 0x200, 0x300, 0x1_0000, 0x1_0100, 0x1_0200, 0x1_0300];
        let t = Topology::new(&regs, regs.len(), 0x8101_0100).unwrap();
        assert_eq!(t.len(), 8);
        assert_eq!(t.index_of(0x8101_0100), Some(0));
        assert_eq!(t.index_of(0x0), Some(1));
        assert_eq!(t.index_of(0x100), Some(2));
        assert_eq!(t.index_of(0x1_0000), Some(5));
        assert_eq!(t.index_of(0x1_0300), Some(7));
        // Aff0 alone does not identify a CPU (the old `% 8` collided).
        assert_eq!(t.index_of(0x1), None);
        assert_eq!(t.mpidr(0), Some(0x1_0100));
        assert_eq!(t.mpidr(8), None);
        // QEMU virt: reg = Aff0.
        let t = Topology::new(&[0, 1, 2, 3], 4, 0x8000_0000).unwrap();
        assert_eq!(t.mpidrs(), [0, 1, 2, 3]);
        assert_eq!(t.index_of(0x8000_0002), Some(2));
        // Aff3.
        let t = Topology::new(&[0, 0x1_0000_0000], 2, 0).unwrap();
        assert_eq!(t.index_of(0x1_0000_0000), Some(1));
        assert_eq!(t.index_of(0x1_0000_0000 | 1 << 31), Some(1));
    }

    #[test]
    fn refusals() {
        let nine: [u64; 9] = core::array::from_fn(|i| i as u64);
        assert_eq!(Topology::new(&nine[..8], 9, 0), Err(TopologyError::TooMany { listed: 9 }));
        assert_eq!(Topology::new(&[1, 2], 2, 0), Err(TopologyError::BootCpuMissing { mpidr: 0 }));
        assert_eq!(Topology::new(&[0, 1, 1], 3, 0), Err(TopologyError::Duplicate { mpidr: 1 }));
        assert_eq!(Topology::new(&[], 0, 0x8000_0003).unwrap(), Topology::single(3));
        assert_eq!(
            std::format!("{}", TopologyError::TooMany { listed: 16 }),
            "the machine has 16 CPUs, more than porwatch supports (8)"
        );
    }
}
