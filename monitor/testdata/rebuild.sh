#!/bin/sh
# Rebuilds the hand-written device tree fixtures from their .dts sources.
# virt-gicv3.dtb, virt-secure.dtb and virt-smmu.dtb are QEMU 10.0 dumps (-M virt,dumpdtb=...)
# and have no source here: `dtc -I dtb -O dts FILE` shows them.
set -eu
cd "$(dirname "$0")"
for f in fvp-nested misc-gicv2 tiny alias-loop bad-cells deep reserved dma-edge; do
	dtc -q -I dts -O dtb -o "$f.dtb" "$f.dts"
done
