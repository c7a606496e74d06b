"""PegInsertionEnv: interface, shapes, determinism, action validation, randomisation, kinematics."""

import json

import numpy as np
import pytest

from rlt_ros.core.sim.configuration_sim import SimConfig
from rlt_ros.core.sim.env import PegInsertionEnv


@pytest.fixture(scope="module")
def env():
    e = PegInsertionEnv(SimConfig(image_size=32))
    yield e
    e.close()


def test_reset_and_step_shapes(env):
    obs, info = env.reset(seed=0)
    n = env.n_joints
    assert n >= 4 and len(env.joint_names) == n
    assert set(obs["images"]) == {"base", "wrist"}
    for img in obs["images"].values():
        assert img.dtype == np.uint8 and img.shape == (32, 32, 3)
        assert img.std() > 0  # something was rendered
    assert obs["joint_pos"].shape == (n,) and obs["joint_pos"].dtype == np.float32
    assert obs["joint_vel"].shape == (n,)
    assert obs["ee_pose"].shape == (7,) and abs(np.linalg.norm(obs["ee_pose"][3:]) - 1) < 1e-5
    assert obs["proprio"].shape == (env.proprio_dim,) == (2 * n + 7,)
    assert obs["stamp"] == 0.0
    assert not info["success"] and not info["in_critical_phase"]
    obs, reward, terminated, truncated, info = env.step(obs["joint_pos"], render=False)
    assert obs["images"] == {}
    assert reward == 0.0 and not terminated and not truncated
    assert obs["stamp"] == pytest.approx(env.control_dt)
    for key in ("success", "in_critical_phase", "critical_phase_started_at", "insertion_depth_mm",
                "lateral_error_mm", "contact", "time"):
        assert key in info
    assert set(env.observe(render=True)["images"]) == {"base", "wrist"}


def test_same_seed_same_episode(env):
    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(123)
        q = obs["joint_pos"].astype(np.float64)
        traj = []
        for _ in range(20):
            q = q + rng.normal(0, 0.01, q.shape)
            obs, *_ = env.step(q, render=False)
            traj.append(obs["proprio"])
        return env.socket_pose, np.array(traj), env.observe()["images"]["base"]

    s1, t1, i1 = rollout(5)
    s2, t2, i2 = rollout(5)
    s3, t3, _ = rollout(6)
    assert np.array_equal(s1.position, s2.position) and s1.yaw == s2.yaw
    assert np.array_equal(t1, t2) and np.array_equal(i1, i2)
    assert not np.array_equal(s1.position, s3.position)


def test_socket_pose_randomised_within_range(env):
    cfg = env.config
    poses = []
    for seed in range(12):
        env.reset(seed=seed)
        poses.append([*env.socket_pose.position, env.socket_pose.yaw])
    poses = np.array(poses)
    nominal = np.array(cfg.socket_nominal_xy_m)
    assert np.all(np.abs(poses[:, :2] - nominal) <= cfg.socket_xy_range_mm / 1000 + 1e-12)
    assert np.all(np.abs(np.rad2deg(poses[:, 3])) <= cfg.socket_yaw_range_deg + 1e-9)
    assert poses[:, 0].std() > 0.002 and poses[:, 1].std() > 0.002 and np.rad2deg(poses[:, 3]).std() > 1.0


@pytest.mark.parametrize("bad", [np.zeros(4), np.zeros((5, 1)), [0, 0, np.nan, 0, 0], [np.inf, 0, 0, 0, 0], "abc"])
def test_rejects_bad_actions(env, bad):
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(bad, render=False)


def test_clips_targets_to_limits(env):
    env.reset(seed=0)
    huge = np.full(env.n_joints, 100.0)
    for _ in range(200):
        env.step(huge, render=False)
    assert np.all(env.current_target <= env.joint_limits.upper + 1e-12)
    np.testing.assert_allclose(env.current_target, env.joint_limits.upper)


def test_step_before_reset_raises():
    e = PegInsertionEnv(SimConfig(image_size=16))
    with pytest.raises(RuntimeError, match="reset"):
        e.step(np.zeros(e.n_joints))


def test_inverse_kinematics_matches_forward(env):
    env.reset(seed=0)
    for tip, yaw in [((0.30, 0.0, 0.20), 0.0), ((0.40, 0.01, 0.05), 0.1), ((0.41, -0.02, 0.035), -0.08)]:
        q = env.inverse_kinematics(tip, yaw)
        pose = env.ee_pose_for_q(q)
        np.testing.assert_allclose(pose[:3], tip, atol=1e-9)
        assert env.ee_yaw_for_q(q) == pytest.approx(yaw, abs=1e-9)
        q2 = env.ik_dls(tip, yaw, q_init=q + 0.02)
        np.testing.assert_allclose(env.ee_pose_for_q(q2)[:3], tip, atol=1e-6)
    with pytest.raises(ValueError, match="reach"):
        env.inverse_kinematics((2.0, 0.0, 0.0), 0.0)


def test_holding_position_is_still_and_tracks(env):
    obs, _ = env.reset(seed=1)
    target = env.current_target
    for _ in range(50):
        obs, *_ = env.step(target, render=False)
    np.testing.assert_allclose(obs["joint_pos"], target, atol=1e-3)


def test_straight_insertion_succeeds_and_marks_critical_phase(env):
    """Commanding the plug straight down onto the true socket pose inserts it; a 4 mm offset jams."""
    def attempt(offset_m):
        obs, _ = env.reset(seed=3, options={"start": "pre_critical"})
        sock = env.socket_pose
        xy = sock.position[:2] + np.array([offset_m, 0.0])
        z = sock.position[2] + 0.02
        info = {}
        for _ in range(400):
            z = max(z - 0.005 * env.control_dt, sock.position[2] - 0.016)
            obs, reward, terminated, truncated, info = env.step(env.inverse_kinematics([*xy, z], sock.yaw), render=False)
            if terminated:
                assert reward == 1.0
                break
        return info

    ok = attempt(0.0005)
    assert ok["success"] and ok["insertion_depth_mm"] >= env.config.success_depth_mm
    assert ok["in_critical_phase"] and ok["critical_phase_started_at"] is not None
    assert 0 < ok["critical_phase_started_at"] < ok["time"]
    jam = attempt(0.004)
    assert not jam["success"] and jam["insertion_depth_mm"] < 2.0


def test_pre_critical_start_is_near_socket(env):
    obs, info = env.reset(seed=2, options={"start": "pre_critical"})
    state = env.task_state()
    assert state["distance_to_mouth_mm"] < 40
    with pytest.raises(ValueError):
        env.reset(options={"start": "nowhere"})


def test_config_validation_and_json_round_trip():
    cfg = SimConfig(image_size=224, clearance_mm=0.3)
    again = SimConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert cfg.substeps == 10 and cfg.max_episode_steps == 1000
    with pytest.raises(ValueError, match="clearance"):
        SimConfig(clearance_mm=0.8)
    with pytest.raises(ValueError, match="camera_names"):
        SimConfig(camera_names=("top",))
    with pytest.raises(ValueError, match="unknown"):
        SimConfig.from_dict({"not_a_field": 1})
    with pytest.raises(ValueError, match="multiple"):
        SimConfig(control_hz=50, physics_timestep_s=0.003)
