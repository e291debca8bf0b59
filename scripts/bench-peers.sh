#!/usr/bin/env bash
# Peer comparison: store the real-weights corpus with modelvault, borg, restic
# and a plain `cp -r` ("file server" baseline), then restore the latest version
# of every set and check it is byte-identical to the source.
#
# Usage: scripts/bench-peers.sh [CORPUS_DIR]
#        (default: $MODELVAULT_CORPUS or ~/.cache/modelvault-corpus)
# Env:   MV=path/to/modelvault  (default: target/release/modelvault, built if missing)
#        MV_PUT_FLAGS="..."     extra flags for every `modelvault put`, e.g.
#                               --forward-delta (default: none)
#        MV_GC_FLAGS="..."      when set, `modelvault gc $MV_GC_FLAGS` ends the timed
#                               ingest (e.g. "--compact-below 0.9" after reverse deltas)
#
# Per tool, in one run:
#   ingest   every version of every set, in version order, each as its own
#            model version / archive / snapshot / directory; one untimed repo
#            init first; the timed phase ends with a `sync`
#   restore  the latest version of each set into a scratch dir (also ends with
#            a `sync`), then `diff -r` against the source
# Measured: wall-clock seconds per phase, peak RSS (max of /usr/bin/time %M over
# the phase's invocations), stored bytes (`du -sb` of the repo after both phases;
# borg's and restic's local caches live outside the repo and are not counted).
# The page cache is not dropped (not reliably possible here): the corpus is read
# once before the first tool so that every tool ingests from a warm cache, and
# each tool's phases run back to back.
#
# Exit status: 0 all restores byte-identical, 1 a restore differed, 2 other error.
set -eu
set -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORPUS=${1:-${MODELVAULT_CORPUS:-$HOME/.cache/modelvault-corpus}}
MV=${MV:-$ROOT/target/release/modelvault}
FETCH=$ROOT/../shared/corpus/fetch.sh
unset MODELVAULT_REPO

say() { echo "bench-peers: $*" >&2; }
die() { echo "bench-peers: error: $*" >&2; exit 2; }

WORK=$(mktemp -d /tmp/bench-peers.XXXXXX) || die "cannot create a temp dir under /tmp"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- prerequisites
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}
missing=()
command -v borg >/dev/null 2>&1 || missing+=(borgbackup)
command -v restic >/dev/null 2>&1 || missing+=(restic)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]} and no apt-get here; install them with your package manager"
    say "installing ${missing[*]} with apt-get"
    as_root apt-get update -qq || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
fi

if [ ! -x "$MV" ]; then
    [ "$MV" = "$ROOT/target/release/modelvault" ] || die "MV=$MV is not an executable"
    say "$MV missing: building it (cargo build --release --bin modelvault)"
    (cd "$ROOT" && sh scripts/setup.sh && cargo build --release --bin modelvault) ||
        die "building modelvault failed"
fi

corpus_complete() {
    [ -d "$CORPUS" ] || return 1
    local n=0 v
    for v in "$CORPUS"/*/*/; do
        [ -d "$v" ] || continue
        [ -f "$v/.complete" ] || return 1
        n=$((n + 1))
    done
    [ "$n" -gt 0 ]
}
if ! corpus_complete; then
    [ -f "$FETCH" ] || die "corpus $CORPUS missing or incomplete, and no fetch script at $FETCH"
    say "corpus $CORPUS missing or incomplete: running $FETCH"
    sh "$FETCH" "$CORPUS" || die "fetching the corpus failed"
    corpus_complete || die "corpus $CORPUS still incomplete after fetching"
fi
CORPUS=$(cd "$CORPUS" && pwd)

# Ingest order: sets by name, each set's versions in version order (sort -V).
SETS=() PAIRS=() LATEST=()
while IFS= read -r s; do
    SETS+=("$s")
    last=
    while IFS= read -r v; do
        PAIRS+=("$s/$v")
        last=$v
    done < <(cd "$CORPUS/$s" && find . -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V)
    LATEST+=("$last")
done < <(cd "$CORPUS" && find . -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)

