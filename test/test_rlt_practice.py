"""RLT practice loop on fakes: protocol (warm-up, handover, critical-phase-only storage), kill -9 and resume
without losing a transition, and a configuration mismatch on resume."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rlt_fakes import FakeReachEnv, FakeVLA, PooledToken
from rlt_ros.core.rlt.configuration_practice import PracticeConfig
from rlt_ros.core.rlt.configuration_rlt import RLTConfig
from rlt_ros.core.rlt.learner import CheckpointMismatchError
from rlt_ros.core.rlt.practice import Practice, StateReader
from rlt_ros.core.rlt.replay import ReplayBuffer

REPO = Path(__file__).resolve().parents[1]


def small_rlt(**kw):
    base = dict(chunk_size=10, action_dim=2, token_dim=8, proprio_dim=4, actor_hidden=(32, 32),
                critic_hidden=(32, 32), batch_size=32, warmup_transitions=60, utd=2)
    return RLTConfig(**{**base, **kw})


def make_practice(out_dir, rlt=None, **kw):
    cfg = PracticeConfig(**{"episodes": 6, "critical_timeout_s": 3.0, "checkpoint_every": 2, **kw})
    return Practice(FakeReachEnv(), FakeVLA(), StateReader("token", PooledToken(8)), rlt or small_rlt(), cfg,
                    out_dir=out_dir, progress=False)


def test_practice_protocol_on_fakes(tmp_path):
    p = make_practice(tmp_path, start="home")
    results = p.run()
    kinds = [r.kind for r in results]
    assert kinds[0] == "warmup" and "rl" in kinds and kinds.index("rl") > 0
    assert p.algorithm.num_updates > 0 and (tmp_path / "checkpoints" / "latest").is_file()
    assert (tmp_path / "actor" / "actor.safetensors").is_file()
    assert len((tmp_path / "episodes.jsonl").read_text().splitlines()) == 6
    # only critical-phase transitions: every stored state is within the critical distance (0.6 rad)
    data = p.replay.arrays()
    assert len(data) == sum(r.transitions for r in results) > 0
    env = FakeReachEnv()
    for eid in np.unique(data["episode_id"]):
        env.reset(seed=p.episode_seed(int(eid)), options={"start": "home"})
        q = data["proprio"][data["episode_id"] == eid][:, :2]
        assert np.all(np.linalg.norm(q - env.target, axis=1) < 0.6 + 0.05)
    assert set(np.unique(data["source"])) <= {0, 1}
    ev = p.evaluate(3)
    assert ev["episodes"] == 3 and 0.0 <= ev["success_rate"] <= 1.0


DRIVER = textwrap.dedent("""
    import sys
    from rlt_fakes import FakeReachEnv, FakeVLA, PooledToken
    from rlt_ros.core.rlt.configuration_practice import PracticeConfig
    from rlt_ros.core.rlt.configuration_rlt import RLTConfig
    from rlt_ros.core.rlt.practice import Practice, StateReader
    out, episodes = sys.argv[1], int(sys.argv[2])
    rlt = RLTConfig(chunk_size=10, action_dim=2, token_dim=8, proprio_dim=4, actor_hidden=(32, 32),
                    critic_hidden=(32, 32), batch_size=32, warmup_transitions=60, utd=2)
    cfg = PracticeConfig(episodes=episodes, critical_timeout_s=3.0, checkpoint_every=2)
    p = Practice(FakeReachEnv(), FakeVLA(), StateReader("token", PooledToken(8)), rlt, cfg, out_dir=out,
                 progress=False, on_transition=lambda tr: print("T", tr.episode_id, tr.index, flush=True))
    print("START", p.algorithm.num_updates, len(p.replay), len(p.results), flush=True)
    p.run()
    print("END", p.algorithm.num_updates, len(p.replay), len(p.results), flush=True)
