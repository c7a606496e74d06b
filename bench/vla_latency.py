"""VLA latency per chunk on this machine's CPU: the built-in VLA (shipped checkpoint) and, when lerobot
is installed, a tiny random-weight SmolVLA (the test configuration; NOT representative of a real SmolVLA).

    python bench/vla_latency.py [--iters 200] [--threads 1]

Prints one row per (backend, batch): p50 / p99 milliseconds per call and per observation.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from rlt_ros.core.types import Observation


def make_obs(rng, size=64, proprio_dim=10) -> Observation:
    return Observation(images={c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in ("base", "wrist")},
                       proprio=rng.standard_normal(proprio_dim).astype(np.float32),
                       instruction="insert the peg into the socket")


def measure(backend, batch: int, iters: int, warmup: int = 5) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    obs = [make_obs(rng, proprio_dim=backend.proprio_dim or 10) for _ in range(batch)]
    for _ in range(warmup):
        backend.infer_batch(obs)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        backend.infer_batch(obs)
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from rlt_ros.core.vla import load_backend

    rows = []
    vla = load_backend("builtin")
    for b in (1, 16):
        rows.append(("builtin (shipped)", vla.num_prefix_tokens, vla.embed_dim, b, *measure(vla, b, args.iters if b == 1 else args.iters // 4)))
    try:
        from rlt_ros.core.vla.lerobot_backend import make_tiny_smolvla

        with tempfile.TemporaryDirectory() as tmp:
            tiny = load_backend("smolvla", make_tiny_smolvla(tmp))
            m = tiny.infer(make_obs(np.random.default_rng(0))).prefix_embeddings.shape[0]
            for b in (1, 16):
                rows.append(("smolvla tiny random", m, tiny.embed_dim, b, *measure(tiny, b, args.iters // 4 if b == 1 else args.iters // 10)))
    except ImportError as err:
        print(f"(lerobot not installed, SmolVLA row skipped: {err})")

    print(f"\nVLA latency per call, CPU, torch {torch.__version__}, {args.threads} thread(s), 64x64 images, 2 cameras")
    print(f"{'backend':<22}{'M':>5}{'D':>6}{'batch':>7}{'p50 ms':>10}{'p99 ms':>10}{'p50 ms/obs':>12}")
    for name, m, d, b, p50, p99 in rows:
        print(f"{name:<22}{m:>5}{d:>6}{b:>7}{p50:>10.2f}{p99:>10.2f}{p50 / b:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
