"""rlt_ros: RL Token (RLT) online refinement of a frozen VLA, as a ROS 2 package suite.

Layout: ``rlt_ros.core`` is the pure algorithm (no rclpy, no *_msgs); ``rlt_ros.ros`` holds the
message conversions, QoS profiles and parameter plumbing; ``rlt_ros.nodes`` the thin ROS nodes;
``rlt_ros.commands`` the subcommands of the ``rlt`` CLI. ``rlt_ros.msg`` / ``rlt_ros.srv`` are the
generated interfaces (built by colcon, or by ``make setup`` into the virtual environment).
"""

# The generated interfaces may live in another directory of the same package (the venv's
# site-packages) than these sources (a checkout on PYTHONPATH): merge both into one package.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"
