#!/usr/bin/env bash
# Builds the Linux test guest from Debian packages: the kernel of
# linux-image-amd64 and an initramfs of busybox-static with
# rust-plugins/guests/linux/init as /init, and a tiny static helper of the
# workload (rust-plugins/guests/linux/kids.c, built with gcc). No image is downloaded from
# anywhere else. Packages come from the machine's apt sources.
#
# Usage: ci/linux-guest.sh OUT_DIR   (writes OUT_DIR/vmlinuz, OUT_DIR/initramfs.gz)
set -euo pipefail

out=${1:?usage: linux-guest.sh OUT_DIR}
mkdir -p "$out" && out=$(cd "$out" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
init=$top/rust-plugins/guests/linux/init
die() { echo "linux-guest: error: $*" >&2; exit 1; }

command -v cpio >/dev/null || die "cpio is missing (make deps installs it)"
command -v gcc >/dev/null || die "gcc is missing (make deps installs it)"
mkdir -p "$out/debs"
# The versioned kernel package that linux-image-amd64 stands for.
kernel=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
if [ -z "$kernel" ]; then
    apt-get update -qq || die "apt-get update failed"
    kernel=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
fi
[ -n "$kernel" ] || die "no kernel package found behind linux-image-amd64"
(cd "$out/debs" && apt-get download -qq "$kernel" busybox-static 2>/dev/null) ||
    die "apt-get download $kernel busybox-static failed"

rm -rf "$out/extract" "$out/root"
mkdir -p "$out/extract" "$out/root"/{bin,proc,sys,dev,tmp}
for deb in "$out"/debs/*.deb; do
    dpkg-deb -x "$deb" "$out/extract"
done
cp "$out"/extract/boot/vmlinuz-* "$out/vmlinuz"
cp "$out/extract/bin/busybox" "$out/root/bin/busybox"
cp "$init" "$out/root/init"
chmod 755 "$out/root/init"
gcc -static -pthread -O2 -Wall -o "$out/root/bin/kids" "$top/rust-plugins/guests/linux/kids.c" ||
    die "cannot build the static helper kids.c (needs gcc and libc6-dev)"
(cd "$out/root" && find . | cpio -o -H newc --quiet | gzip -1 >"$out/initramfs.gz")
rm -rf "$out/extract" "$out/root"
echo "linux-guest: $kernel and busybox-static in $out"