""")


def _driver(tmp_path, out, episodes):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "test")])}
    return subprocess.Popen([sys.executable, str(script), str(out), str(episodes)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_kill_minus_9_and_resume_loses_no_transition(tmp_path):
    out = tmp_path / "run"
    proc = _driver(tmp_path, out, 10_000)
    seen: list[tuple[int, int]] = []
    deadline = time.time() + 120
    try:
        for line in proc.stdout:
            if line.startswith("T "):
                _, eid, idx = line.split()
                seen.append((int(eid), int(idx)))
            ckpt = out / "checkpoints" / "latest"
            if ckpt.is_file() and len(seen) > 150 and seen[-1][0] >= 3:
                break  # mid-episode, after at least one checkpoint
            assert time.time() < deadline, "driver too slow"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stored = ReplayBuffer(8, 4, 10, 2, directory=out / "replay").arrays()
    have = set(zip(stored["episode_id"].tolist(), stored["index"].tolist()))
    assert set(seen) <= have, f"lost {sorted(set(seen) - have)[:5]}"
    ckpt_state = json.loads((out / "checkpoints" / (out / "checkpoints" / "latest").read_text().strip()
                             / "state.json").read_text())
    # resume: the learner continues from the checkpoint, the whole buffer is there, practice goes on
    done = len((out / "episodes.jsonl").read_text().splitlines())
    proc = _driver(tmp_path, out, done + 2)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    start = next(line for line in stdout.splitlines() if line.startswith("START")).split()
    end = next(line for line in stdout.splitlines() if line.startswith("END")).split()
    assert int(start[1]) == ckpt_state["counters"]["num_updates"] > 0
    assert int(start[2]) == len(stored)
    assert int(end[2]) > len(stored) and int(end[3]) == done + 2
    stored2 = ReplayBuffer(8, 4, 10, 2, directory=out / "replay").arrays()
    assert have <= set(zip(stored2["episode_id"].tolist(), stored2["index"].tolist()))
    new_eps = set(stored2["episode_id"].tolist()) - set(stored["episode_id"].tolist())
    assert new_eps and min(new_eps) > max(stored["episode_id"])  # no episode id reused


def test_resume_with_other_config_is_refused_and_keeps_everything(tmp_path):
    make_practice(tmp_path, episodes=3).run()
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(CheckpointMismatchError, match="actor_hidden: stored \\[32, 32\\] vs requested \\[64, 64\\]"):
        make_practice(tmp_path, rlt=small_rlt(actor_hidden=(64, 64)))
    # another state source (the camera images) is refused as well: test_rlt_image_state.py
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


def test_async_learner_mode_on_fakes(tmp_path):
    p = make_practice(None, learner_mode="async", max_lag_updates=50, episodes=8)
    results = p.run()
    assert len(results) == 8 and p.algorithm.num_updates > 0
    assert p.learner._thread is None and p.learner.error is None  # stopped cleanly
    # the acting copy received exported weights (not the live networks)
    assert p.policy.actor is not p.algorithm.actor


def test_removed_fields_name_their_replacement_and_old_runs_resume(tmp_path):
    """A configuration naming a removed RLTConfig field fails with what replaced it, before anything is
    touched; a stored run whose removed fields hold today's behaviour resumes unchanged."""
    with pytest.raises(ValueError, match="actor_ema was removed: the latest actor acts"):
        RLTConfig.from_dict({**small_rlt().to_dict(), "actor_ema": 0.01})
    with pytest.raises(ValueError, match="reference_follows_progress was removed"):
        RLTConfig.from_dict({"reference_follows_progress": False})
    make_practice(tmp_path, episodes=2).run()
    stored = json.loads((tmp_path / "config.json").read_text())
    stored["rlt"].update(actor_ema=0.0, shared_action_std=False, noise_correlation=0.0,
                         reference_follows_progress=True, dropout_keeps_anchor=True)
    (tmp_path / "config.json").write_text(json.dumps(stored))
    assert make_practice(tmp_path, episodes=3).run()[-1].episode == 2


class _RunsAhead:
    """An actor that sends ã shifted three rows further along the VLA's (linear) plan; records its ã."""

    def __init__(self):
        self.references = []

    def act(self, token, proprio, reference, explore, rng):
        self.references.append(np.array(reference))
        return reference + 3 * (reference[-1] - reference[-2])


