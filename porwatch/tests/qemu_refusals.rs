//! porwatch's own refusals: an option it cannot honour stops the boot
//! before the guest starts, with exit status 78 and a console message that
//! names the real cause (README "porwatch options").
mod common;
use common::*;

fn refused(opts: &[&str]) -> Outcome {
    let mut a = args("hello");
    a.hyp_opts = opts.iter().map(|o| o.to_string()).collect();
    let o = run_guest(a);
    assert_eq!(o.status, 78, "{opts:?}: console:\n{}", o.console);
    assert!(!o.console.contains("hello:"), "{opts:?}: the guest must not start:\n{}", o.console);
    o
}

fn assert_says(o: &Outcome, want: &str) {
    assert!(o.console.contains(want), "want {want:?}; console:\n{}", o.console);
}

/// QEMU has no FEAT_S1POE: native POE cannot be had, and porwatch says so
/// instead of running without POE.
#[test]
fn poe_native_without_the_feature_is_refused() {
    let o = refused(&["poe=native"]);
    assert_says(
        &o,
        "porwatch: porwatch.poe=native: this CPU has no FEAT_S1POE (ID_AA64MMFR3_EL1.S1POE is 0)",
    );
    // Virtual POE is what this CPU can have.
    let mut a = args("hello");
    a.hyp_opts = vec!["poe=virtual".into()];
    let o = run_guest(a);
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    assert_eq!(o.records[0].get_enum("poe_mode"), Some("virtual"));
}

#[test]
fn poe_virtual_without_the_tap_is_refused() {
    let o = refused(&["poe=virtual", "tap=off"]);
    assert_says(
        &o,
        "porwatch: porwatch.poe=virtual needs the exception-entry tap, and porwatch.tap=off turns it off",
    );
}

/// The guest console (QEMU virt: the PL011 at 0x9000000) is never taken
/// for the trace, and porwatch says that is why, by address or by path:
/// `porwatch run` refuses it before QEMU starts (run_refusals.rs), and the
/// hypervisor itself when another launcher passes it. This test is such a
/// launcher: QEMU with porwatch as `-kernel`, the guest by `-device
/// loader`, the option in `-append`.
#[test]
fn trace_on_the_guest_console_is_refused() {
    let images = images();
    for (opt, shown) in [("trace=0x9000000", "0x9000000"), ("trace=/pl011@9000000", "/pl011@9000000")] {
        let append = format!("porwatch.guest=0x44000000 porwatch.semihosting=1 porwatch.{opt}");
        let out = std::process::Command::new("timeout")
            .args(["60", "qemu-system-aarch64", "-nodefaults", "-M", "virt,virtualization=on,gic-version=3"])
            .args(["-cpu", "max", "-m", "1G", "-display", "none", "-monitor", "none", "-no-reboot"])
            .args(["-semihosting-config", "enable=on,target=native", "-serial", "stdio", "-serial", "null"])
            .arg("-kernel")
            .arg(images.join("porwatch-hyp.bin"))
            .args(["-append", &append, "-device"])
            .arg(format!("loader,file={}", images.join("guests/hello.elf").display()))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("QEMU runs");
        let console = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(78), "{opt}: console:\n{console}");
        let want = format!("porwatch: porwatch.trace={shown} is the guest's console");
        assert!(console.contains(&want), "{opt}: want {want:?}; console:\n{console}");
        assert!(!console.contains("no second PL011"), "{opt}: not the cause:\n{console}");
        assert!(!console.contains("hello:"), "{opt}: the guest must not start:\n{console}");
    }
}

#[test]
fn trace_naming_no_uart_is_refused() {
    for (opt, shown) in [("trace=0x9050000", "0x9050000"), ("trace=/pl011@1234", "/pl011@1234")] {
        let o = refused(&[opt]);
        assert_says(
            &o,
            &format!("porwatch: porwatch.trace={shown} names no enabled PL011 in the device tree"),
        );
    }
}

/// Command-line refusals name the option and, for a bad value, the value.
#[test]
fn bad_option_values_are_named() {
    let o = refused(&["poe=nativ"]);
    assert_says(&o, "porwatch: bad value \"nativ\" for porwatch.poe");
    let o = refused(&["tap=on", "tap=off"]);
    assert_says(&o, "porwatch: porwatch.tap given more than once");
}

/// More CPUs than porwatch supports: `porwatch run` refuses before QEMU
/// starts, and porwatch itself refuses such a machine at boot (exit 78),
/// naming the count, instead of running with CPUs it cannot tell apart.
#[test]
fn more_cpus_than_supported_are_refused() {
    for (smp, extra) in [(9, vec![]), (1, vec!["-smp".to_string(), "12".to_string()])] {
        let mut a = args("hello");
        a.smp = smp;
        a.qemu_args = extra;
        let sink = || Box::new(std::io::sink()) as Box<dyn std::io::Write + Send>;
        let e = porwatch::run::run(&a, sink(), sink()).err().expect("refused before QEMU starts");
        assert!(e.to_string().contains("porwatch runs at most 8 CPUs"), "{e}");
    }

    // QEMU started directly with 9 CPUs: porwatch's own refusal.
    use porwatch::qemu::{GuestImage, QemuConfig};
    let images = images();
    let dir = tempdir();
    let cfg = QemuConfig {
        qemu: "qemu-system-aarch64".into(),
        hyp: images.join("porwatch-hyp.bin"),
        guest: GuestImage::resolve(&images, "hello", 0x4400_0000).unwrap(),
        initrd: None,
        trace_pipe: "/nonexistent".into(),
        trace_file: Some(dir.join("trace.pwt")),
        guest_args: String::new(),
        hyp_opts: vec![],
        smp: 1,
        icount: false,
        extra: vec![],
        secure_stub: None,
    };
    let mut argv = cfg.argv().unwrap();
    let i = argv.iter().position(|a| a == "-smp").unwrap() + 1;
    argv[i] = "9".into();
    let out = std::process::Command::new(&cfg.qemu)
        .args(&argv)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("QEMU runs");
    let console = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "console:\n{console}");
    assert!(
        console.contains("porwatch: cannot start: the machine has 9 CPUs, more than porwatch supports (8)"),
        "console:\n{console}"
    );
    assert!(!console.contains("hello:"), "the guest must not start:\n{console}");
    let _ = std::fs::remove_dir_all(&dir);
}
