"""The pure core of rlt_ros: simulator, VLA backends, RL token, actor-critic, replay, learner.

Nothing under this package may import rclpy or any ROS message package (enforced by
test/test_core_purity.py), so it runs and is tested without ROS.
"""
