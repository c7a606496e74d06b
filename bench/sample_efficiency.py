"""Sample efficiency of RLT on the simulated precision insertion, with the paper's ablations.

    python bench/sample_efficiency.py          # make bench: base and rlt, seeds 0 and 5 (~30 min, 2 cores)
    python bench/sample_efficiency.py --arms no_token --device cuda   # the CNN ablation (~3 CPU-hours per run on a CPU)
    python bench/sample_efficiency.py --full   # every arm, seeds 0-4 and held-out 5-6 (~8 h on 2 cores)
    python bench/sample_efficiency.py --quick  # smoke run (a few minutes)
    python bench/sample_efficiency.py --intervene-after 5 --results bench/results/interventions   # with interventions
    python bench/sample_efficiency.py --task hard --results bench/results/hard                   # the harder task

Every run practises on the defaults (RLTConfig, PracticeConfig): 250 episodes at most, then 80 noise-free
evaluation episodes. Seeds 5-7 were never used while the defaults were chosen (HELD_OUT).

Arms (every RL arm gets the same practice budget: --episodes / --minutes of simulated time, warm-up
included, then --eval-episodes noise-free evaluation episodes on the same evaluation seeds):
  base      the VLA alone (no practice needed: evaluated on the same seeds)
  rlt       RLT with rlt_ros's defaults (RLTConfig)
  no_token  the paper's "no RL token": actor and critics read the camera images (2 x 32 x 32 px) through a
            small ResNet-10-like CNN trained online, instead of z_rl (RLTConfig.state_image_size)
  beta0     beta = 0 (no anchoring to the reference chunk)
  c1        chunk C = 1 (single-step actor, stride 1)
  no_ref    no reference pass-through (the actor never sees ã; not residual)

Each run is one `rlt sim-train` process (--work/<arm>_s<seed>/, a scratch directory). Writes
bench/results/sample_efficiency.{md,json,png}; the JSON is {"budget", "seeds", "results": {arm: {success_rate,
critical_phase_s, throughput_per_10min}}} with the mean over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

ARMS: dict[str, list[str]] = {
    "base": ["--base"],
    "rlt": [],
    "no_token": ["--state", "image"],
    "beta0": ["--rlt", "beta=0"],
    # C = 1 needs stride 1, so 5x the transitions per simulated second: UTD 2 keeps its updates per simulated
    # second near rlt's (50 x 2 = 100 vs 25 x 5 = 125) and its run time affordable
    "c1": ["--rlt", "chunk_size=1", "--rlt", "stride=1", "--rlt", "utd=2"],
    "no_ref": ["--rlt", "use_reference=false", "--rlt", "residual_actor=false"],
}
METRICS = ("success_rate", "critical_phase_s", "throughput_per_10min")
HELD_OUT = (5, 6, 7)  # seeds never used while the defaults were tuned
# simulated task variants (SimConfig overrides); hard: 0.3 mm clearance per side and a 1.0 mm chamfer, where
# the base VLA succeeds ~40% of the time (0.4 mm and 1.5 mm by default: ~97%), so practice must raise success
TASKS: dict[str, list[str]] = {
    "default": [],
    "hard": ["--sim", "clearance_mm=0.3", "--sim", "chamfer_mm=1.0"],
}


def default_token() -> Path:
    return REPO / "rlt_ros" / "checkpoints" / "rl_token"


def job_command(arm: str, seed: int, args, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "rlt_ros.cli", "sim-train", "--out", str(out), "--seed", str(seed),
           "--eval-episodes", str(args.eval_episodes), "--no-progress", "--checkpoint-every", "0",
           "--threads", "1", "--critical-timeout", str(args.critical_timeout), "--device", args.device]
    if arm == "base":
        cmd += ["--episodes", "1", "--minutes", str(args.minutes)]
    else:
        cmd += ["--episodes", str(args.episodes), "--minutes", str(args.minutes)]
    if args.vla:
        cmd += ["--vla", args.vla]
    cmd += ["--token", str(args.token)]  # no_token and base read only its action statistics
    if arm != "base" and args.intervene_after:
        cmd += ["--intervene-after", str(args.intervene_after)]
    for kv in args.rlt:
        cmd += ["--rlt", kv]
    return cmd + TASKS[args.task] + ARMS[arm]


def run_jobs(jobs: list[tuple[str, int]], args) -> dict[tuple[str, int], Path]:
    """Run the sim-train processes, ``args.jobs`` at a time, with one progress bar over episodes."""
    from tqdm import tqdm

    outs = {}
    pending = list(jobs)
    running: dict[tuple[str, int], tuple[subprocess.Popen, Path, object]] = {}
    total = sum((1 if arm == "base" else args.episodes) + args.eval_episodes for arm, _ in jobs)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    bar = tqdm(total=total, desc="sample-efficiency", unit="ep", mininterval=5.0)
    done_eps: dict[tuple[str, int], int] = {}
    failed = []
    last_label = None
    while pending or running:
        while pending and len(running) < args.jobs:
            arm, seed = pending.pop(0)
            out = Path(args.work) / f"{arm}_s{seed}"
            if args.reuse and (out / "summary.json").is_file():
                outs[(arm, seed)] = out  # finished earlier with the same --work: keep it
                continue
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            log = open(out / "log.txt", "w")
            proc = subprocess.Popen(job_command(arm, seed, args, out), stdout=log, stderr=subprocess.STDOUT,
                                    env=env, cwd=REPO)
            running[(arm, seed)] = (proc, out, log)
        time.sleep(1.0)
        for key, (proc, out, log) in list(running.items()):
            n = len((out / "episodes.jsonl").read_text().splitlines()) if (out / "episodes.jsonl").exists() else 0
            bar.update(n - done_eps.get(key, 0))
            done_eps[key] = n
            if proc.poll() is not None:
                log.close()
                del running[key]
                expected = (1 if key[0] == "base" else args.episodes) + args.eval_episodes
                bar.update(max(0, expected - done_eps[key]))
                done_eps[key] = expected
                if proc.returncode != 0:
                    failed.append(key)
                    tail = (out / "log.txt").read_text()[-3000:]
                    print(f"\n{key[0]} seed {key[1]} failed (exit {proc.returncode}):\n{tail}", file=sys.stderr)
                outs[key] = out
        label = ",".join(f"{a}/{s}" for a, s in running)
        if label != last_label:
            bar.set_postfix(running=label)
            last_label = label
    bar.close()
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed: {failed}")
    return outs


def operator_reference(task: str, episodes: int, critical_timeout: float) -> dict[str, dict]:
    """The simulated operator doing the whole critical phase itself, on the evaluation episodes' seeds and start:
    the demonstrator (whose demonstrations trained the VLA) and the brisk teleoperator of ``--intervene-after``.
    Both see the socket's pose with their estimation noise, not the images: what RLT's speed is measured against."""
    from rlt_ros.core.rlt.practice import EVAL_SEED_OFFSET
    from rlt_ros.core.sim.configuration_expert import ExpertConfig, teleoperator_config
    from rlt_ros.core.sim.configuration_sim import SimConfig
    from rlt_ros.core.sim.env import PegInsertionEnv
    from rlt_ros.core.sim.expert import ScriptedExpert, run_episode

    flags = TASKS[task]
    overrides = dict(flags[i + 1].split("=", 1) for i in range(0, len(flags), 2) if flags[i] == "--sim")
    env = PegInsertionEnv(SimConfig(start="pre_critical", **{k: float(v) for k, v in overrides.items()}))
    out = {}
    for name, cfg in (("demonstrator", ExpertConfig()), ("teleoperator", teleoperator_config())):
        expert = ScriptedExpert(env, cfg)
        stats = [run_episode(env, expert, EVAL_SEED_OFFSET + i) for i in range(episodes)]
        ok = [s.critical_phase_s for s in stats if s.success and s.critical_phase_s is not None
              and s.critical_phase_s <= critical_timeout]
        out[name] = {"success_rate": round(len(ok) / episodes, 4),
                     "critical_phase_s": round(float(np.median(ok)), 2) if ok else None}
    env.close()
    return out


def load_run(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    return {"summary": summary, "episodes": episodes}


def aggregate(runs: dict[tuple[str, int], dict], arms: list[str], seeds: list[int]) -> tuple[dict, dict]:
    """Mean over seeds of the evaluation metrics (and their standard deviation)."""
    results, spread = {}, {}
    for arm in arms:
        per_seed = [runs[(arm, s)]["summary"]["eval"] for s in seeds]
        results[arm], spread[arm] = {}, {}
        for m in METRICS:
            vals = [p[m] for p in per_seed if p[m] is not None]
            results[arm][m] = round(float(np.mean(vals)), 4) if vals else None
            spread[arm][m] = round(float(np.std(vals)), 4) if vals else None
    return results, spread


def learning_curves(runs, arms, seeds, window: int = 20):
    """Per arm: simulated minutes grid, rolling success rate and rolling median critical phase (mean over seeds),
    of the practice episodes the policy finished itself."""
    from rlt_ros.core.curves import rolling

    curves = {}
    for arm in arms:
        if arm == "base":
            continue
        per = []
        for s in seeds:
            eps = [e for e in runs[(arm, s)]["episodes"] if e["kind"] in ("warmup", "rl")]
            if not eps:
                continue
            t = np.array([e["sim_total_s"] for e in eps]) / 60.0
            # the policy's own successes: an episode the operator took over (--intervene-after) counts as a failure
            own = [e["success"] and not e.get("intervened", False) for e in eps]
            rs, rc = rolling(own, [e["critical_s"] for e in eps], window)
            per.append((t, rs, rc))
        if not per:
            continue
        grid = np.linspace(0, min(p[0][-1] for p in per), 100)
        curves[arm] = (grid, np.mean([np.interp(grid, t, rs) for t, rs, _ in per], 0),
                       np.nanmean([np.interp(grid, t[~np.isnan(rc)], rc[~np.isnan(rc)]) if np.any(~np.isnan(rc))
                                   else np.full_like(grid, np.nan) for t, _, rc in per], 0))
    return curves


def plot(curves, results, path: Path) -> None:
    from rlt_ros.core.curves import plot_curves

    plot_curves(curves, path, xlabel="simulated practice time [min]", baseline=results.get("base"),
                title="RLT practice on the simulated insertion (mean over seeds; training episodes with exploration;\n"
                      "an episode the operator took over counts as a failure)")


def per_seed_table(runs, arms, seeds) -> list[str]:
    """One row per arm: each seed's evaluation (success / median critical phase), held-out seeds marked, and
    the mean over the held-out seeds alone."""
    cell = lambda e: f"{100 * e['success_rate']:.0f}% / {e['critical_phase_s']:.2f} s" if e["critical_phase_s"] \
        else f"{100 * e['success_rate']:.0f}% / -"  # noqa: E731
    heads = [f"seed {s}{' (held out)' if s in HELD_OUT else ''}" for s in seeds]
    lines = ["| arm | " + " | ".join(heads) + " | held-out mean |", "|---" * (len(seeds) + 2) + "|"]
    for arm in arms:
        evals = [runs[(arm, s)]["summary"]["eval"] for s in seeds]
        held = [e for e, s in zip(evals, seeds) if s in HELD_OUT]
        crit = [e["critical_phase_s"] for e in held if e["critical_phase_s"]]
        mean = (f"{100 * np.mean([e['success_rate'] for e in held]):.1f}% / "
                f"{np.mean(crit):.2f} s" if held and crit else "-")
        lines.append(f"| {arm} | " + " | ".join(cell(e) for e in evals) + f" | {mean} |")
    return lines


def markdown(results, spread, budget, seeds, command: str, per_seed: list[str] | None = None,
             reference: dict | None = None) -> str:
    base = results.get("base", {})
    lines = [
        "# RLT sample efficiency (simulated peg insertion)", "",
        f"Reproduce: `{command}`", "",
        f"Budget per RL arm: {budget['episodes']} episodes or {budget['sim_minutes']} simulated minutes "
        f"(whichever first, VLA warm-up included), then {budget['eval_episodes']} noise-free evaluation episodes "
        f"on shared seeds; seeds {seeds}; critical-phase timeout {budget['critical_timeout_s']} s; task "
        f"{budget.get('task', 'default')}{'; simulated interventions after ' + str(budget['intervene_after_s']) + ' s' if budget.get('intervene_after_s') else ''}. "
        "Metrics are from the evaluation episodes, mean ± sd over seeds.", "",
        "| arm | success rate | critical phase [s] (median, successes) | speed-up vs base | successes / 10 sim-min |",
        "|---|---|---|---|---|",
    ]
    for arm, r in results.items():
        sd = spread[arm]
        fmt = lambda v, s, p=2: "n/a" if v is None else f"{v:.{p}f} ± {s:.{p}f}"  # noqa: E731
        speed = "n/a"
        if r["critical_phase_s"] and base.get("critical_phase_s"):
            speed = f"{base['critical_phase_s'] / r['critical_phase_s']:.2f}x"
        lines.append(f"| {arm} | {fmt(r['success_rate'], sd['success_rate'])} | "
                     f"{fmt(r['critical_phase_s'], sd['critical_phase_s'])} | {speed} | "
                     f"{fmt(r['throughput_per_10min'], sd['throughput_per_10min'], 1)} |")
    if reference:
        cell = lambda r: f"{100 * r['success_rate']:.0f}% / " + (f"{r['critical_phase_s']:.2f} s" if r["critical_phase_s"] else "-")  # noqa: E731
        lines += ["", "The simulated operator doing the critical phase itself (the same evaluation episodes; it sees the "
                  f"socket's pose with its estimation noise, not the images): the demonstrator {cell(reference['demonstrator'])}, "
                  f"the teleoperator of the interventions {cell(reference['teleoperator'])}."]
    if per_seed:
        lines += ["", "Per seed (evaluation success / median critical phase of successes):", "", *per_seed]
    reused = " (finished runs reused from --work: their time is not included)" if budget.get("reused") else ""
    lines += ["", f"Wall clock of the whole benchmark: {budget.get('wall_minutes', 'n/a')} min with {budget['jobs']} "
              f"parallel run(s) (one torch thread each){reused}.", ""]
    if budget.get("cpu_minutes"):
        lines += ["CPU minutes per run (practice only, the evaluation not counted; mean over seeds): " + ", ".join(
            f"{arm} {v:.1f}" for arm, v in budget["cpu_minutes"].items()), ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 seed, a few episodes")
    ap.add_argument("--full", action="store_true", help="every arm on seeds 0-4 and the held-out 5-6 (hours)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 5], help="seeds (5-7 are held out from tuning)")
    ap.add_argument("--episodes", type=int, default=250, help="practice episodes per RL arm (warm-up included)")
    ap.add_argument("--minutes", type=float, default=90.0, help="simulated practice minutes per RL arm (a cap)")
    ap.add_argument("--eval-episodes", type=int, default=80, help="evaluation episodes per run")
    ap.add_argument("--critical-timeout", type=float, default=12.0, help="operator failure timeout [s]")
    ap.add_argument("--intervene-after", type=float, default=0.0,
                    help="simulated operator interventions in RL practice after this many seconds of critical phase "
                         "(0 = none, the paper's protocol without a teleoperator)")
    ap.add_argument("--arms", nargs="+", default=["base", "rlt"], choices=list(ARMS),
                    help="arms to run (no_token, the CNN on images, needs ~3 CPU-hours per run: --full or a GPU)")
    ap.add_argument("--task", choices=list(TASKS), default="default",
                    help="simulated task variant (hard: 0.3 mm clearance, 1.0 mm chamfer; base VLA ~40%%)")
    ap.add_argument("--device", default="cpu", help="where each run's learner trains: cpu, auto, cuda[:N]")
    ap.add_argument("--jobs", type=int, default=2, help="runs in parallel (one CPU thread each)")
    ap.add_argument("--vla", default=None, help="VLA checkpoint (default: the shipped built-in VLA)")
    ap.add_argument("--token", default=str(default_token()), help="RL-token directory")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "rlt_sample_efficiency"),
                    help="scratch directory of the runs (replay logs, checkpoints; large, not for git)")
    ap.add_argument("--rlt", action="append", default=[], metavar="KEY=VALUE", help="RLTConfig override for every arm")
    ap.add_argument("--results", default=str(RESULTS), help="where the md/json/png go (default bench/results)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep runs in --work that already finished (summary.json) instead of re-running them")
    args = ap.parse_args()
    if args.full:
        args.seeds, args.arms = [0, 1, 2, 3, 4, 5, 6], list(ARMS)
    if args.quick:
        args.seeds, args.episodes, args.eval_episodes, args.minutes = [0], 5, 4, 3.0
        args.rlt = ["warmup_transitions=150"] + args.rlt
    if not (Path(args.token) / "token.safetensors").is_file():
        raise SystemExit(f"no RL token in {args.token}; train one: rlt train-token --demos DIR --out {args.token}")
    command = "python bench/sample_efficiency.py " + " ".join(sys.argv[1:])
    t0 = time.time()
    jobs = [(arm, s) for s in args.seeds for arm in args.arms]
    jobs.sort(key=lambda j: j[0] == "base")  # long RL runs first, the cheap base evaluations last
    outs = run_jobs(jobs, args)
    runs = {key: load_run(out) for key, out in outs.items()}
    results, spread = aggregate(runs, args.arms, args.seeds)
    cpu = {arm: round(float(np.mean([runs[(arm, s)]["summary"].get("cpu_s", 0.0) for s in args.seeds])) / 60, 2)
           for arm in args.arms}
    budget = {"cpu_minutes": cpu, "episodes": args.episodes, "sim_minutes": args.minutes, "eval_episodes": args.eval_episodes,
              "critical_timeout_s": args.critical_timeout, "intervene_after_s": args.intervene_after,
              "task": args.task,
              "rlt_overrides": args.rlt, "jobs": args.jobs,
              "quick": args.quick, "reused": args.reuse, "wall_minutes": round((time.time() - t0) / 60, 1),
              "vla": args.vla or "builtin:default", "token": str(args.token)}
    reference = operator_reference(args.task, args.eval_episodes, args.critical_timeout)
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "sample_efficiency.json").write_text(
        json.dumps({"budget": budget, "seeds": args.seeds, "results": results, "operator": reference}, indent=2) + "\n")
    per_run = {f"{arm}_s{s}": runs[(arm, s)]["summary"] for arm, s in runs}
    (results_dir / "sample_efficiency_runs.json").write_text(json.dumps(per_run, indent=2) + "\n")
    plot(learning_curves(runs, args.arms, args.seeds), results, results_dir / "sample_efficiency.png")
    md = markdown(results, spread, budget, args.seeds, command, per_seed_table(runs, args.arms, args.seeds), reference)
    (results_dir / "sample_efficiency.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
