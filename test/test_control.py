"""actor_node's control loop (core.control): phases, clamping, watchdog, weight swaps, recording."""

import numpy as np
import pytest

from rlt_ros.core.arm import ArmConfig
from rlt_ros.core.control import ActorConfig, ChunkController
from rlt_ros.core.episode import EpisodeManager
from rlt_ros.core.interfaces import ChunkSource, Phase, TokenPacket
from rlt_ros.core.rlt.configuration_rlt import RLTConfig
from rlt_ros.core.rlt.learner import RLTAlgorithm
from rlt_ros.core.rlt.reference import ReferencePlan

JOINTS = ("a", "b", "c")
ARM = ArmConfig(name="sim", joint_names=JOINTS, position_lower=(-1,) * 3, position_upper=(1,) * 3,
                max_velocity=(2.0,) * 3, control_hz=50)
RLT = RLTConfig(chunk_size=4, action_dim=3, token_dim=8, proprio_dim=6, stride=2, actor_hidden=(16,),
                critic_hidden=(16,), batch_size=4, warmup_transitions=0)
DT = 0.02


def token(t, episode, ref_value=0.01):
    ref = np.full((10, 3), ref_value, np.float32)
    return TokenPacket(stamp=t, episode_id=episode, phase=Phase.VLA, token=np.ones(8, np.float32),
                       proprio=np.zeros(6, np.float32), joint_names=JOINTS, reference_chunk=ref, step_dt=DT)


def make(**kw):
    kw.setdefault("lead_rows", 0)  # chunks end exactly where the next starts (the lead has its own test)
    c = ChunkController(ActorConfig(autostart=True, **kw), RLT, ARM)
    c.set_joint_state(np.zeros(3), 0.0, 0.0)
    return c


def run(c, episodes, t0, steps, ref_value=0.01):
    commands, transitions = [], []
    for i in range(steps):
        t = t0 + i * DT
        c.set_joint_state(np.zeros(3), t, t)
        c.set_token(token(t, episodes.episode_id, ref_value), t)
        step = c.tick(t)
        commands += [step.command] if step.command is not None else []
        transitions += step.transitions
    return commands, transitions


def test_phases_warmup_recording_and_terminal_reward():
    c, m = make(vla_execute_steps=5), EpisodeManager()
    assert c.tick(0.0).command is None  # idle: nothing moves
    c.on_event(m.start(0.0))
    cmds, trans = run(c, m, 0.0, 10)
    assert [x.source for x in cmds] == [ChunkSource.VLA, ChunkSource.VLA] and not trans  # VLA phase: no data
    assert cmds[0].positions.shape == (5, 3)
    c.on_event(m.handover(0.2))
    cmds, trans = run(c, m, 0.2, 12)
    assert all(x.source == ChunkSource.VLA and len(x.positions) == 4 for x in cmds)  # warm-up: ã passed through
    assert len(trans) >= 3 and all(not t.done and t.source == 0 for t in trans)
    final = c.on_event(m.mark(True, 0.5))
    assert final and all(t.done for t in final) and all(t.rewards.sum() == 1.0 for t in final)


def test_commands_clamped_and_stale_token_holds():
    c, m = make(), EpisodeManager()
    c.on_event(m.start(0.0))
    cmds, _ = run(c, m, 0.0, 1, ref_value=5.0)  # far outside the limits
    steps = np.diff(np.vstack([np.zeros(3), cmds[0].positions]), axis=0)
    assert np.all(np.abs(steps) <= 2.0 * DT + 1e-9) and np.all(cmds[0].positions <= 1.0)
    path = cmds[0].positions
    n = len(path)
    for i in range(1, n):  # the chunk under way runs to its end although no newer token arrives
        c.set_joint_state(path[i - 1], i * DT, i * DT)  # the arm follows one step behind
        assert c.tick(i * DT).command is None
    c.set_joint_state(path[-1] - 0.01, 1.0, 1.0)
    hold = c.tick(1.0)  # a new chunk is due and the newest token is 1 s old
    assert hold.command.source == ChunkSource.HOLD and "stale" in hold.warning
    np.testing.assert_array_equal(hold.command.positions, path[-1:])  # at the commanded point, not the measured
    assert c.tick(1.02).command is None  # holds once, does not spam
    c.set_joint_state(path[-1], 1.0, 2.0)
    assert "joint states are stale" in c.tick(2.0).warning


