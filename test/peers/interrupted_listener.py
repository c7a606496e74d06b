"""A node whose Ctrl-C lands while rclpy converts a received message to Python (test_ros_foundation).

The EpisodeEvent.note setter, which rclpy's C conversion calls, raises SIGINT in this process: the same
moment as an operator's Ctrl-C arriving mid-conversion, which pybind11 reports as a RuntimeError.
"""

import os
import signal

from rclpy.node import Node
from rclpy.serialization import serialize_message

from rlt_ros.msg import EpisodeEvent
from rlt_ros.ros import node_base

RAW = serialize_message(EpisodeEvent(episode_id=1))  # built before the setter is patched
_note = EpisodeEvent.note


def _interrupted_setter(msg, value):
    os.kill(os.getpid(), signal.SIGINT)
    _note.fset(msg, value)


EpisodeEvent.note = property(_note.fget, _interrupted_setter)


class Listener(Node):
    def __init__(self):
        super().__init__("interrupted_listener")
        self.create_subscription(EpisodeEvent, "/interrupted", lambda msg: None, 10)
        pub = self.create_publisher(EpisodeEvent, "/interrupted", 10)
        self.create_timer(0.2, lambda: pub.publish(RAW))

    def close(self):
        print("closed", flush=True)


if __name__ == "__main__":
    node_base.run(Listener)
