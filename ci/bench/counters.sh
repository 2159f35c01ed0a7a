#!/usr/bin/env bash
# Plugin configurations compared on one workload, in one run: the median
# wall time of RUNS runs of each, and its ratio to the first. Prints a
# table; writes the numbers to OUT (JSON).
#
# Usage: ci/bench/counters.sh QEMU "WORKLOAD [ARGS]" RUNS OUT NAME=PLUGINS...
#        PLUGINS: "-" for no plugin, or PLUGIN[,ARGS] separated by spaces,
#        then any other QEMU options (from the first word starting with -).
set -euo pipefail

qemu=$1 workload=$2 runs=$3 out=$4
shift 4

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

declare -a names medians
for config in "$@"; do
    name=${config%%=*}
    plugin=${config#*=}
    times=()
    for _ in $(seq "$runs"); do
        args=() options=false
        if [ "$plugin" != - ]; then
            for word in $plugin; do
                case $word in -*) options=true ;; esac
                if $options; then args+=("$word"); else args+=(-plugin "$word"); fi
            done
        fi
        start=$(date +%s%N)
        # shellcheck disable=SC2086 # the workload's arguments split
        "$qemu" "${args[@]}" $workload >/dev/null 2>&1
        end=$(date +%s%N)
        times+=("$(( (end - start) / 1000000 ))")
    done
    names+=("$name")
    medians+=("$(printf '%s\n' "${times[@]}" | median)")
    echo "  $name: ${times[*]} ms" >&2
done

base=${medians[0]}
printf '%-34s %10s %8s\n' configuration "median ms" ratio
{
    echo "{"
    echo "  \"workload\": \"$(basename "${workload:-$qemu}")\", \"runs\": $runs,"
    echo "  \"machine\": \"$(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d)\","
    echo "  \"results\": ["
    for i in "${!names[@]}"; do
        ratio=$(awk -v a="${medians[$i]}" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
        printf '%-34s %10s %7sx\n' "${names[$i]}" "${medians[$i]}" "$ratio" >&2
        sep=,
        [ "$i" = $((${#names[@]} - 1)) ] && sep=
        echo "    {\"name\": \"${names[$i]}\", \"median_ms\": ${medians[$i]}, \"ratio\": $ratio}$sep"
    done
    echo "  ]"
    echo "}"
} >"$out"
