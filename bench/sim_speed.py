"""Simulator speed and scripted-expert quality; prints a markdown table.

    python bench/sim_speed.py [--episodes 50] [--steps 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rlt_ros.core.sim.configuration_sim import SimConfig
from rlt_ros.core.sim.env import PegInsertionEnv
from rlt_ros.core.sim.expert import ScriptedExpert, evaluate


def steps_per_second(image_size: int, render: bool, steps: int) -> float:
    env = PegInsertionEnv(SimConfig(image_size=image_size))
    expert = ScriptedExpert(env)
    obs, _ = env.reset(seed=0)
    expert.reset(obs, seed=0)
    actions = []
    for _ in range(steps):  # expert actions precomputed so only the env is timed
        obs, _, term, trunc, _ = env.step(expert.act(obs), render=False)
        actions.append(env.current_target)
        if term or trunc:
            obs, _ = env.reset(seed=len(actions))
            expert.reset(obs)
    env.reset(seed=0)
    start = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a, render=render)
        if term or trunc:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    rows = [
        ("physics only (render=False)", steps_per_second(64, False, args.steps)),
        ("physics + 2 cameras 64x64", steps_per_second(64, True, min(args.steps, 500))),
        ("physics + 2 cameras 224x224", steps_per_second(224, True, min(args.steps, 300))),
    ]
    env = PegInsertionEnv(SimConfig())
    start = time.perf_counter()
    res = evaluate(env, ScriptedExpert(env), seeds=range(1000, 1000 + args.episodes))
    wall = time.perf_counter() - start
    crit = np.array([s.critical_phase_s for s in res["stats"] if s.success])
    print("| measurement | value |\n|---|---|")
    for name, sps in rows:
        print(f"| {name} | {sps:,.0f} control steps/s ({sps / env.config.control_hz:,.0f}x real time) |")
    print(f"| expert success rate ({res['episodes']} episodes) | {res['success_rate']:.0%} |")
    print(f"| expert critical phase, median (p10-p90) | {np.median(crit):.2f} s ({np.percentile(crit, 10):.2f}-{np.percentile(crit, 90):.2f} s) |")
    print(f"| expert episode length, median | {res['median_episode_steps']:.0f} steps ({res['median_episode_steps'] * env.control_dt:.1f} s) |")
    print(f"| expert evaluation wall time | {wall:.1f} s ({wall / res['episodes']:.2f} s/episode, no rendering) |")


if __name__ == "__main__":
    main()