class _LineVLA:
    """A VLA whose chunks all lie on one grid along a line: the rows after the arm's nearest grid point."""

    embed_dim, chunk_size, action_dim, spacing = 8, 50, 2, 0.004

    def __init__(self):
        self.origin, self.u = np.array([-2.0, -2.0]), np.array([0.6, 0.8])

    def grid(self, q) -> float:
        return float((np.asarray(q, np.float64) - self.origin) @ self.u / self.spacing)

    def infer(self, obs):
        from rlt_ros.core.types import VLAOutput

        n = np.round(self.grid(obs.proprio[:2]))  # the arm is on the grid
        rows = self.origin + self.spacing * (n + 1 + np.arange(self.chunk_size))[:, None] * self.u
        return VLAOutput(prefix_embeddings=np.ones((4, 8), np.float32), prefix_mask=np.ones(4, bool),
                         reference_chunk=rows.astype(np.float32))


def test_stored_reference_is_in_step_with_the_executed_rows(tmp_path):
    """Every stored window's ã (and ã') starts one plan row past the last row the arm executed, also between
    the actor's decisions, with an actor that runs ahead of the VLA; a critical phase that outlasts the
    operator's patience ends with its failure press: one terminal row, reward 0."""
    env, vla = FakeReachEnv(), _LineVLA()
    cfg = PracticeConfig(episodes=1, critical_timeout_s=2.0)  # plans followed 30 rows
    p = Practice(env, vla, StateReader("token", PooledToken(8)), small_rlt(warmup_transitions=10**6), cfg,
                 out_dir=tmp_path, progress=False)
    env.reset(seed=0)
    start = vla.origin + 0.3 * vla.u  # on the line, 0.54 rad from a target 0.2 rad off it: never reached
    env.target = start + 0.5 * vla.u + 0.2 * np.array([-0.8, 0.6])
    env.reset = lambda seed=None, options=None: (setattr(env, "q", start.copy()), setattr(env, "qd", np.zeros(2)),
                                                 setattr(env, "steps", 0), setattr(env, "critical", False),
                                                 (env.observe(True), env._info()))[-1]
    p.policy = _RunsAhead()
    res = p.run_episode(0, "rl", seed=0, start="pre_critical")
    data = p.replay.arrays()
    assert not res.success and len(data) == res.transitions > 30
    done = np.flatnonzero(data["done"])  # the failure press closes the windows still open, terminal, reward 0
    assert len(done) and list(done) == list(range(len(data) - len(done), len(data))) and not data["rewards"].any()
    executed = {}  # control step -> executed row
    for rec in data:
        for i in range(int(rec["steps"])):
            executed[int(rec["index"]) + i] = rec["action"][i]
    checked = 0
    for rec in data:
        step = int(rec["index"])
        if step - 1 in executed:
            ahead = vla.grid(rec["reference"][0]) - vla.grid(executed[step - 1])
            assert ahead == pytest.approx(1.0, abs=1e-3), f"window at step {step}: ã starts {ahead:.2f} rows ahead"
            checked += 1
    assert checked > 30
    by_index = {int(rec["index"]): rec for rec in data}
    for rec in data:  # ã' of a window is ã of the window that starts where it ends
        nxt = by_index.get(int(rec["index"]) + 10)
        if nxt is not None:
            np.testing.assert_allclose(rec["next_reference"], nxt["reference"], atol=1e-6)
    p.replay.close()


def test_practice_reference_follows_an_actor_that_runs_ahead(tmp_path):
    p = make_practice(tmp_path)  # the VLA's plan followed for 30 rows (ActorConfig.vla_execute_steps)
    p.vla.chunk_size = 50  # a plan of 50 rows, followed for 30
    p.policy = actor = _RunsAhead()
    p.run_episode(0, "eval", seed=3, start="pre_critical")
    first, second = actor.references[0], actor.references[1]
    row = first[1] - first[0]  # the plan's step per row
    # the second decision's ã starts 13 rows after the first: just past the row the actor's last target
    # reached (the plan's own pace would be 10)
    np.testing.assert_allclose((second[0] - first[0]) / row, 13.0, atol=1e-4)


class _Holds:
    """An actor stuck where it is: every target is the current joint position."""

    def act(self, token, proprio, reference, explore, rng):
        return np.tile(np.asarray(proprio[:2], np.float32), (len(reference), 1))


class _Teleop:
    """A simulated operator that drives straight to the target once it takes over."""

    def __init__(self, env):
        self.env, self.resets = env, 0

    def reset(self, obs):
        self.resets += 1

    def act(self, obs):
        return self.env.target.astype(np.float32)


