#!/usr/bin/env python3
"""PyTorch peer for `cluster bench train` and the accuracy figures: the default MNIST network
(784-128-64-10, ReLU, softmax cross-entropy, SGD lr 0.1, batch 64), trained on the same IDX files.

Usage: /usr/bin/python3 bench/peers/torch_mnist.py --data-dir data/mnist [--epochs 5] [--threads 1]
       [--seed 0] [--layers 128,64] [--json]
Prints seconds per epoch and test accuracy; --json prints one JSON object. nn.Linear runs on the system BLAS
(Debian: libblas.so.3 via update-alternatives, OpenBLAS once libopenblas0-pthread is installed), PyTorch's
fastest CPU path for these shapes on this build.
"""
import argparse, gzip, json, os, struct, sys, time

# OpenBLAS keeps its own thread pool: pin it to --threads before torch loads it, or "1 thread" uses every core.
# --blas-threads N sets that pool apart from torch's own threads (default: the same as --threads).
for flag in ("--threads", "--blas-threads"):
    if flag in sys.argv and sys.argv.index(flag) + 1 < len(sys.argv):
        os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[sys.argv.index(flag) + 1]
import numpy as np
import torch


def read_idx(path):
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">i", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "i" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default="data/mnist")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--blas-threads", type=int, default=None, help="OpenBLAS threads (default: --threads)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layers", default="128,64")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    d = a.data_dir
    xtr = torch.from_numpy(read_idx(f"{d}/train-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255.0)
    ytr = torch.from_numpy(read_idx(f"{d}/train-labels-idx1-ubyte").astype(np.int64))
    xte = torch.from_numpy(read_idx(f"{d}/t10k-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255.0)
    yte = torch.from_numpy(read_idx(f"{d}/t10k-labels-idx1-ubyte").astype(np.int64))
    sizes = [784] + [int(s) for s in a.layers.split(",") if s] + [10]
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    epochs = []
    n = xtr.shape[0]
    for epoch in range(a.epochs):
        perm = torch.randperm(n)
        start = time.perf_counter()
        model.train()
        for s in range(0, n, a.batch_size):
            idx = perm[s:s + a.batch_size]
            xb, yb = xtr[idx], ytr[idx]
            out = model(xb)
            loss = loss_fn(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        epochs.append({"epoch": epoch + 1, "seconds": seconds, "samplesPerSecond": n / seconds, "testAccuracy": acc})
        if not a.json:
            print(f"epoch {epoch + 1}: {seconds:.3f} s ({n / seconds:,.0f} samples/s), test accuracy {acc * 100:.2f}%")
    result = {"peer": "pytorch", "version": torch.__version__, "blas": os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3"),
              "threads": a.threads, "batch": a.batch_size,
              "epochs": epochs, "testAccuracy": epochs[-1]["testAccuracy"],
              "bestEpochSeconds": min(e["seconds"] for e in epochs)}
    if a.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
