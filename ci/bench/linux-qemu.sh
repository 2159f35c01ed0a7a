#!/usr/bin/env bash
# qemu-system-x86_64 booting the Linux test guest (make linux-guest) to its
# power-off, -smp 1, with the arguments given (plugins). For counters.sh.
set -euo pipefail
exec "$QEMU_SYSTEM" -nodefaults -display none -no-reboot -m 256 -smp 1 \
    -kernel "$LINUX_GUEST_DIR/vmlinuz" -initrd "$LINUX_GUEST_DIR/initramfs.gz" \
    -append "console=ttyS0 quiet panic=-1" -serial stdio "$@"
