#!/usr/bin/env bash
# Builds both images with one command: cluster-coordinator and cluster-worker (tag: $TAG, default "dev").
# With no container engine on the machine, runs the same publish commands the images run, into
# artifacts/publish/{coordinator,worker}, so the entrypoints can still be started and checked.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tag="${TAG:-dev}"
engine=""
for candidate in docker podman; do
  if command -v "$candidate" >/dev/null && "$candidate" info >/dev/null 2>&1; then
    engine="$candidate"
    break
  fi
done

if [ -n "$engine" ]; then
  "$engine" build -f "$root/deploy/docker/Dockerfile.coordinator" -t "cluster-coordinator:$tag" "$root"
  "$engine" build -f "$root/deploy/docker/Dockerfile.worker" -t "cluster-worker:$tag" "$root"
  echo "Built cluster-coordinator:$tag and cluster-worker:$tag with $engine."
else
  echo "No container engine is running; publishing what the images contain instead." >&2
  dotnet publish "$root/src/Coordinator/Cluster.Coordinator.csproj" -c Release -o "$root/artifacts/publish/coordinator" --nologo -v quiet
  dotnet publish "$root/src/WorkerSilo/Cluster.WorkerSilo.csproj" -c Release -o "$root/artifacts/publish/worker" --nologo -v quiet
  echo "Published to artifacts/publish/coordinator (entrypoint: dotnet cluster.dll coordinator) and artifacts/publish/worker (entrypoint: dotnet WorkerSilo.dll)."
fi
