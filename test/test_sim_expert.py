"""The scripted expert: succeeds nearly always, slowly and cautiously in the critical phase."""

import numpy as np
import pytest

from rlt_ros.core.sim.configuration_expert import ExpertConfig, teleoperator_config
from rlt_ros.core.sim.configuration_sim import SimConfig
from rlt_ros.core.sim.env import PegInsertionEnv
from rlt_ros.core.sim.expert import ScriptedExpert, evaluate, run_episode


@pytest.fixture(scope="module")
def env():
    e = PegInsertionEnv(SimConfig(image_size=16))
    yield e
    e.close()


def test_expert_success_rate_and_slow_critical_phase(env):
    result = evaluate(env, ScriptedExpert(env), seeds=range(100, 112))
    assert result["success_rate"] >= 0.9
    # human-like: several seconds of caution once near the socket
    assert 3.0 <= result["median_critical_phase_s"] <= 10.0
    for s in result["stats"]:
        if s.success:
            assert s.critical_phase_started_at is not None and s.steps < env.config.max_episode_steps


def test_expert_actions_are_valid_and_deterministic(env):
    expert = ScriptedExpert(env)
    actions = []
    for _ in range(2):
        seq = []
        run_episode(env, expert, seed=7, max_steps=150, on_step=lambda o, a, r, i: seq.append(np.array(a)))
        actions.append(np.array(seq))
    assert actions[0].shape == (150, env.n_joints) and actions[0].dtype == np.float32
    assert np.array_equal(actions[0], actions[1])
    lim = env.joint_limits
    assert np.all(actions[0] >= lim.lower - 1e-6) and np.all(actions[0] <= lim.upper + 1e-6)


def test_act_chunk_does_not_change_state_and_matches_open_loop(env):
    expert = ScriptedExpert(env)
    obs, _ = env.reset(seed=3)
    expert.reset(obs, seed=11)
    chunk = expert.act_chunk(obs, horizon=50)
    assert chunk.shape == (50, env.n_joints) and chunk.dtype == np.float32
    # the approach is planned open loop, so the first steps of the chunk are what act() then does
    first = [expert.act(obs) for _ in range(5)]
    np.testing.assert_allclose(np.array(first), chunk[:5], atol=1e-6)
    with pytest.raises(ValueError):
        expert.act_chunk(obs, horizon=0)


def test_expert_pauses_and_slows_near_socket(env):
    """Tip speed in the critical phase is much lower than during the approach."""
    expert = ScriptedExpert(env)
    speeds = {"before": [], "critical": []}
    state = {"prev": None}

    def on_step(obs, action, reward, info):
        tip = obs["ee_pose"][:3]
        if state["prev"] is not None:
            v = np.linalg.norm(tip - state["prev"]) / env.control_dt
            speeds["critical" if info["in_critical_phase"] else "before"].append(v)
        state["prev"] = tip

    stats = run_episode(env, expert, seed=21, on_step=on_step)
    assert stats.success
    assert np.max(speeds["before"]) > 0.05
    assert np.median(speeds["critical"]) < 0.01
    assert np.mean(np.array(speeds["critical"]) < 1e-3) > 0.02  # pauses (plug at rest)


def test_expert_config_validation():
    with pytest.raises(ValueError):
        ExpertConfig(align_height_mm=50.0, hover_height_mm=30.0)
    with pytest.raises(ValueError):
        ExpertConfig(insert_speed_mps=0.0)
    assert ExpertConfig.from_dict(ExpertConfig().to_dict()) == ExpertConfig()


def _recover_from_top_face(env, config: ExpertConfig, seed: int, limit_s: float = 12.0) -> float | None:
    """Press the plug onto the socket's top face 2.5 mm off the mouth, then let ``config`` take over:
    seconds until success (None: not within ``limit_s``)."""
    obs, info = env.reset(seed=seed, options={"start": "pre_critical"})
    sock = env.socket_pose
    ang = np.random.default_rng(seed).uniform(0, 2 * np.pi)
    tip = np.array([*(sock.position[:2] + 0.0025 * np.array([np.cos(ang), np.sin(ang)])), sock.position[2] - 0.002])
    q = env.inverse_kinematics(tip, sock.yaw)
    for _ in range(int(1.0 / env.control_dt)):
        obs, _, _, _, info = env.step(q, render=False)
    # on the top face or the chamfer, not in
    assert info["contact"] and info["lateral_error_mm"] > 1.0 and info["insertion_depth_mm"] < 2.0
    operator = ScriptedExpert(env, config)
    operator.reset(obs)
    t0 = info["time"]
    for _ in range(int(limit_s / env.control_dt)):
        obs, _, terminated, truncated, info = env.step(operator.act(obs), render=False)
        if info["success"]:
            return info["time"] - t0
        if terminated or truncated:
            break
    return None


def test_teleoperator_recovers_a_stuck_plug_briskly(env):
    """The simulated operator's interventions lift, re-aim and insert a plug stuck beside the mouth, in
    well under the demonstrator's time (so an intervention can finish within a practice timeout)."""
    brisk = [_recover_from_top_face(env, teleoperator_config(seed=1), seed) for seed in (100, 101, 102)]
    assert all(t is not None and t < 5.0 for t in brisk), brisk
    slow = _recover_from_top_face(env, ExpertConfig(seed=1), 100)
    assert slow is not None and slow > 1.5 * max(brisk), (slow, brisk)
