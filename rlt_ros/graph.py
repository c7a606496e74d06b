"""The node graphs of rlt_ros, described once as data: ``launch/*.launch.py`` and ``rlt launch`` both build from here.

A graph is a list of :class:`NodeSpec` (which executable, under which node name, with which parameter
files and overrides). No rclpy or launch imports here, so the graph can be built and tested anywhere::

    from rlt_ros.graph import graph
    for spec in graph("train", arm="sim"):
        print(spec.name, spec.executable, spec.params, spec.overrides)

Graphs (the arm's driver first):

- ``train``: arm driver, observation, vla, actor, learner, reward, monitor (RViz markers)
- ``eval``:  the same without the learner; the actor runs its frozen policy (``KIND_OVERRIDES``)
- ``demo``:  train on the simulated arm plus ``sim_operator``, a simulated person pressing the buttons;
             episodes start just above the socket, with a 6 s cycle time (``KIND_OVERRIDES``)

The arm driver is ``sim_arm`` (arm=sim, the simulated arm behaving like a ros2_control driver) or
``so101_bridge`` (arm=so101, LeRobot's SO-101 follower). For ur and franka the user launches the
vendor's ros2_control driver (ur_robot_driver, franka_ros2) and rlt_ros starts no driver.

Parameters: every node gets ``config/rlt.yaml`` (one ``ros__parameters`` block per node) and then
``config/arms/<arm>.yaml`` (``/**``: the ``arm.*`` parameters every node shares, plus blocks for the
driver), then its overrides. With arm=sim, every node except the driver gets ``use_sim_time: true``:
the simulated arm publishes /clock and may run faster than real time (``driver.realtime_factor``).

Configuration files come from :func:`config_dir`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from rlt_ros.core.arm import ARMS

PACKAGE = "rlt_ros"
KINDS = ("train", "eval", "demo")
# graph kind -> node name ("*": every node of the graph) -> parameter overrides that make a train graph that
# kind of graph
KIND_OVERRIDES: dict[str, dict[str, dict[str, Any]]] = {
    "eval": {"actor": {"actor.explore": False}},  # the frozen policy, without exploration noise
    # the demo: every episode starts just above the socket (the paper's practice curriculum starts there; the
    # VLA still drives the last approach; `rlt demo --start home` for the full task), nobody is there to
    # activate the actor, and the simulated operator holds the insertion to a 6 s cycle time: it presses
    # failure on one not done 6 s after the handover (the base VLA's median in the graph is 5.9-6.3 s, so
    # it fails about half the time; at 7 s it failed 9-30%, depending on the machine's spare CPU). A warm-up of 1000 transitions, plus the learner's catch-up on them (its first weights
    # wait for it), gives the summary's base-policy row ~20 episodes.
    "demo": {"sim_arm": {"sim.start": "pre_critical"}, "sim_operator": {"operator.critical_timeout_s": 6.0},
             "actor": {"actor.autostart": True}, "learner": {"rlt.warmup_transitions": 1000}},
}

Scalar = bool | int | float | str
ParamValue = Scalar | list


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph."""

    executable: str  # node executable = module rlt_ros.nodes.<executable> (console script of the same name)
    name: str  # ROS node name (the block of config/rlt.yaml that configures it)
    package: str = PACKAGE  # ROS package holding the executable
    arms: tuple[str, ...] = ARMS  # arms whose graphs include this node
    kinds: tuple[str, ...] = KINDS  # graph kinds that include this node
    driver: bool = False  # the arm's driver: publishes /clock in simulation, so never uses sim time itself
    params: tuple[str, ...] = ()  # parameter files, applied in order (later ones win)
    overrides: Mapping[str, ParamValue] = field(default_factory=dict)  # parameters set last, name -> value
    remaps: tuple[tuple[str, str], ...] = ()  # topic/service remappings (from, to)

    @property
    def module(self) -> str:
        """The Python module whose main() runs this node (for packages other than rlt_ros: none)."""
        if self.package != PACKAGE:
            raise ValueError(f"node {self.name!r}: executable {self.executable!r} of package {self.package!r} "
                             "is not a Python module of rlt_ros")
        return f"{PACKAGE}.nodes.{self.executable}"


