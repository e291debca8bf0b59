#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each one in turn for DURATION seconds
# (default 30), printing one line per target with its executions count.
# Exits non-zero if any target crashes, hangs, leaks past the RSS limit, or
# fails to build. Works from a fresh clone: installs cargo-fuzz if missing
# and uses RUSTC_BOOTSTRAP=1 so the stable toolchain can build sanitizer
# builds.
#
# Two cargo-fuzz packages:
#   fuzz/        the pure layers (`__fuzz` without `store`): RocksDB is never
#                compiled; built with AddressSanitizer (cargo-fuzz's default).
#   fuzz/store/  `api_sequence`, which links the whole store, built with
#                `-s none` (see fuzz/README.md). It links the librocksdb.a
#                the main release build made (target/release/build/, there
#                after `make test`) when that is the same librocksdb-sys
#                version; otherwise RocksDB's C++ is compiled into
#                fuzz/store/target (17 minutes on 2 cores the first time).
#                FUZZ_STORE_ROCKSDB=compile always compiles it; FUZZ_STORE=0
#                leaves the target out.
#
#   fuzz/run.sh [DURATION] [TARGET...]
#
# Inputs: <pkg>/corpus/<target>/ (working corpus, git-ignored) plus the
# committed seeds in <pkg>/seeds/<target>/ and, where present, the libFuzzer
# dictionary <pkg>/dicts/<target>.dict, <pkg> being fuzz or fuzz/store.
# Crashes land in <pkg>/artifacts/<target>/; full logs in
# <pkg>/target/run-logs/<target>.log.
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

# The store package's sanitizer (`cargo fuzz build -s`); see fuzz/README.md.
STORE_SANITIZER="${STORE_SANITIZER:-none}"
FUZZ_STORE="${FUZZ_STORE:-1}"
FUZZ_STORE_ROCKSDB="${FUZZ_STORE_ROCKSDB:-reuse}"

# Prints the out/ directory of the main release build's librocksdb-sys if it
# holds a finished librocksdb.a of the version store/Cargo.lock uses. Its C++
# is what the store package would compile (same cc flags: cargo-fuzz's flags
# only reach rustc), so linking it saves compiling RocksDB a second time.
main_rocksdb() {
    local want out
    want=$(sed -n '/^name = "librocksdb-sys"$/{n;s/^version = "\(.*\)"$/\1/p;}' store/Cargo.lock)
    [ -n "$want" ] || return 1
    for out in $(ls -td ../target/release/build/librocksdb-sys-*/out 2>/dev/null); do
        # `output` ends with this line once the build script has finished.
        if [ -f "$out/librocksdb.a" ] &&
            grep -q "^cargo:cargo_manifest_dir=.*/librocksdb-sys-$want\$" "$out/../output" 2>/dev/null; then
            (cd "$out" && pwd)
            return 0
        fi
    done
    return 1
}

# The log of the last failed build.
BUILD_LOG=$(mktemp)
trap 'rm -f "$BUILD_LOG"' EXIT

build_store() {
    local lib
    if [ -z "${ROCKSDB_LIB_DIR:-}" ] && [ "$FUZZ_STORE_ROCKSDB" = reuse ] && lib=$(main_rocksdb); then
        echo "fuzz/store: linking the main build's RocksDB ($lib)" >&2
        if ROCKSDB_LIB_DIR="$lib" ROCKSDB_STATIC=1 build store -s "$STORE_SANITIZER"; then
            return 0
        fi
        # A Rust compile error would fail the same way after 15 minutes of
        # compiling RocksDB: only a link or build-script failure falls back.
        if grep -q '^error\[E[0-9]' "$BUILD_LOG"; then
            echo "fuzz/store: Rust compile errors (above); not retrying with a compiled RocksDB" >&2
            return 1
        fi
        echo "fuzz/store: that failed; compiling RocksDB instead" >&2
    fi
    build store -s "$STORE_SANITIZER"
}

# build DIR [cargo fuzz build options...]
build() {
    local dir=$1
    shift
    local build_log start
    build_log=$(mktemp)
    start=$(date +%s)
    echo "building fuzz targets in fuzz/${dir#.}..." >&2
    if ! cargo fuzz build --fuzz-dir "$dir" "$@" >"$build_log" 2>&1; then
        cat "$build_log" >&2
        # Kept for the caller to inspect (see build_store).
        cp "$build_log" "$BUILD_LOG"
        rm -f "$build_log"
        echo "FAILED: cargo fuzz build --fuzz-dir $dir $*" >&2
        return 1
    fi
    rm -f "$build_log"
    echo "built fuzz/${dir#.} in $(( $(date +%s) - start ))s" >&2
}

main_targets=()
store_targets=()
mapfile -t all_main < <(cargo fuzz list --fuzz-dir .)
all_store=()
[ "$FUZZ_STORE" = 0 ] || mapfile -t all_store < <(cargo fuzz list --fuzz-dir store)
if [ "$#" -gt 0 ]; then
    for t in "$@"; do
        if printf '%s\n' "${all_main[@]}" | grep -qx -- "$t"; then
            main_targets+=("$t")
        elif printf '%s\n' "${all_store[@]}" | grep -qx -- "$t"; then
            store_targets+=("$t")
        else
            echo "unknown fuzz target: $t" >&2
            exit 2
        fi
    done
else
    main_targets=("${all_main[@]}")
    store_targets=("${all_store[@]}")
fi

if [ "${#main_targets[@]}" -gt 0 ]; then
    build . || exit 1
fi
if [ "${#store_targets[@]}" -gt 0 ]; then
    build_store || exit 1
fi

# Run the built binaries directly (what `cargo fuzz run` does after building),
# so every target runs the same build and the time is all fuzzing.
triple="$(rustc -vV | sed -n 's/^host: //p')"

failed=0
# run DIR TARGET [extra libFuzzer flags...]
run() {
    local dir=$1 t=$2
    shift 2
    local bindir="$dir/target/$triple/release" logs="$dir/target/run-logs"
    local seeds=() dict=() log start rc elapsed execs artifact
    mkdir -p "$logs" "$dir/corpus/$t" "$dir/artifacts/$t"
    [ -d "$dir/seeds/$t" ] && seeds=("$dir/seeds/$t")
    [ -f "$dir/dicts/$t.dict" ] && dict=("-dict=$dir/dicts/$t.dict")
    log="$logs/$t.log"
    start=$(date +%s)
    # -timeout: a single input running 30 s is a hang (reported as a failure).
    "$bindir/$t" -artifact_prefix="$dir/artifacts/$t/" -max_total_time="$DURATION" \
        -timeout=30 -print_final_stats=1 "$@" "${dict[@]}" "$dir/corpus/$t" "${seeds[@]}" >"$log" 2>&1
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
}

for t in "${main_targets[@]}"; do
    run . "$t"
done
for t in "${store_targets[@]}"; do
    # Each input is an op sequence on a fresh store (a few per second):
    # -max_len is room for 64 ops; -len_control=0 lets mutations reach long
    # sequences at once instead of growing the length limit slowly.
    run store "$t" -max_len=8192 -len_control=0
done
exit "$failed"
