"""Inputs a control loop reads latest-only, in its own timer, so that a flood cannot starve it.

``LatestInput`` (made by ``RltNode.create_latest_input(msg_type, topic, handle, qos)``) subscribes in a
callback group the executor never runs: the executor does not wake for these messages at all, and ``take()``
(called by the control tick) drains what arrived since the last tick as serialized bytes, counts it, and
deserializes only the newest, which it hands to ``handle``. A flood of such a topic then costs middleware
work and a few microseconds per message in the tick, instead of an executor round and a Python conversion per
message ahead of the control timer (measured in test_ros_faults.py).
"""

from __future__ import annotations

from rclpy.callback_groups import CallbackGroup
from rclpy.serialization import deserialize_message


class _Polled(CallbackGroup):
    """A callback group whose subscriptions the executor never waits on nor runs: their owner takes them."""

    def can_execute(self, entity) -> bool:
        return False

    def beginning_execution(self, entity) -> bool:
        return False

    def ending_execution(self, entity) -> None:
        pass


class LatestInput:
    def __init__(self, node, msg_type, topic: str, handle, qos_profile):
        self._type, self.handle = msg_type, handle
        self._sub = node.create_subscription(msg_type, topic, self._unused, qos_profile, callback_group=_Polled(),
                                             raw=True)
        self.count = 0  # messages taken so far
        self._counted = 0

    @staticmethod
    def _unused(msg) -> None:
        raise RuntimeError("a LatestInput subscription is read by take(), never by the executor")

    def take(self) -> bool:
        """Hand the newest message that arrived since the last call to ``handle``; False when none did."""
        newest = None
        with self._sub.handle:
            while (got := self._sub.handle.take_message(self._type, True)) is not None:
                newest = got[0]
                self.count += 1
        if newest is not None:
            self.handle(deserialize_message(newest, self._type))
        return newest is not None

    def count_since(self) -> int:
        """Messages taken since the last call of this method."""
        n, self._counted = self.count - self._counted, self.count
        return n
