#!/usr/bin/env bash
# Plugin configurations compared on one workload, in one run: the wall time
# of RUNS runs of each (min, median, max), and the ratio of its median to
# the first configuration's median (the baseline, "no plugin" where there
# is one). The runs are interleaved (round-robin over the configurations),
# so that a slow phase of a busy machine does not fall on one row only.
# Prints a table; writes the numbers to OUT (JSON).
#
# Usage: ci/bench/counters.sh QEMU "WORKLOAD [ARGS]" RUNS OUT NAME[@N]=PLUGINS...
#        PLUGINS: "-" for no plugin, or PLUGIN[,ARGS] separated by spaces,
#        then any other QEMU options (from the first word starting with -).
#        @N: this configuration runs "WORKLOAD N" instead (N iterations of
#        a workload whose ARGS is its iteration count), and every ratio is
#        per iteration: (median / iterations) / (baseline's median /
#        baseline's iterations). Slow configurations run fewer iterations
#        while the baseline runs long enough to be measured well.
# MIN_BASE_MS=N (environment): warn when the baseline's median is under N
# ms, a workload too short for its ratios to mean much.
# CLOCK=cpu (environment): measure QEMU's CPU time (user + system, all its
# threads) instead of the wall time: steadier on a busy machine, where
# the wall time also counts the time QEMU waits for a core.
# CALLS=N (environment): every configuration makes N calls of what it
# measures (one per hypercall, per change of address space, ...); adds the
# cost per call in ns, (median - baseline's median) / N, and the same from
# the minimums.
set -euo pipefail

usage() { echo "usage: $0 QEMU \"WORKLOAD [ARGS]\" RUNS OUT NAME=PLUGINS..." >&2; exit 2; }
[ $# -ge 5 ] || usage
qemu=$1 workload=$2 runs=$3 out=$4
shift 4
case $runs in '' | *[!0-9]* | 0) echo "counters.sh: RUNS must be a positive integer, not '$runs'" >&2; exit 2 ;; esac
[ -x "$qemu" ] || { echo "counters.sh: $qemu is not an executable" >&2; exit 2; }
program=${workload%% *}
base_iters=${workload#"$program"}
base_iters=${base_iters# }
scaled=false
for config in "$@"; do
    case $config in
        *@*=?*) scaled=true ;;
        ?*=?*) ;;
        *) echo "counters.sh: '$config' is not NAME[@N]=PLUGINS (PLUGINS '-' for none)" >&2; exit 2 ;;
    esac
done
is_count() { case $1 in '' | *[!0-9]* | 0) return 1 ;; esac; }
clock=${CLOCK:-wall}
case $clock in wall | cpu) ;; *) echo "counters.sh: CLOCK must be wall or cpu, not '$clock'" >&2; exit 2 ;; esac
calls=${CALLS:-}
if [ -n "$calls" ] && ! is_count "$calls"; then
    echo "counters.sh: CALLS must be a positive integer, not '$calls'" >&2
    exit 2
fi
if $scaled && [ -n "$calls" ]; then
    echo "counters.sh: CALLS and NAME@N do not mix (the rows' calls would differ)" >&2
    exit 2
fi
if $scaled && ! is_count "$base_iters"; then
    echo "counters.sh: NAME@N needs a workload whose one argument is its iteration count, not '$workload'" >&2
    exit 2
fi

# Sorted numbers on stdin -> "min median max".
stats() { sort -n | awk '{ a[NR] = $1 } END { print a[1], a[int((NR + 1) / 2)], a[NR] }'; }

