"""The node graph description (rlt_ros.graph), the arm configs, the launch files and `rlt launch` agree.

No DDS here: parameter files are parsed by the real rcl parser in this process (rclpy.init with
--ros-args), and the launch files run against stand-ins for `launch`/`launch_ros` (not on PyPI).
"""

from __future__ import annotations

import dataclasses
import io
import py_compile
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlt_ros import graph
from rlt_ros.core.arm import ARMS, ArmConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"


def arm_block(arm: str) -> dict:
    doc = yaml.safe_load((CONFIG / "arms" / f"{arm}.yaml").read_text())
    return doc["/**"]["ros__parameters"]["arm"]


@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_yaml_is_a_valid_arm_config(arm):
    values = arm_block(arm)
    fields = {f.name for f in dataclasses.fields(ArmConfig)}
    assert set(values) == fields, f"{arm}.yaml must set every ArmConfig field; differs by {set(values) ^ fields}"
    config = ArmConfig(**values)
    assert config.name == arm and config.configured
    assert len(config.joint_names) == len(set(config.joint_names))
    assert config.command_topic.endswith("/joint_trajectory")
    if arm == "sim":
        assert config.reset_service and config.success_topic
    else:
        assert config.reset_service == "" and config.success_topic == ""


def test_real_arm_joint_names():
    assert arm_block("ur")["joint_names"] == ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
                                              "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"]
    assert arm_block("ur")["command_topic"] == "/scaled_joint_trajectory_controller/joint_trajectory"
    assert arm_block("franka")["joint_names"] == [f"fr3_joint{i}" for i in range(1, 8)]
    assert arm_block("so101")["joint_names"] == ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex",
                                                 "wrist_roll", "gripper"]


def test_sim_arm_yaml_equals_the_simulator():
    from rlt_ros.core.sim import scene
    from rlt_ros.core.sim.configuration_sim import SimConfig

    arm = ArmConfig(**arm_block("sim"))
    assert arm.joint_names == tuple(scene.JOINT_NAMES)
    np.testing.assert_allclose(arm.position_lower, scene.JOINT_LOWER)
    np.testing.assert_allclose(arm.position_upper, scene.JOINT_UPPER)
    np.testing.assert_allclose(arm.max_velocity, scene.JOINT_MAX_VELOCITY)
    node_block = yaml.safe_load((CONFIG / "arms" / "sim.yaml").read_text())["sim_arm"]["ros__parameters"]
    sim = SimConfig.from_dict(node_block["sim"])
    assert sim.control_hz == arm.control_hz
    assert set(arm.camera_names) <= set(sim.camera_names)


def test_arm_yaml_through_the_real_rcl_parser():
    """Every file parses in rcl, with doubles staying doubles (rcl rejects mixed int/float lists)."""
    import rclpy

    for arm in ARMS:
        context = rclpy.Context()
        rclpy.init(context=context, args=["x", "--ros-args", "--params-file", str(CONFIG / "arms" / f"{arm}.yaml")])
        try:
            node = rclpy.create_node("observation", context=context)
            overrides = {k: v.value for k, v in node._parameter_overrides.items()}
            node.destroy_node()
        finally:
            rclpy.shutdown(context=context)
        config = ArmConfig(**{k[4:]: v for k, v in overrides.items() if k.startswith("arm.")})
        assert config.name == arm and all(isinstance(v, float) for v in config.position_lower)


# ------------------------------------------------------------------------------------------ graph
def names(specs):
    return [s.name for s in specs]


def test_graph_nodes_per_arm_and_kind():
    assert names(graph.graph("train", "sim")) == ["sim_arm", "observation", "vla", "actor", "learner", "reward",
                                                  "monitor"]
    assert names(graph.graph("eval", "sim")) == ["sim_arm", "observation", "vla", "actor", "reward", "monitor"]
    assert names(graph.graph("train", "so101"))[0] == "so101_bridge"
    for arm in ("ur", "franka"):  # their ros2_control driver is the user's
        assert names(graph.graph("train", arm)) == ["observation", "vla", "actor", "learner", "reward", "monitor"]


