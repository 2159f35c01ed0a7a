#!/usr/bin/env bash
# Groups the control-flow integrity reports in DIR (UBSan log_path files of
# a QEMU built with --enable-cfi --enable-cfi-debug) by call site: the
# source line of the indirect call, the function making it (the innermost
# frame), the checked type, and where the callee was defined (a plugin, for
# a call into plugin code). Writes DIR/summary.txt and prints it.
#
# Usage: ci/cfi-summary.sh DIR
set -euo pipefail

[ $# = 1 ] && [ -d "$1" ] || { echo "usage: cfi-summary.sh DIR (a directory of report.* files)" >&2; exit 2; }
dir=$1
shopt -s nullglob
files=("$dir"/report.*)
awk '
    # ../plugins/core.c:1019:9: runtime error: control flow integrity check
    #   for type ... failed during indirect function call
    / runtime error: control flow integrity check/ {
        site = $1; sub(/:$/, "", site); gsub(/^.*qemu-src\//, "", site); gsub(/^(\.\.\/)+/, "", site)
        what = $0; sub(/^.*runtime error: control flow integrity check /, "", what)
        callee = ""; frame = ""; next_frame = 1
        next
    }
    # /path/consumer.c:55: note: on_tb_exec defined here
    site != "" && / note: .* defined here/ {
        callee = $0; sub(/ defined here.*/, "", callee); sub(/^.* note: /, "", callee)
        where = $1; sub(/:$/, "", where); gsub(/^.*qemu-src\//, "", where); gsub(/^.*\/work\/main\//, "", where)
        callee = callee " (" where ")"
        next
    }
    site != "" && next_frame && /^ *#0 / {
        frame = $0; sub(/^ *#0 0x[0-9a-f]+ in /, "", frame); sub(/ .*/, "", frame)
        sub(/\.[0-9a-f]+\.cfi$/, "", frame); sub(/\.cfi$/, "", frame); sub(/\.llvm\.[0-9]+$/, "", frame)
        key = site " in " frame "(): " what (callee != "" ? "; callee " callee : "")
        count[key]++; total++
        site = ""; next_frame = 0
    }
    END {
        printf "CFI: %d reports, %d distinct call sites\n", total, length(count)
        for (k in count) printf "  %5d  %s\n", count[k], k | "sort -rn"
    }
' /dev/null "${files[@]}" | tee "$dir/summary.txt"
