#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing (Debian packages as root), builds, runs every
# test project, runs the kernel and block-tensor tests again with AVX-512 and AVX2 disabled (the narrower fallbacks), and ends with
# "Tests: N passed, N failed".
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash "$root/scripts/install-test-deps.sh" || echo "warning: some test dependencies could not be installed" >&2

results="$root/artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"
passed=0
failed=0

run() {
  local name="$1"; shift
  local log="$results/$name.log"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local p f
  p=$(grep -Eo 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
  f=$(grep -Eo 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "error: '$name' exited with $rc without reporting a failed test (build error or crashed test host)" >&2
    f=1
  fi
  passed=$((passed + p))
  failed=$((failed + f))
}

if ! dotnet build Cluster.sln -c Release -nologo -v quiet -clp:ErrorsOnly; then
  echo "Tests: 0 passed, 1 failed"
  exit 1
fi

# -v quiet keeps the build quiet; the console logger at minimal still prints each failed test's message and stack.
log=(--logger "console;verbosity=minimal")
run all dotnet test Cluster.sln -c Release --no-build -nologo -v quiet "${log[@]}"
# The GEMM kernel has 512-bit, 256-bit and 128-bit forms: the main pass runs the widest this CPU has, these the others.
# (.NET 10 reads DOTNET_EnableAVX512; a test checks that each pass runs no wider than CLUSTER_TEST_MAX_VECTOR_BITS.)
run avx512-off env DOTNET_EnableAVX512=0 CLUSTER_TEST_MAX_VECTOR_BITS=256 dotnet test tests/Cluster.Compute.Tests/Cluster.Compute.Tests.csproj -c Release --no-build -nologo -v quiet "${log[@]}" \
  --filter "FullyQualifiedName~GemmTests"
run avx2-off env DOTNET_EnableAVX2=0 CLUSTER_TEST_MAX_VECTOR_BITS=128 dotnet test tests/Cluster.Compute.Tests/Cluster.Compute.Tests.csproj -c Release --no-build -nologo -v quiet "${log[@]}" \
  --filter "FullyQualifiedName~GemmTests|FullyQualifiedName~ElementwiseKernelTests|FullyQualifiedName~GradientCheckTests"
# The wire's block tensors test their blocks with 512-, 256- or 128-bit vectors.
run blocks-avx512-off env DOTNET_EnableAVX512=0 dotnet test tests/Cluster.Contracts.Tests/Cluster.Contracts.Tests.csproj -c Release --no-build -nologo -v quiet "${log[@]}" \
  --filter "FullyQualifiedName~TensorBlocksTests"
run blocks-avx2-off env DOTNET_EnableAVX2=0 dotnet test tests/Cluster.Contracts.Tests/Cluster.Contracts.Tests.csproj -c Release --no-build -nologo -v quiet "${log[@]}" \
  --filter "FullyQualifiedName~TensorBlocksTests"

echo "Tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
