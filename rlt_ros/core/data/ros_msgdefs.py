"""ROS 2 message definitions (``ros2msg`` text) for the topics of the bags rlt_ros writes (demonstrations, tokens).

rosbag2 stores, per topic, the message's ``.msg`` text followed by the text of every type it
depends on (depth first, in order of first use), each introduced by a line of 80 ``=`` and
``MSG: <package>/<Type>`` — the same concatenation ROS 1 used. Tools (rosbag2, Foxglove, rosbags,
mcap-ros2-support) parse the bag's messages with it, so it must be complete and exact.
"""

from __future__ import annotations

SEPARATOR = "=" * 80

# type -> (own definition, direct dependencies in order of first use)
_DEFS: dict[str, tuple[str, tuple[str, ...]]] = {
    "builtin_interfaces/msg/Time": ("int32 sec\nuint32 nanosec\n", ()),
    "builtin_interfaces/msg/Duration": ("int32 sec\nuint32 nanosec\n", ()),
    "std_msgs/msg/Header": ("builtin_interfaces/Time stamp\nstring frame_id\n", ("builtin_interfaces/msg/Time",)),
    "std_msgs/msg/String": ("string data\n", ()),
    "sensor_msgs/msg/JointState": (
        "std_msgs/Header header\n\nstring[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort\n",
        ("std_msgs/msg/Header",),
    ),
    "sensor_msgs/msg/Image": (
        "std_msgs/Header header\n\nuint32 height\nuint32 width\n\nstring encoding\n\nuint8 is_bigendian\n"
        "uint32 step\nuint8[] data\n",
        ("std_msgs/msg/Header",),
    ),
    "trajectory_msgs/msg/JointTrajectoryPoint": (
        "float64[] positions\nfloat64[] velocities\nfloat64[] accelerations\nfloat64[] effort\n"
        "builtin_interfaces/Duration time_from_start\n",
        ("builtin_interfaces/msg/Duration",),
    ),
    "trajectory_msgs/msg/JointTrajectory": (
        "std_msgs/Header header\n\nstring[] joint_names\n\nJointTrajectoryPoint[] points\n",
        ("std_msgs/msg/Header", "trajectory_msgs/msg/JointTrajectoryPoint"),
    ),
    # rlt_ros's own topics (msg/*.msg without comments; test_data_bags.py checks them against the files)
    "rlt_ros/msg/RLToken": (
        "uint8 PHASE_IDLE=0\nuint8 PHASE_VLA=1\nuint8 PHASE_RL=2\nuint8 PHASE_INTERVENTION=3\n\n"
        "std_msgs/Header header\nuint64 episode_id\nuint8 phase\nfloat32[] token\nfloat32[] proprio\n"
        "string[] joint_names\nfloat32[] reference_chunk\nuint32 chunk_rows\nuint32 chunk_cols\nfloat32 step_dt\n",
        ("std_msgs/msg/Header",),
    ),
    "rlt_ros/msg/EpisodeEvent": (
        "uint8 START=0\nuint8 HANDOVER=1\nuint8 INTERVENTION_START=2\nuint8 INTERVENTION_END=3\n"
        "uint8 SUCCESS=4\nuint8 FAILURE=5\nuint8 TIMEOUT=6\nuint8 RESET=7\n\n"
        "uint8 SOURCE_HUMAN=0\nuint8 SOURCE_DETECTOR=1\nuint8 SOURCE_TIMEOUT=2\nuint8 SOURCE_SYSTEM=3\n\n"
        "std_msgs/Header header\nuint64 episode_id\nuint8 type\nuint8 source\nfloat32 reward\nstring note\n",
        ("std_msgs/msg/Header",),
    ),
}


def _short(name: str) -> str:
    """'std_msgs/msg/Header' -> 'std_msgs/Header' (the form rosbag2 writes after MSG:)."""
    pkg, _, typ = name.split("/")
    return f"{pkg}/{typ}"


def full_definition(datatype: str) -> str:
    """Concatenated definition of ``datatype`` (e.g. 'sensor_msgs/msg/Image') with all dependencies."""
    if datatype not in _DEFS:
        raise ValueError(f"no message definition for {datatype!r}; known: {sorted(_DEFS)}")
    order: list[str] = []

    def visit(name: str) -> None:
        for dep in _DEFS[name][1]:
            if dep not in order:
                order.append(dep)
                visit(dep)

    visit(datatype)
    parts = [_DEFS[datatype][0]]
    for dep in order:
        parts.append(f"{SEPARATOR}\nMSG: {_short(dep)}\n{_DEFS[dep][0]}")
    return "".join(parts)


KNOWN_TYPES: tuple[str, ...] = tuple(_DEFS)
