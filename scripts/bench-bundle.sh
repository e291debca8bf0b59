#!/bin/bash
# Bundles against tar + zstd on the corpus (docs/BENCHMARKS.md, "Bundles"): puts every
# corpus set into a store, then 3 rounds of `export -o` and `import` into an empty store,
# beside `tar | zstd -3` of the same files and back. Prints /usr/bin/time lines and sizes.
#   scripts/bench-bundle.sh [WORK_DIR]     (corpus: $MODELVAULT_CORPUS or ~/.cache/modelvault-corpus)
set -eu
MV="$(cd "$(dirname "$0")/.." && pwd)/target/release/modelvault"
C="${MODELVAULT_CORPUS:-$HOME/.cache/modelvault-corpus}"
W="${1:-$(mktemp -d)}"
mkdir -p "$W" && cd "$W"
rm -rf s
for set in "$C"/*/; do
    for v in "$set"*/; do "$MV" --repo s put --name "$(basename "$set")" "$v" >/dev/null; done
done
"$MV" --repo s stats --json
for r in 1 2 3; do
    rm -rf all.mvb t x && sync
    /usr/bin/time -f "export %e s %P cpu %M KB" "$MV" --repo s export -o all.mvb
    sync
    /usr/bin/time -f "import %e s %P cpu %M KB" "$MV" --repo t import all.mvb >/dev/null
    /usr/bin/time -f "tar+zstd %e s %P cpu %M KB" sh -c "tar -C '$C' -cf - . | zstd -3 -q -c > files.tar.zst"
    mkdir x && /usr/bin/time -f "untar %e s %P cpu %M KB" sh -c "zstd -d -q -c files.tar.zst | tar -C x -xf -"
    ls -l all.mvb files.tar.zst | awk '{print $5, $9}'
done
"$MV" --repo t stats --json
"$MV" --repo t verify --read-data | tail -1