def test_operator_intervention_is_stored_as_human_and_never_in_evaluation(tmp_path):
    from rlt_ros.core.rlt.replay import SOURCE_HUMAN, SOURCE_RL

    env = FakeReachEnv()
    operator = _Teleop(env)
    cfg = PracticeConfig(episodes=2, critical_timeout_s=3.0, intervene_after_s=0.2)
    p = Practice(env, FakeVLA(), StateReader("token", PooledToken(8)), small_rlt(warmup_transitions=10**6), cfg,
                 out_dir=tmp_path, progress=False, operator=operator)
    p.policy = _Holds()
    res = p.run_episode(0, "rl", seed=3, start="pre_critical")
    # the stuck actor is taken over after 0.2 s (10 steps) and the operator finishes the insertion
    assert res.intervened and res.success and operator.resets == 1
    assert 0.2 < res.critical_s < 1.0
    data = p.replay.arrays()
    assert len(data) == res.transitions > 0
    human_from = 10  # the first teleoperated control step
    for rec in data:
        start = int(rec["index"])
        rows = np.arange(start, start + 10) >= human_from  # rows of this window the operator executed
        assert bool(rec["intervention"]) == bool(rows.any())
        assert rec["source"] == (SOURCE_HUMAN if rows.any() else SOURCE_RL)
        # ã <- a_human on the teleoperated rows (valid ones), the VLA's plan kept on the actor's rows
        valid = np.arange(10) < rec["steps"]
        np.testing.assert_array_equal(rec["reference"][rows & valid], rec["action"][rows & valid])
        if start + 10 <= human_from:
            assert not np.allclose(rec["reference"], rec["action"])
    assert (data["source"] == SOURCE_HUMAN).sum() >= 1 and (data["source"] == SOURCE_RL).sum() >= 1
    # evaluation never intervenes: the stuck actor times out
    ev = p.run_episode(1, "eval", seed=3, start="pre_critical")
    assert not ev.intervened and not ev.success and ev.critical_s == pytest.approx(3.0, abs=0.03)
    assert operator.resets == 1
    p.replay.close()


def test_interventions_need_an_operator_and_time_to_take_over():
    with pytest.raises(ValueError, match="must be below critical_timeout_s"):
        PracticeConfig(intervene_after_s=5.0, critical_timeout_s=3.0)
    with pytest.raises(ValueError, match="needs an operator"):
        Practice(FakeReachEnv(), FakeVLA(), StateReader("token", PooledToken(8)), small_rlt(),
                 PracticeConfig(intervene_after_s=1.0), progress=False)


def test_practice_learner_device():
    """``device`` places the learner (the acting policy stays on the CPU); a GPU that is not there is an
    error at start-up naming the devices found."""
    import torch

    p = Practice(FakeReachEnv(), FakeVLA(), StateReader("token", PooledToken(8)), small_rlt(),
                 PracticeConfig(), progress=False, device="auto")
    assert p.algorithm.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cpu"):
            Practice(FakeReachEnv(), FakeVLA(), StateReader("token", PooledToken(8)), small_rlt(),
                     PracticeConfig(), progress=False, device="cuda")


def test_an_episode_nobody_marked_is_a_truncation(tmp_path):
    """An episode that runs out of simulated time before the operator's patience does ends as TIMEOUT: its
    transitions bootstrap (no terminal row), where the operator's failure press is terminal."""
    env, vla = FakeReachEnv(max_steps=20), FakeVLA()  # 0.4 s: too short to reach the target
    cfg = PracticeConfig(episodes=1, critical_timeout_s=60.0)
    p = Practice(env, vla, StateReader("token", PooledToken(8)), small_rlt(warmup_transitions=10**6), cfg,
                 out_dir=tmp_path, progress=False)
    res = p.run_episode(0, "warmup", seed=0, start="pre_critical")
    data = p.replay.arrays()
    assert not res.success and len(data) == res.transitions > 2
    assert not data["done"].any() and not data["rewards"].any()


class _EventLog:
    """A TokenLog that keeps what practice records."""

    def __init__(self):
        self.tokens, self.events = [], []

    def write_token(self, packet):
        self.tokens.append(packet)

    def write_event(self, event):
        self.events.append(event)


