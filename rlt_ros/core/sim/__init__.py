"""sim part of the pure core (no rclpy): the simulated precision-insertion arm and its scripted expert.

MuJoCo chooses its OpenGL backend when it is first imported; default it to EGL (headless, CPU via
Mesa) here so that any import of this package comes first. Set MUJOCO_GL yourself to override.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
