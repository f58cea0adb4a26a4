#!/usr/bin/env bash
# Alternating A/B runs of `commitments import` for two or more builds: how this project judges
# a change to the import (single runs on this shared machine spread by tens of percent).
#
#   crates/bench/ab-import.sh [--cold] N WORKLOAD.jsonl BIN_A BIN_B [BIN...]
#
# Each round imports WORKLOAD into a fresh store once with every binary, in turn, after
# `sync`. With --cold, each import also starts after the page cache is dropped (root only),
# 3 s of rest and a re-read of the binary and the workload: the state the shared peer
# benchmark leaves before its batched phase, where memory freed by the drop is slow to touch
# again on this VM. Prints, per binary: the median wall time, CPU (user + sys), sys alone and
# peak RSS, the median of the per-round ratios against the first binary, and every wall time.
#
# Example (two builds of the 100k workload, 16 rounds):
#   cp target/release/commitments /tmp/c-new
#   crates/bench/ab-import.sh 16 target/bench-work/events-100000.jsonl /tmp/c-old /tmp/c-new
set -euo pipefail
cold=0
if [ "${1:-}" = --cold ]; then cold=1; shift; fi
if [ $# -lt 4 ]; then
  sed -n '2,15p' "$0" >&2
  exit 2
fi
n=$1 workload=$2; shift 2
bins=("$@")
command -v python3 >/dev/null || { echo "ab-import: needs python3" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "ab-import: needs /usr/bin/time (GNU time)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ab-import.XXXXXX")
trap 'rm -rf "$work"' EXIT
for ((r = 1; r <= n; r++)); do
  for ((b = 0; b < ${#bins[@]}; b++)); do
    store="$work/store-$b"
    rm -rf "$store"
    sync
    if [ "$cold" = 1 ]; then
      echo 3 >/proc/sys/vm/drop_caches
      sleep 3
      cat "$workload" >/dev/null
      "${bins[$b]}" --version >/dev/null
    fi
    t0=$EPOCHREALTIME
    /usr/bin/time -o "$work/time" -f '%U %S %M' "${bins[$b]}" --store "$store" -q import "$workload"
    t1=$EPOCHREALTIME
    echo "$r $b $t0 $t1 $(cat "$work/time")"
  done
done | python3 -c '
import collections, statistics, sys
names = sys.argv[1:]
runs = collections.defaultdict(dict)
for line in sys.stdin:
    r, b, t0, t1, user, system, rss = line.split()
    runs[int(b)][int(r)] = (float(t1) - float(t0), float(user) + float(system), float(system), int(rss))
for b, name in enumerate(names):
    v = runs[b]
    ratio = statistics.median(v[r][0] / runs[0][r][0] for r in v)
    med = lambda i: statistics.median(x[i] for x in v.values())
    print(f"{name}: wall {med(0):.3f} s, cpu {med(1):.3f} s, sys {med(2):.3f} s, "
          f"rss {med(3) / 1024:.0f} MiB, paired ratio {ratio:.3f}; walls "
          + " ".join(f"{v[r][0]:.3f}" for r in sorted(v)))
' "${bins[@]}"
