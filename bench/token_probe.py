"""Can the actor's state see what decides the insertion? Probes from the RL token to the plug's lateral error.

    python bench/token_probe.py [--episodes 80] [--token DIR] [--vla DIR]

The base VLA drives the simulated insertion from just above the socket (as the benchmark's episodes start);
every second control step of the critical phase, while the plug tip is still above the socket mouth, the
VLA's prefix embeddings are read and the tip's position in the socket frame (x, y, mm) is recorded. Probes
trained on 3/4 of the episodes predict it on the other 1/4: ridge regression and a 2 x 256 MLP (the critic's
size), from z_rl (the RL token), from the pooled prefix (the mean of the prefix embeddings) and from
proprioception alone (which cannot know where the socket is). Prints held-out RMSE per axis, against the
lateral error's own spread; the socket's clearance is 0.4 mm per side and its chamfer catches ~1.9 mm.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def collect(episodes: int, token_dir: str, vla_dir: str | None, seed: int) -> dict[str, np.ndarray]:
    from tqdm import tqdm

    from rlt_ros.core.rlt.modeling_token import TokenEncoder, pooled_prefix
    from rlt_ros.core.sim.configuration_sim import SimConfig
    from rlt_ros.core.sim.env import PegInsertionEnv
    from rlt_ros.core.vla import load_backend
    from rlt_ros.core.vla.evaluation import VLAChunkPolicy, observation_from_sim

    vla = load_backend("builtin", vla_dir)
    encoder = TokenEncoder.from_dir(token_dir, expect_embed_dim=vla.embed_dim)
    env = PegInsertionEnv(SimConfig(image_size=vla.image_size[0], camera_names=tuple(vla.camera_names),
                                    start="pre_critical"))
    policy = VLAChunkPolicy(vla, env.instruction)
    data: dict[str, list] = {"token": [], "pooled": [], "proprio": [], "lateral_mm": [], "episode": []}
    for ep in tqdm(range(episodes), desc="base-VLA episodes", unit="ep"):
        obs, info = env.reset(seed=seed + ep)
        policy.reset(obs)
        steps = 0
        while True:
            state = env.task_state() if info.get("in_critical_phase", False) and steps % 2 == 0 else None
            if state is not None and state["insertion_depth_mm"] < 0:  # above the mouth: the lateral error decides
                out = vla.infer(observation_from_sim(obs, env.instruction))
                data["token"].append(encoder.encode(out.prefix_embeddings, out.prefix_mask))
                data["pooled"].append(pooled_prefix(out.prefix_embeddings, out.prefix_mask))
                data["proprio"].append(np.asarray(obs["proprio"], np.float32))
                data["lateral_mm"].append(state["tip_in_socket_mm"][:2])
                data["episode"].append(ep)
            obs, _, terminated, truncated, info = env.step(policy.act(obs), render=True)
            steps += 1
            if terminated or truncated:
                break
    env.close()
    return {k: np.asarray(v, np.float32) for k, v in data.items()}


def _standardise(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    return (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)


def ridge_rmse(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Held-out RMSE per output of the best of a few ridge strengths."""
    x = _standardise(x.astype(np.float64), train)
    best = None
    for lam in (0.1, 1.0, 10.0, 100.0):
        a, y0 = x[train], y[train].mean(0)
        w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (y[train] - y0))
        rmse = np.sqrt(((x[~train] @ w + y0 - y[~train]) ** 2).mean(0))
        best = rmse if best is None or rmse.sum() < best.sum() else best
    return best


def mlp_rmse(x: np.ndarray, y: np.ndarray, train: np.ndarray, steps: int = 3000, seed: int = 0) -> np.ndarray:
    torch.manual_seed(seed)
    x = torch.from_numpy(_standardise(x, train).astype(np.float32))
    y = torch.from_numpy(y)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                              torch.nn.ReLU(), torch.nn.Linear(256, y.shape[1]))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    xt, yt = x[torch.from_numpy(train)], y[torch.from_numpy(train)]
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(xt), (256,), generator=gen)
        loss = ((net(xt[idx]) - yt[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        test = torch.from_numpy(~train)
        return ((net(x[test]) - y[test]) ** 2).mean(0).sqrt().numpy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=80, help="base-VLA episodes (1/4 held out)")
    ap.add_argument("--token", default=str(REPO / "rlt_ros" / "checkpoints" / "rl_token"), help="RL-token directory")
    ap.add_argument("--vla", default=None, help="built-in VLA checkpoint (default: the shipped one)")
    ap.add_argument("--seed", type=int, default=5000, help="seed of the first episode")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    if args.episodes < 4:
        raise SystemExit("token_probe: --episodes must be >= 4 (a quarter is held out)")
    torch.set_num_threads(args.threads)
    data = collect(args.episodes, args.token, args.vla, args.seed)
    y, train = data["lateral_mm"], data["episode"] % 4 != 0
    if train.all() or not train.any():
        raise SystemExit("token_probe: no samples in the train or the held-out episodes")
    sd = y[~train].std(0)
    print(f"\n{len(y)} samples (critical phase, tip above the mouth) from {len(set(data['episode'].tolist()))} "
          f"episodes; held-out lateral position spread: x {sd[0]:.2f} mm, y {sd[1]:.2f} mm (sd)\n")
    print("| state | dims | ridge RMSE x / y [mm] | MLP 2x256 RMSE x / y [mm] |")
    print("|---|---|---|---|")
    for name in ("token", "pooled", "proprio"):
        r, m = ridge_rmse(data[name], y, train), mlp_rmse(data[name], y, train)
        print(f"| {name} | {data[name].shape[1]} | {r[0]:.2f} / {r[1]:.2f} | {m[0]:.2f} / {m[1]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