def test_graph_parameters_and_overrides():
    specs = {s.name: s for s in graph.graph("eval", "sim", overrides={"vla": {"vla.backend": "smolvla"}})}
    for spec in specs.values():
        assert [Path(p).name for p in spec.params] == ["rlt.yaml", "sim.yaml"]
        assert all(Path(p).is_file() for p in spec.params)
    assert "use_sim_time" not in specs["sim_arm"].overrides  # the clock's source runs on the wall clock
    assert all(specs[n].overrides["use_sim_time"] is True for n in ("observation", "vla", "actor", "reward", "monitor"))
    assert specs["actor"].overrides["actor.explore"] is False
    assert specs["vla"].overrides["vla.backend"] == "smolvla"
    real = {s.name: s for s in graph.graph("train", "ur")}
    assert all("use_sim_time" not in s.overrides for s in real.values())
    assert "actor.explore" not in real["actor"].overrides
    demo = {s.name: s for s in graph.graph("demo", "sim")}
    assert demo["sim_arm"].overrides["sim.start"] == "pre_critical" and demo["actor"].overrides["actor.autostart"]
    assert demo["sim_operator"].overrides["operator.critical_timeout_s"] == 6.0  # the operator's cycle time
    assert not any("episode.critical_timeout_s" in spec.overrides for spec in demo.values())  # the 15 s safety net
    assert demo["learner"].overrides["rlt.warmup_transitions"] == 1000
    assert "sim.start" not in {s.name: s for s in graph.graph("train", "sim")}["sim_arm"].overrides


def test_demo_options_reach_the_graph(tmp_path):
    """rlt demo's --start, --critical-timeout and --realtime-factor become parameters of the nodes that read them."""
    import argparse

    from rlt_ros.commands import demo

    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    defaults = parser.parse_args([])
    plain = {s.name: s for s in graph.graph("demo", "sim", demo.graph_overrides(defaults, tmp_path))}
    assert plain["sim_arm"].overrides["sim.start"] == demo.demo_start(defaults) == "pre_critical"  # the graph's
    assert plain["learner"].overrides["learner.output_dir"] == str(tmp_path / "learner")
    assert plain["sim_operator"].overrides["operator.critical_timeout_s"] == 6.0
    args = parser.parse_args(["--start", "home", "--critical-timeout", "15", "--realtime-factor", "0.5"])
    specs = {s.name: s for s in graph.graph("demo", "sim", demo.graph_overrides(args, tmp_path))}
    assert specs["sim_arm"].overrides["sim.start"] == demo.demo_start(args) == "home"
    assert specs["sim_arm"].overrides["driver.realtime_factor"] == 0.5
    assert specs["sim_operator"].overrides["operator.critical_timeout_s"] == 15.0


def test_graph_errors_name_the_valid_choices(tmp_path):
    with pytest.raises(ValueError, match="valid arms: sim, ur, franka, so101"):
        graph.graph("train", "kuka")
    with pytest.raises(ValueError, match="valid graphs: train, eval"):
        graph.graph("play", "sim")
    with pytest.raises(ValueError, match=r"\['learner'\] that are not in the eval graph"):
        graph.graph("eval", "sim", overrides={"learner": {"x": 1}})
    with pytest.raises(FileNotFoundError, match="rlt.yaml"):
        graph.param_files("sim", directory=tmp_path)


def test_overrides_file_wins_over_node_blocks(tmp_path):
    """rcl applies `-p` like /**, which loses to rlt.yaml's node blocks: overrides need their own file."""
    import rclpy

    spec = next(s for s in graph.graph("eval", "sim") if s.name == "actor")
    overrides = graph.write_overrides(spec, tmp_path)
    args = graph.ros_args(spec, overrides)
    assert args[:3] == ["--ros-args", "-r", "__node:=actor"] and args[-1] == overrides
    context = rclpy.Context()
    rclpy.init(context=context, args=["x", *args])
    try:
        node = rclpy.create_node("whatever", context=context)  # renamed by __node:=actor
        assert node.get_name() == "actor"
        values = {k: v.value for k, v in node._parameter_overrides.items()}
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert values["actor.explore"] is False  # rlt.yaml says true
    assert values["use_sim_time"] is True and values["arm.name"] == "sim"


# ------------------------------------------------------------------------------- launch files
class _Recorder:
    """Stand-ins for the launch / launch_ros classes the launch files use."""

    def __init__(self, values):
        self.values, self.nodes = values, []
        rec = self

        class LaunchConfiguration:
            def __init__(self, name):
                self.name = name

            def perform(self, context):
                return rec.values[self.name]

        class Node:
            def __init__(self, **kwargs):
                rec.nodes.append(kwargs)

        def action(*args, **kwargs):
            return (args, kwargs)

        self.modules = {
            "launch": types.SimpleNamespace(LaunchDescription=list),
            "launch.actions": types.SimpleNamespace(DeclareLaunchArgument=action,
                                                    OpaqueFunction=lambda function: function),
            "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
            "launch_ros": types.SimpleNamespace(),
            "launch_ros.actions": types.SimpleNamespace(Node=Node),
        }