class _OracleSwitch:
    """A handover switch that reads the simulator (the trained one is tested in test_rlt_switch.py):
    p(critical) = 1 within ``reach`` rad of the target."""

    def __init__(self, env, reach: float):
        from types import SimpleNamespace

        self.env, self.reach, self.cfg = env, reach, SimpleNamespace(tolerance_s=0.2)

    def probability(self, token, proprio):
        return float(np.linalg.norm(self.env.q - self.env.target) < self.reach)

    def gate(self):
        from rlt_ros.core.rlt.token_classifier import HysteresisGate

        return HysteresisGate(0.5, 2)


class _OracleDetector:
    """A success detector (the model DetectorRunner runs) whose p(success) is ``says(env)``."""

    def __init__(self, env, says):
        from types import SimpleNamespace

        self.env, self.says, self.cfg = env, says, SimpleNamespace(threshold=0.95, consecutive=3, window=1)

    def probability(self, tokens, proprio):
        return float(self.says(self.env))

    def gate(self):
        from rlt_ros.core.rlt.token_classifier import HysteresisGate

        return HysteresisGate(self.cfg.threshold, self.cfg.consecutive)


def test_the_operators_success_mark_follows_ticks_of_the_seated_plug(tmp_path):
    """The operator presses success ``OPERATOR_REACTION_S`` after seeing the plug seated, and the recorded token
    stream runs on meanwhile, as in the graph: the ticks before the mark, which the detector learns success
    from, show the seated scene. (The simulator ends the episode on the seating step: without them the last
    recorded tick was a plug on its way in, and the detector learned to call success early.)"""
    from rlt_ros.core.episode import OPERATOR_REACTION_S
    from rlt_ros.core.rlt.practice import TOKEN_LOG_HZ

    env, log = FakeReachEnv(), _EventLog()
    p = Practice(env, FakeVLA(), StateReader("token", PooledToken(8)), small_rlt(warmup_transitions=10**6),
                 PracticeConfig(episodes=1, critical_timeout_s=3.0), out_dir=tmp_path, progress=False, token_log=log)
    res = p.run_episode(0, "warmup", seed=0, start="home")
    assert res.success
    mark = next(e for e in log.events if e.type.name == "SUCCESS")
    assert mark.stamp == pytest.approx(res.episode_s + OPERATOR_REACTION_S)
    before = [t for t in log.tokens if t.stamp <= mark.stamp + 1e-9]
    held = round(OPERATOR_REACTION_S * TOKEN_LOG_HZ)
    assert all(np.linalg.norm(t.proprio[:2] - env.target) < 0.05 for t in before[-held:])  # the seated plug
    assert not np.linalg.norm(before[-held - 1].proprio[:2] - env.target) < 0.05  # on its way in
    assert np.diff([t.stamp for t in before]).max() == pytest.approx(1 / TOKEN_LOG_HZ)
    p.replay.close()


def _marked_practice(tmp_path, reach: float, says, failure_after_s: float = 60.0):
    from rlt_ros.core.rlt.detector import DetectorRunner
    from rlt_ros.core.rlt.practice import LearnedMarks

    env, log = FakeReachEnv(), _EventLog()
    marks = LearnedMarks(switch=_OracleSwitch(env, reach),
                         detector=DetectorRunner(_OracleDetector(env, says), failure_after_s))
    p = Practice(env, FakeVLA(), StateReader("token", PooledToken(8)), small_rlt(warmup_transitions=10**6),
                 PracticeConfig(episodes=1, critical_timeout_s=3.0), out_dir=tmp_path, progress=False,
                 token_log=log, marks=marks)
    return p, log


def _sources(log, episode):
    return [(e.type.name, e.source.name) for e in log.events if e.episode_id == episode]


def seated(env):
    return np.linalg.norm(env.q - env.target) < 0.05