CORPUS_BYTES=0 LATEST_BYTES=0
for p in "${PAIRS[@]}"; do
    b=$(find "$CORPUS/$p" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
    CORPUS_BYTES=$((CORPUS_BYTES + b))
done
for i in "${!SETS[@]}"; do
    b=$(find "$CORPUS/${SETS[$i]}/${LATEST[$i]}" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
    LATEST_BYTES=$((LATEST_BYTES + b))
done

# Tool settings. Repos and caches live under $WORK, never in $HOME.
export BORG_BASE_DIR=$WORK/borg-base
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export RESTIC_CACHE_DIR=$WORK/restic-cache
RESTIC_GLOBAL=()
if restic --help 2>&1 | grep -q -- '--insecure-no-password'; then
    RESTIC_GLOBAL+=(--insecure-no-password)
    RESTIC_PW_NOTE="--insecure-no-password"
    unset RESTIC_PASSWORD
else
    export RESTIC_PASSWORD=bench-peers   # no --insecure-no-password before restic 0.17
    RESTIC_PW_NOTE="fixed password (restic has no --insecure-no-password)"
fi
RESTIC_INIT=()
restic init --help 2>&1 | grep -q -- '--repository-version' && RESTIC_INIT+=(--repository-version 2)

V_MV=$("$MV" --version 2>&1) || die "$MV --version failed: $V_MV"
V_MV=$(echo "$V_MV" | awk '{print $NF}')
V_BORG=$(borg --version | awk '{print $NF}')
V_RESTIC=$(restic version | awk '{print $2}')
V_CP=$(cp --version | head -n 1 | awk '{print $NF}')

# ---------------------------------------------------------------- measuring
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }

# run DIR CMD...: run CMD in DIR under /usr/bin/time; raise $PEAK (KiB) to its
# peak RSS. Output goes to $LOG; on failure, show the log tail and stop.
PEAK=0 LOG=/dev/null
run() {
    local dir=$1; shift
    local rssf=$WORK/rss
    : >"$rssf"
    if ! (cd "$dir" && /usr/bin/time -f %M -o "$rssf" "$@") >>"$LOG" 2>&1; then
        echo "bench-peers: error: command failed (in $dir): $*" >&2
        tail -n 20 "$LOG" | sed 's/^/    /' >&2
        exit 2
    fi
    local rss
    rss=$(tail -n 1 "$rssf")
    case $rss in ''|*[!0-9]*) die "could not read peak RSS of: $*" ;; esac
    [ "$rss" -gt "$PEAK" ] && PEAK=$rss
    return 0
}

# Per-tool results, indexed like TOOLS.
TOOLS=(modelvault borg restic cp)
declare -A VER=([modelvault]=$V_MV [borg]=$V_BORG [restic]=$V_RESTIC [cp]=$V_CP)
declare -A STORED ING ING_SYNC RES RES_SYNC RSS_I RSS_R SAME
FAILED=0

tool_init() { # TOOL REPO
    case $1 in
    modelvault) run "$WORK" "$MV" --repo "$2" init ;;
    borg)       run "$WORK" borg init --encryption=none "$2" ;;
    restic)     run "$WORK" restic "${RESTIC_GLOBAL[@]}" -r "$2" init "${RESTIC_INIT[@]}" ;;
    cp)         mkdir -p "$2" ;;
    esac
}
tool_put() { # TOOL REPO SET VERSION
    local src=$CORPUS/$3/$4
    case $1 in
    modelvault) run "$WORK" "$MV" --repo "$2" put ${MV_PUT_FLAGS:-} --name "$3" "$src/" ;;
    borg)       run "$src" borg create --compression zstd,3 "$2::$3-$4" . ;;
    restic)     run "$src" restic "${RESTIC_GLOBAL[@]}" -r "$2" backup -q --compression auto \
                    --host bench-peers --tag "$3-$4" . ;;
    cp)         mkdir -p "$2/$3" && run "$WORK" cp -r "$src" "$2/$3/$4" ;;
    esac
}
tool_get() { # TOOL REPO SET VERSION OUT  (OUT does not exist yet)
    case $1 in
    modelvault) run "$WORK" "$MV" --repo "$2" get "$3" --out "$5" ;;
    borg)       mkdir -p "$5" && run "$5" borg extract "$2::$3-$4" ;;
    restic)     run "$WORK" restic "${RESTIC_GLOBAL[@]}" -r "$2" restore -q latest \
                    --host bench-peers --tag "$3-$4" --target "$5" ;;
    cp)         run "$WORK" cp -r "$2/$3/$4" "$5" ;;
    esac
}