def run_launch_file(kind, monkeypatch, **values):
    rec = _Recorder({"arm": "sim", "rviz": "false", "params": "", **{n: "" for n in graph.VLA_LAUNCH_ARGS}, **values})
    for name, module in rec.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    namespace = {"__name__": f"{kind}_launch"}
    path = ROOT / "launch" / f"{kind}.launch.py"
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    description = namespace["generate_launch_description"]()
    opaque = description[-1]
    opaque(None)
    declared = {args[0]: kwargs for args, kwargs in description[:-1]}
    return rec.nodes, declared


@pytest.mark.parametrize("kind", graph.KINDS)
def test_launch_files_compile_and_build_the_rlt_launch_graph(kind, monkeypatch, tmp_path):
    from rlt_ros.commands.launch import GraphProcesses

    py_compile.compile(str(ROOT / "launch" / f"{kind}.launch.py"), cfile=str(tmp_path / "launch.pyc"), doraise=True)
    arms = ("sim",) if kind == "demo" else ARMS
    for arm in arms:
        nodes, declared = run_launch_file(kind, monkeypatch, arm=arm)
        assert set(declared) == {"arm", "rviz", "params", *graph.VLA_LAUNCH_ARGS}
        assert declared["arm"]["choices"] == list(arms)
        specs = graph.graph(kind, arm)
        assert [(n["executable"], n["name"]) for n in nodes] == [(s.executable, s.name) for s in specs]
        procs = GraphProcesses(specs, out=io.StringIO())
        commands = dict(procs.commands())
        for node, spec in zip(nodes, specs):
            # same parameter files in the same order, and overrides with the same content
            files = [a for a, prev in zip(commands[spec.name][1:], commands[spec.name]) if prev == "--params-file"]
            assert node["parameters"][:len(spec.params)] == files[:len(spec.params)] == list(spec.params)
            launch_overrides = node["parameters"][len(spec.params):]
            cli_overrides = files[len(spec.params):]
            assert len(launch_overrides) == len(cli_overrides) == (1 if spec.overrides else 0)
            for a, b in zip(launch_overrides, cli_overrides):
                assert yaml.safe_load(Path(a).read_text()) == yaml.safe_load(Path(b).read_text())
        procs.stop()


def test_launch_file_rviz_and_extra_params(monkeypatch, tmp_path):
    extra = tmp_path / "mine.yaml"
    extra.write_text("/**:\n  ros__parameters: {}\n")
    nodes, _ = run_launch_file("train", monkeypatch, rviz="true", params=str(extra))
    assert nodes[-1]["executable"] == "rviz2" and nodes[-1]["arguments"][1].endswith("rlt.rviz")
    assert all(str(extra) in n["parameters"] for n in nodes[:-1])


def test_launch_file_vla_arguments(monkeypatch):
    nodes, _ = run_launch_file("train", monkeypatch, **{"vla.backend": "pi05", "vla.checkpoint": "/models/pi05"})
    vla = next(n for n in nodes if n["name"] == "vla")
    overrides = yaml.safe_load(Path(vla["parameters"][-1]).read_text())["/vla"]["ros__parameters"]
    assert overrides["vla.backend"] == "pi05" and overrides["vla.checkpoint"] == "/models/pi05"


