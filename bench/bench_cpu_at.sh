#!/usr/bin/env bash
# `make bench-cpu` on an older commit, on this machine, now: the same-machine baseline (issue 17).
#
#     bench/bench_cpu_at.sh d1a7489 [bench_cpu.py options...]   # the code issue 17 was filed against
#
# Checks REV out in a temporary worktree (its own clock, collector and simulator) with this
# checkout's .venv, runs its bench/bench_cpu.py (or, on a commit from before it existed, the
# script's first version, 9af79c5, which runs on that code) and removes the worktree. Issue 17's
# CPU targets were set on the machine of 2026-12-04; the machines since then run the same code
# 1.3-3 times slower (docs/benchmarks.md), so the figures of one machine are compared with this
# baseline measured beside them.
set -euo pipefail
rev=${1:?usage: bench/bench_cpu_at.sh REV [bench_cpu.py options]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$root/.venv/bin/python" ] || { echo "no $root/.venv: run make venv first" >&2; exit 2; }
tree=$(mktemp -d /tmp/bench-cpu-at-XXXXXX)
cleanup() { git -C "$root" worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"; }
trap cleanup EXIT
git -C "$root" worktree add --detach "$tree" "$rev" >/dev/null
if [ ! -f "$tree/bench/bench_cpu.py" ]; then
  git -C "$root" show 9af79c5:bench/bench_cpu.py > "$tree/bench/bench_cpu.py"
fi
ln -s "$root/.venv" "$tree/.venv"
echo "bench_cpu.py at $(git -C "$tree" rev-parse --short HEAD)" >&2
cd "$tree" && .venv/bin/python bench/bench_cpu.py "$@"
