"""`rlt sim-train`: online RLT practice on the simulated arm, headless and in-process (RLT stage 2).

    rlt sim-train --token runs/token --episodes 300 --minutes 60 --out runs/rlt
    rlt sim-train --token runs/token --out runs/rlt --rlt beta=0.05 --rlt chunk_size=5 --eval-episodes 50
    rlt sim-train --state image --out runs/no_token           # ablation: a CNN on the camera images instead of z_rl
    rlt sim-train --token runs/token --out runs/rlt --intervene-after 5   # the operator takes over slow episodes
    rlt sim-train --token runs/token --out runs/base --base --start home --record-tokens runs/base/tokens
    rlt sim-train --token runs/token --out runs/rlt --switch runs/switch --detector runs/detector   # learned marks

The VLA drives each episode until the critical phase, a simulated operator hands over to the RL actor,
marks success from ground truth (+1) or failure on timeout (0); with --intervene-after it also takes over an
RL episode still running after that long (teleoperating with the demonstrator's moves, without its
hesitations; stored as an intervention).
The run in --out is resumed when it exists: replay log, checkpoints, episodes.jsonl, actor/ (for the ROS
actor node). A resumed run keeps the RLT configuration in its config.json; --rlt KEY=VALUE changes a
training hyperparameter (beta, batch_size, learning rates: logged, applied from then on), while the
networks' shape and the state source must stay the run's (else an error, and nothing stored is changed).
--record-tokens writes /rlt/token (every observation, approach included) and /rlt/events as an MCAP bag, as
`ros2 bag record` would on a robot: the data of `rlt train-switch` and `rlt train-detector`. With --switch
and --detector those mark the practice episodes, and the simulated operator presses only to correct them
(LearnedMarks); the summary counts its presses.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rlt_ros.core.rlt.configuration_practice import START_MODES, STATE_SOURCES, PracticeConfig


def _parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="run directory (resumed when it exists)")
    parser.add_argument("--episodes", type=int, default=PracticeConfig.episodes, help="practice episodes (warm-up included)")
    parser.add_argument("--minutes", type=float, default=PracticeConfig.sim_minutes, help="simulated practice minutes")
    parser.add_argument("--token", default=None, help="RL-token directory from `rlt train-token` (needed for --state token; "
                        "with --state image only its demos' action statistics are read)")
    parser.add_argument("--vla", default=None, help="VLA checkpoint (default: the shipped built-in VLA)")
    parser.add_argument("--vla-kind", default="builtin", help="VLA backend kind")
    parser.add_argument("--state", choices=STATE_SOURCES, default="token", help="actor and critic state: z_rl (token) or the "
                        "camera images through a small CNN trained online (image: the no-token ablation)")
    parser.add_argument("--start", choices=START_MODES, default=PracticeConfig.start, help="episode start mode")
    parser.add_argument("--critical-timeout", type=float, default=PracticeConfig.critical_timeout_s,
                        help="operator marks failure after this many seconds of critical phase")
    parser.add_argument("--intervene-after", type=float, default=PracticeConfig.intervene_after_s,
                        help="the simulated operator takes over (teleoperates, stored as an intervention) an RL "
                             "practice episode whose critical phase lasts this many seconds; 0 = never")
    parser.add_argument("--base", action="store_true", help="let the VLA drive the critical phase too (baseline)")
    parser.add_argument("--async", dest="async_", action="store_true", help="learner in a background thread")
    parser.add_argument("--eval-episodes", type=int, default=0, help="noise-free evaluation episodes at the end")
    parser.add_argument("--eval-noise", action="store_true", help="keep the actor's sigma noise in evaluation")
    parser.add_argument("--checkpoint-every", type=int, default=PracticeConfig.checkpoint_every, help="episodes")
    parser.add_argument("--rlt", action="append", default=[], metavar="KEY=VALUE",
                        help="override an RLTConfig field, e.g. --rlt beta=0.05 --rlt actor_hidden=[512,512,512]")
    parser.add_argument("--sim", action="append", default=[], metavar="KEY=VALUE",
                        help="override a SimConfig field, e.g. --sim clearance_mm=0.3")
    parser.add_argument("--seed", type=int, default=0, help="seed")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="where the learner trains: auto, cpu, cuda or cuda:N "
                        "(the actor acts on the CPU)")
    parser.add_argument("--record-tokens", default=None, metavar="BAG",
                        help="also record /rlt/token and /rlt/events into this new bag folder (for `rlt train-switch`)")
    parser.add_argument("--switch", default=None, metavar="DIR", help="hand over with this learned switch (`rlt "
                        "train-switch --out`), as episode.handover auto does; the operator presses only when it is late")
    parser.add_argument("--detector", default=None, metavar="DIR", help="mark outcomes with this learned success "
                        "detector (`rlt train-detector --out`), as reward.detector auto does; the operator presses "
                        "only to overrule it, or when it gives no verdict")
    parser.add_argument("--detector-failure-after", type=float, default=None,
                        help="the detector's failure verdict once the critical phase lasted this long [s] "
                             "(reward.detector_failure_after_s; default: 0.5 s before --critical-timeout, as "
                             "`rlt demo` sets it)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _token_action_stats(token: str | None, env):
    """The action scale stored with the RL token (checked against the simulated arm); None without one."""
    import sys

    from rlt_ros.core.rlt.action_stats import load_action_stats

    stats = load_action_stats(token) if token else None
    if stats is None:
        if token:
            print(f"rlt sim-train: WARNING: the RL token in {token} has no action statistics; the learner fits them "
                  "on its warm-up (add them with `rlt train-token --stats-only --demos DEMOS --out TOKEN_DIR`)",
                  file=sys.stderr)
        return None
    stats.check_arm(env.action_dim, tuple(env.joint_names))
    return stats


def _warn_if_token_for_other_vla(args: argparse.Namespace) -> None:
    import sys

    from rlt_ros.commands.train_token import vla_weights_hash

    meta_path = Path(args.token) / "token_meta.json"
    if not meta_path.is_file():
        return
    trained_on = json.loads(meta_path.read_text()).get("vla_weights_sha256")
    current = vla_weights_hash(args.vla_kind, args.vla)
    if trained_on and current and trained_on != current:
        print(f"rlt sim-train: WARNING: the RL token in {args.token} was trained on other VLA weights "
              f"({trained_on[:12]} vs {current[:12]}); retrain it with `rlt train-token`", file=sys.stderr)


def build(args: argparse.Namespace, practice_overrides: dict | None = None, rlt_overrides: dict | None = None,
          token_log=None):
    """(Practice, env) for the arguments: loads the VLA, the token, the simulator and the configs."""
    import torch

    from rlt_ros.core.rlt.configuration_rlt import RLTConfig
    from rlt_ros.core.rlt.modeling_token import TokenEncoder
    from rlt_ros.core.rlt.practice import IMAGE_STATE_SIZE, Practice, StateReader, stored_run_config
    from rlt_ros.core.sim.configuration_sim import SimConfig
    from rlt_ros.core.sim.env import PegInsertionEnv
    from rlt_ros.core.vla import load_backend

    torch.set_num_threads(args.threads)
    vla = load_backend(args.vla_kind, args.vla)
    encoder = None
    if args.state == "token":
        if not args.token:
            raise SystemExit("rlt sim-train: --state token needs --token DIR (train one with `rlt train-token`)")
        encoder = TokenEncoder.from_dir(args.token, expect_embed_dim=vla.embed_dim)
        _warn_if_token_for_other_vla(args)
    size = vla.image_size[0] if vla.image_size else 64
    sim_kw = dict(image_size=size, camera_names=tuple(vla.camera_names))
    sim_kw.update(_parse_overrides(args.sim))
    env = PegInsertionEnv(SimConfig.from_dict(sim_kw))
    vla.check_compatible(list(env.joint_names), env.action_dim)
    stored = stored_run_config(args.out)  # a resumed run keeps its RLT configuration; --rlt changes it
    rlt_kw = dict(stored["rlt"]) if stored else {}
    overrides = {**_parse_overrides(args.rlt), **(rlt_overrides or {})}
    side = overrides.get("state_image_size", rlt_kw.get("state_image_size")) or IMAGE_STATE_SIZE
    if args.state == "image" and env.config.image_size % int(side):
        raise SystemExit(f"rlt sim-train: --state image pools the {env.config.image_size} px camera images to "
                         f"{side} px, which does not divide them; set --rlt state_image_size=S with S dividing "
                         f"{env.config.image_size}")
    reader = StateReader(args.state, encoder, cameras=env.config.camera_names, image_size=int(side))
    rlt_kw.update(action_dim=env.action_dim, proprio_dim=env.proprio_dim, token_dim=reader.dim,
                  state_image_size=reader.image_size, seed=args.seed)
    rlt_kw.update(overrides)
    rlt_cfg = RLTConfig.from_dict(rlt_kw)
    pkw = dict(episodes=args.episodes, sim_minutes=args.minutes, start=args.start,
               critical_timeout_s=args.critical_timeout, intervene_after_s=args.intervene_after,
               state_source=args.state,
               policy="vla" if args.base else "rlt", learner_mode="async" if args.async_ else "interleaved",
               checkpoint_every=args.checkpoint_every, eval_episodes=args.eval_episodes, seed=args.seed,
               eval_explore=args.eval_noise,
               num_threads=args.threads)
    pkw.update(practice_overrides or {})
    cfg = PracticeConfig(**pkw)
    action_stats = _token_action_stats(args.token, env)
    extra = {"vla": str(args.vla) if args.vla else "builtin:default", "token": args.token,
             "sim": env.config.to_dict(),  # the action scale: the token's demos', or fitted on the warm-up
             "action_stats": action_stats.to_dict() if action_stats else "warm-up"}
    operator = None
    if cfg.intervene_after_s > 0:  # the operator teleoperates: the demonstrator's moves, brisker
        from rlt_ros.core.sim.configuration_expert import teleoperator_config
        from rlt_ros.core.sim.expert import ScriptedExpert

        operator = ScriptedExpert(env, teleoperator_config(seed=args.seed + 29))
    practice = Practice(env, vla, reader, rlt_cfg, cfg, out_dir=args.out, progress=not args.no_progress,
                        extra_config=extra, operator=operator, device=args.device, token_log=token_log,
                        marks=_learned_marks(args), action_stats=action_stats)
    return practice, env


def _learned_marks(args: argparse.Namespace):
    """LearnedMarks of --switch / --detector (None without either); one trained on another token is refused."""
    if not (args.switch or args.detector):
        return None
    from rlt_ros.core.checkpoints import token_identity
    from rlt_ros.core.rlt.configuration_detector import failure_after_s
    from rlt_ros.core.rlt.detector import DetectorRunner, SuccessDetector
    from rlt_ros.core.rlt.practice import LearnedMarks
    from rlt_ros.core.rlt.switch import HandoverSwitch
    from rlt_ros.core.rlt.token_classifier import ClassifierError

    if args.state != "token":
        raise SystemExit("rlt sim-train: --switch and --detector read the RL token: they need --state token")
    identity = token_identity(args.token)
    try:
        switch = HandoverSwitch.load(args.switch, identity) if args.switch else None
        detector = SuccessDetector.load(args.detector, identity) if args.detector else None
    except ClassifierError as err:
        raise SystemExit(f"rlt sim-train: {err}") from err
    if detector is not None:
        after = args.detector_failure_after
        detector = DetectorRunner(detector, failure_after_s(args.critical_timeout) if after is None else after)
    return LearnedMarks(switch=switch, detector=detector)


def run(args: argparse.Namespace) -> int:
    from rlt_ros.core.rlt.practice import summarize

    token_log = None
    if args.record_tokens:
        from rlt_ros.core.data.token_bags import TokenBagWriter

        token_log = TokenBagWriter(args.record_tokens)
    practice, env = build(args, token_log=token_log)
    t0, cpu0 = time.time(), time.process_time()
    try:
        results = practice.run()
        summary = {"practice": summarize([r for r in results if r.kind in ("rl", "warmup", "base")]),
                   "last_50": summarize([r for r in results if r.kind in ("rl", "base")][-50:]),
                   "episodes": len(results), "updates": practice.algorithm.num_updates,
                   "transitions": practice.replay.total_added, "wall_s": round(time.time() - t0, 1),
                   "cpu_s": round(time.process_time() - cpu0, 1)}
        if args.eval_episodes:
            summary["eval"] = practice.evaluate(args.eval_episodes, kind="base" if args.base else "eval")
    finally:
        practice.replay.close()
        env.close()
        if token_log is not None:
            token_log.close()
    Path(args.out, "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0
