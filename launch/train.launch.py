"""Train: the arm's driver, observation, vla, actor, learner and reward nodes (rlt_ros.graph "train").

    ros2 launch rlt_ros train.launch.py arm:=sim|ur|franka|so101 [rviz:=true] [params:=my.yaml]

Without a ROS install, `rlt launch train arm:=sim` starts the same graph.
"""

import tempfile

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from rlt_ros import graph

KIND = "train"


def nodes(context):
    arm = LaunchConfiguration("arm").perform(context)
    extra = LaunchConfiguration("params").perform(context)
    specs = graph.graph(KIND, arm, extra_params=(extra,) if extra else ())
    folder = tempfile.mkdtemp(prefix=f"rlt_{KIND}_")
    actions = [Node(**graph.launch_node_kwargs(spec, graph.write_overrides(spec, folder))) for spec in specs]
    if LaunchConfiguration("rviz").perform(context).lower() == "true":
        actions.append(Node(package="rviz2", executable="rviz2", arguments=["-d", graph.rviz_config()]))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("arm", default_value="sim", choices=list(graph.ARMS), description="the arm"),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"], description="start rviz2"),
        DeclareLaunchArgument("params", default_value="", description="extra parameter file, applied last"),
        OpaqueFunction(function=nodes),
    ])
