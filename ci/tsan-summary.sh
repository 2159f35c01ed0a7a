#!/usr/bin/env bash
# Groups the ThreadSanitizer reports in DIR (log_path files) by their
# SUMMARY line and lists, apart, those with plugin code on the stack: QEMU's
# plugin core (plugins/), the C test plugins, or our Rust plugins.
# Writes DIR/summary.txt and prints it.
#
# Usage: ci/tsan-summary.sh DIR
set -euo pipefail

dir=$1
shopt -s nullglob
files=("$dir"/report.*)
awk '
    /^WARNING: ThreadSanitizer:/ { in_report = 1; plugin = 0; stack = ""; next }
    in_report && /^ *#[0-9]+ / {
        if ($0 ~ /\/plugins\/|qemu_plugin_|rust-plugins|qemu_xplugin|target\/debug\/lib/) plugin = 1
        if (split(stack, _, "\n") <= 6) stack = stack "\n      " $0
        next
    }
    in_report && /^SUMMARY: ThreadSanitizer:/ {
        sub(/^SUMMARY: ThreadSanitizer: /, "")
        gsub(/[^ ]*qemu-src\//, "")
        count[$0]++
        if (plugin) { with_plugin[$0]++; if (!($0 in first)) first[$0] = stack }
        total++
        in_report = 0
    }
    END {
        printf "ThreadSanitizer: %d reports, %d distinct\n", total, length(count)
        for (s in count) printf "  %5d  %s\n", count[s], s | "sort -rn"
        close("sort -rn")
        printf "\nWith plugin code on the stack: %d distinct\n", length(with_plugin)
        for (s in with_plugin) printf "  %5d  %s%s\n", with_plugin[s], s, first[s]
    }
' "${files[@]}" /dev/null | tee "$dir/summary.txt"
