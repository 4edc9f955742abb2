//! Command queue entries (IHI 0070 chapter 4): two 64-bit words each.

/// Opcode, word 0 bits [7:0].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// CMD_CFGI_STE_RANGE (with Range = 31: CMD_CFGI_ALL).
    CfgiSteRange = 0x04,
    /// CMD_TLBI_S12_VMALL: every TLB entry of a VMID.
    TlbiS12Vmall = 0x28,
    /// CMD_TLBI_S2_IPA: stage-2 entries for one IPA.
    TlbiS2Ipa = 0x2a,
    /// CMD_TLBI_NSNH_ALL: every Non-secure non-hypervisor TLB entry.
    TlbiNsnhAll = 0x30,
    /// CMD_SYNC: completes when every earlier command has.
    Sync = 0x46,
}

/// A command, as porwatch issues them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Forget every cached STE (CMD_CFGI_ALL).
    CfgiAll,
    /// Forget every cached translation of `vmid`.
    TlbiS12Vmall { vmid: u16 },
    /// Forget the stage-2 translation of the 4 KiB page at `ipa` in
    /// `vmid` (a leaf entry: only the last-level descriptor changed).
    TlbiS2Ipa { vmid: u16, ipa: u64 },
    /// Forget every Non-secure EL1 translation.
    TlbiNsnhAll,
    /// Barrier: CONS passes it only when every earlier command is done.
    /// No interrupt or MSI (CS = 0): porwatch polls CMDQ_CONS.
    Sync,
}

/// Word 0: SID [63:32] (CFGI), VMID [47:32] (TLBI).
const W0_SID_SHIFT: u32 = 32;
const W0_VMID_SHIFT: u32 = 32;
/// CFGI word 1: Range [4:0]; 31 covers every StreamID.
const CFGI_RANGE_ALL: u64 = 31;
/// TLBI_S2_IPA word 1: Leaf bit 0, address [51:12].
const W1_LEAF: u64 = 1 << 0;
const W1_IPA_MASK: u64 = 0x000f_ffff_ffff_f000;

impl Command {
    pub const fn opcode(&self) -> Opcode {
        match self {
            Command::CfgiAll => Opcode::CfgiSteRange,
            Command::TlbiS12Vmall { .. } => Opcode::TlbiS12Vmall,
            Command::TlbiS2Ipa { .. } => Opcode::TlbiS2Ipa,
            Command::TlbiNsnhAll => Opcode::TlbiNsnhAll,
            Command::Sync => Opcode::Sync,
        }
    }

    /// The queue entry.
    pub const fn encode(&self) -> [u64; 2] {
        let op = self.opcode() as u64;
        match *self {
            Command::CfgiAll => [op | (0 << W0_SID_SHIFT), CFGI_RANGE_ALL],
            Command::TlbiS12Vmall { vmid } => [op | ((vmid as u64) << W0_VMID_SHIFT), 0],
            Command::TlbiS2Ipa { vmid, ipa } => {
                [op | ((vmid as u64) << W0_VMID_SHIFT), W1_LEAF | (ipa & W1_IPA_MASK)]
            }
            Command::TlbiNsnhAll | Command::Sync => [op, 0],
        }
    }
}
