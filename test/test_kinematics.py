"""Forward kinematics (rlt_ros.core.kinematics) and the arms' kinematic chains in config/arms/*.yaml.

The simulated arm's chain is checked against MuJoCo; UR5e and FR3 against their published DH parameters
(an independent description of the same arms) and known poses; SO-101 only for its structure.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from rlt_ros.core.arm import ARMS, ArmConfig
from rlt_ros.core.kinematics import SerialChain, axis_rotations, rpy_matrix
from rlt_ros.graph import config_dir

PI = np.pi


def arm_config(arm: str) -> ArmConfig:
    doc = yaml.safe_load((config_dir() / "arms" / f"{arm}.yaml").read_text())
    return ArmConfig(**doc["/**"]["ros__parameters"]["arm"])


def dh_fk(q, d, a, alpha, tool=0.0, modified=False) -> np.ndarray:
    """Tool positions from (standard or Craig's modified) DH parameters; the tool is ``tool`` m along z."""
    out = []
    for row in np.atleast_2d(q):
        t = np.eye(4)
        for qi, di, ai, al in zip(row, d, a, alpha):
            ct, st, ca, sa = np.cos(qi), np.sin(qi), np.cos(al), np.sin(al)
            if modified:
                t = t @ np.array([[ct, -st, 0, ai], [st * ca, ct * ca, -sa, -di * sa], [st * sa, ct * sa, ca, di * ca],
                                  [0, 0, 0, 1]])
            else:
                t = t @ np.array([[ct, -st * ca, st * sa, ai * ct], [st, ct * ca, -ct * sa, ai * st], [0, sa, ca, di],
                                  [0, 0, 0, 1]])
        out.append((t @ np.array([0.0, 0.0, tool, 1.0]))[:3])
    return np.array(out)


# --------------------------------------------------------------------------------------------- core
def test_rpy_matches_urdf_convention():
    roll, pitch, yaw = 0.3, -0.7, 1.1
    rx = axis_rotations(np.array([1.0, 0, 0]), np.array([roll]))[0]
    ry = axis_rotations(np.array([0, 1.0, 0]), np.array([pitch]))[0]
    rz = axis_rotations(np.array([0, 0, 1.0]), np.array([yaw]))[0]
    np.testing.assert_allclose(rpy_matrix(roll, pitch, yaw), rz @ ry @ rx, atol=1e-12)
    np.testing.assert_allclose(rz @ [1.0, 0, 0], [np.cos(yaw), np.sin(yaw), 0], atol=1e-12)  # right-handed


def test_planar_two_link_arm():
    # two joints about z, links of 0.3 and 0.2 m along x: the textbook planar arm
    chain = SerialChain.from_flat([0, 0, 0, 0, 0, 0, 0.3, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 2.0], (0.2, 0, 0))
    q = np.array([[0.0, 0.0], [PI / 2, 0.0], [0.4, -1.0], [0.4, -1.0]])
    expected = np.stack([0.3 * np.cos(q[:, 0]) + 0.2 * np.cos(q.sum(1)),
                         0.3 * np.sin(q[:, 0]) + 0.2 * np.sin(q.sum(1)), np.zeros(4)], axis=1)
    np.testing.assert_allclose(chain.fk(q), expected, atol=1e-12)  # the axis (0, 0, 2) is normalised
    assert chain.fk(np.array([0.4, -1.0, 9.0])).shape == (1, 3)  # extra columns (a gripper) are ignored


@pytest.mark.parametrize("origins, axes, tool, match", [
    ([0.0] * 7, [0, 0, 1], (0, 0, 0), "6 values"),
    ([], [], (0, 0, 0), "6 values"),
    ([0.0] * 12, [0, 0, 1], (0, 0, 0), "3 values per joint for 2 joints"),
    ([0.0] * 6, [0, 0, 0], (0, 0, 0), "joint.*zero axis"),
    ([0.0] * 6, [0, 0, 1], (0, 0), "tool offset"),
    ([float("nan")] + [0.0] * 5, [0, 0, 1], (0, 0, 0), "non-finite"),
])
def test_chain_rejects_malformed(origins, axes, tool, match):
    with pytest.raises(ValueError, match=match):
        SerialChain.from_flat(origins, axes, tool)


def test_fk_rejects_too_few_joints():
    chain = arm_config("ur").chain()
    with pytest.raises(ValueError, match=r"\[N, >= 6\]"):
        chain.fk(np.zeros((3, 5)))


def test_arm_config_validates_its_chain():
    base = dict(name="ur", joint_names=("a", "b"), position_lower=(-1, -1), position_upper=(1, 1),
                max_velocity=(1, 1))
    assert ArmConfig(**base).chain() is None  # no chain: no paths
    two = dict(kinematics_origins=[0.0] * 12, kinematics_axes=[0, 0, 1] * 2)
    assert ArmConfig(**base, **two).chain().n_joints == 2
    with pytest.raises(ValueError, match="3 chain joints but only 2 joints"):
        ArmConfig(**base, kinematics_origins=[0.0] * 18, kinematics_axes=[0, 0, 1] * 3)
    with pytest.raises(ValueError, match="arm.kinematics_origins.*3 values per joint"):
        ArmConfig(**base, kinematics_origins=[0.0] * 12, kinematics_axes=[0, 0, 1])
    with pytest.raises(ValueError, match="arm.tool_offset"):
        ArmConfig(**base, tool_offset=(0.0, 0.1))


# ------------------------------------------------------------------------------------ the arm files
@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_has_a_chain_over_its_arm_joints(arm):
    config = arm_config(arm)
    chain = config.chain()
    assert chain is not None and config.base_frame
    rng = np.random.default_rng(0)
    q = rng.uniform(config.position_lower, config.position_upper, size=(64, len(config.joint_names)))
    points = chain.fk(q)
    assert points.shape == (64, 3) and np.all(np.isfinite(points))
    assert np.linalg.norm(points, axis=1).max() < 1.5  # within an arm's reach of its base, m


def test_sim_chain_matches_mujoco():
    """The plug tip ("ee" site) of the MuJoCo arm for random joint vectors, to well below 1 mm."""
    from rlt_ros.core.sim.configuration_sim import SimConfig
    from rlt_ros.core.sim.env import PegInsertionEnv

    doc = yaml.safe_load((config_dir() / "arms" / "sim.yaml").read_text())
    env = PegInsertionEnv(SimConfig.from_dict(doc["sim_arm"]["ros__parameters"]["sim"]))
    arm = arm_config("sim")
    q = np.random.default_rng(1).uniform(arm.position_lower, arm.position_upper, size=(100, 5))
    mujoco_tip = np.array([env.ee_pose_for_q(row)[:3] for row in q])
    error = np.linalg.norm(arm.chain().fk(q) - mujoco_tip, axis=1)
    assert error.max() < 1e-4, f"max error {error.max() * 1000:.3f} mm"
    assert arm.base_frame == "world"  # the frame of sim_arm's /sim_arm/ee_pose and of config/rlt.rviz


def test_ur5e_chain_matches_its_dh_parameters():
    # Universal Robots' published UR5e DH table; its base frame is base_link turned by pi about z
    d, a = [0.1625, 0, 0, 0.1333, 0.0997, 0.0996], [0, -0.425, -0.3922, 0, 0, 0]
    alpha = [PI / 2, 0, 0, PI / 2, -PI / 2, 0]
    chain = arm_config("ur").chain()
    q = np.random.default_rng(2).uniform(-PI, PI, size=(50, 6))
    expected = dh_fk(q, d, a, alpha) * [-1.0, -1.0, 1.0]
    np.testing.assert_allclose(chain.fk(q), expected, atol=1e-9)
    np.testing.assert_allclose(chain.fk(np.zeros(6))[0], [0.8172, 0.2329, 0.0628], atol=1e-9)  # tool0 at zero


def test_fr3_chain_matches_its_dh_parameters():
    # Franka's published (Craig) DH parameters of the Panda/FR3 arm, flange 0.107 m after joint 7
    d, a = [0.333, 0, 0.316, 0, 0.384, 0, 0], [0, 0, 0, 0.0825, -0.0825, 0, 0.088]
    alpha = [0, -PI / 2, PI / 2, PI / 2, -PI / 2, PI / 2, PI / 2]
    arm = arm_config("franka")
    chain = arm.chain()
    hand = arm.tool_offset[2]
    q = np.random.default_rng(3).uniform(arm.position_lower, arm.position_upper, size=(50, 7))
    np.testing.assert_allclose(chain.fk(q), dh_fk(q, d, a, alpha, tool=hand, modified=True), atol=1e-9)
    assert hand == pytest.approx(0.107 + 0.1034)  # flange + Franka Hand TCP
    ready = np.array([0, -PI / 4, 0, -3 * PI / 4, 0, PI / 2, PI / 4])  # franka's "ready" pose: TCP at (0.307, 0, 0.487)
    np.testing.assert_allclose(chain.fk(ready)[0], [0.3069, 0.0, 0.4869], atol=2e-4)


def test_so101_chain_leaves_out_the_gripper():
    arm = arm_config("so101")
    chain = arm.chain()
    assert chain.n_joints == 5 and arm.joint_names[5] == "gripper"
    q = np.zeros((2, 6))
    q[1, 5] = 1.0  # opening the gripper does not move the tool point
    points = chain.fk(q)
    np.testing.assert_allclose(points[0], points[1])
    assert 0.3 < np.linalg.norm(points[0]) < 0.5  # the stretched-out arm: about 0.4 m from the base
