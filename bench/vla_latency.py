"""VLA latency per chunk: the built-in VLA, and π0.5 / π0 / SmolVLA through LeRobot with random weights.

    python bench/vla_latency.py                          # CPU: built-in VLA (+ tiny LeRobot VLAs if lerobot is here)
    python bench/vla_latency.py --device cuda            # GPU: real-size π0.5, π0, SmolVLA (random weights, bf16)
    python bench/vla_latency.py --tiny --iters 5         # the tiny test models (checks the script, not a figure)

For each LeRobot VLA at batch 1: the prefix-only forward (embed_prefix + the VLM backbone over the prefix: what
the RL token needs) and the full chunk (rlt_ros's one-call infer: prefix pass + LeRobot's denoising), p50/p99;
then the RL-token encoder + actor at the VLA's (M, D) (π0/π0.5: D = 2048, the paper's size) on the same device.
Real sizes need a GPU (π0/π0.5 ≈ 7-8 GB in bf16; on a 2-core CPU one π0 chunk takes ~22 s). The LeRobot
rows run in the real-VLA environment (`make setup-vla`; .venv-vla/bin/python bench/vla_latency.py ...).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rlt_ros.core.types import Observation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learner_speed import inference_latency, percentiles  # noqa: E402

LEROBOT_KINDS = ("pi05", "pi0", "smolvla")


def make_obs(rng, size=64, proprio_dim=10, cameras=("base", "wrist")) -> Observation:
    return Observation(images={c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in cameras},
                       proprio=rng.standard_normal(proprio_dim).astype(np.float32),
                       instruction="insert the peg into the socket")


def timed(fn, iters: int, warmup: int, device: str) -> dict:
    """p50/p99 milliseconds of ``fn()`` over ``iters`` calls after ``warmup`` calls (CUDA: synchronised)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return percentiles(times)


def builtin_rows(iters: int) -> list[dict]:
    from rlt_ros.core.vla import load_backend

    vla = load_backend("builtin")
    rng = np.random.default_rng(0)
    rows = []
    for b in (1, 16):
        obs = [make_obs(rng) for _ in range(b)]
        n = iters if b == 1 else max(iters // 4, 1)
        rows.append({"backend": "builtin (shipped)", "M": vla.num_prefix_tokens, "D": vla.embed_dim, "batch": b,
                     "chunk": timed(lambda: vla.infer_batch(obs), n, 5, "cpu")})
    return rows


def lerobot_row(kind: str, size: str, device: str, dtype: str, iters: int, image_size: int, rlt_cfg) -> dict:
    """Latency of one random-weight LeRobot VLA built in memory at ``size`` on ``device``."""
    from rlt_ros.core.vla.lerobot_tiny import random_backend

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        vla = random_backend(kind, tmp, size=size, device=device, dtype=dtype)
        build_s = time.perf_counter() - t0
        obs = [make_obs(np.random.default_rng(0), size=image_size, proprio_dim=vla.proprio_dim or 10)]
        out = vla.infer(obs[0])
        warmup = min(3, iters)
        prefix = timed(lambda: vla.prefix_forward(obs), iters, warmup, device)
        chunk = timed(lambda: vla.infer_batch(obs), iters, warmup, device)
        params = sum(p.numel() for p in vla.policy.parameters())
        mem_gb = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
        m, d = out.prefix_embeddings.shape
        token = inference_latency(rlt_cfg, m, d, iters, device=device)
    return {"backend": f"{kind} {size} random", "M": m, "D": d, "batch": 1, "params_M": round(params / 1e6, 1),
            "dtype": str(next(vla.policy.model.parameters()).dtype).replace("torch.", ""), "build_s": round(build_s, 1),
            "gpu_mem_gb": None if mem_gb is None else round(mem_gb, 2), "prefix": prefix, "chunk": chunk,
            "token_plus_actor": token["token_plus_actor"], "token": token["token_encoder"]}


def fmt(stat: dict | None) -> str:
    return "-" if not stat else f"{stat['p50_ms']:.1f} / {stat['p99_ms']:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device of the LeRobot VLAs (cpu, cuda)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test models instead of the real sizes")
    parser.add_argument("--kinds", nargs="+", default=list(LEROBOT_KINDS), choices=LEROBOT_KINDS)
    parser.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA), float32, bfloat16")
    parser.add_argument("--iters", type=int, default=50, help="timed calls per measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-builtin", action="store_true", help="skip the built-in VLA rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (torch.cuda.is_available() is False)")
    if not args.tiny and not args.device.startswith("cuda"):
        print("(real-size π0/π0.5/SmolVLA need a GPU: on CPU only the built-in and --tiny rows are measured)")
        args.kinds = []

    from rlt_ros.core.rlt.configuration_rlt import RLTConfig

    rlt_cfg = RLTConfig(action_dim=6, proprio_dim=12)
    rows = [] if args.no_builtin else builtin_rows(args.iters)
    size = "tiny" if args.tiny else "real"
    for kind in args.kinds:
        try:
            rows.append(lerobot_row(kind, size, args.device, args.dtype, args.iters, 64 if args.tiny else 224, rlt_cfg))
        except ImportError as err:
            print(f"({kind} skipped: lerobot is not installed here ({err}); use .venv-vla/bin/python)")
            break
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {args.threads} thread(s)"
    print(f"\nVLA latency per call at batch 1 unless noted, {device_name}, torch {torch.__version__}, 2 cameras "
          f"({'64x64' if args.tiny else '224x224'} images), p50 / p99 ms")
    head = f"{'backend':<22}{'M':>5}{'D':>6}{'batch':>6}{'params M':>10}{'dtype':>10}{'GPU GB':>8}" \
           f"{'prefix only':>15}{'full chunk':>17}{'token+actor':>15}"
    print(head)
    for r in rows:
        print(f"{r['backend']:<22}{r['M'] or '-':>5}{r['D']:>6}{r['batch']:>6}{r.get('params_M', '-'):>10}"
              f"{r.get('dtype', '-'):>10}{r.get('gpu_mem_gb') or '-':>8}{fmt(r.get('prefix')):>15}"
              f"{fmt(r['chunk']):>17}{fmt(r.get('token_plus_actor')):>15}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
