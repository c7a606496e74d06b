"""Learner and inference speed of RLT on CPU (prints figures; not a test).

    python bench/learner_speed.py                     # batch 256, paper-default networks, 1 thread
    python bench/learner_speed.py --threads 2 --updates 500

Measures: critic+actor updates per second at batch 256 (UTD accounting: one update = one critic step, an
actor step every 2nd), the RL-token encoder latency for one observation (M prefix tokens of width D),
the actor latency for one chunk, and both together, as p50/p99 over many calls.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlt_ros.core.rlt.configuration_rlt import RLTConfig  # noqa: E402
from rlt_ros.core.rlt.configuration_token import TokenConfig  # noqa: E402
from rlt_ros.core.rlt.learner import RLTAlgorithm  # noqa: E402
from rlt_ros.core.rlt.modeling_token import RLTokenModel, TokenEncoder  # noqa: E402
from rlt_ros.core.rlt.replay import Batch  # noqa: E402


def percentiles(samples_s: list[float]) -> dict:
    ms = np.asarray(samples_s) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=256, help="transitions per update (RLTConfig default: 128)")
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--calls", type=int, default=500, help="inference calls per latency figure")
    ap.add_argument("--embed-dim", type=int, default=128, help="D of the VLA (built-in: 128)")
    ap.add_argument("--tokens", type=int, default=45, help="M prefix tokens (built-in VLA: 45)")
    ap.add_argument("--token-dim", type=int, default=64, help="length of z_rl")
    ap.add_argument("--action-dim", type=int, default=5)
    ap.add_argument("--proprio-dim", type=int, default=17)
    ap.add_argument("--json", default="bench/results/learner_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = RLTConfig(token_dim=args.token_dim, action_dim=args.action_dim, proprio_dim=args.proprio_dim,
                    batch_size=args.batch_size)
    alg = RLTAlgorithm(cfg)
    b, c, a = cfg.batch_size, cfg.chunk_size, cfg.action_dim
    r = lambda *s: torch.randn(*s)  # noqa: E731
    batch = Batch(r(b, cfg.token_dim), r(b, cfg.proprio_dim), r(b, c, a), r(b, c, a), torch.zeros(b, c),
                  torch.zeros(b), r(b, cfg.token_dim), r(b, cfg.proprio_dim), r(b, c, a), torch.zeros(b, dtype=torch.bool))
    for _ in range(20):
        alg.update(batch)
    t0 = time.perf_counter()
    for _ in range(args.updates):
        alg.update(batch)
    ups = args.updates / (time.perf_counter() - t0)

    enc = TokenEncoder(RLTokenModel(TokenConfig(embed_dim=args.embed_dim, max_tokens=args.tokens,
                                                token_dim=args.token_dim)))
    policy = alg.policy()
    z = np.random.default_rng(0).normal(size=(args.tokens, args.embed_dim)).astype(np.float32)
    mask = np.ones(args.tokens, bool)
    proprio = np.zeros(cfg.proprio_dim, np.float32)
    ref = np.zeros((50, a), np.float32)
    rng = np.random.default_rng(0)
    tok_t, act_t, both_t = [], [], []
    for i in range(args.calls + 20):
        t0 = time.perf_counter()
        tok = enc.encode(z, mask)
        t1 = time.perf_counter()
        policy.act(tok, proprio, ref, explore=True, rng=rng)
        t2 = time.perf_counter()
        if i >= 20:
            tok_t.append(t1 - t0)
            act_t.append(t2 - t1)
            both_t.append(t2 - t0)
    res = {"threads": args.threads, "batch_size": b, "actor_hidden": list(cfg.actor_hidden),
           "critic_hidden": list(cfg.critic_hidden), "chunk": c, "action_dim": a,
           "updates_per_s": round(ups, 1), "ms_per_update": round(1000 / ups, 2),
           "token_encoder": {"M": args.tokens, "D": args.embed_dim, **percentiles(tok_t)},
           "actor": percentiles(act_t), "token_plus_actor": percentiles(both_t)}
    print(f"learner: {ups:.1f} updates/s at batch {b} ({1000 / ups:.1f} ms/update, {args.threads} thread(s))")
    print(f"token encoder (M={args.tokens}, D={args.embed_dim}): p50 {res['token_encoder']['p50_ms']} ms, "
          f"p99 {res['token_encoder']['p99_ms']} ms")
    print(f"actor chunk (C={c}, A={a}): p50 {res['actor']['p50_ms']} ms, p99 {res['actor']['p99_ms']} ms")
    print(f"token + actor: p50 {res['token_plus_actor']['p50_ms']} ms, p99 {res['token_plus_actor']['p99_ms']} ms")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
