//! Stream Table Entries (IHI 0070 5.2) and level-1 stream table
//! descriptors (5.1), as porwatch writes them: every stream translated by
//! stage 2 only, through the CPU's stage-2 tables.

/// An STE is eight 64-bit words (64 bytes).
pub type Ste = [u64; 8];

/// STE word 0: V, bit 0; Config, bits [3:1].
pub const STE0_V: u64 = 1 << 0;
pub const STE0_CONFIG_SHIFT: u32 = 1;

/// STE.Config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    /// Traffic is aborted, no event recorded.
    Abort = 0b000,
    /// Both stages bypassed.
    Bypass = 0b100,
    /// Stage 1 translates, stage 2 bypassed.
    Stage1 = 0b101,
    /// Stage 1 bypassed, stage 2 translates: what porwatch uses.
    Stage2 = 0b110,
    /// Both stages translate.
    Nested = 0b111,
}

/// STE word 1: SHCFG, bits [45:44] (0b01: use the incoming shareability).
pub const STE1_SHCFG_SHIFT: u32 = 44;
pub const SHCFG_INCOMING: u64 = 0b01;

/// STE word 2 (bits [191:128] of the STE): S2VMID [15:0]; the stage-2
/// translation control fields [50:32] laid out exactly as VTCR_EL2[18:0]
/// (S2T0SZ, S2SL0, S2IR0, S2OR0, S2SH0, S2TG, S2PS); S2AA64 bit 51; S2ENDI
/// 52; S2AFFD 53; S2PTW 54; S2HD 55; S2HA 56; S2S 57; S2R 58.
pub const STE2_VMID_MASK: u64 = 0xffff;
pub const STE2_VTCR_SHIFT: u32 = 32;
/// VTCR_EL2 bits [18:0]: the part of VTCR an STE carries.
pub const VTCR_STE_MASK: u64 = (1 << 19) - 1;
pub const STE2_S2AA64: u64 = 1 << 51;
pub const STE2_S2ENDI: u64 = 1 << 52;
pub const STE2_S2AFFD: u64 = 1 << 53;
pub const STE2_S2S: u64 = 1 << 57;
pub const STE2_S2R: u64 = 1 << 58;

/// STE word 3: S2TTB, bits [51:4].
pub const STE3_S2TTB_MASK: u64 = 0x000f_ffff_ffff_fff0;

/// A stage-2 configuration for the SMMU ([`super::geometry::for_smmu`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage2 {
    /// VTCR_EL2-format T0SZ/SL0/IRGN0/ORGN0/SH0/TG0/PS, bits [18:0].
    pub vtcr: u64,
    /// Physical address of the root table (or of the first of the
    /// concatenated root tables).
    pub root: u64,
    /// VMID tagging the SMMU's TLB entries for these streams.
    pub vmid: u16,
}

/// The STE porwatch gives every stream: valid, stage 1 bypassed, stage 2
/// translating with `s2`; stage-2 faults terminate the transaction (S2S =
/// 0: the device gets an abort) and are recorded (S2R = 1) in the event
/// queue; AArch64 little-endian tables; incoming shareability.
pub const fn stage2(s2: &Stage2) -> Ste {
    let w0 = STE0_V | ((Config::Stage2 as u64) << STE0_CONFIG_SHIFT);
    let w1 = SHCFG_INCOMING << STE1_SHCFG_SHIFT;
    let w2 = (s2.vmid as u64 & STE2_VMID_MASK)
        | ((s2.vtcr & VTCR_STE_MASK) << STE2_VTCR_SHIFT)
        | STE2_S2AA64
        | STE2_S2R;
    let w3 = s2.root & STE3_S2TTB_MASK;
    [w0, w1, w2, w3, 0, 0, 0, 0]
}

/// A valid STE that aborts all traffic without recording events.
pub const fn abort() -> Ste {
    [STE0_V | ((Config::Abort as u64) << STE0_CONFIG_SHIFT), 0, 0, 0, 0, 0, 0, 0]
}

/// Level-1 stream table descriptor: SPAN [4:0], L2Ptr [51:6]. SPAN = n
/// means the level-2 array holds 2^(n - 1) STEs (0: invalid), so an array
/// of 2^`split` STEs has SPAN = `split` + 1 (as Linux writes it).
pub const L1_SPAN_MASK: u64 = 0x1f;
pub const L1_L2PTR_MASK: u64 = 0x000f_ffff_ffff_ffc0;

pub const fn l1_descriptor(l2: u64, split: u8) -> u64 {
    (l2 & L1_L2PTR_MASK) | ((split as u64 + 1) & L1_SPAN_MASK)
}