# every node rlt_ros knows; graph() picks those of an arm and kind, in this order
NODES: tuple[NodeSpec, ...] = (
    NodeSpec("sim_arm_node", "sim_arm", arms=("sim",), driver=True),
    NodeSpec("so101_bridge_node", "so101_bridge", arms=("so101",), driver=True),
    NodeSpec("observation_node", "observation"),
    NodeSpec("vla_node", "vla"),
    NodeSpec("actor_node", "actor"),
    NodeSpec("learner_node", "learner", kinds=("train", "demo")),
    NodeSpec("reward_node", "reward"),
    NodeSpec("monitor_node", "monitor"),
    NodeSpec("sim_operator_node", "sim_operator", arms=("sim",), kinds=("demo",)),
)


def config_dir() -> Path:
    """The folder holding rlt.yaml, arms/, rlt.rviz and fastdds_shm.xml.

    In order: ``$RLT_CONFIG_DIR``; the checkout's ``config/`` when rlt_ros runs from a checkout
    (so edits there take effect without reinstalling, and tests see the files they ship with);
    the installed package's share directory (``ament_index``, colcon or ``make setup`` installs).
    """
    if os.environ.get("RLT_CONFIG_DIR"):
        path = Path(os.environ["RLT_CONFIG_DIR"])
        if not path.is_dir():
            raise FileNotFoundError(f"RLT_CONFIG_DIR={path} is not a folder")
        return path
    checkout = Path(__file__).resolve().parents[1] / "config"
    if (checkout / "arms").is_dir():
        return checkout
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError as err:
        raise FileNotFoundError("rlt_ros's config/ folder not found: not running from a checkout and "
                                "ament_index_python is not installed; run `make setup`") from err
    try:
        share = Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, ValueError) as err:
        raise FileNotFoundError(f"rlt_ros's config/ folder not found: package {PACKAGE!r} is not in "
                                f"AMENT_PREFIX_PATH={os.environ.get('AMENT_PREFIX_PATH', '')!r}; run `make setup` "
                                "or source your ROS workspace") from err
    return share / "config"


def check_arm(arm: str) -> str:
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; valid arms: {', '.join(ARMS)}")
    return arm


def param_files(arm: str, directory: Path | None = None) -> tuple[str, ...]:
    """The parameter files of every node of ``arm``'s graphs: rlt.yaml, then arms/<arm>.yaml."""
    check_arm(arm)
    directory = Path(directory) if directory is not None else config_dir()
    files = (directory / "rlt.yaml", directory / "arms" / f"{arm}.yaml")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"parameter files missing: {missing} (config folder {directory})")
    return tuple(str(f) for f in files)


# launch arguments `vla.<name>:=value` of ros2 launch and rlt launch: the vla node's parameter, applied last
VLA_LAUNCH_ARGS = {
    "vla.backend": "the VLA backend: builtin|smolvla|pi0|pi05 (default: from the parameter files)",
    "vla.checkpoint": "the VLA checkpoint folder",
    "vla.tokenizer_path": "pi0/pi05: local folder with the PaliGemma tokenizer",
    "vla.vlm_path": "smolvla: local folder with the VLM's config + tokenizer",
    "vla.token_checkpoint": "the RL-token folder (rlt train-token --out)",
    "vla.device": "torch device of the VLA and the RL-token encoder (cpu, cuda)",
}


def vla_overrides(values: Mapping[str, str]) -> dict[str, dict[str, ParamValue]]:
    """The ``vla.*`` launch arguments given a non-empty value, as graph() overrides of the vla node."""
    given = {name: value for name, value in values.items() if name in VLA_LAUNCH_ARGS and value != ""}
    return {"vla": given} if given else {}


