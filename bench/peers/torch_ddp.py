#!/usr/bin/env python3
"""PyTorch peer for `cluster bench cluster`: data-parallel throughput of DistributedDataParallel over gloo with N
ranks of one thread each (separate processes on 127.0.0.1), against one process with N threads, at the same global
batch, for the default MNIST network (784-128-64-10, ReLU, softmax cross-entropy, SGD lr 0.1).

Usage: /usr/bin/python3 bench/peers/torch_ddp.py --data-dir data/mnist [--batch-sizes 256,1024] [--world-size 2]
       [--epochs 3] [--json]
Each figure is the best epoch after the first. nn.Linear runs on the system BLAS (Debian: OpenBLAS through
update-alternatives once libopenblas0-pthread is installed); the single process uses one torch thread and N
OpenBLAS threads, its fastest two-core configuration here (torch_mnist.py --threads 1 --blas-threads N), and each
rank one of each.
"""
import argparse, json, os, subprocess, sys, time

ROLE = os.environ.get("DDP_PEER_ROLE")
if ROLE:
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ.get("DDP_PEER_BLAS_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_mnist import read_idx  # noqa: E402


def model_for(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(),
                               torch.nn.Linear(64, 10))


def train(a, rank, world):
    """Trains; every rank takes its contiguous part of each global batch. Returns the best epoch's samples/s after the first."""
    torch.set_num_threads(1)
    d = a.data_dir
    x = torch.from_numpy(read_idx(f"{d}/train-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255.0)
    y = torch.from_numpy(read_idx(f"{d}/train-labels-idx1-ubyte").astype(np.int64))
    model = model_for(0)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = x.shape[0]
    g = torch.Generator().manual_seed(1)
    rates = []
    for _ in range(a.epochs):
        perm = torch.randperm(n, generator=g)
        start = time.perf_counter()
        for s in range(0, n, a.batch_size):
            batch = perm[s:s + a.batch_size]
            part = batch.tensor_split(world)[rank]
            out = model(x[part])
            loss = loss_fn(out, y[part])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        rates.append(n / (time.perf_counter() - start))
    return max(rates[1:]) if len(rates) > 1 else rates[0]


def run_role(a):
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        torch.distributed.init_process_group("gloo", init_method="env://", rank=rank, world_size=world)
    rate = train(a, rank, world)
    if rank == 0:
        print(json.dumps({"samplesPerSecond": rate}))
    if world > 1:
        torch.distributed.destroy_process_group()


def launch(a, batch, world, blas_threads):
    port = 29500 + (os.getpid() + batch + world) % 2000
    procs = []
    for rank in range(world):
        env = dict(os.environ, DDP_PEER_ROLE="1", DDP_PEER_BLAS_THREADS=str(blas_threads), RANK=str(rank),
                   WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        args = [sys.executable, os.path.abspath(__file__), "--data-dir", a.data_dir, "--epochs", str(a.epochs),
                "--batch-sizes", str(batch)]
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE if rank == 0 else subprocess.DEVNULL, text=True))
    out, _ = procs[0].communicate()
    for p in procs[1:]:
        p.wait()
    if any(p.returncode != 0 for p in procs):
        sys.exit(f"a {'DDP' if world > 1 else 'single-process'} run at batch {batch} failed")
    return json.loads(out.strip().splitlines()[-1])["samplesPerSecond"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default="data/mnist")
    p.add_argument("--batch-sizes", default="256,1024")
    p.add_argument("--world-size", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if ROLE:
        a.batch_size = int(a.batch_sizes)
        run_role(a)
        return
    rows = []
    for batch in [int(b) for b in a.batch_sizes.split(",") if b]:
        single = launch(a, batch, 1, a.world_size)
        ddp = launch(a, batch, a.world_size, 1)
        rows.append({"batch": batch, "worldSize": a.world_size, "singleProcessSamplesPerSecond": round(single),
                     "ddpSamplesPerSecond": round(ddp), "ratio": round(ddp / single, 3)})
        if not a.json:
            print(f"batch {batch}: 1 process x {a.world_size} BLAS threads {single:,.0f} samples/s; "
                  f"DDP gloo {a.world_size} ranks x 1 thread {ddp:,.0f} samples/s; ratio {ddp / single:.2f}")
    if a.json:
        print(json.dumps({"peer": "pytorch-ddp-gloo", "version": torch.__version__, "cluster": rows}))


if __name__ == "__main__":
    main()
