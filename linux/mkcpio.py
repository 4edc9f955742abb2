#!/usr/bin/env python3
"""Write porwatch's Linux test initramfs: a gzip-compressed newc cpio.

Needs no root and no `cpio` tool: device nodes and ownership (root:root)
are written straight into the archive headers. Output is reproducible
(fixed mtimes, gzip header without a timestamp).

Contents:
  /init                 the init script (linux/init by default)
  /bin/busybox          a static arm64 busybox (from Debian's busybox-static)
  /bin/sh               -> busybox (init runs `busybox --install -s` for the rest)
  /dev/console          char 5,1 (the kernel opens it for init's stdio)
  /dev/null             char 1,3
  /dev /proc /sys /tmp /run /root /etc /mnt /sbin /usr/bin /usr/sbin  dirs
  --add SRC:DEST        extra files (mode kept), parent dirs created

Usage: linux/mkcpio.py --busybox PATH [--init PATH] [--add SRC:DEST]... -o OUT
"""

import argparse
import gzip
import os
import stat
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

DIRS = ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp",
        "run", "root", "etc", "mnt"]


class Cpio:
    """newc ("070701") writer."""

    def __init__(self, mtime):
        self.out = bytearray()
        self.ino = 1
        self.mtime = mtime
        self.names = set()

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        if name in self.names:
            raise SystemExit(f"mkcpio: duplicate entry {name}")
        self.names.add(name)
        namez = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, nlink, self.mtime, len(data), 0, 0,
                  rdev[0], rdev[1], len(namez), 0]
        self.ino += 1
        hdr = b"070701" + b"".join(b"%08x" % f for f in fields)
        self.out += hdr + namez
        self.out += b"\0" * (-len(self.out) % 4)
        self.out += data
        self.out += b"\0" * (-len(self.out) % 4)

    def dir(self, name, perm=0o755):
        self._entry(name, stat.S_IFDIR | perm, nlink=2)

    def file(self, name, data, perm):
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor, perm):
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def finish(self):
        # The trailer has inode 0 and nlink 1 in GNU cpio's output.
        self.ino = 0
        self._entry("TRAILER!!!", 0)
        self.out += b"\0" * (-len(self.out) % 512)
        return bytes(self.out)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busybox", required=True, help="static arm64 busybox binary")
    ap.add_argument("--init", default=os.path.join(HERE, "init"), help="script to install as /init")
    ap.add_argument("--add", action="append", default=[], metavar="SRC:DEST",
                    help="extra file SRC installed as DEST (absolute path in the initramfs)")
    ap.add_argument("-o", "--output", required=True, help="output .cpio.gz (or .cpio with --no-gzip)")
    ap.add_argument("--no-gzip", action="store_true", help="write an uncompressed cpio")
    args = ap.parse_args()

    busybox = read(args.busybox)
    # ELF, 64-bit, little-endian, e_machine = EM_AARCH64 (183).
    if busybox[:6] != b"\x7fELF\x02\x01" or int.from_bytes(busybox[18:20], "little") != 183:
        sys.exit(f"mkcpio: {args.busybox} is not an arm64 ELF binary")
    init = read(args.init)
    if not init.startswith(b"#!"):
        sys.exit(f"mkcpio: {args.init} has no #! line")

    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    c = Cpio(mtime)
    c.dir(".")
    for d in DIRS:
        c.dir(d, 0o1777 if d == "tmp" else 0o755)
    c.chardev("dev/console", 5, 1, 0o600)
    c.chardev("dev/null", 1, 3, 0o666)
    c.file("init", init, 0o755)
    c.file("bin/busybox", busybox, 0o755)
    c.symlink("bin/sh", "busybox")
    for spec in args.add:
        src, sep, dest = spec.partition(":")
        if not sep or not dest.startswith("/"):
            sys.exit(f"mkcpio: --add wants SRC:/ABSOLUTE/DEST, got {spec!r}")
        dest = dest.strip("/")
        parts = dest.split("/")
        for i in range(1, len(parts)):
            p = "/".join(parts[:i])
            if p not in c.names:
                c.dir(p)
        c.file(dest, read(src), stat.S_IMODE(os.stat(src).st_mode))
    data = c.finish()

    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        if args.no_gzip:
            f.write(data)
        else:
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=9, mtime=0) as gz:
                gz.write(data)
    os.replace(tmp, args.output)


if __name__ == "__main__":
    main()
