"""sim_operator_node: a simulated human operator for practice on the simulated arm (`rlt demo`).

It does what a person at the robot does, through the same services: when the plug reaches the
socket (the simulator's critical-phase flag) it hands control to the RL actor (/rlt/start_rl), when
the plug is fully inserted (ground-truth success) it presses "success" (/rlt/mark_success), and when
the critical phase has lasted longer than it is willing to wait (``operator.critical_timeout_s``, the
cycle time it holds the insertion to) it presses "failure" (/rlt/mark_failure), each after a
human-like reaction delay. A failure press is terminal for the learner (reward 0, no bootstrap); an
episode nobody marks ends at the reward node's timeout, a truncation. It reads only simulator ground
truth, never the learner.

With ``operator.learned_marks`` the reward node's learned switch and detector mark (``episode.handover:
auto``, ``reward.detector: auto``) and the operator watches, pressing only to correct them, as in-process
practice's ``LearnedMarks``: "start RL" when the switch has not handed over ``operator.late_s`` into the
critical phase; the other outcome when a detector verdict contradicts the simulator when it looks, a reaction
delay after the verdict (an overrule, within the reward node's grace period); "success" when no verdict followed a seated plug within ``operator.grace_s``;
"failure" at its patience as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from rlt_ros.core.episode import OPERATOR_REACTION_S, PhaseTracker
from rlt_ros.core.interfaces import EventSource, EventType, Phase
from rlt_ros.msg import EpisodeEvent
from rlt_ros.ros import qos
from rlt_ros.ros.conversions import MessageError, event_from_msg
from rlt_ros.ros.node_base import RltNode, run
from rlt_ros.core.arm import ArmConfig


@dataclass
class OperatorConfig:
    critical_topic: str = "/sim_arm/in_critical_phase"  # std_msgs/Bool: the plug is near the socket (ground truth)
    reaction_delay_s: float = OPERATOR_REACTION_S  # delay between seeing something and pressing the button [s]
    handover: bool = True  # hand over to the RL actor at the critical phase (false: the VLA does it all)
    critical_timeout_s: float = 0.0  # press failure when the critical phase lasts longer [s] (0 = never: the reward node's timeout ends it)
    learned_marks: bool = False  # the reward node's learned switch and detector mark; press only to correct them
    late_s: float = 0.2  # learned marks: press "start RL" when the switch has not handed over this long into the critical phase [s]
    grace_s: float = 0.5  # learned marks: press "success" when no verdict followed a seated plug within this [s]

    def __post_init__(self):
        if min(self.reaction_delay_s, self.critical_timeout_s, self.late_s, self.grace_s) < 0:
            raise ValueError("operator.reaction_delay_s, critical_timeout_s, late_s and grace_s must be >= 0")


class SimOperatorNode(RltNode):
    CONFIGS = {"arm": ArmConfig, "operator": OperatorConfig}  # prefix -> configuration

    def __init__(self):
        super().__init__("sim_operator")
        if not self.arm_config.success_topic:
            raise ValueError("sim_operator needs arm.success_topic (ground-truth success of the simulator)")
        self.tracker = PhaseTracker()
        self._pending: set[str] = set()
        self._handover_at: float | None = None  # stamp of the running episode's handover [s, ROS time]
        self._seated = False  # the simulator's latest ground-truth success
        self._verdict: tuple[int, EventType] | None = None  # (episode, outcome) of the detector's latest verdict
        self.buttons = {name: self.create_client(Trigger, f"/rlt/{name}")
                        for name in ("start_rl", "mark_success", "mark_failure")}
        self.create_subscription(EpisodeEvent, "/rlt/events", self._on_event, qos.EVENTS)
        self.create_subscription(Bool, self.arm_config.success_topic, self._on_success, qos.LATCHED)
        self.create_subscription(Bool, self.operator_config.critical_topic, self._on_critical, qos.STREAM)
        if self.operator_config.critical_timeout_s > 0:
            self.create_timer(0.05, self._check_patience)

    def _on_event(self, msg):
        try:
            event = event_from_msg(msg)
        except MessageError as err:
            self.get_logger().warning(f"rejected event: {err}")
            return
        if self.tracker.apply(event):
            if event.type == EventType.HANDOVER:
                self._handover_at = event.stamp
            elif event.type in (EventType.START, EventType.RESET) or event.type.terminal:
                self._handover_at = None
            if event.type.terminal and event.source == EventSource.DETECTOR:
                self._verdict = (event.episode_id, event.type)
                # the operator looks at the plug a reaction time later (the arm goes on with its command
                # meanwhile) and overrules a verdict the simulator contradicts then
                said = event.type == EventType.SUCCESS
                self._press("mark_failure" if said else "mark_success", key=f"overrule:{event.episode_id}",
                            unless=lambda: self._seated == said)

    def _check_patience(self):
        """Press failure once the critical phase has lasted longer than the operator waits (not on a seated plug,
        whose success is being marked)."""
        now = self.get_clock().now().nanoseconds * 1e-9
        if (self._handover_at is not None and self.tracker.phase in (Phase.RL, Phase.INTERVENTION)
                and now - self._handover_at > self.operator_config.critical_timeout_s and not self._seated):
            self._press("mark_failure")

    def _on_critical(self, msg: Bool):
        if msg.data and self.operator_config.handover and self.tracker.phase == Phase.VLA:
            if self.operator_config.learned_marks:  # unless the switch hands over first
                self._press("start_rl", self.operator_config.late_s, unless=lambda: self.tracker.phase != Phase.VLA)
            else:
                self._press("start_rl")

    def _on_success(self, msg: Bool):
        self._seated = bool(msg.data)
        if msg.data and self.tracker.phase in (Phase.VLA, Phase.RL, Phase.INTERVENTION):
            if self.operator_config.learned_marks:  # unless the detector marks it first (a wrong verdict is overruled)
                episode = self.tracker.episode_id
                self._press("mark_success", self.operator_config.grace_s, unless=lambda: self._verdict is not None
                            and self._verdict[0] == episode)
            else:
                self._press("mark_success")

    def _press(self, button: str, delay: float | None = None, unless=None, key: str | None = None):
        """Call /rlt/<button> once per ``key`` (default: per episode and button), after ``delay`` (default:
        the reaction delay), unless ``unless()`` is true by then."""
        key = key or f"{button}:{self.tracker.episode_id}"
        if key in self._pending or not self.buttons[button].service_is_ready():
            return
        self._pending.add(key)
        timer = None

        def fire():
            self.destroy_timer(timer)  # one-shot: a cancelled timer would stay in the executor's wait set
            if unless is not None and unless():
                return
            future = self.buttons[button].call_async(Trigger.Request())
            future.add_done_callback(lambda f: self._answered(button, f))

        delay = self.operator_config.reaction_delay_s if delay is None else delay
        timer = self.create_timer(max(delay, 1e-3), fire)

    def _answered(self, button, future):
        result = future.result()
        if result is None or not result.success:
            self.get_logger().warning(f"{button} refused: {result.message if result else 'no answer'}")


def main(args=None):
    run(SimOperatorNode, args)


if __name__ == "__main__":
    main()