def test_new_chunks_start_at_the_row_of_the_present():
    """A token whose observation is k control steps old: its chunk's first k rows are in the past."""
    c, m = make(vla_execute_steps=8), EpisodeManager()
    c.on_event(m.start(0.0))
    ramp = np.linspace(0.0, 0.09, 10)[:, None] * np.ones((1, 3))  # row i = 0.01 i
    c.set_joint_state(np.full(3, 0.03), 0.06, 0.06)
    c.set_token(TokenPacket(stamp=0.0, episode_id=m.episode_id, phase=Phase.VLA, token=np.ones(8, np.float32),
                            proprio=np.zeros(6, np.float32), joint_names=JOINTS, reference_chunk=ramp,
                            step_dt=DT), 0.06)
    cmd = c.tick(0.06).command  # 3 steps after the observation
    np.testing.assert_allclose(cmd.positions[:, 0], [0.03, 0.04, 0.05, 0.06, 0.07])  # rows 3..7
    assert c.counters["latency_rows"] == 3
    c.on_event(m.handover(0.2))  # RL phase, warm-up: the reference plan also starts at the present row
    c.set_joint_state(np.full(3, 0.07), 0.2, 0.2)  # where the first chunk ended
    c.set_token(TokenPacket(stamp=0.16, episode_id=m.episode_id, phase=Phase.RL, token=np.ones(8, np.float32),
                            proprio=np.zeros(6, np.float32), joint_names=JOINTS, reference_chunk=ramp + 0.05,
                            step_dt=DT), 0.2)
    cmd = c.tick(0.2).command
    np.testing.assert_allclose(cmd.positions[:, 0], [0.07, 0.08, 0.09, 0.10])  # ã = rows 2..5


def test_reference_plan_skips_rows_of_an_old_observation():
    plan = ReferencePlan(execute_steps=6, chunk_size=4)
    chunk = np.arange(10)[:, None] * np.ones((1, 2))
    np.testing.assert_array_equal(plan.decide(chunk, skip=3)[:, 0], [3, 4, 5, 6])
    plan.step(3)  # 6 rows of the chunk have gone by: due
    assert plan.due()
    np.testing.assert_array_equal(plan.decide(chunk, skip=50)[:, 0], [6, 7, 8, 9])  # never past the last C rows


def test_reference_plan_follows_an_actor_that_ran_ahead():
    plan = ReferencePlan(execute_steps=30, chunk_size=4)
    chunk = np.arange(20)[:, None] * np.ones((1, 2))
    ref = plan.decide(chunk)
    plan.step(4)
    assert plan.follow(ref[-1]) == 0  # passed through: the plan goes on where it was
    np.testing.assert_array_equal(plan.window()[:, 0], [4, 5, 6, 7])
    plan.step(4)
    assert plan.follow(np.array([10.2, 10.1])) == 3  # the actor is at row 10, not 7: ã starts at row 11
    np.testing.assert_array_equal(plan.window()[:, 0], [11, 12, 13, 14])
    plan.step(4)
    assert plan.follow(np.array([9.0, 9.0])) == 0  # behind the plan: never back


class _RunsAhead:
    """An actor that sends ã shifted two rows ahead along the ramp (0.01 per row)."""

    def act(self, token, proprio, reference, explore, rng):
        return reference + 0.02


def test_reference_follows_an_actor_that_runs_ahead():
    c = ChunkController(ActorConfig(autostart=True, lead_rows=0, vla_execute_steps=30), RLT, ARM)
    m = EpisodeManager()
    c.on_event(m.start(0.0))
    c.on_event(m.handover(0.0))
    c.policy = _RunsAhead()
    ramp = np.linspace(0.0, 0.19, 20)[:, None] * np.ones((1, 3))  # row i = 0.01 i
    firsts, stored = [], []
    for i in range(8):
        t = i * DT
        c.set_joint_state(np.zeros(3), t, t)
        c.set_token(TokenPacket(stamp=t, episode_id=m.episode_id, phase=Phase.VLA, token=np.ones(8, np.float32),
                                proprio=np.zeros(6, np.float32), joint_names=JOINTS, reference_chunk=ramp,
                                step_dt=DT), t)
        step = c.tick(t)
        stored += step.transitions
        if step.command is not None:
            firsts.append(round(float(step.command.positions[0, 0]), 4))
    # the first chunk sends rows 2..5; the second starts from ã = the rows after row 5 (6..9), the plan ahead
    # of the arm rather than its own pace (rows 4..7), shifted two rows ahead again
    assert firsts == [0.02, 0.08]
    # every stored window's ã, also between decisions, starts one row past the last target sent (stride 2:
    # the window at step 2 follows row 3 of the plan, sent at step 1)
    assert [round(float(t.reference[0, 0]), 4) for t in stored] == [0.0, 0.04]
    # ã' of the first window (x' at step 4) is the ã the second decision was given (rows 6..9)
    np.testing.assert_allclose(stored[0].next_reference[:, 0], [0.06, 0.07, 0.08, 0.09], atol=1e-6)


