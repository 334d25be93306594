#!/usr/bin/env bash
# Cross-compiles the native kernels and their C++ tests for linux-arm64 (Debian's g++-aarch64-linux-gnu,
# static executables) and runs them under qemu-aarch64, so the NEON kernels really execute:
#   test_kernels         every kernel table (scalar, neon) against a naive double-precision reference
#   test_encoder         the whole encoder on every table against a naive reference
#   test_train           training kernels and one full step against float64 finite differences
#   test_cls_head        the classification head and a full classifier step against float64 differences
#   test_simd_vs_scalar  neon against scalar on identical inputs, 1e-5 relative (--require neon)
#   test_qgemm           int8 GEMM: neon (smull/sadalp) and neondot (sdot) bit-exact in int32 vs a reference
#   test_encoder_int8    the int8 encoder (active int8 path: neondot under qemu) vs the float32 one
# BORT_ISA=neon is set, so dispatch must also accept NEON as the active table.
#
#   bash native/cross/arm64-test.sh                  fails when a tool is missing (what .ci/run calls)
#   bash native/cross/arm64-test.sh --if-available   skips (exit 0, with a message) when a tool is missing,
#                                                    except under CI (CI set and not "false"/"0"): fails
# Build folder: native/build-cross-arm64 (or $BORT_ARM64_BUILD).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BORT_ARM64_BUILD:-$root/native/build-cross-arm64}

qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)
missing=()
command -v aarch64-linux-gnu-g++ > /dev/null || missing+=("aarch64-linux-gnu-g++ (apt-get install g++-aarch64-linux-gnu)")
[ -n "$qemu" ] || missing+=("qemu-aarch64 (apt-get install qemu-user or qemu-user-static)")
command -v cmake > /dev/null || missing+=("cmake (apt-get install cmake)")
if [ ${#missing[@]} -gt 0 ]; then
  for m in "${missing[@]}"; do echo "arm64-test: missing $m" >&2; done
  if [ "${1:-}" = "--if-available" ]; then
    case "${CI:-}" in
      ""|false|0) echo "arm64-test: SKIPPED (cross tools not installed)"; exit 0 ;;
    esac
    echo "arm64-test: FAILED: the cross tools are missing in CI (CI=$CI), so the NEON kernels were not tested" >&2
    exit 1
  fi
  echo "arm64-test: FAILED: cross tools missing" >&2
  exit 1
fi

echo "arm64-test: cross-compiling into ${build#$root/}"
cmake -S "$root/native/cross" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$root/native/cross/aarch64-linux-gnu.cmake" > /dev/null
cmake --build "$build" -j "$(nproc)" --target test_kernels test_encoder test_simd_vs_scalar test_qgemm test_encoder_int8 test_train test_cls_head > /dev/null

# The NEON table must be real vector code: fused multiply-adds on 4-lane registers in the binary.
fmla=$(aarch64-linux-gnu-objdump -d "$build/test_simd_vs_scalar" | grep -c 'fmla.*v[0-9]*\.4s' || true)
if [ "$fmla" -lt 10 ]; then
  echo "arm64-test: FAIL: test_simd_vs_scalar holds $fmla NEON fmla instructions" >&2
  exit 1
fi

status=0
run() {
  local name=$1; shift
  local log
  echo "arm64-test: qemu-aarch64 $name $*"
  if ! log=$(BORT_ISA=neon "$qemu" "$build/$name" "$@" 2>&1); then status=1; fi
  printf '%s\n' "$log" | sed 's/^/  /'
  LAST_LOG=$log
}
run bort/test_kernels
if ! grep -q '^testing neon' <<< "$LAST_LOG"; then
  echo "arm64-test: FAIL: test_kernels did not test the neon table" >&2
  status=1
fi
run bort/test_encoder
run bort/test_train
if ! grep -q '^neon full step' <<< "$LAST_LOG"; then
  echo "arm64-test: FAIL: test_train did not check the neon training kernels" >&2
  status=1
fi
run bort/test_cls_head
if ! grep -q '^neon full classifier step' <<< "$LAST_LOG"; then
  echo "arm64-test: FAIL: test_cls_head did not check the neon classifier step" >&2
  status=1
fi
run test_simd_vs_scalar --require neon
if ! grep -q '^neon vs scalar: worst relative difference' <<< "$LAST_LOG"; then
  echo "arm64-test: FAIL: no neon-vs-scalar comparison ran" >&2
  status=1
fi
# int8: both NEON paths must be real (sdot and smull in the binary) and both must run under qemu
sdot=$(aarch64-linux-gnu-objdump -d "$build/bort/test_qgemm" | grep -c 'sdot' || true)
smull=$(aarch64-linux-gnu-objdump -d "$build/bort/test_qgemm" | grep -c 'smull' || true)
if [ "$sdot" -lt 4 ] || [ "$smull" -lt 4 ]; then
  echo "arm64-test: FAIL: test_qgemm holds $sdot sdot and $smull smull instructions" >&2
  status=1
fi
run bort/test_qgemm --require neon --require neondot
if ! grep -q '^testing qgemm neondot' <<< "$LAST_LOG"; then
  echo "arm64-test: FAIL: test_qgemm did not test the neondot path" >&2
  status=1
fi
run bort/test_encoder_int8
if [ $status -eq 0 ]; then echo "arm64-test: PASSED ($fmla NEON fmla instructions in the tested binary)"; else echo "arm64-test: FAILED" >&2; fi
exit $status
