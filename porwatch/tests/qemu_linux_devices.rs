//! Linux drives PCIe devices behind porwatch's SMMU: a virtio-blk disk and
//! a virtio-net NIC added the way README's "Devices" section says
//! (`-- -device virtio-blk-pci,disable-legacy=on,... -device
//! virtio-net-pci,disable-legacy=on,romfile=,...`; `porwatch run` makes
//! every virtio device use the IOMMU).
//! Debian's bookworm kernel (scripts/fetch-linux) with an initramfs built
//! here from the same cached packages: busybox, and the virtio modules the
//! kernel package ships. Every byte the guest reads from or writes to the
//! disk, and every network packet, is a device DMA into guest RAM
//! translated by the SMMU with porwatch's stage 2 while the page-table
//! watch runs: the guest must read what the host put on the disk, the host
//! must find what the guest wrote, DHCP must get a lease, and porwatch must
//! report no SMMU event, hazard or gap.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the host puts a marker on the disk, and where the guest writes one.
const HOST_MARKER: &str = "porwatch-disk-marker-from-the-host";
const GUEST_MARKER: &str = "porwatch-disk-marker-from-the-guest";
const GUEST_SECTOR: u64 = 8;
const SECTOR: u64 = 512;

/// Modules, in load order, under lib/modules/*/kernel/.
const MODULES: [&str; 7] = [
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "drivers/block/virtio_blk.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
];

fn init_script() -> String {
    let insmod: Vec<String> = MODULES
        .iter()
        .map(|m| {
            let name = Path::new(m).file_name().unwrap().to_str().unwrap();
            format!("insmod /mod/{name} || echo \"devices: FAIL insmod {name}\"")
        })
        .collect();
    format!(
        r#"#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
{insmod}
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda ] && break; sleep 1; done
echo "devices: read $(dd if=/dev/vda bs={SECTOR} count=1 2>/dev/null | head -c {hl})"
echo -n {GUEST_MARKER} | dd of=/dev/vda bs={SECTOR} seek={GUEST_SECTOR} conv=fsync 2>/dev/null && echo "devices: wrote"
ip link set eth0 up
udhcpc -i eth0 -n -q -t 5 -s /bin/true 2>&1 | sed 's/^/devices: /'
echo "devices: rx $(cat /sys/class/net/eth0/statistics/rx_packets)"
echo "devices: done"
poweroff -f
"#,
        insmod = insmod.join("\n"),
        hl = HOST_MARKER.len(),
    )
}

fn sh(cmd: &str) {
    let s = Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(s.success(), "failed: {cmd}");
}

/// The initramfs: busybox and the modules from the cached bookworm packages.
fn initramfs(dir: &Path) -> PathBuf {
    let cache = porwatch::linux::cache_dir().join("linux").join("bookworm");
    let debs = cache.join("debs");
    for d in ["linux-image.deb", "busybox-static.deb"] {
        assert!(
            debs.join(d).exists(),
            "{} missing: run scripts/fetch-linux bookworm",
            debs.join(d).display()
        );
    }
    let x = dir.join("x");
    std::fs::create_dir_all(&x).unwrap();
    let wild: Vec<String> = MODULES.iter().map(|m| format!("'*/kernel/{m}'")).collect();
    sh(&format!(
        "dpkg-deb --fsys-tarfile {} | tar -x -C {} --wildcards {}",
        debs.join("linux-image.deb").display(),
        x.display(),
        wild.join(" ")
    ));
    sh(&format!("dpkg-deb -x {} {}", debs.join("busybox-static.deb").display(), x.display()));
    let busybox =
        [x.join("bin/busybox"), x.join("usr/bin/busybox")].into_iter().find(|p| p.is_file()).unwrap();
    let init = dir.join("init");
    std::fs::write(&init, init_script()).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../linux/mkcpio.py"));
    cmd.arg("--busybox").arg(&busybox).arg("--init").arg(&init);
    for m in MODULES {
        let found = std::fs::read_dir(x.join("lib/modules"))
            .unwrap()
            .map(|e| e.unwrap().path().join("kernel").join(m))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{m} not in linux-image.deb"));
        let name = Path::new(m).file_name().unwrap().to_str().unwrap();
        cmd.arg("--add").arg(format!("{}:/mod/{name}", found.display()));
    }
    let out = dir.join("devices.cpio.gz");
    cmd.arg("-o").arg(&out);
    assert!(cmd.status().unwrap().success(), "mkcpio.py");
    out
}

#[test]
fn linux_uses_virtio_blk_and_net_behind_the_smmu() {
    let dir = common::tempdir();
    let initrd = initramfs(&dir);
    let disk = dir.join("disk.img");
    let mut img = vec![0u8; 1 << 20];
    img[..HOST_MARKER.len()].copy_from_slice(HOST_MARKER.as_bytes());
    std::fs::write(&disk, &img).unwrap();

    let mut a = common::args("seed");
    a.linux = Some("bookworm".into());
    a.initrd = Some(initrd);
    // About 20 s; a guest whose devices never answer hangs until this.
    a.timeout = Some(300);
    a.qemu_args = [
        "-drive",
        &format!("if=none,id=d0,file={},format=raw", disk.display()),
        "-device",
        "virtio-blk-pci,disable-legacy=on,drive=d0",
        "-netdev",
        "user,id=n0",
        "-device",
        "virtio-net-pci,disable-legacy=on,romfile=,netdev=n0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let o = common::run_guest(a);
    let lines: Vec<&str> = o.console.lines().filter(|l| l.starts_with("devices:")).collect();
    let all = lines.join("\n");
    assert_eq!(o.status, 0, "{all}");
    assert!(!o.console.contains("devices: FAIL"), "{all}");
    assert!(lines.contains(&format!("devices: read {HOST_MARKER}").as_str()), "{all}");
    assert!(lines.contains(&"devices: wrote"), "{all}");
    assert!(lines.iter().any(|l| l.contains("lease of 10.0.2.15 obtained")), "{all}");
    let rx: u64 = lines.iter().find_map(|l| l.strip_prefix("devices: rx ")).unwrap().parse().unwrap();
    assert!(rx > 0, "{all}");
    assert!(lines.contains(&"devices: done"), "{all}");
    for bad in ["Kernel panic", "Oops", "BUG:", "Unable to handle"] {
        assert!(!o.console.contains(bad), "{bad} on the console");
    }

    let img = std::fs::read(&disk).unwrap();
    let at = (GUEST_SECTOR * SECTOR) as usize;
    assert_eq!(
        &img[at..at + GUEST_MARKER.len()],
        GUEST_MARKER.as_bytes(),
        "the guest's write reached the disk"
    );

    assert!(o.stats.is_clean(), "{:?}", o.stats);
    for k in ["smmu_event", "hazard", "coverage_gap", "unknown_trap", "dropped", "panic"] {
        assert_eq!(o.of_kind(k).count(), 0, "{k}: {:?}", o.of_kind(k).next());
    }
    assert_eq!(o.one("guest_exit").get_enum("reason"), Some("system_off"));
    // The PCIe host stayed visible (its ECAM passed through), the devices
    // were found by the guest's PCI enumeration.
    assert!(o.console.contains("virtio_blk virtio"), "virtio_blk probed");
    let _ = std::fs::remove_dir_all(&dir);
}
