"""Eval: the train graph without the learner, the actor running its frozen policy (rlt_ros.graph "eval").

    ros2 launch rlt_ros eval.launch.py arm:=sim|ur|franka|so101 [rviz:=true] [params:=my.yaml]

Without a ROS install, `rlt launch eval arm:=sim` starts the same graph.
"""

from rlt_ros.launch_support import launch_description


def generate_launch_description():
    return launch_description("eval")