def test_timeout_truncates_and_failure_terminates():
    """A TIMEOUT is a truncation (the state holds no time): no terminal row, the windows still open are
    dropped; a FAILURE mark is terminal with reward 0, a SUCCESS terminal with reward 1."""
    for end, done in (("timeout", False), ("failure", True), ("success", True)):
        c, m = make(), EpisodeManager()
        c.on_event(m.start(0.0))
        c.on_event(m.handover(0.0))
        _, trans = run(c, m, 0.0, 9)
        assert trans and not any(t.done for t in trans)
        if end == "timeout":
            m.config.critical_timeout_s = 0.1
            event = m.tick(0.2)
        else:
            event = m.mark(end == "success", 0.2)
        final = c.on_event(event)
        assert bool(final) == done and all(t.done for t in final)
        assert all(t.rewards.sum() == (1.0 if end == "success" else 0.0) for t in final)


def test_weights_swap_between_chunks_and_intervention_relabels():
    c, m = make(), EpisodeManager()
    c.on_event(m.start(0.0))
    c.on_event(m.handover(0.0))
    algo = RLTAlgorithm(RLT)
    algo.normalizer.fit(np.zeros((2, 8)), np.zeros((2, 6)), np.zeros((2, 3)))
    run(c, m, 0.0, 1)  # a warm-up chunk starts
    c.stage_weights(*algo.export())
    cmds, _ = run(c, m, DT, 3)
    assert not cmds and c.policy is None  # mid-chunk: still the old behaviour
    cmds, _ = run(c, m, 4 * DT, 1)
    assert cmds[0].source == ChunkSource.ACTOR and c.counters["weight_swaps"] == 1
    # the actor's largest deviation from ã (0.01 everywhere here) is counted, in milliradians
    assert abs(c.counters["max_deviation_mrad"] - 1000 * np.max(np.abs(cmds[0].positions - 0.01))) <= 1
    c.on_event(m.intervention(True, 0.2))
    c.set_teleop(np.array([0.02, 0.0, -0.02]), 0.2)
    _, trans = run(c, m, 0.2, 6)
    assert any(t.intervention for t in trans)
    human = [t for t in trans if t.intervention][0]
    np.testing.assert_allclose(human.reference[-1], [0.02, 0.0, -0.02], atol=1e-6)
    with pytest.raises(ValueError, match="actor weights do not match"):
        c.stage_weights(*RLTAlgorithm(RLTConfig(chunk_size=4, action_dim=3, token_dim=9, proprio_dim=6)).export())


