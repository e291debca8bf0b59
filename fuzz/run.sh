#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each one in turn for DURATION seconds
# (default 30), printing one line per target with its executions count.
# Exits non-zero if any target crashes, hangs, leaks past the RSS limit, or
# fails to build. Works from a fresh clone: installs cargo-fuzz if missing
# and uses RUSTC_BOOTSTRAP=1 so the stable toolchain can build sanitizer
# builds. RocksDB is never compiled (the fuzz crate uses `__fuzz` without
# `store`).
#
#   fuzz/run.sh [DURATION] [TARGET...]
#
# Inputs: fuzz/corpus/<target>/ (working corpus, git-ignored) plus the
# committed seeds in fuzz/seeds/<target>/ and, where present, the libFuzzer
# dictionary fuzz/dicts/<target>.dict. Crashes land in
# fuzz/artifacts/<target>/; full logs in fuzz/target/run-logs/<target>.log.
set -uo pipefail

cd "$(dirname "$0")"
DURATION="${1:-30}"
shift || true
case "$DURATION" in
    ''|*[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz..." >&2
    cargo install cargo-fuzz --locked || exit 1
fi

echo "building fuzz targets..." >&2
build_log=$(mktemp)
if ! cargo fuzz build >"$build_log" 2>&1; then
    cat "$build_log" >&2
    rm -f "$build_log"
    echo "FAILED: cargo fuzz build" >&2
    exit 1
fi
rm -f "$build_log"

# Run the built binaries directly (what `cargo fuzz run` does after building),
# so every target runs the same build and the time is all fuzzing.
bindir="target/$(rustc -vV | sed -n 's/^host: //p')/release"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

logs=target/run-logs
mkdir -p "$logs"
failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    dict=()
    [ -f "dicts/$t.dict" ] && dict=("-dict=dicts/$t.dict")
    log="$logs/$t.log"
    start=$(date +%s)
    # -timeout: a single input running 30 s is a hang (reported as a failure).
    "$bindir/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$DURATION" \
        -timeout=30 -print_final_stats=1 "${dict[@]}" "corpus/$t" "${seeds[@]}" >"$log" 2>&1
    rc=$?
    elapsed=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    [ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -1)
    [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$log" | tail -1)
    [ -n "$execs" ] || execs="?"
    if [ "$rc" -eq 0 ]; then
        printf '%-16s ok     %12s execs  %5ss\n' "$t" "$execs" "$elapsed"
    else
        failed=1
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        printf '%-16s FAILED %12s execs  %5ss  (exit %s) %s\n' "$t" "$execs" "$elapsed" "$rc" "${artifact:-see $log}"
        grep -m1 -A1 -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer" "$log" | sed 's/^/    /'
    fi
done
exit "$failed"
