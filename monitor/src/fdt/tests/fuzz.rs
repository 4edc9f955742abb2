//! Property-based fuzzing: random mutations of the fixtures never panic.

use super::*;
use crate::fdt::{discover, rewrite, Edits, Platform};
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

fn exercise(dtb: &[u8], cut: usize) {
    let mut p = Platform::new();
    let _ = discover(dtb, &mut p);
    let mut out = vec![0u8; dtb.len() + 512];
    let edits = Edits {
        remove: &["/pl011@9040000"],
        carve_out: &[(0x4020_0000, 0x100_0000)],
        bootargs: Some("console=ttyAMA0"),
        reserve: &[(0x4800_0000, 0x1000)],
        psci: Some("smc"),
        drop_props: &[("/pcie@10000000", "msi-map")],
    };
    if let Ok(n) = rewrite(dtb, &edits, &mut out) {
        // Whatever is produced must itself be readable.
        let mut q = Platform::new();
        let _ = discover(&out[..n], &mut q);
        crate::fdt::Fdt::new(&out[..n]).expect("rewrite output must parse");
    }
    let mut s = crate::fdt::dma::Survey::new();
    if crate::fdt::dma::survey(dtb, &mut s).is_ok() {
        let mut d = crate::fdt::dma::Decision::default();
        let _ = s.decide(s.smmu_for_pci(), &mut d);
    }
    let cut = cut.min(out.len());
    let _ = rewrite(dtb, &Edits::default(), &mut out[..cut]);
}

fn mutate(src: &[u8], muts: &[(usize, u8, bool)], trunc: Option<usize>) -> Vec<u8> {
    let mut b = src.to_vec();
    for &(i, v, word) in muts {
        let i = i % b.len();
        if word {
            // Small big-endian word: hits tokens, lengths and offsets.
            let i = i & !3;
            if i + 4 <= b.len() {
                b[i..i + 4].copy_from_slice(&u32::from(v).to_be_bytes());
            }
        } else {
            b[i] = v;
        }
    }
    if let Some(t) = trunc {
        b.truncate(t % (b.len() + 1));
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0usize..7,
        muts in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<bool>()), 1..12),
        trunc in proptest::option::weighted(0.1, any::<usize>()),
        cut in any::<usize>(),
    ) {
        let src = [VIRT_GICV3, VIRT_SECURE, FVP_NESTED, MISC_GICV2, TINY, VIRT_SMMU, DMA_EDGE][which];
        let b = mutate(src, &muts, trunc);
        exercise(&b, cut % (src.len() + 1024));
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut b = bytes;
        // Give it a valid magic half the time so the header checks get past it.
        if b.len() >= 4 && b[0] & 1 == 0 {
            b[..4].copy_from_slice(&0xd00d_feedu32.to_be_bytes());
        }
        exercise(&b, 256);
    }
}

/// A random node: (name, properties, children).
#[derive(Debug, Clone)]
struct RNode {
    name: usize,
    props: Vec<(usize, Vec<u32>)>,
    children: Vec<RNode>,
}

const NODE_NAMES: [&str; 8] =
    ["memory@0", "pl011@9000000", "bus@0", "chosen", "aliases", "pcie@0", "intc@8000000", "timer"];
const PROP_NAMES: [&str; 14] = [
    "#address-cells",
    "#size-cells",
    "reg",
    "ranges",
    "device_type",
    "compatible",
    "status",
    "interrupts",
    "method",
    "stdout-path",
    "serial0",
    "linux,initrd-start",
    "linux,initrd-end",
    "#redistributor-regions",
];

/// Property values that mean something for the given name.
fn value(name: usize, cells: &[u32]) -> Vec<u8> {
    let c = |v: &[u32]| v.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
    let pick = |opts: &[&str]| {
        let mut v = opts[cells.first().copied().unwrap_or(0) as usize % opts.len()].as_bytes().to_vec();
        v.push(0);
        v
    };
    match PROP_NAMES[name] {
        "#address-cells" | "#size-cells" | "#redistributor-regions" => {
            c(&[cells.first().copied().unwrap_or(0) % 6])
        }
        "device_type" => pick(&["memory", "pci", "cpu"]),
        "compatible" => pick(&[
            "arm,pl011\0arm,primecell",
            "arm,gic-v3",
            "arm,gic-400",
            "arm,armv8-timer",
            "arm,psci-1.0\0arm,psci",
            "simple-bus",
        ]),
        "status" => pick(&["okay", "disabled", "ok", "fail"]),
        "method" => pick(&["smc", "hvc", "svc"]),
        "stdout-path" => pick(&["serial0:115200", "/pl011@9000000", "/bus@0/pl011@9000000", "x"]),
        "serial0" => pick(&["/pl011@9000000", "/bus@0/pl011@9000000", "serial0"]),
        _ => c(cells),
    }
}

fn emit<'a>(n: &'a RNode, vals: &'a [Vec<u8>], idx: &mut usize, out: &mut Vec<T<'a>>) {
    out.push(T::B(NODE_NAMES[n.name]));
    for (p, _) in &n.props {
        out.push(T::P(PROP_NAMES[*p], &vals[*idx]));
        *idx += 1;
    }
    for ch in &n.children {
        emit(ch, vals, idx, out);
    }
    out.push(T::E);
}

fn collect_vals(n: &RNode, out: &mut Vec<Vec<u8>>) {
    for (p, cells) in &n.props {
        out.push(value(*p, cells));
    }
    for ch in &n.children {
        collect_vals(ch, out);
    }
}

fn rnode() -> impl Strategy<Value = RNode> {
    let leaf = (
        0..NODE_NAMES.len(),
        proptest::collection::vec(
            (0..PROP_NAMES.len(), proptest::collection::vec(0u32..0x1_0000, 0..10)),
            0..6,
        ),
    )
        .prop_map(|(name, props)| RNode { name, props, children: Vec::new() });
    leaf.prop_recursive(4, 24, 4, |inner| {
        (
            0..NODE_NAMES.len(),
            proptest::collection::vec(
                (0..PROP_NAMES.len(), proptest::collection::vec(any::<u32>(), 0..10)),
                0..6,
            ),
            proptest::collection::vec(inner, 0..4),
        )
            .prop_map(|(name, props, children)| RNode { name, props, children })
    })
}

use super::malformed::{build, T};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Structurally valid trees with random, meaningful-looking properties:
    /// exercises translation, discovery and rewriting paths, not just the parser.
    #[test]
    fn random_trees_never_panic(children in proptest::collection::vec(rnode(), 0..6),
                                root_props in proptest::collection::vec(
                                    (0..2usize, proptest::collection::vec(0u32..6, 1..2)), 0..2)) {
        let root = RNode { name: 0, props: root_props, children };
        let mut vals = Vec::new();
        collect_vals(&root, &mut vals);
        let mut toks = Vec::new();
        let mut idx = 0;
        // The root's name must be "".
        toks.push(T::B(""));
        for (p, _) in &root.props {
            toks.push(T::P(PROP_NAMES[*p], &vals[idx]));
            idx += 1;
        }
        for ch in &root.children {
            emit(ch, &vals, &mut idx, &mut toks);
        }
        toks.push(T::E);
        let dtb = build(&toks);
        exercise(&dtb, 300);
    }
}