def graph(kind: str, arm: str, overrides: Mapping[str, Mapping[str, ParamValue]] | None = None,
          extra_params: tuple[str, ...] = (), directory: Path | None = None) -> list[NodeSpec]:
    """The nodes of graph ``kind`` (train|eval) for ``arm`` (sim|ur|franka|so101), ready to start.

    overrides: node name -> {parameter: value}, applied after everything else; the vla node's
    ``vla.token_checkpoint`` is also every other node's ``episode.token_checkpoint``.
    extra_params: more parameter files, applied after rlt.yaml and the arm's file (e.g. a user's tuning).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown graph {kind!r}; valid graphs: {', '.join(KINDS)}")
    check_arm(arm)
    if kind == "demo" and arm != "sim":
        raise ValueError(f"the demo graph runs on the simulated arm only (arm:=sim), not {arm!r}")
    files = param_files(arm, directory) + tuple(str(Path(p)) for p in extra_params)
    for path in files:
        if not Path(path).is_file():
            raise FileNotFoundError(f"parameter file {path} does not exist")
    nodes = [spec for spec in NODES if arm in spec.arms and kind in spec.kinds]
    names = {spec.name for spec in nodes}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"overrides for nodes {unknown} that are not in the {kind} graph of arm {arm}; "
                         f"its nodes: {sorted(names)}")
    # the vla node's RL token is the one the nodes reading episode.* check against (learner: its action scale)
    token = overrides.get("vla", {}).get("vla.token_checkpoint")
    specs = []
    for spec in nodes:
        values: dict[str, ParamValue] = {}
        if arm == "sim" and not spec.driver:
            values["use_sim_time"] = True
        if token and not spec.driver:
            values["episode.token_checkpoint"] = token
        values.update(KIND_OVERRIDES.get(kind, {}).get("*", {}))  # nodes that do not read a shared one ignore it
        values.update(KIND_OVERRIDES.get(kind, {}).get(spec.name, {}))
        values.update(overrides.get(spec.name, {}))
        specs.append(replace(spec, params=files, overrides=values))
    return specs


def overrides_document(spec: NodeSpec) -> dict[str, Any]:
    """``spec.overrides`` as a ROS parameter file addressed to the node by name.

    Overrides go into a file, not ``-p name:=value``: rcl applies ``-p`` like a ``/**`` block, and a
    block naming the node (as rlt.yaml's do) wins over every ``/**`` block, so ``-p`` could not override it.
    Among blocks naming the node, the last file wins: the overrides file comes last.
    """
    return {f"/{spec.name}": {"ros__parameters": dict(spec.overrides)}}


def write_overrides(spec: NodeSpec, directory: Path | str) -> str | None:
    """Write the overrides file of ``spec`` into ``directory``; None when it has no overrides."""
    import yaml

    if not spec.overrides:
        return None
    path = Path(directory) / f"{spec.name}.overrides.yaml"
    path.write_text(yaml.safe_dump(overrides_document(spec), sort_keys=False))
    return str(path)


# SROS2 enclaves of the nodes (rlt_ros.security writes their access-control policy): /rlt_ros/<node name>
ENCLAVE_ROOT = f"/{PACKAGE}"


def enclave(name: str) -> str:
    """The SROS2 enclave of the node (or the operator's tool) called ``name``."""
    return f"{ENCLAVE_ROOT}/{name}"


def security_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``ROS_SECURITY_ENABLE=true``: then every node must run in its enclave (docs/security.md)."""
    return (os.environ if env is None else env).get("ROS_SECURITY_ENABLE", "").lower() == "true"


def ros_args(spec: NodeSpec, overrides_file: str | None = None, enclave: str | None = None) -> list[str]:
    """The ``--ros-args`` that give a node process its name, parameter files, remappings and SROS2 enclave."""
    args = ["--ros-args", "-r", f"__node:={spec.name}"]
    for path in (*spec.params, *([overrides_file] if overrides_file else [])):
        args += ["--params-file", str(path)]
    for src, dst in spec.remaps:
        args += ["-r", f"{src}:={dst}"]
    if enclave:
        args += ["--enclave", enclave]
    return args


def launch_node_kwargs(spec: NodeSpec, overrides_file: str | None = None, enclave: str | None = None) -> dict[str, Any]:
    """Keyword arguments of ``launch_ros.actions.Node`` for ``spec`` (the launch files' only conversion)."""
    parameters = [*spec.params, *([overrides_file] if overrides_file else [])]
    kwargs = dict(package=spec.package, executable=spec.executable, name=spec.name,
                  parameters=parameters, remappings=list(spec.remaps), output="screen", emulate_tty=True)
    if enclave:
        kwargs["ros_arguments"] = ["--enclave", enclave]
    return kwargs


def rviz_config(directory: Path | None = None) -> str:
    """The RViz2 configuration shipped with rlt_ros (fixed frame world, markers, cameras, end-effector)."""
    return str((Path(directory) if directory is not None else config_dir()) / "rlt.rviz")
