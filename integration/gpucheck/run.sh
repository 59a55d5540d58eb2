#!/usr/bin/env bash
# Volley's GPU check, for a machine with an NVIDIA GPU and its driver (CUDA
# 13), no Go toolchain and no network. It runs the gpucheck binary built
# beforehand on a machine with Go:
#
#   CGO_ENABLED=0 go build -o .cache/bin/gpucheck ./integration/gpucheck
#   make lib        # .cache/lib/libvolley.so, for step 4
#
# and finishes within 5 minutes. Steps (see integration/gpucheck/main.go):
#   1 inventory      driver version, device name, free memory
#   2 stream         1 GiB of lineitem-shaped batches onto cuda:0 through
#                    async.Produce and the Mover; each batch's sync event is
#                    waited on, its buffers are copied back and compared byte
#                    for byte with the CPU batch; cuPointerGetAttribute says
#                    device memory
#   3 bandwidth      raw pinned cuMemcpyHtoDAsync vs Volley's pipeline vs a CPU
#                    stream (GB/s and ratio; target >= 80% of raw pinned)
#   4 cupy consumer  through .cache/lib/libvolley.so (cupy_check.py): 64
#                    batches onto cuda:0, each id column summed on the GPU by
#                    CuPy without a copy after its sync event; GPU memory back
#                    to its baseline; skipped where CuPy does not import
#   5 fallback       with the CUDA library pointed nowhere the stream lands on
#                    the CPU and says why
# Exit status: 0 pass; 1 correct but below the bandwidth target; 2 a check
# failed (or the binary is missing); 3 no usable GPU (fallback verified).
# Extra arguments go to gpucheck (e.g. -gib 2 -copy-workers 12).
set -u
cd "$(dirname "$0")/../.."
BIN=${GPUCHECK_BIN:-.cache/bin/gpucheck}
if [ ! -x "$BIN" ]; then
  echo "gpucheck binary not found at $BIN: build it with 'CGO_ENABLED=0 go build -o .cache/bin/gpucheck ./integration/gpucheck' and carry .cache/bin" >&2
  exit 2
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader || true
fi
timeout 280 "$BIN" -timeout 270s "$@"
rc=$?
if [ "$rc" -eq 124 ]; then
  echo "gpucheck: timed out" >&2
  rc=2
fi
echo "== step 4: cupy consumer"
# integration/gpucheck/cupy_check.py: a ctypes consumer of libvolley's C API
# that sums each batch's id column on the GPU through CuPy, zero-copy, after
# waiting on the batch's sync event (its CPU modes run in pycheck_test.go).
if [ "$rc" -eq 3 ]; then
  echo "step 4: skipped: no usable GPU (see step 1)"
elif [ ! -f .cache/lib/libvolley.so ]; then
  echo "step 4: skipped: .cache/lib/libvolley.so not found (build it with 'make lib' and carry .cache/lib)"
elif ! command -v python3 >/dev/null 2>&1; then
  echo "step 4: skipped: python3 not found on this machine"
elif ! why=$(python3 -c 'import cupy' 2>&1); then
  echo "step 4: skipped: CuPy does not import on this machine: $(printf '%s\n' "$why" | tail -n 1)"
else
  timeout 100 python3 integration/gpucheck/cupy_check.py --lib .cache/lib/libvolley.so \
    --device cuda:0 --batches 64 --rows 1000000 --timeout 90
  rc4=$?
  if [ "$rc4" -ne 0 ]; then
    echo "step 4: FAIL (cupy_check.py exit $rc4)" >&2
    rc=2
  fi
fi
exit "$rc"
