"""Learner and inference speed of RLT (prints figures; not a test).

    python bench/learner_speed.py                          # CPU 1 and 2 threads, batch 256 and the default
    python bench/learner_speed.py --threads 1 --batch-sizes 256 --updates 500
    python bench/learner_speed.py --devices cpu cuda       # GPU figures too (where CUDA exists: the default)
    python bench/learner_speed.py --image-state 32 --threads 1 --batch-sizes 64 --updates 50   # the no-token CNN

Measures, through the project's own learner (``RLTAlgorithm`` + the ``TensorReplay`` mirror the ``Learner``
samples from), per device, thread count and batch size (on CUDA also as CUDA graphs): updates per second (UTD accounting: one update =
one critic step, an actor step every 2nd; each update samples its batch) and the per-update breakdown (a
sample, a critic step, an actor step, each timed in a loop of its own). Then, on the CPU, the RL-token
encoder latency for one observation (M prefix tokens of width D), the actor latency for one chunk, and
both together, as p50/p99 over many calls. Wall-clock figures: on a loaded machine they are lower.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlt_ros.core.rlt.configuration_rlt import RLTConfig  # noqa: E402
from rlt_ros.core.rlt.learner import Learner, RLTAlgorithm  # noqa: E402
from rlt_ros.core.rlt.replay import ReplayBuffer, Transition  # noqa: E402


def percentiles(samples_s: list[float]) -> dict:
    ms = np.asarray(samples_s) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def filled_learner(cfg: RLTConfig, device: str, transitions: int = 2000, cuda_graph: bool = False) -> Learner:
    """A learner on ``device`` over an in-memory buffer of random transitions, its normaliser fitted and
    its mirror built (what ``Learner.run_updates`` does when training starts)."""
    rb = ReplayBuffer(cfg.token_dim, cfg.proprio_dim, cfg.chunk_size, cfg.action_dim, capacity=transitions,
                      token_dtype=cfg.token_dtype)
    rng = np.random.default_rng(0)
    t, p, c, a = cfg.token_dim, cfg.proprio_dim, cfg.chunk_size, cfg.action_dim
    for i in range(transitions):
        r = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
        x = (lambda: rng.integers(0, 256, t).astype(np.float32)) if cfg.state_image_size else (lambda: r(t))  # noqa: E731
        rb.add(Transition(i // 50, i % 50, x(), r(p), r(c, a), r(c, a), np.zeros(c, np.float32), i % 50 == 49,
                          x(), r(p), r(c, a)))
    learner = Learner(RLTAlgorithm(cfg, device=device, stats_every=50, cuda_graph=cuda_graph), rb)
    learner.run_updates(1)  # fits the normaliser, builds the mirror
    return learner


def _timed(fn, n: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``n`` calls (the device synchronised around the loop)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - t0) / n


def measure(cfg: RLTConfig, device: str, updates: int, warmup: int = 20, cuda_graph: bool = False) -> dict:
    """updates/s of the learner's loop (sync + sample + update) and the per-update breakdown [ms] (of the
    eager steps: with ``cuda_graph`` the loop replays the captured update, the breakdown stays eager)."""
    learner = filled_learner(cfg, device, cuda_graph=cuda_graph)
    alg, mirror, gen = learner.algorithm, learner.mirror, learner.sample_generator
    dev = alg.device

    def one_update():
        mirror.sync()
        alg.update(mirror.sample(cfg.batch_size, gen))

    _timed(one_update, warmup, dev)
    per_update = _timed(one_update, updates, dev)
    captured = alg._graphs is not None
    alg._graph_mode = "off"  # the breakdown: the eager steps
    batch = mirror.sample(cfg.batch_size, gen)
    finite = alg.batch_finite(batch)
    nb = alg.normalise(batch)
    n = max(updates // 2, 10)
    sample = _timed(lambda: mirror.sample(cfg.batch_size, gen), n, dev)
    critic = _timed(lambda: alg.critic_step(nb, finite), n, dev)
    actor = _timed(lambda: alg.actor_step(nb, finite), n, dev)
    return {"device": str(dev), "cuda_graph": cuda_graph, "graph_captured": captured,
            "threads": torch.get_num_threads(), "batch_size": cfg.batch_size,
            "updates_per_s": round(1.0 / per_update, 1), "ms_per_update": round(1000 * per_update, 2),
            "breakdown_ms": {"sample": round(1000 * sample, 3), "critic_step": round(1000 * critic, 3),
                             "actor_step": round(1000 * actor, 3),
                             "actor_step_per_update": round(1000 * actor / cfg.critic_updates_per_actor, 3)}}


def inference_latency(cfg: RLTConfig, tokens: int, embed_dim: int, calls: int, device: str = "cpu") -> dict:
    """RL-token encoder (on ``device``, as vla_node runs it) + actor (CPU, as actor_node runs it) per observation."""
    from rlt_ros.core.rlt.configuration_token import TokenConfig
    from rlt_ros.core.rlt.modeling_token import RLTokenModel, TokenEncoder

    enc = TokenEncoder(RLTokenModel(TokenConfig(embed_dim=embed_dim, max_tokens=tokens, token_dim=cfg.token_dim)),
                       device=device)
    policy = RLTAlgorithm(cfg).policy()
    z = np.random.default_rng(0).normal(size=(tokens, embed_dim)).astype(np.float32)
    mask = np.ones(tokens, bool)
    proprio = np.zeros(cfg.proprio_dim, np.float32)
    ref = np.zeros((50, cfg.action_dim), np.float32)
    rng = np.random.default_rng(0)
    tok_t, act_t, both_t = [], [], []
    for i in range(calls + 20):
        t0 = time.perf_counter()
        tok = enc.encode(z, mask)
        t1 = time.perf_counter()
        policy.act(tok, proprio, ref, explore=True, rng=rng)
        t2 = time.perf_counter()
        if i >= 20:
            tok_t.append(t1 - t0)
            act_t.append(t2 - t1)
            both_t.append(t2 - t0)
    return {"token_encoder": {"M": tokens, "D": embed_dim, **percentiles(tok_t)}, "actor": percentiles(act_t),
            "token_plus_actor": percentiles(both_t)}


def default_devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def run(devices: list[str], threads: list[int], batch_sizes: list[int], updates: int, dims: dict) -> list[dict]:
    """One row per (device, threads, batch size; on CUDA eager and as CUDA graphs); the thread count matters
    on the CPU only."""
    rows = []
    for device in devices:
        for n_threads in (threads if device == "cpu" else threads[:1]):
            torch.set_num_threads(n_threads)
            graphs = (False, True) if device != "cpu" else (False,)
            for b, graph in [(b, g) for b in batch_sizes for g in graphs]:
                row = measure(RLTConfig(**dims, batch_size=b), device, updates, cuda_graph=graph)
                bd = row["breakdown_ms"]
                label = " graph" if row["graph_captured"] else " (capture failed)" if graph else ""
                print(f"{row['device']:>7}{label} {n_threads} thread(s) batch {b:4d}: "
                      f"{row['updates_per_s']:7.1f} updates/s "
                      f"({row['ms_per_update']:.2f} ms; sample {bd['sample']:.2f}, critic step {bd['critic_step']:.2f}, "
                      f"actor step {bd['actor_step']:.2f} ms)", flush=True)
                rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", nargs="+", default=default_devices(), help="cpu, cuda, cuda:N (default: cpu + cuda where it exists)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch CPU thread counts")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[256, RLTConfig.batch_size],
                    help=f"transitions per update (RLTConfig default: {RLTConfig.batch_size})")
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--calls", type=int, default=500, help="inference calls per latency figure (0: skip)")
    ap.add_argument("--embed-dim", type=int, default=128, help="D of the VLA (built-in: 128)")
    ap.add_argument("--tokens", type=int, default=45, help="M prefix tokens (built-in VLA: 45)")
    ap.add_argument("--token-dim", type=int, default=64, help="length of z_rl")
    ap.add_argument("--action-dim", type=int, default=5)
    ap.add_argument("--proprio-dim", type=int, default=17)
    ap.add_argument("--image-state", type=int, default=0, metavar="SIDE",
                    help="the no-token ablation: the state is --cameras images of SIDE px through the CNN "
                         "(RLTConfig.state_image_size; the latency figures are skipped)")
    ap.add_argument("--cameras", type=int, default=2, help="cameras of the image state")
    ap.add_argument("--json", default="bench/results/learner_speed.json")
    args = ap.parse_args()
    dims = {"token_dim": args.token_dim, "action_dim": args.action_dim, "proprio_dim": args.proprio_dim}
    if args.image_state:
        dims.update(token_dim=args.cameras * args.image_state ** 2 * 3, state_image_size=args.image_state)
        args.calls = 0
    cfg = RLTConfig(**dims)
    rows = run(args.devices, args.threads, sorted(set(args.batch_sizes), reverse=True), args.updates, dims)
    res = {"machine": platform.node(), "torch": torch.__version__, "actor_hidden": list(cfg.actor_hidden),
           "critic_hidden": list(cfg.critic_hidden), "chunk": cfg.chunk_size, "action_dim": cfg.action_dim,
           "learner": rows}
    if args.calls:
        torch.set_num_threads(args.threads[0])
        res.update(inference_latency(cfg, args.tokens, args.embed_dim, args.calls))
        print(f"token encoder (M={args.tokens}, D={args.embed_dim}): p50 {res['token_encoder']['p50_ms']} ms, "
              f"p99 {res['token_encoder']['p99_ms']} ms")
        print(f"actor chunk (C={cfg.chunk_size}, A={cfg.action_dim}): p50 {res['actor']['p50_ms']} ms, "
              f"p99 {res['actor']['p99_ms']} ms")
        print(f"token + actor: p50 {res['token_plus_actor']['p50_ms']} ms, p99 {res['token_plus_actor']['p99_ms']} ms")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
