#!/usr/bin/env bash
# qemu-system-x86_64 running the bare-metal CR3 loop (cr3_loop.S, built as
# build/bench/cr3_loop, or $CR3_LOOP) with the command line
# $CR3_LOOP_LOADS ("N" or "N paging": N loads of CR3; default 2 million),
# -smp 1, and the arguments given (plugins). For counters.sh: the kernel's
# exit through isa-debug-exit (value 1, QEMU's status 3) becomes status 0;
# QEMU's own errors (status 1) stay errors.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
"$QEMU_SYSTEM" -M pc -nodefaults -display none -no-reboot -m 16 -smp 1 \
    -device isa-debug-exit,iobase=0xf4,iosize=4 \
    -kernel "${CR3_LOOP:-$top/build/bench/cr3_loop}" \
    -append "${CR3_LOOP_LOADS:-2000000}" "$@"
status=$?
case $status in
    3) exit 0 ;;
    0) echo "cr3-qemu.sh: QEMU exited with status 0: the kernel did not reach its exit" >&2
       exit 1 ;;
    *) echo "cr3-qemu.sh: QEMU exited with status $status" >&2
       exit "$status" ;;
esac