def test_shipped_token_matches_shipped_vla(tmp_path):
    import json
    import shutil

    from rlt_ros.core.checkpoints import check_token_matches_vla, token_checkpoint
    check_token_matches_vla(None, None)  # the shipped pair belongs together
    other = tmp_path / "token"
    shutil.copytree(token_checkpoint(), other)
    meta = json.loads((other / "token_meta.json").read_text())
    meta["vla_weights_sha256"] = "0" * 64
    (other / "token_meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="retrain it for this VLA with `rlt train-token"):
        check_token_matches_vla(other, None)


def test_initial_weights_from_a_sim_train_actor_folder(tmp_path):
    algo = RLTAlgorithm(RLT)
    weights, config_json = algo.export()
    (tmp_path / "actor.safetensors").write_bytes(weights)
    (tmp_path / "actor_config.json").write_text(config_json)
    c = ChunkController(ActorConfig(autostart=True, initial_weights=str(tmp_path)), RLT, ARM)
    assert c.policy is not None
    with pytest.raises(ValueError, match="actor_config.json does not exist"):
        (tmp_path / "actor_config.json").unlink()
        ChunkController(ActorConfig(initial_weights=str(tmp_path)), RLT, ARM)


def test_reference_plan_follows_one_chunk_for_execute_steps_rows():
    plan = ReferencePlan(execute_steps=6, chunk_size=4)
    first, second = np.arange(10)[:, None] * np.ones((1, 3)), 100 + np.arange(10)[:, None] * np.ones((1, 3))
    assert plan.due()
    np.testing.assert_array_equal(plan.decide(first)[:, 0], [0, 1, 2, 3])
    plan.step(2)
    np.testing.assert_array_equal(plan.window()[:, 0], [2, 3, 4, 5])  # a recording point between decisions
    plan.step(2)
    np.testing.assert_array_equal(plan.decide(second)[:, 0], [4, 5, 6, 7])  # 4 < 6 rows gone: not due yet
    plan.step(4)
    np.testing.assert_array_equal(plan.window()[:, 0], [8, 9, 9, 9])  # past the end: last row repeated
    np.testing.assert_array_equal(plan.decide(second)[:, 0], [100, 101, 102, 103])  # 8 >= 6: replanned
    plan.reset()
    assert plan.due()
    with pytest.raises(ValueError, match="H >= C"):
        plan.decide(np.zeros((2, 3)))


def test_rl_phase_reference_is_the_vla_plan_not_each_fresh_chunk():
    """Warm-up passes ã through: with ã = the executing plan the actor replays the base policy exactly
    (a chunk followed for vla_execute_steps rows), though every token brings a fresh chunk."""
    c, m = make(vla_execute_steps=8), EpisodeManager()
    c.on_event(m.start(0.0))
    c.on_event(m.handover(0.0))
    rows, refs = [], []
    for i in range(16):
        t = i * DT
        c.set_joint_state(np.zeros(3), t, t)
        fresh = token(t, m.episode_id)
        fresh.reference_chunk[:] = (i * 0.002 + np.arange(10) * 0.001)[:, None]  # chunk queried at step i
        c.set_token(fresh, t)
        step = c.tick(t)
        if step.command is not None:
            rows.append(step.command.positions[:, 0])
        refs += [tr.reference[:, 0] for tr in step.transitions]
    # decisions at steps 0, 4 (same plan, rows 4..7), 8 (replanned from the chunk of step 8), 12
    expected = [np.arange(4) * 0.001, np.arange(4, 8) * 0.001, 0.016 + np.arange(4) * 0.001,
                0.016 + np.arange(4, 8) * 0.001]
    for got, want in zip(rows, expected):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert len(rows) == 4
    np.testing.assert_allclose(refs[0], np.arange(4) * 0.001, atol=1e-6)  # step 0: the window at row 0
    np.testing.assert_allclose(refs[1], np.arange(2, 6) * 0.001, atol=1e-6)  # step 2: the window at row 2


def test_chunks_follow_the_clock_and_lead_the_driver():
    """Rows are counted by the clock, not by ticks: late ticks lose no recorded row, and the next chunk is
    sent lead_rows steps before the running one ends."""
    c, m = make(lead_rows=1, vla_execute_steps=4), EpisodeManager()
    c.on_event(m.start(0.0))
    c.on_event(m.handover(0.0))  # RL phase (warm-up: ã passed through), C = 4 rows per chunk
    sent, transitions = [], []
    for t in (0.0, 0.02, 0.06, 0.10, 0.12):  # the ticks at 0.04 and 0.08 never came (a loaded CPU)
        c.set_joint_state(np.zeros(3), t, t)
        c.set_token(token(t, m.episode_id), t)
        step = c.tick(t)
        sent += [t] if step.command is not None else []
        transitions += step.transitions
    # chunk 1 at 0.00 (rows for 0.00..0.06); its last row's step (0.06) is the lead: chunk 2 goes at 0.06,
    # and chunk 3 at 0.12, three rows later
    assert sent == [0.0, 0.06, 0.12]
    transitions += c.on_event(m.mark(True, 0.13))
    # rows executed by the clock: 3 of chunk 1 + 3 of chunk 2 + 1 of chunk 3 = 7, all recorded although
    # only 5 ticks ran; windows of C = 4 rows start every stride = 2 rows (0, 2, 4, 6)
    assert [tr.steps for tr in transitions] == [4, 4, 3, 1]
    assert [tr.done for tr in transitions] == [False, False, True, True]
    assert c._index == 1 and c.counters["chunks"] == 3
    c.set_joint_state(np.zeros(3), 0.05, 0.05)
    c.set_token(token(0.05, m.episode_id), 0.05)
    assert c.tick(0.05).command is None  # the episode ended with the mark: idle
    with pytest.raises(ValueError, match="lead_rows"):
        ActorConfig(lead_rows=-1)


def test_a_token_observed_before_the_episode_start_is_not_used():
    """After a reset the newest token may still show the old scene (the socket where it was): hold instead."""
    c, m = make(), EpisodeManager()
    c.on_event(m.start(0.0))
    c.on_event(m.mark(True, 1.0))
    c.set_token(token(1.1, m.episode_id + 1), 1.1)  # tagged with the next episode, observed before its START
    c.on_event(m.start(1.2))
    c.set_joint_state(np.zeros(3), 1.2, 1.2)
    step = c.tick(1.2)
    assert step.command.source == ChunkSource.HOLD and "-0.100 s from its start" in step.warning
    c.set_token(token(1.22, m.episode_id), 1.22)  # the first observation of the new scene
    c.set_joint_state(np.zeros(3), 1.22, 1.22)
    assert c.tick(1.22).command.source == ChunkSource.VLA


def test_a_clock_that_jumps_back_starts_a_new_chunk():
    c, m = make(), EpisodeManager()
    c.on_event(m.start(10.0))
    assert run(c, m, 10.0, 1)[0]  # a chunk sent at t = 10 s
    c.set_joint_state(np.zeros(3), 2.0, 2.0)
    c.set_token(token(2.0, m.episode_id), 2.0)
    # /clock restarted (e.g. a new simulation): a new chunk now, instead of waiting 8 s for the old one's rows
    assert c.tick(2.0).command is not None
    assert c.tick(2.02).command is None  # and then that chunk runs


def test_future_stamps_are_rejected_and_a_clock_jump_back_starts_afresh():
    """A token or joint state stamped beyond the max age in the future is rejected (never used); after the
    clock jumped back (a restarted simulator or driver) the held token gives way to a current one."""
    from rlt_ros.core.validation import MessageError

    c, m = make(), EpisodeManager()
    c.on_event(m.start(0.0))
    with pytest.raises(MessageError, match="in the future"):
        c.set_token(token(15.0, m.episode_id), now=0.0)
    with pytest.raises(MessageError, match="in the future"):
        c.set_joint_state(np.zeros(3), 30.0, now=0.0)
    cmds, _ = run(c, m, 0.0, 2)  # the real inputs drive the arm
    assert cmds and cmds[0].source == ChunkSource.VLA
    c.set_token(token(5.0, m.episode_id, ref_value=0.5), now=5.0)  # the last token before the restart
    c.set_token(token(0.1, m.episode_id, ref_value=0.2), now=0.1)  # the clock jumped back to 0.1 s
    assert c._token.stamp == 0.1


def test_bad_actor_weights_are_rejected_not_fatal():
    """Garbage bytes, tensors of the wrong shape and NaN or huge weights raise ValueError (actor_node counts
    and logs it); the policy in use stays."""
    import torch
    from safetensors.torch import save

    c = make()
    algo = RLTAlgorithm(RLT)
    algo.normalizer.fit(np.zeros((2, 8)), np.zeros((2, 6)), np.zeros((2, 3)))
    weights, config_json = algo.export()
    c.stage_weights(weights, config_json)
    from safetensors.torch import load
    good = load(weights)
    bad_shape = save({**good, "actor.net.0.weight": torch.zeros(3, 3)})
    nan = save({k: (v * float("nan") if k.startswith("actor.") else v) for k, v in good.items()})
    huge = save({k: (v + 1e6 if k.endswith("bias") else v) for k, v in good.items()})
    for blob, why in ((b"\x00garbage", "not a loadable"), (bad_shape, "not a loadable"), (nan, "non-finite"),
                      (huge, "out-of-range")):
        with pytest.raises(ValueError, match=why):
            c.stage_weights(blob, config_json)
    assert c._staged is not None  # the good weights stay staged


def test_tokens_with_huge_values_are_rejected_at_the_message():
    from rlt_ros.core.interfaces import TokenPacket as T
    from rlt_ros.core.validation import MessageError

    fields = dict(stamp=1.0, episode_id=1, phase=1, token=np.full(8, 3e38, np.float32), proprio=np.zeros(6),
                  joint_names=JOINTS, reference_chunk=np.zeros(30), chunk_rows=10, chunk_cols=3, step_dt=DT)
    with pytest.raises(MessageError, match="token: value 3e\\+38 at index 0 is out of range"):
        T.from_fields(**fields)


def _max_step_from(path_point, command):
    """The largest per-joint distance of a command's first row from ``path_point``, in per-step velocity limits."""
    return float(np.max(np.abs(command.positions[0] - path_point) / (np.asarray(ARM.max_velocity) * DT)))


def test_forged_joint_states_do_not_move_the_first_command_point():
    """The clamp is anchored on the commanded path: a joint state forged away from the arm (by another process
    on the domain) moves neither the first point of the next chunk (after a phase change) nor a hold; one
    farther than max_divergence_rad stops new commands."""
    c, m = make(vla_execute_steps=5), EpisodeManager()
    c.on_event(m.start(0.0))
    cmds, _ = run(c, m, 0.0, 5)  # one VLA chunk towards 0.01; the arm (joint states) at 0
    real = cmds[-1].positions[-1]
    forged = np.full(3, 0.25)  # within max_divergence_rad (0.3) of the path
    c.on_event(m.handover(0.1))  # a phase change: the next tick starts a new chunk
    c.set_joint_state(forged, 0.1, 0.1)
    c.set_token(token(0.1, m.episode_id), 0.1)
    first = c.tick(0.1).command
    assert _max_step_from(real, first) <= 1.0 + 1e-9  # within one step's velocity limit of the real arm
    c.set_joint_state(forged, 1.0, 1.0)
    hold = c.tick(1.0).command  # the token went stale: a hold
    assert hold.source == ChunkSource.HOLD and np.max(np.abs(hold.positions[0] - 0.01)) < 1e-6
    c.set_joint_state(np.full(3, 0.9), 1.02, 1.02)
    c.set_token(token(1.02, m.episode_id), 1.02)
    assert c.tick(1.02).command is None  # far from the path: nothing new


def test_measured_far_from_the_commanded_path_stops_commands_and_deactivates():
    """Joint states farther than max_divergence_rad from the recent commanded path: no new command (neither
    point is known to be near the real arm); for divergence_ticks ticks: the actor deactivated with a clear
    warning; an autostart actor re-arms at the next START (from the arm as measured then), another one waits
    for set_active(True)."""
    for autostart in (True, False):
        c = ChunkController(ActorConfig(autostart=True, lead_rows=0, max_divergence_rad=0.2, divergence_ticks=3),
                            RLT, ARM)
        c.config.autostart = autostart
        m = EpisodeManager()
        c.set_joint_state(np.zeros(3), 0.0, 0.0)
        c.on_event(m.start(0.0))
        run(c, m, 0.0, 4)
        assert 9 <= c.counters["max_divergence_mrad"] <= 10  # the arm (0) a little behind the path (0.01)
        steps = []
        for i in range(4, 8):  # the arm is somewhere else (pushed, reset under the actor, or forged states)
            t = i * DT
            c.set_joint_state(np.full(3, -0.5), t, t)
            c.set_token(token(t, m.episode_id), t)
            steps.append(c.tick(t))
        stop = steps[2]  # the third tick in a row far from the path (a new chunk was due at the first)
        assert not any(s.command for s in steps) and "sending nothing" in steps[0].warning
        assert "DEACTIVATED" in stop.warning and not c.active and c.counters["divergence_stops"] == 1
        c.on_event(m.mark(False, 0.2))
        c.on_event(m.start(0.3))
        c.set_joint_state(np.full(3, -0.5), 0.3, 0.3)
        c.set_token(token(0.3, m.episode_id), 0.3)
        resumed = c.tick(0.3).command
        assert (resumed is not None) == autostart
        if not autostart:
            assert c.set_active(True, 0.3).command is None
            resumed = c.tick(0.3).command
        assert _max_step_from(np.full(3, -0.5), resumed) <= 1.0 + 1e-9  # from the arm as measured after the reset


def test_two_publishers_on_the_joint_states_hold_off_the_first_command():
    """With no commanded path yet (a START), the first command starts from the measured arm only once the
    recent joint states agree: a forger interleaving with the driver is not followed."""
    c, m = make(divergence_ticks=5), EpisodeManager()
    c.on_event(m.start(0.0))
    for i, q in enumerate((np.zeros(3), np.full(3, 0.8), np.zeros(3))):
        c.set_joint_state(q, i * DT, i * DT)
    c.set_token(token(2 * DT, m.episode_id), 2 * DT)
    step = c.tick(2 * DT)
    assert step.command is None and "agree with one another" in step.warning and c.counters["unsettled_joint_states"] == 1
    for i in range(3, 10):  # only the driver from now on: after divergence_ticks steps the samples agree
        c.set_joint_state(np.zeros(3), i * DT, i * DT)
    c.set_token(token(9 * DT, m.episode_id), 9 * DT)
    first = c.tick(9 * DT).command
    assert first is not None and _max_step_from(np.zeros(3), first) <= 1.0 + 1e-9


def test_deactivating_holds_and_a_clock_jump_back_reanchors():
    c, m = ChunkController(ActorConfig(autostart=True, lead_rows=0), RLT, ARM), EpisodeManager()
    c.on_event(m.start(10.0))
    run(c, m, 10.0, 3)
    hold = c.set_active(False, 10.06).command
    assert hold.source == ChunkSource.HOLD and np.allclose(hold.positions, 0.01)
    assert c.tick(10.08).command is None and c.set_active(False, 10.1).command is None  # once
    c.set_active(True, 10.1)
    c.set_joint_state(np.zeros(3), 10.1, 10.1)
    c.set_token(token(10.1, m.episode_id), 10.1)
    assert _max_step_from(np.zeros(3), c.tick(10.1).command) <= 1.0 + 1e-9
    # the clock jumps back (a restarted simulator, whose arm starts elsewhere): the old path is no anchor
    c.set_joint_state(np.full(3, 0.5), 0.0, 0.0)
    c.set_token(token(0.0, m.episode_id, ref_value=0.5), 0.0)
    first = c.tick(0.0).command
    np.testing.assert_allclose(first.positions, 0.5)


def test_the_first_command_of_an_episode_waits_for_joint_states_after_its_start():
    """The arm is reset just before a START: a joint state from before it (where the last episode left the
    arm) is no anchor, even while it is fresh; the first command starts from the first one after it."""
    c, m = make(), EpisodeManager()
    c.set_joint_state(np.full(3, 0.6), 0.98, 0.98)  # before the reset
    c.on_event(m.start(1.0))
    c.set_token(token(1.0, m.episode_id), 1.0)
    assert c.tick(1.0).command is None
    c.set_joint_state(np.zeros(3), 1.01, 1.02)  # the reset arm
    c.set_token(token(1.02, m.episode_id), 1.02)
    assert _max_step_from(np.zeros(3), c.tick(1.02).command) <= 1.0 + 1e-9


def test_an_actor_restarted_mid_episode_never_reuses_a_window_index():
    """The learner drops a transition whose (episode_id, index) it holds (a resend from the actor's outbox), so
    an actor restarted in the middle of a critical phase must not number its windows from 0 again: it numbers
    them from the control steps since the handover (issue 19: no lost, no duplicated transition)."""
    m = EpisodeManager()
    start, handover = m.start(0.0), m.handover(0.0)
    first = make()
    for event in (start, handover):
        first.on_event(event)
    _, before = run(first, m, 0.0, 50)  # 1 s of critical phase, then the actor process dies
    restarted = make()
    for event in (start, handover):  # what /rlt/events (transient local) replays to the new process
        restarted.on_event(event)
    _, after = run(restarted, m, 3.0, 50)
    assert before and after
    assert {t.index for t in before}.isdisjoint({t.index for t in after})
    assert min(t.index for t in after) >= 150 and all(t.index % RLT.stride == 0 for t in after)
    fresh = make()  # a recorder opened right at the handover numbers from 0, as before
    for event in (start, handover):
        fresh.on_event(event)
    _, normal = run(fresh, m, 0.0, 10)
    assert min(t.index for t in normal) == 0
