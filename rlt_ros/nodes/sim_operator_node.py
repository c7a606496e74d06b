"""sim_operator_node: a simulated human operator for practice on the simulated arm (`rlt demo`).

It does what a person at the robot does, through the same services: when the plug reaches the
socket (the simulator's critical-phase flag) it hands control to the RL actor (/rlt/start_rl), and
when the plug is fully inserted (ground-truth success) it presses "success" (/rlt/mark_success),
after a human-like reaction delay. Failures are left to the episode timeout, as with a person who
waits for the attempt to run out. It reads only simulator ground truth, never the learner.
"""

from __future__ import annotations

from dataclasses import dataclass

from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from rlt_ros.core.episode import PhaseTracker
from rlt_ros.core.interfaces import Phase
from rlt_ros.msg import EpisodeEvent
from rlt_ros.ros import qos
from rlt_ros.ros.conversions import MessageError, event_from_msg
from rlt_ros.ros.node_base import RltNode, run
from rlt_ros.core.arm import ArmConfig


@dataclass
class OperatorConfig:
    critical_topic: str = "/sim_arm/in_critical_phase"  # std_msgs/Bool: the plug is near the socket (ground truth)
    reaction_delay_s: float = 0.1  # delay between seeing something and pressing the button [s]
    handover: bool = True  # hand over to the RL actor at the critical phase (false: the VLA does it all)

    def __post_init__(self):
        if self.reaction_delay_s < 0:
            raise ValueError("operator.reaction_delay_s must be >= 0")


class SimOperatorNode(RltNode):
    CONFIGS = {"arm": ArmConfig, "operator": OperatorConfig}  # prefix -> configuration

    def __init__(self):
        super().__init__("sim_operator")
        if not self.arm_config.success_topic:
            raise ValueError("sim_operator needs arm.success_topic (ground-truth success of the simulator)")
        self.tracker = PhaseTracker()
        self._pending: set[str] = set()
        self.buttons = {name: self.create_client(Trigger, f"/rlt/{name}") for name in ("start_rl", "mark_success")}
        self.create_subscription(EpisodeEvent, "/rlt/events", self._on_event, qos.EVENTS)
        self.create_subscription(Bool, self.arm_config.success_topic, self._on_success, qos.LATCHED)
        self.create_subscription(Bool, self.operator_config.critical_topic, self._on_critical, qos.STREAM)

    def _on_event(self, msg):
        try:
            self.tracker.apply(event_from_msg(msg))
        except MessageError as err:
            self.get_logger().warning(f"rejected event: {err}")

    def _on_critical(self, msg: Bool):
        if msg.data and self.operator_config.handover and self.tracker.phase == Phase.VLA:
            self._press("start_rl")

    def _on_success(self, msg: Bool):
        if msg.data and self.tracker.phase in (Phase.VLA, Phase.RL, Phase.INTERVENTION):
            self._press("mark_success")

    def _press(self, button: str):
        """Call /rlt/<button> once per episode and phase, after the reaction delay."""
        key = f"{button}:{self.tracker.episode_id}"
        if key in self._pending or not self.buttons[button].service_is_ready():
            return
        self._pending.add(key)
        timer = None

        def fire():
            self.destroy_timer(timer)  # one-shot: a cancelled timer would stay in the executor's wait set
            future = self.buttons[button].call_async(Trigger.Request())
            future.add_done_callback(lambda f: self._answered(button, f))

        timer = self.create_timer(max(self.operator_config.reaction_delay_s, 1e-3), fire)

    def _answered(self, button, future):
        result = future.result()
        if result is None or not result.success:
            self.get_logger().warning(f"{button} refused: {result.message if result else 'no answer'}")


def main(args=None):
    run(SimOperatorNode, args)


if __name__ == "__main__":
    main()
