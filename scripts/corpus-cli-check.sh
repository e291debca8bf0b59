#!/bin/sh
# Stores every version of every corpus set with the CLI, then checks that
# every file comes back byte-identical through `get` and through `cat`.
# Usage: scripts/corpus-cli-check.sh [CORPUS_DIR]   (needs a release build)
set -eu
CORPUS=${1:-${MODELVAULT_CORPUS:-$HOME/.cache/modelvault-corpus}}
MV=${MV:-target/release/modelvault}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export MODELVAULT_REPO="$WORK/repo"
files=0
for set in "$CORPUS"/*/; do
    name=$(basename "$set")
    for ver in "$set"*/; do
        spec=$("$MV" put --name "$name" "$ver" | tail -n 1)
        out="$WORK/out/$spec"
        "$MV" get "$spec" --out "$out" >/dev/null
        # get: the whole tree, byte for byte (the fetch marker .complete included)
        diff -r "$ver" "$out"
        # cat: every file on its own
        (cd "$ver" && find . -type f) | while read -r f; do
            "$MV" cat "$spec" "${f#./}" | cmp -s - "$ver/$f" || { echo "cat differs: $spec $f" >&2; exit 1; }
        done
        n=$(cd "$ver" && find . -type f | wc -l)
        files=$((files + n))
        echo "ok $spec ($n files)"
    done
done
echo "all $files files byte-identical through get and cat"
"$MV" stats
