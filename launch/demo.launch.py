"""Demo: the train graph on the simulated arm plus a simulated operator pressing the buttons (rlt_ros.graph "demo").

    ros2 launch rlt_ros demo.launch.py [rviz:=true] [params:=my.yaml]

Without a ROS install, `rlt launch demo arm:=sim` starts the same graph.
"""

from rlt_ros.launch_support import launch_description


def generate_launch_description():
    return launch_description("demo")
