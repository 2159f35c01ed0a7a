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
# The kernel's BTF alone (what the guest's /sys/kernel/btf/vmlinux holds),
# for the osi plugin's kernel= argument: it takes the bzImage too, but
# decompresses 66 MB of it at start-up first (0.6 s). Optional.
rm -f "$out/vmlinux.btf"
if command -v xz >/dev/null && command -v objcopy >/dev/null; then
    # The first xz stream; what follows it (the bzImage's trailer) is
    # ignored, and stops tail with SIGPIPE: no pipefail there.
    xzoff=$(set +o pipefail; LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$out/vmlinuz" | head -n1 | cut -d: -f1)
    if [ -n "$xzoff" ] &&
        (set +o pipefail; tail -c +$((xzoff + 1)) "$out/vmlinuz" | xz -dc --single-stream >"$out/vmlinux") &&
        objcopy -O binary --only-section=.BTF "$out/vmlinux" "$out/vmlinux.btf" &&
        [ -s "$out/vmlinux.btf" ]; then
        :
    else
        rm -f "$out/vmlinux.btf"
        echo "linux-guest: warning: no BTF extracted from the kernel (osi needs kernel=vmlinuz)" >&2
    fi
    rm -f "$out/vmlinux"
fi
cp "$out/extract/bin/busybox" "$out/root/bin/busybox"
cp "$init" "$out/root/init"
chmod 755 "$out/root/init"
gcc -static -pthread -O2 -Wall -o "$out/root/bin/kids" "$top/rust-plugins/guests/linux/kids.c" ||
    die "cannot build the static helper kids.c (needs gcc and libc6-dev)"
(cd "$out/root" && find . | cpio -o -H newc --quiet | gzip -1 >"$out/initramfs.gz")
rm -rf "$out/extract" "$out/root"
echo "linux-guest: $kernel and busybox-static in $out"
