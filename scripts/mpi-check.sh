#!/usr/bin/env bash
# The data-parallel example on 1, 2, 3 and 4 MPI ranks and in one process, on lavapipe: every run must
# print the same `sha256` line (the final weights, bitwise) and the same loss curve; then an uneven
# split (10 chunks on 3 ranks, 7 on 4), and three failures that must end the whole run, with the
# failing rank's message, within a time limit: a rank whose gradient fails, a rank that exits, and a
# rank that runs another layer.
#
#   bash scripts/mpi-check.sh [EXAMPLE]   (default target/release/examples/data_parallel)
#
# Needs what .ci/setup-mpi installs; VK_ICD_FILENAMES picks the driver (lavapipe in .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
example=${1:-target/release/examples/data_parallel}
[ -x "$example" ] || { echo "mpi-check: $example is missing: cargo build --release --features mpi --example data_parallel" >&2; exit 1; }
# Root in CI, more ranks than cores, loopback TCP, no busy waiting; each rank's llvmpipe on one thread.
mpirun=(/usr/bin/mpirun --allow-run-as-root --oversubscribe --mca pml ob1 --mca btl self,tcp
  --mca btl_tcp_if_include lo --mca mpi_yield_when_idle 1 -x VK_ICD_FILENAMES -x WGPU_BACKEND
  -x XDG_RUNTIME_DIR -x LP_NUM_THREADS=1)
out=$(mktemp -d)
fail() { echo "mpi-check: FAILED: $*" >&2; exit 1; }

# run NAME ARGS...: the example's output in $out/NAME, with a time limit; prints its last line.
run() {
  local name=$1
  shift
  timeout 300 "$@" >"$out/$name" 2>"$out/$name.err" || { cat "$out/$name.err" >&2; fail "$name exited with $?"; }
  tail -1 "$out/$name"
}

want=$(run local1 "$example" --local 1)
[[ $want == "sha256 "* ]] || fail "the single-process run printed no sha256 line: $want"
echo "one process, one member:   $want"
for np in 1 2 3 4; do
  got=$(run "np$np" "${mpirun[@]}" -np "$np" "$example")
  echo "mpirun -np $np:              $got"
  [ "$got" = "$want" ] || fail "mpirun -np $np printed '$got', the single-process run '$want'"
  cmp -s "$out/local1" "$out/np$np" || fail "the loss curve on $np ranks differs from the single process's: $(diff "$out/local1" "$out/np$np" | head -3)"
done
got=$(run local3 "$example" --local 3)
echo "one process, three members: $got"
[ "$got" = "$want" ] || fail "three members in one process printed '$got', one printed '$want'"
# Uneven: 7 chunks of 2 images (the last of 1) on 4 ranks: 2, 2, 2, 1 chunks.
want=$(run uneven1 "$example" --images 13 --chunk 2 --local 1)
got=$(run uneven4 "${mpirun[@]}" -np 4 "$example" --images 13 --chunk 2)
echo "13 images in chunks of 2, 1 member: $want; 4 ranks: $got"
[ "$got" = "$want" ] || fail "13 images in chunks of 2 on 4 ranks printed '$got', in one process '$want'"

# expect_failure NAME PATTERN ARGS...: the run must fail within the limit, and its output must
# contain PATTERN.
expect_failure() {
  local name=$1 pattern=$2 rc=0 t0=$SECONDS
  shift 2
  timeout 120 "$@" >"$out/$name" 2>&1 || rc=$?
  [ "$rc" != 0 ] || fail "$name: the run succeeded"
  [ "$rc" != 124 ] || fail "$name: the run hung (killed after 120 s)"
  grep -q -- "$pattern" "$out/$name" || { cat "$out/$name" >&2; fail "$name: no '$pattern' in its output"; }
  echo "$name: ended in $((SECONDS - t0)) s (exit $rc): $(grep -m1 -- "$pattern" "$out/$name")"
}
expect_failure "a rank whose gradient fails" "data-parallel peer 1: .*failing on purpose" \
  "${mpirun[@]}" -np 3 "$example" --fail-rank 1 --fail error
[ "$(grep -c "data-parallel peer 1" "$out/a rank whose gradient fails")" -ge 2 ] ||
  fail "the other ranks did not report rank 1's failure"
expect_failure "a rank that runs another layer" "data-parallel peer 2: runs filter learning on 33x33" \
  "${mpirun[@]}" -np 3 "$example" --fail-rank 2 --fail shape
expect_failure "a rank that exits early" "exiting at step 3" "${mpirun[@]}" -np 3 "$example" --fail-rank 1 --fail exit
# What the others see: MPI's word on the lost peer, and mpirun naming it.
grep -q "exited with non-zero status" "$out/a rank that exits early" || fail "mpirun did not report the rank that exited"
echo "mpi-check: every rank count gave the single process's bits; the three failures ended the run"
