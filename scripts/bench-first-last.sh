#!/usr/bin/env bash
# Restore time of the first and of the last version of a model: stores every
# version of one set (<dir>/<version>/ subfolders, in name order) with
# modelvault, then times `get NAME@1` and `get NAME@N` alternately, RUNS times
# each, and prints the medians. By default (reverse deltas) the newest version is
# stored whole and the older ones as deltas against it; with --forward-delta,
# the opposite.
#
# Usage: scripts/bench-first-last.sh SET_DIR [PUT_FLAGS...]
#        e.g. scripts/bench-first-last.sh /tmp/modelvault-synth/train-run --forward-delta
# Env:   MV=path/to/modelvault (default target/release/modelvault), RUNS (default 5)
set -eu
set -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MV=${MV:-$ROOT/target/release/modelvault}
RUNS=${RUNS:-5}
SET=${1:?usage: scripts/bench-first-last.sh SET_DIR [PUT_FLAGS...]}
shift
unset MODELVAULT_REPO
[ -x "$MV" ] || (cd "$ROOT" && cargo build --release --bin modelvault)
WORK=$(mktemp -d /tmp/bench-first-last.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
REPO=$WORK/repo

now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a - b}'; }
"$MV" --repo "$REPO" init >/dev/null
n=0
t0=$(now)
for v in "$SET"/*/; do
    "$MV" --repo "$REPO" put "$@" --name bench "$v" >/dev/null 2>&1
    n=$((n + 1))
done
t1=$(now)
"$MV" --repo "$REPO" gc --compact-below 0.9 >/dev/null
t2=$(now)
sync
echo "versions: $n, ingest $(sub "$t1" "$t0") s, gc $(sub "$t2" "$t1") s, stored $(du -sb "$REPO/packs" | cut -f1) pack bytes (put flags: ${*:-none})"

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
: >"$WORK/first"; : >"$WORK/last"
for _ in $(seq "$RUNS"); do
    for which in 1:first "$n":last; do
        rm -rf "$WORK/out"
        s=$(now)
        "$MV" --repo "$REPO" get "bench@${which%%:*}" --out "$WORK/out" >/dev/null
        e=$(now)
        sub "$e" "$s" >>"$WORK/${which#*:}"; echo >>"$WORK/${which#*:}"
    done
done
echo "restore of version 1: median $(median <"$WORK/first") s; of version $n: median $(median <"$WORK/last") s ($RUNS runs each, alternating)"
