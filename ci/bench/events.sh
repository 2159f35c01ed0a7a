#!/usr/bin/env bash
# Runs the event_fire.c benchmark plugin and writes its numbers to OUT
# (JSON), with the cost per subscriber next to a direct indirect call.
#
# Usage: ci/bench/events.sh QEMU_USER PLUGIN OUT
set -euo pipefail

qemu=$1 plugin=$2 out=$3
lines=$("$qemu" -plugin "$plugin" /bin/true)
echo "$lines"
ns() { echo "$lines" | awk -v what="$1" 'index($0, what) == 1 { print $(NF - 1) }'; }
direct=$(ns "direct indirect call") zero=$(ns "fire, 0 subscribers")
one=$(ns "fire, 1 subscriber ") eight=$(ns "fire, 8 subscribers")
per=$(awk -v e="$eight" -v z="$zero" 'BEGIN { printf "%.2f", (e - z) / 8 }')
ratio=$(awk -v p="$per" -v d="$direct" 'BEGIN { printf "%.2f", p / d }')
echo "per subscriber (8 subscribers): $per ns, ${ratio}x a direct call"
if echo "$lines" | grep -q "WRONG COUNT"; then
    echo "events.sh: a subscriber missed events" >&2
    exit 1
fi
cat >"$out" <<JSON
{
  "machine": "$(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d)",
  "ns_per_call": {"direct": $direct, "fire_0": $zero, "fire_1": $one, "fire_8": $eight},
  "ns_per_subscriber": $per, "per_subscriber_vs_direct": $ratio
}
JSON