def test_learned_marks_leave_the_operator_nothing_to_press_when_they_are_right(tmp_path):
    """The switch hands over and the detector marks the success (source DETECTOR): no press; evaluation is
    marked by the operator as before; without marks every practice episode costs two presses."""
    p, log = _marked_practice(tmp_path, reach=0.6, says=seated)
    res = p.run_episode(0, "warmup", seed=0, start="home")
    assert res.success and res.presses == 0 and res.handover_presses == 0 and res.transitions > 0
    assert _sources(log, 0) == [("START", "SYSTEM"), ("HANDOVER", "DETECTOR"), ("SUCCESS", "DETECTOR")]
    data = p.replay.arrays()
    assert data["done"][-1] and data["rewards"][-1].sum() == 1.0
    ev = p.run_episode(1, "eval", seed=0, start="home")
    assert ev.success and ev.presses == 2 and ev.handover_presses == 1 and _sources(log, 1)[1:] == [("HANDOVER", "HUMAN"), ("SUCCESS", "HUMAN")]
    p.replay.close()

    operator = make_practice(tmp_path / "operator", start="home")
    res = operator.run_episode(0, "warmup", seed=0, start="home")
    assert res.success and res.presses == 2
    operator.replay.close()


def test_the_operator_corrects_a_late_switch_and_overrules_a_false_success(tmp_path):
    """A switch that never fires: the operator hands over at the switch's tolerance (0.2 s) into the critical
    phase. A detector that calls success at once: the operator overrules it, the episode ends as a failure,
    stored as a truncation (the detector cut it: no terminal row, nothing rewarded)."""
    p, log = _marked_practice(tmp_path, reach=0.0, says=lambda env: 1.0)
    res = p.run_episode(0, "warmup", seed=0, start="home")
    assert not res.success and res.presses == 2 and res.handover_presses == 1
    assert _sources(log, 0) == [("START", "SYSTEM"), ("HANDOVER", "HUMAN"), ("FAILURE", "HUMAN")]
    handover = next(e for e in log.events if e.type.name == "HANDOVER")
    assert handover.note == "late switch"  # no label for the switch: the operator waited for it
    handover = handover.stamp
    critical = next(t.stamp for t in log.tokens if np.linalg.norm(t.proprio[:2] - p.env.target) < 0.6)
    assert handover == pytest.approx(critical + 0.2, abs=0.05)
    assert res.critical_s == pytest.approx(3 * 0.04, abs=0.05)  # 3 ticks at 25 Hz above the threshold
    data = p.replay.arrays()
    assert len(data["done"]) == res.transitions and not data["done"].any() and not data["rewards"].any()
    p.replay.close()


def test_a_verdict_stands_when_the_arm_seats_the_plug_before_the_operator_looks(tmp_path):
    """After a verdict the arm goes on with the command it was sent (as a robot's driver does in the graph) and
    the operator judges the plug when it looks, ``OPERATOR_REACTION_S`` later: a success called on a plug
    still 0.09 rad out stands when the arm's chunk seats it meanwhile (no press, reward 1 stored)."""
    near = lambda env: float(np.linalg.norm(env.q - env.target) < 0.17)  # noqa: E731
    p, log = _marked_practice(tmp_path, reach=0.6, says=near)
    res = p.run_episode(0, "warmup", seed=0, start="home")
    assert res.success and res.presses == 0 and _sources(log, 0)[-1] == ("SUCCESS", "DETECTOR")
    verdict = next(e for e in log.events if e.type.name == "SUCCESS")
    last = [t for t in log.tokens if t.stamp <= verdict.stamp + 1e-9][-1]
    assert np.linalg.norm(last.proprio[:2] - p.env.target) > 0.05  # called before the plug was in
    assert np.linalg.norm(p.env.q - p.env.target) < 0.05  # seated when the operator looked
    data = p.replay.arrays()
    assert data["done"][-1] and data["rewards"][-1].sum() == 1.0
    p.replay.close()


def test_a_failure_verdict_ends_the_episode_and_a_silent_detector_costs_a_press(tmp_path):
    p, log = _marked_practice(tmp_path, reach=0.6, says=lambda env: 0.0, failure_after_s=0.5)
    res = p.run_episode(0, "warmup", seed=0, start="home")
    assert not res.success and res.presses == 0 and 0.5 <= res.critical_s < 0.7
    assert _sources(log, 0)[-1] == ("FAILURE", "DETECTOR")
    p.replay.close()
    # a detector that never decides: the operator marks the seated plug once the grace period has passed
    p, log = _marked_practice(tmp_path / "silent", reach=0.6, says=lambda env: 0.5)
    res = p.run_episode(0, "warmup", seed=0, start="home")
    assert res.success and res.presses == 1 and res.handover_presses == 0 and _sources(log, 0)[-1] == ("SUCCESS", "HUMAN")
    p.replay.close()
