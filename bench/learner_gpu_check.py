"""GPU check of the RLT learner: updates/s through the project's own learner on a device (not run by CI).

    python bench/learner_gpu_check.py                       # cuda (and CPU, 1 thread, to compare), batch 256 and 128
    python bench/learner_gpu_check.py --device cpu --tiny   # the same script, tiny and fast (what the tests run)

One prepared script for a lent GPU machine (minutes of device time): it checks the device option, trains a few
hundred updates at the paper-default network sizes through ``RLTAlgorithm`` + the ``TensorReplay`` mirror the
``Learner`` samples from (bench/learner_speed.py's ``measure``), checks a NaN batch is skipped on the device and
that a checkpoint made there loads on the CPU, and writes ``bench/results/learner_speed_<machine>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from learner_speed import filled_learner, measure  # noqa: E402

from rlt_ros.core.rlt.configuration_rlt import RLTConfig  # noqa: E402
from rlt_ros.core.rlt.learner import RLTAlgorithm, load_checkpoint, resolve_device, save_checkpoint  # noqa: E402

TINY = {"token_dim": 8, "proprio_dim": 3, "action_dim": 2, "chunk_size": 4, "stride": 2, "actor_hidden": (32, 32),
        "critic_hidden": (32, 32)}
PROJECT = {"token_dim": 64, "proprio_dim": 17, "action_dim": 5}  # bench/learner_speed.py's shapes


def checks(cfg: RLTConfig, device: str) -> dict:
    """No host sync inside an update (CUDA); a NaN batch skipped and counted on the device; a checkpoint from
    the device continues on the CPU."""
    learner = filled_learner(cfg, device, transitions=max(cfg.batch_size * 2, 256))
    alg = learner.algorithm
    no_sync = None
    if alg.device.type == "cuda":  # updates between read-backs never wait for the GPU
        alg.stats_every = 1_000_000
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(4):
                alg.update(learner.mirror.sample(cfg.batch_size, learner.sample_generator))
            no_sync = True
        except RuntimeError as err:
            print(f"an update synchronised with the GPU: {err}", flush=True)
            no_sync = False
        finally:
            torch.cuda.set_sync_debug_mode("default")
    batch = learner.mirror.sample(cfg.batch_size, learner.sample_generator)
    bad = type(batch)(**{**batch.__dict__, "finite": None, "token": batch.token.clone()})
    bad.token[0, 0] = float("nan")
    before = alg.critics.weight_0.detach().clone()
    alg.update(bad)
    stats = alg.read_stats()
    nan_skipped = bool(torch.equal(before, alg.critics.weight_0.detach())) and stats["nonfinite_batches"] == 1
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(tmp, alg)
        cpu = RLTAlgorithm(cfg, device="cpu")
        load_checkpoint(tmp, cpu)
        same = all(torch.equal(p.detach().cpu(), q.detach()) for p, q in zip(alg.actor.parameters(), cpu.actor.parameters()))
        cpu.update(learner.replay.sample(cfg.batch_size, learner.rng))
    out = {"nan_batch_skipped": nan_skipped, "checkpoint_loads_on_cpu": same}
    return out if no_sync is None else {**out, "update_without_host_sync": no_sync}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--compare-cpu", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure the CPU with one thread")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 128])
    ap.add_argument("--updates", type=int, default=500)
    ap.add_argument("--tiny", action="store_true", help="tiny networks, few updates (a smoke run)")
    ap.add_argument("--machine", default=platform.node() or "unknown", help="name in the results file")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="results folder")
    args = ap.parse_args(argv)
    t0 = time.time()
    device = str(resolve_device(args.device))  # a clear error when the device is missing
    dims = TINY if args.tiny else PROJECT
    updates = 30 if args.tiny else args.updates
    torch.set_num_threads(1)
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else platform.processor()
    print(f"learner GPU check on {device} ({name}); torch {torch.__version__}", flush=True)
    rows = []
    runs = [(device, False)] + ([(device, True)] if device.startswith("cuda") else [])
    runs += [("cpu", False)] if args.compare_cpu and device != "cpu" else []
    for dev, graph in runs:
        for b in args.batch_sizes:
            try:
                row = measure(RLTConfig(**dims, batch_size=b), dev, updates, cuda_graph=graph)
            except RuntimeError as err:  # report and go on: the other figures still count
                print(f"{dev} batch {b} (CUDA graph: {graph}) failed: {err}", flush=True)
                rows.append({"device": dev, "cuda_graph": graph, "batch_size": b, "error": str(err)})
                continue
            bd = row["breakdown_ms"]
            label = " graph" if row["graph_captured"] else " (capture failed)" if graph else ""
            print(f"{row['device']:>7}{label} batch {b:4d}: {row['updates_per_s']:8.1f} updates/s "
                  f"({row['ms_per_update']:.2f} ms; eager sample {bd['sample']:.3f}, critic step "
                  f"{bd['critic_step']:.3f}, actor step {bd['actor_step']:.3f} ms)", flush=True)
            rows.append(row)
    result = {"machine": args.machine, "device": device, "device_name": name, "torch": torch.__version__,
              "tiny": args.tiny, "dims": {k: list(v) if isinstance(v, tuple) else v for k, v in dims.items()},
              "learner": rows, "checks": checks(RLTConfig(**dims, batch_size=args.batch_sizes[-1]), device)}
    print("checks:", result["checks"], flush=True)
    out = Path(args.out) / f"learner_speed_{args.machine}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out} ({time.time() - t0:.0f} s)")
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