bench_tool() {
    local t=$1 repo=$WORK/repo-$1 out=$WORK/out-$1 t0 t1 t2 i ok=yes
    LOG=$WORK/log-$t
    : >"$LOG"
    say "$t: init + ingest of ${#PAIRS[@]} set-versions"
    PEAK=0
    tool_init "$t" "$repo"
    sync
    PEAK=0
    t0=$(now)
    for p in "${PAIRS[@]}"; do
        tool_put "$t" "$repo" "${p%%/*}" "${p#*/}"
    done
    if [ "$t" = modelvault ] && [ -n "${MV_GC_FLAGS+set}" ]; then
        run "$WORK" "$MV" --repo "$repo" gc $MV_GC_FLAGS
    fi
    t1=$(now); sync; t2=$(now)
    ING[$t]=$(elapsed "$t0" "$t2") ING_SYNC[$t]=$(elapsed "$t1" "$t2") RSS_I[$t]=$PEAK

    say "$t: restore of the latest version of ${#SETS[@]} sets"
    mkdir -p "$out"
    PEAK=0
    t0=$(now)
    for i in "${!SETS[@]}"; do
        tool_get "$t" "$repo" "${SETS[$i]}" "${LATEST[$i]}" "$out/${SETS[$i]}"
    done
    t1=$(now); sync; t2=$(now)
    RES[$t]=$(elapsed "$t0" "$t2") RES_SYNC[$t]=$(elapsed "$t1" "$t2") RSS_R[$t]=$PEAK

    for i in "${!SETS[@]}"; do
        if ! diff -r "$CORPUS/${SETS[$i]}/${LATEST[$i]}" "$out/${SETS[$i]}" >"$WORK/diff" 2>&1; then
            ok=NO FAILED=1
            echo "bench-peers: $t: restore of ${SETS[$i]}/${LATEST[$i]} is NOT byte-identical:" >&2
            head -n 20 "$WORK/diff" | sed 's/^/    /' >&2
        fi
    done
    SAME[$t]=$ok
    STORED[$t]=$(du -sb "$repo" | cut -f1)
    rm -rf "$repo" "$out"
}

# ---------------------------------------------------------------- run
say "warming the page cache with the corpus ($CORPUS_BYTES bytes)"
find "$CORPUS" -type f -exec cat {} + >/dev/null

for t in "${TOOLS[@]}"; do bench_tool "$t"; done
AUX_BORG=$(du -sb "$BORG_BASE_DIR" 2>/dev/null | cut -f1 || echo 0)
AUX_RESTIC=$(du -sb "$RESTIC_CACHE_DIR" 2>/dev/null | cut -f1 || echo 0)

# ---------------------------------------------------------------- report
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else printf "-"}'; }

echo
echo "== bench-peers: modelvault vs peers =="
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "host:    nproc=$(nproc), CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), RAM: $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "corpus:  $CORPUS: ${#SETS[@]} sets, ${#PAIRS[@]} set-versions, $CORPUS_BYTES bytes ingested, $LATEST_BYTES bytes restored (latest versions)"
echo "modelvault: put flags: ${MV_PUT_FLAGS:-(none)}; gc after ingest: ${MV_GC_FLAGS-(none)}"
echo "order:   ${PAIRS[*]}"
echo "flags:   borg create --compression zstd,3 (repo --encryption=none); restic backup --compression auto (repo v2, $RESTIC_PW_NOTE); cp -r"
echo
{
    printf 'tool\tversion\tstored_bytes\tstored/corpus\tingest_s\trestore_s\trss_ingest_MiB\trss_restore_MiB\tidentical\tmv/peer_stored\tmv/peer_ingest\tmv/peer_restore\n'
    for t in "${TOOLS[@]}"; do
        if [ "$t" = modelvault ]; then rs=- ri=- rr=-
        else
            rs=$(ratio "${STORED[modelvault]}" "${STORED[$t]}")
            ri=$(ratio "${ING[modelvault]}" "${ING[$t]}")
            rr=$(ratio "${RES[modelvault]}" "${RES[$t]}")
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "${VER[$t]}" "${STORED[$t]}" \
            "$(ratio "${STORED[$t]}" "$CORPUS_BYTES")" "${ING[$t]}" "${RES[$t]}" \
            "$(mib "${RSS_I[$t]}")" "$(mib "${RSS_R[$t]}")" "${SAME[$t]}" "$rs" "$ri" "$rr"
    done
} | awk -F '\t' '{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) }; n = NR; nf = NF }
    END { for (r = 1; r <= n; r++) { l = ""; for (i = 1; i <= nf; i++) l = l (i < nf ? sprintf("%-" w[i] "s  ", c[r, i]) : c[r, i]); print l } }'
echo
echo "notes:   mv/peer = modelvault's figure / the peer's (below 1: modelvault smaller or faster)."
echo "         times are wall-clock and include a final sync (ingest sync s: $(for t in "${TOOLS[@]}"; do printf '%s=%s ' "$t" "${ING_SYNC[$t]}"; done)restore sync s: $(for t in "${TOOLS[@]}"; do printf '%s=%s ' "$t" "${RES_SYNC[$t]}"; done | sed 's/ $//'))."
echo "         repo init untimed; page cache warm, not dropped; each tool's phases run back to back."
echo "         not counted in stored bytes: borg cache $AUX_BORG bytes, restic cache $AUX_RESTIC bytes."

if [ "$FAILED" != 0 ]; then
    echo "bench-peers: FAILED: at least one restore is not byte-identical (see above)" >&2
    exit 1
fi
