//! `scripts/run-fvp`: its help, its refusal without the Arm FVP model, and
//! what it hands the model — checked with a stand-in model that records its
//! arguments and the `--data` files (the real FVP is not installed here).
mod common;
use common::*;
use porwatch_monitor::fdt::{discover, Platform};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/run-fvp")
}

fn run_fvp(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(script());
    c.args(args).env_remove("FVP");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("scripts/run-fvp runs")
}

#[test]
fn help_explains_the_parameters() {
    let o = run_fvp(&["--help"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8(o.stdout).unwrap();
    for want in [
        "FVP_Base_RevC-2xAEMvA",
        "$FVP",
        "cluster0.has_permission_overlay_s1=1",
        "cluster0.has_permission_indirection_s1=1",
        "cluster0.has_tcr2=1",
        "cluster0.has_fgt=1",
        "cluster0.has_arm_v9-4=1",
        "bp.pl011_uart0.out_file=-",
        "bp.pl011_uart1.out_file=TRACE",
        "porwatch decode --follow",
        "cluster0.cpu0.semihosting-enable=1",
        "cluster0.cpu0.RVBAR=0x80000000",
        "--data cluster0.cpu0=porwatch-hyp.bin@0x80200000",
        "--data cluster0.cpu0=porwatch-fvp.dtb@0x87f00000",
        "--data cluster0.cpu0=IMAGE@0x88000000",
        "bp.vis.disable_visualisation=1",
        "BL33",
    ] {
        assert!(help.contains(want), "--help lacks {want:?}:\n{help}");
    }
}

#[test]
fn refuses_without_the_model() {
    let o = run_fvp(&[], &[("FVP", Path::new("/nonexistent"))]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("the Arm FVP model is not installed"), "{err}");
    assert!(err.contains("FVP=/nonexistent"), "{err}");
    // Not in PATH either.
    let o = run_fvp(&[], &[("PATH", Path::new("/usr/bin:/bin"))]);
    assert_eq!(o.status.code(), Some(2));
}

/// A stand-in model: records its arguments and copies each `--data` file
/// to REC/ADDRESS.
const FAKE_MODEL: &str = r#"#!/bin/sh
rec="$(dirname "$0")/rec"
mkdir -p "$rec"
printf '%s\n' "$@" >"$rec/args"
while [ $# -gt 0 ]; do
    if [ "$1" = --data ]; then
        v=${2#cluster0.cpu0=}
        cp "${v%@*}" "$rec/${v##*@}"
        shift
    fi
    shift
done
echo "fake model ran"
exit 7
"#;

#[test]
fn hands_the_model_stub_hyp_dtb_and_guest() {
    use std::os::unix::fs::PermissionsExt;
    let images = images();
    let dir = tempdir();
    let model = dir.join("fake-fvp");
    std::fs::write(&model, FAKE_MODEL).unwrap();
    std::fs::set_permissions(&model, std::fs::Permissions::from_mode(0o755)).unwrap();
    let guest = images.join("guests/raw/hello.bin");
    let trace = dir.join("trace.bin");
    let o = run_fvp(
        &[
            "--guest",
            guest.to_str().unwrap(),
            "--append",
            "earlycon",
            "--trace-out",
            trace.to_str().unwrap(),
            "--",
            "-C",
            "extra.param=1",
        ],
        &[("FVP", &model), ("PORWATCH_IMAGES", &images)],
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(7),
        "the model's status; stderr:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("fake model ran"), "{stdout}");

    let rec = dir.join("rec");
    let args = std::fs::read_to_string(rec.join("args")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    let has = |a: &str, b: &str| args.windows(2).any(|w| w[0] == a && w[1] == b);
    for p in [
        "cluster0.has_permission_overlay_s1=1",
        "cluster0.has_permission_indirection_s1=1",
        "cluster0.has_tcr2=1",
        "cluster0.has_fgt=1",
        "cluster0.has_arm_v9-4=1",
        "cluster0.cpu0.semihosting-enable=1",
        "cluster0.cpu0.RVBAR=0x80000000",
        "bp.vis.disable_visualisation=1",
        "bp.pl011_uart0.out_file=-",
        "extra.param=1",
    ] {
        assert!(has("-C", p), "no -C {p}: {args:?}");
    }
    assert!(has("-C", &format!("bp.pl011_uart1.out_file={}", trace.display())), "{args:?}");

    // The stub: movz x0, #0x87f0, lsl #16; movz x1, #0x8020, lsl #16; br x1.
    let stub = std::fs::read(rec.join("0x80000000")).unwrap();
    let words: Vec<u32> = stub.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
    let movz_hi = |d: u32, v: u32| 0xd2a0_0000 | (v >> 16) << 5 | d;
    assert_eq!(words, [movz_hi(0, 0x87f0_0000), movz_hi(1, 0x8020_0000), 0xd61f_0020]);
    assert_eq!(words[0], 0xd2b0_fe00);

    assert_eq!(
        std::fs::read(rec.join("0x80200000")).unwrap(),
        std::fs::read(images.join("porwatch-hyp.bin")).unwrap()
    );
    assert_eq!(std::fs::read(rec.join("0x88000000")).unwrap(), std::fs::read(&guest).unwrap());

    // The device tree porwatch will read: console on UART0, options in bootargs.
    let dtb = std::fs::read(rec.join("0x87f00000")).unwrap();
    let mut p = Platform::new();
    discover(&dtb, &mut p).unwrap();
    assert_eq!(p.chosen.stdout_path, Some("serial0:115200n8"));
    assert_eq!(
        p.chosen.bootargs,
        Some("porwatch.guest=0x88000000 porwatch.semihosting=1 console=ttyAMA0 earlycon")
    );
    assert_eq!(p.console().unwrap().regs.base, 0x1c09_0000);
    assert_eq!(p.uarts.iter().find(|u| !u.console).unwrap().regs.base, 0x1c0a_0000, "trace UART");
    // One core runs: the tree's other seven CPUs are disabled (porwatch's
    // pen waits for every CPU the tree lists).
    assert_eq!(p.cpus.as_slice(), [0]);
    assert!(has("-C", "cluster0.NUM_CORES=1") && has("-C", "cluster1.NUM_CORES=0"), "{args:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--smp 6`: four cores of cluster 0 and two of cluster 1, each starting
/// at the stub with semihosting and the cluster's features, and the tree
/// lists exactly those six CPUs. `--smp 9` is refused.
#[test]
fn smp_cores_and_their_device_tree() {
    use std::os::unix::fs::PermissionsExt;
    let images = images();
    let dir = tempdir();
    let model = dir.join("fake-fvp");
    std::fs::write(&model, FAKE_MODEL).unwrap();
    std::fs::set_permissions(&model, std::fs::Permissions::from_mode(0o755)).unwrap();
    let guest = images.join("guests/raw/hello.bin");
    let trace = dir.join("trace.bin");
    let env = [("FVP", model.as_path()), ("PORWATCH_IMAGES", images.as_path())];
    let common = ["--guest", guest.to_str().unwrap(), "--trace-out", trace.to_str().unwrap()];
    let o = run_fvp(&[&common[..], &["--smp", "6"]].concat(), &env);
    assert_eq!(o.status.code(), Some(7), "stderr:\n{}", String::from_utf8_lossy(&o.stderr));
    let rec = dir.join("rec");
    let args = std::fs::read_to_string(rec.join("args")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    let has = |p: &str| args.windows(2).any(|w| w[0] == "-C" && w[1] == p);
    assert!(has("cluster0.NUM_CORES=4") && has("cluster1.NUM_CORES=2"), "{args:?}");
    for (cl, c) in [(0, 0), (0, 3), (1, 0), (1, 1)] {
        assert!(has(&format!("cluster{cl}.cpu{c}.RVBAR=0x80000000")), "cluster{cl}.cpu{c}: {args:?}");
        assert!(has(&format!("cluster{cl}.cpu{c}.semihosting-enable=1")), "{args:?}");
    }
    assert!(!has("cluster1.cpu2.RVBAR=0x80000000"), "{args:?}");
    assert!(has("cluster1.has_permission_overlay_s1=1"), "{args:?}");
    let dtb = std::fs::read(rec.join("0x87f00000")).unwrap();
    let mut p = Platform::new();
    discover(&dtb, &mut p).unwrap();
    assert_eq!(p.cpus.as_slice(), [0x0, 0x100, 0x200, 0x300, 0x1_0000, 0x1_0100]);

    let o = run_fvp(&[&common[..], &["--smp", "9"]].concat(), &env);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 to 8 cores"));
    let _ = std::fs::remove_dir_all(&dir);
}