def test_rviz_config_shows_the_graph_topics():
    doc = yaml.safe_load((CONFIG / "rlt.rviz").read_text())
    manager = doc["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "world"
    topics = {d["Class"].split("/")[-1]: [] for d in manager["Displays"]}
    for d in manager["Displays"]:
        if "Topic" in d:
            topics[d["Class"].split("/")[-1]].append(d["Topic"]["Value"])
    sim = ArmConfig(**arm_block("sim"))
    assert topics["MarkerArray"] == ["/rlt/markers"]
    assert topics["Pose"] == ["/sim_arm/ee_pose"]
    assert sorted(topics["Image"]) == sorted(sim.camera_topics)


# ----------------------------------------------------------------------------------- rlt launch
def test_rlt_launch_arguments():
    from rlt_ros.commands.launch import parse_launch_args

    assert parse_launch_args(["arm:=ur", "rviz:=true", "minutes:=2"]) == {"arm": "ur", "rviz": "true", "minutes": "2"}
    with pytest.raises(ValueError, match="valid: arm, rviz, minutes, params, vla.backend, vla.checkpoint"):
        parse_launch_args(["robot:=ur"])
    with pytest.raises(ValueError, match="name:=value"):
        parse_launch_args(["arm=ur"])


def test_rlt_launch_dry_run_and_errors(capsys):
    from rlt_ros import cli

    assert cli.main(["launch", "eval", "arm:=franka", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["observation", "vla", "actor", "reward", "monitor"]
    assert "-m rlt_ros.nodes.actor_node --ros-args -r __node:=actor --params-file" in out[2]
    assert cli.main(["launch", "train", "arm:=kuka"]) == 2
    assert "valid arms: sim, ur, franka, so101" in capsys.readouterr().err


def test_vla_launch_arguments_override_the_vla_node(tmp_path):
    """`vla.backend:=pi05 vla.checkpoint:=...` (ros2 launch and rlt launch) end up in the vla node's overrides
    file, applied after every parameter file; empty ones change nothing."""
    import yaml

    from rlt_ros.commands.launch import parse_launch_args

    values = parse_launch_args(["arm:=ur", "vla.backend:=pi05", "vla.checkpoint:=/models/pi05", "vla.device:="])
    specs = {s.name: s for s in graph.graph("train", "ur", overrides=graph.vla_overrides(values))}
    assert specs["vla"].overrides == {"vla.backend": "pi05", "vla.checkpoint": "/models/pi05"}
    assert specs["actor"].overrides == {}
    doc = yaml.safe_load(Path(graph.write_overrides(specs["vla"], tmp_path)).read_text())
    assert doc == {"/vla": {"ros__parameters": {"vla.backend": "pi05", "vla.checkpoint": "/models/pi05"}}}
    assert graph.vla_overrides({"arm": "ur", "vla.backend": ""}) == {}
    # the RL token given to the vla node is the one the learner takes its action scale from (episode.*)
    values = parse_launch_args(["arm:=ur", "vla.token_checkpoint:=/runs/token"])
    specs = {s.name: s for s in graph.graph("train", "ur", overrides=graph.vla_overrides(values))}
    assert specs["vla"].overrides == {"vla.token_checkpoint": "/runs/token", "episode.token_checkpoint": "/runs/token"}
    assert all(specs[n].overrides["episode.token_checkpoint"] == "/runs/token" for n in ("learner", "reward"))


def test_graph_env_defaults(monkeypatch):
    from rlt_ros.commands.launch import graph_env

    env = graph_env({"PATH": "/usr/bin"})
    assert env["AMENT_PREFIX_PATH"] == sys.prefix
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"].endswith("fastdds_shm.xml")
    assert graph_env({"AMENT_PREFIX_PATH": "/opt/ros/kilted"})["AMENT_PREFIX_PATH"] == "/opt/ros/kilted"


# ------------------------------------------------------------------------------ so101 conversions
def test_so101_unit_conversion_round_trip():
    """Only the conversions are testable without an SO-101 and LeRobot: degrees <-> rad, gripper % <-> rad."""
    from rlt_ros.nodes.so101_bridge_node import _gripper_range, lerobot_to_radians, radians_to_lerobot

    arm = ArmConfig(**arm_block("so101"))
    grip = _gripper_range(arm.joint_names, arm.position_lower, arm.position_upper)
    obs = {"shoulder_pan.pos": 90.0, "shoulder_lift.pos": -45.0, "elbow_flex.pos": 0.0, "wrist_flex.pos": 30.0,
           "wrist_roll.pos": -10.0, "gripper.pos": 100.0}
    q = lerobot_to_radians(obs, arm.joint_names, grip)
    np.testing.assert_allclose(q[:5], np.deg2rad([90, -45, 0, 30, -10]))
    assert q[5] == pytest.approx(arm.position_upper[5])  # 100 % open = upper limit
    assert lerobot_to_radians({**obs, "gripper.pos": 0.0}, arm.joint_names, grip)[5] == pytest.approx(arm.position_lower[5])
    back = radians_to_lerobot(q, arm.joint_names, grip)
    assert back.keys() == obs.keys()
    np.testing.assert_allclose(list(back.values()), list(obs.values()), atol=1e-9)
    with pytest.raises(KeyError, match="gripper.pos"):
        lerobot_to_radians({k: v for k, v in obs.items() if k != "gripper.pos"}, arm.joint_names, grip)
    with pytest.raises(ValueError, match="expected 6 values"):
        radians_to_lerobot(q[:5], arm.joint_names, grip)


def test_trajectory_follower_interpolates_like_joint_trajectory_controller():
    from rlt_ros.nodes.sim_arm_node import TrajectoryFollower

    follower = TrajectoryFollower(np.zeros(2))
    np.testing.assert_allclose(follower.sample(5.0), [0, 0])  # holds
    follower.start(10.0, np.zeros(2), np.array([1.0, 2.0]), np.array([[1.0, -1.0], [3.0, -1.0]]))
    np.testing.assert_allclose(follower.sample(9.0), [0, 0])  # not started yet
    np.testing.assert_allclose(follower.sample(10.5), [0.5, -0.5])  # from the current position to point 0
    np.testing.assert_allclose(follower.sample(11.5), [2.0, -1.0])
    np.testing.assert_allclose(follower.sample(20.0), [3.0, -1.0])  # holds the last point
    assert follower.end_time == 12.0
