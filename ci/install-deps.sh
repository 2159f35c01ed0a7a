#!/usr/bin/env bash
# Install what building and testing the project needs: Debian packages
# (QEMU build deps, libclang for bindgen, firmware for BIOS-booted guests)
# and a Python virtualenv with meson and pycotap. Idempotent: does nothing
# when everything is already there.
#
# Usage: ci/install-deps.sh VENV_DIR [cfi]
#   cfi: also what `make check-cfi` needs (clang, lld and compiler-rt of
#   LLVM $CFI_LLVM, matching the llvm-$CFI_LLVM that libclang-dev brings)
set -euo pipefail

usage() { echo "usage: install-deps.sh VENV_DIR [cfi]" >&2; exit 2; }
venv=${1:-}
[ -n "$venv" ] || usage
CFI_LLVM=14
MESON_VERSION=1.9.0
PYCOTAP_VERSION=1.3.1

# Build: ninja, glib, pixman, fdt, capstone, flex/bison, ccache.
# Rust bindings: libclang-dev (bindgen). Guests: gcc/libc static archives;
# cpio packs the Linux guest's initramfs; xz-utils and binutils (objcopy)
# extract the kernel's BTF for osi; liblzma-dev for osi's xz2 crate.
# Firmware: seabios (bios-256k.bin), ipxe-qemu (efi-e1000.rom),
# qemu-system-data (pvh.bin, multiboot_dma.bin, linuxboot_dma.bin, ...).
packages=(
    build-essential git python3 python3-venv ninja-build pkg-config
    libglib2.0-dev libpixman-1-dev libfdt-dev libcapstone-dev flex bison ccache
    libclang-dev cpio xz-utils binutils liblzma-dev
    seabios ipxe-qemu qemu-system-data
)
# check-cfi: QEMU built with clang -fsanitize=cfi-icall, which needs LTO
# (llvm-ar, lld for ThinLTO) and, for --enable-cfi-debug's reports, the
# UBSan runtime of compiler-rt.
case ${2:-} in
    '') ;;
    cfi) packages+=(clang-$CFI_LLVM lld-$CFI_LLVM llvm-$CFI_LLVM libclang-rt-$CFI_LLVM-dev) ;;
    *) echo "install-deps: unknown extra '$2' (known: cfi)" >&2; usage ;;
esac
[ $# -le 2 ] || usage

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    apt_line="apt-get install -y --no-install-recommends ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then
        echo "install-deps: missing Debian packages: ${missing[*]}" >&2
        echo "install-deps: run as root:  apt-get update && $apt_line" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -qq -y --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "install-deps: Debian packages present"
fi

have_venv() {
    "$venv/bin/python3" - "$MESON_VERSION" "$PYCOTAP_VERSION" 2>/dev/null <<'EOF'
import sys
from importlib.metadata import version
sys.exit(0 if (version("meson"), version("pycotap")) == tuple(sys.argv[1:]) else 1)
EOF
}

if have_venv; then
    echo "install-deps: $venv has meson $MESON_VERSION and pycotap $PYCOTAP_VERSION"
else
    echo "install-deps: creating $venv with meson $MESON_VERSION and pycotap $PYCOTAP_VERSION"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check \
        "meson==$MESON_VERSION" "pycotap==$PYCOTAP_VERSION"
    have_venv || { echo "install-deps: $venv is incomplete after pip install" >&2; exit 1; }
fi
