"""What launch/*.launch.py share: a launch description of an rlt_ros graph (needs ROS 2's launch, launch_ros).

The graph itself comes from ``rlt_ros.graph`` (the same one `rlt launch` starts); this only turns its
NodeSpecs into launch_ros Node actions. The launch imports happen inside the function, so rlt_ros
imports without a ROS install.
"""

from __future__ import annotations

import tempfile

from rlt_ros import graph


def launch_description(kind: str):
    """``ros2 launch rlt_ros <kind>.launch.py arm:=... rviz:=true|false params:=extra.yaml [vla.backend:=pi05 ...]``."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    arms = ["sim"] if kind == "demo" else list(graph.ARMS)

    def nodes(context):
        arm = LaunchConfiguration("arm").perform(context)
        extra = LaunchConfiguration("params").perform(context)
        vla = {name: LaunchConfiguration(name).perform(context) for name in graph.VLA_LAUNCH_ARGS}
        specs = graph.graph(kind, arm, overrides=graph.vla_overrides(vla), extra_params=(extra,) if extra else ())
        folder = tempfile.mkdtemp(prefix=f"rlt_{kind}_")
        secure = graph.security_enabled()  # SROS2 on: each node in its enclave (rlt security-policy)
        actions = [Node(**graph.launch_node_kwargs(spec, graph.write_overrides(spec, folder),
                                                   graph.enclave(spec.name) if secure else None)) for spec in specs]
        if LaunchConfiguration("rviz").perform(context).lower() == "true":
            actions.append(Node(package="rviz2", executable="rviz2", arguments=["-d", graph.rviz_config()]))
        return actions

    return LaunchDescription([
        DeclareLaunchArgument("arm", default_value="sim", choices=arms, description="the arm"),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"], description="start rviz2"),
        DeclareLaunchArgument("params", default_value="", description="extra parameter file, applied last"),
        *[DeclareLaunchArgument(name, default_value="", description=text) for name, text in graph.VLA_LAUNCH_ARGS.items()],
        OpaqueFunction(function=nodes),
    ])