configs=("$@")
declare -a names iters times
for i in "${!configs[@]}"; do
    spec=${configs[$i]%%=*}
    names[i]=${spec%@*}
    iters[i]=$base_iters
    if [ "$spec" != "${names[$i]}" ]; then
        iters[i]=${spec##*@}
        is_count "${iters[$i]}" || { echo "counters.sh: '$spec': N must be a positive integer" >&2; exit 2; }
    fi
    times[i]=
done

errors=$(mktemp)
cpu_times=$(mktemp)
trap 'rm -f "$errors" "$cpu_times"' EXIT
TIMEFORMAT='%3U %3S'

# One run of configuration $1; appends its time in ms to times[$1].
run_one() {
    local i=$1 plugin=${configs[$1]#*=} args=() options=false start end status
    if [ "$plugin" != - ]; then
        for word in $plugin; do
            case $word in -*) options=true ;; esac
            if $options; then args+=("$word"); else args+=(-plugin "$word"); fi
        done
    fi
    start=$(date +%s%N)
    status=0
    local run=$workload
    $scaled && run="$program ${iters[$i]}"
    # shellcheck disable=SC2086 # the workload's arguments split
    { time "$qemu" "${args[@]}" $run >/dev/null 2>"$errors"; } 2>"$cpu_times" || status=$?
    end=$(date +%s%N)
    if [ "$status" != 0 ]; then
        echo "counters.sh: ${names[$i]}: $qemu ${args[*]} $run exited with status $status:" >&2
        tail -n 20 "$errors" >&2
        exit 1
    fi
    if [ "$clock" = cpu ]; then
        times[i]+="$(awk '{ printf "%d", ($1 + $2) * 1000 }' "$cpu_times") "
    else
        times[i]+="$(( (end - start) / 1000000 )) "
    fi
}

for round in $(seq "$runs"); do
    for i in "${!configs[@]}"; do
        run_one "$i"
    done
    echo "  run $round of $runs done" >&2
done

declare -a mins medians maxs
for i in "${!names[@]}"; do
    # shellcheck disable=SC2086 # one number per word
    read -r mins[i] medians[i] maxs[i] < <(printf '%s\n' ${times[$i]} | stats)
done

base=${medians[0]}
# ratio I: row I's median to the baseline's, per iteration when scaled
ratio() {
    if $scaled; then
        awk -v a="${medians[$1]}" -v n="${iters[$1]}" -v b="$base" -v m="${iters[0]}" \
            'BEGIN { printf "%.2f", (a / n) / (b / m) }'
    else
        awk -v a="${medians[$1]}" -v b="$base" 'BEGIN { printf "%.2f", a / b }'
    fi
}

# ns per call of row I, from the medians ($2 = medians) or the minimums (mins)
per_call() {
    local -n of=$2
    awk -v a="${of[$1]}" -v b="${of[0]}" -v n="$calls" \
        'BEGIN { printf "%.2f", (a - b) * 1e6 / n }'
}

iter_col() { $scaled && printf ' %11s' "$1"; return 0; }
call_cols() { [ -n "$calls" ] && printf ' %8s %8s' "$1" "$2"; return 0; }
printf '%-36s' configuration; iter_col iterations
printf ' %8s %10s %8s %7s' "min ms" "median ms" "max ms" ratio
call_cols "ns/call" "(by min)"
printf '   %s\n' "runs (ms)"
for i in "${!names[@]}"; do
    printf '%-36s' "${names[$i]}"; iter_col "${iters[$i]}"
    printf ' %8s %10s %8s %6sx' "${mins[$i]}" "${medians[$i]}" \
        "${maxs[$i]}" "$(ratio "$i")"
    call_cols "$(per_call "$i" medians)" "$(per_call "$i" mins)"
    printf '   %s\n' "${times[$i]% }"
done
[ "$clock" = cpu ] && echo "(ms: QEMU's CPU time, user + system)"
$scaled && echo "(ratio: median per iteration / ${names[0]}'s median per iteration)"
[ -n "$calls" ] && echo "(ns/call: (median - ${names[0]}'s median) / $calls calls; by min: the same from the minimums)"
if [ -n "${MIN_BASE_MS:-}" ] && [ "$base" -lt "$MIN_BASE_MS" ]; then
    echo "counters.sh: WARNING: ${names[0]} takes $base ms, under $MIN_BASE_MS ms: a longer workload gives steadier ratios" >&2
fi

# The workload's file name and arguments (QEMU's name when it runs none).
workload_name=${workload:-$qemu}
first=${workload_name%% *}
workload_name=$(basename "$first")${workload_name#"$first"}

{
    echo "{"
    echo "  \"workload\": \"$workload_name\", \"runs\": $runs, \"clock\": \"$clock\","
    echo "  \"machine\": \"$(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d)\","
    if $scaled; then
        echo "  \"baseline\": \"${names[0]}\", \"ratio\": \"(median / iterations) / (the baseline's median / its iterations)\","
    else
        echo "  \"baseline\": \"${names[0]}\", \"ratio\": \"median / the baseline's median\","
    fi
    if [ -n "$calls" ]; then
        echo "  \"calls\": $calls, \"ns_per_call\": \"(median - the baseline's median) / calls; ns_per_call_min: the same from the minimums\","
    fi
    echo "  \"results\": ["
    for i in "${!names[@]}"; do
        sep=,
        [ "$i" = $((${#names[@]} - 1)) ] && sep=
        runs_ms=${times[$i]% }
        iters_json=
        $scaled && iters_json="\"iterations\": ${iters[$i]}, "
        calls_json=
        [ -n "$calls" ] && calls_json="\"ns_per_call\": $(per_call "$i" medians), \"ns_per_call_min\": $(per_call "$i" mins), "
        echo "    {\"name\": \"${names[$i]}\", $iters_json\"min_ms\": ${mins[$i]}, \"median_ms\": ${medians[$i]}, \"max_ms\": ${maxs[$i]}, \"ratio\": $(ratio "$i"), $calls_json\"runs_ms\": [${runs_ms// /, }]}$sep"
    done
    echo "  ]"
    echo "}"
} >"$out"
echo "  -> $out" >&2
