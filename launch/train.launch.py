"""Train: the arm's driver, observation, vla, actor, learner, reward and monitor nodes (rlt_ros.graph "train").

    ros2 launch rlt_ros train.launch.py arm:=sim|ur|franka|so101 [rviz:=true] [params:=my.yaml]

Without a ROS install, `rlt launch train arm:=sim` starts the same graph.
"""

from rlt_ros.launch_support import launch_description


def generate_launch_description():
    return launch_description("train")
