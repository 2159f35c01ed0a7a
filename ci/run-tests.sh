#!/usr/bin/env bash
# Everything `make test` runs: install deps, build the patched QEMU, then
# every check, each as a named stage. Ends with one summary line
# "make test: N passed, N failed" and fails if any stage failed.
set -uo pipefail

cd "$(dirname "$0")/.." || exit
make=(make --no-print-directory)
passed=0
failed=0
failures=()
start=$(date +%s)

stage() {
    local name=$1 t0 rc
    shift
    echo "=== $name"
    t0=$(date +%s)
    "$@"
    rc=$?
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1))
        echo "=== $name: ok ($(($(date +%s) - t0))s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "=== $name: FAILED (exit $rc, $(($(date +%s) - t0))s)"
    fi
    return "$rc"
}

summary() {
    echo
    [ ${#failures[@]} -eq 0 ] || echo "failed stages: ${failures[*]}"
    echo "total time: $(($(date +%s) - start))s"
    echo "make test: $passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit
}

# Setup stages: nothing after them can run if they fail.
stage deps "${make[@]}" deps || summary
stage build "${make[@]}" qemu rust || summary

stage check-patches "${make[@]}" check-patches
stage check-patches-build "${make[@]}" check-patches-build
stage check-upstream "${make[@]}" check-upstream
stage check-master "${make[@]}" check-master
stage check-rust "${make[@]}" check-rust
stage lint-rust "${make[@]}" lint-rust
summary
