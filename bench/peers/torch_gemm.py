#!/usr/bin/env python3
"""PyTorch/BLAS peer for `cluster bench gemm`: GFLOP/s of torch.mm at 1024^3 and the default MNIST network's shapes.

Usage: /usr/bin/python3 bench/peers/torch_gemm.py [--threads 1,2] [--json]
PyTorch's dense matmul goes through the system BLAS (Debian: libblas.so.3, which update-alternatives points at
OpenBLAS once libopenblas0-pthread is installed); the script prints which library that is.
"""
import argparse, json, os, sys, time

import torch


def measure(m, n, k, ta, tb, seconds=0.3):
    a = torch.rand(k, m) if ta else torch.rand(m, k)
    b = torch.rand(n, k) if tb else torch.rand(k, n)
    a = a.t() if ta else a
    b = b.t() if tb else b
    torch.mm(a, b)
    best = float("inf")
    for _ in range(3):
        reps, start = 0, time.perf_counter()
        while True:
            torch.mm(a, b)
            reps += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / 3:
                break
        best = min(best, elapsed / reps)
    return 2.0 * m * n * k / best / 1e9


def shapes(sizes, batch):
    for l in range(len(sizes) - 1):
        i, o = sizes[l], sizes[l + 1]
        yield f"L{l + 1} forward b{batch}", batch, o, i, False, False
        yield f"L{l + 1} dW b{batch}", i, o, batch, True, False
        yield f"L{l + 1} dX b{batch}", batch, i, o, False, True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", default=f"1,{os.cpu_count()}")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    rows = []
    for t in [int(x) for x in a.threads.split(",")]:
        # OpenBLAS sizes its pool from OPENBLAS_NUM_THREADS when it loads, so each thread count runs in a child.
        if os.environ.get("PEER_CHILD") != str(t):
            import subprocess
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(t), PEER_CHILD=str(t))
            out = subprocess.run([sys.executable, __file__, "--threads", str(t), "--json"], env=env, capture_output=True, text=True, check=True).stdout
            for g in json.loads(out)["gemm"]:
                rows.append((g["shape"], g["threads"], g["m"], g["n"], g["k"], g["gflops"]))
            continue
        torch.set_num_threads(t)
        rows.append(("1024^3", t, 1024, 1024, 1024, measure(1024, 1024, 1024, False, False)))
        for batch in (64, 256):
            for label, m, n, k, ta, tb in shapes([784, 128, 64, 10], batch):
                rows.append((label, t, m, n, k, measure(m, n, k, ta, tb, 0.1)))
    if a.json:
        print(json.dumps({"peer": "pytorch", "version": torch.__version__, "blas": blas,
                          "gemm": [{"backend": "torch", "threads": t, "shape": l, "m": m, "n": n, "k": k, "gflops": round(g, 2)}
                                   for l, t, m, n, k, g in rows]}))
        return
    print(f"torch {torch.__version__}, libblas.so.3 -> {blas}")
    for l, t, m, n, k, g in rows:
        print(f"torch     {t:3d} {l:16s} {m:5d} {n:5d} {k:5d} {g:9.1f}")


if __name__ == "__main__":
    main()
