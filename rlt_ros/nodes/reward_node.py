"""reward_node: the episode life cycle and the sparse human reward (a thin adapter over core.episode).

Services (std_srvs/Trigger unless noted, so a foot pedal or any button can call them):
  /rlt/mark_success, /rlt/mark_failure   end the running episode with reward 1 / 0
  /rlt/mark_episode (rlt_ros/MarkEpisode) the same with a note
  /rlt/start_rl                          hand control from the VLA to the RL actor (critical phase)
  /rlt/intervention (std_srvs/SetBool)   a human takes over (true) / hands back (false)
  /rlt/start_episode                     start the next episode (when auto_start is off)
Publishes rlt_ros/EpisodeEvent on /rlt/events; ends episodes that run too long (TIMEOUT); resets the
arm through arm.reset_service after each episode; optionally marks success from a detector topic
(std_msgs/Bool, ground truth in simulation, ``reward.detector: topic``) or from the learned success detector
(``rlt train-detector``, ``reward.detector: suggest | auto``), and reads single keys from the terminal.
The learned detector reads /rlt/token: ``suggest`` publishes its verdict (std_msgs/String on
/rlt/detector_suggestion, and the log) for the operator to confirm with the button; ``auto`` marks the outcome
itself (source DETECTOR), and the operator's mark within ``reward.detector_grace_s`` overrules it (a HUMAN
outcome of the same episode: the learner's outcome gate labels the episode's rows by it, and stores an
overruled success as a truncation, since the detector cut the episode short); the reset, which
closes the episode for the learner, waits for the grace period. A detector that does not load leaves the node
in operator mode with an error in the log. With
``episode.handover: auto`` it reads /rlt/token and hands over (source DETECTOR) when the learned switch
(``rlt train-switch``) fires; the operator's /rlt/start_rl still hands over whenever it comes first, and a
switch that does not load leaves the node in operator mode with an error in the log. Episode ids count up
from the node's start time in milliseconds (core.episode.first_episode_id): unique across its restarts.
"""

from __future__ import annotations

import select
import sys
import threading
import time
from dataclasses import dataclass

from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger

from rlt_ros.core.episode import EpisodeConfig, EpisodeError, EpisodeManager, first_episode_id
from rlt_ros.core.interfaces import LATE_SWITCH, EventSource, Phase, TokenPacket
from rlt_ros.core.validation import MAX_NOTE
from rlt_ros.msg import ClassifierWeights, EpisodeEvent, RLToken
from rlt_ros.ros import qos
from rlt_ros.ros.conversions import MessageError, event_to_msg, token_from_msg
from rlt_ros.ros.node_base import RltNode, run
from rlt_ros.core.arm import ArmConfig
from rlt_ros.srv import MarkEpisode

DETECTORS = ("none", "topic", "suggest", "auto")
LEARNED = ("suggest", "auto")  # the modes of the learned detector (reward.detector_path)
LEARNER = "learner"  # episode.switch / reward.detector_path: follow the versions learner_node retrains (learner.marks_every)


@dataclass
class RewardConfig:
    detector: str = "none"  # automatic success detector: none (the operator marks) | topic (std_msgs/Bool on arm.success_topic) | suggest (the learned detector proposes, the operator confirms) | auto (it marks; the operator may overrule)
    detector_path: str = ""  # learned success-detector folder (rlt train-detector --out), read with detector suggest | auto; "learner": the versions learner_node retrains (learner.marks_every)
    detector_token: str = ""  # the RL-token folder the graph runs, whose sha256 the detector must match ("" = the shipped one)
    detector_grace_s: float = 2.0  # detector auto: the operator's mark within this after the detector's replaces it; the reset waits for it [s]
    detector_failure_after_s: float = 10.0  # learned detector: a failure verdict only once the critical phase lasted this long [s]
    auto_start: bool = True  # start the next episode by itself after the reset (else: /rlt/start_episode)
    reset_delay_s: float = 0.5  # pause between an episode's end and the reset request [s]
    keyboard: bool = False  # read keys from the terminal: s success, f failure, h handover, n next episode
    tick_hz: float = 20.0  # how often timeouts are checked [Hz]

    def __post_init__(self):
        if self.detector not in DETECTORS:
            raise ValueError(f"reward.detector: {self.detector!r} is not one of {DETECTORS}")
        if self.detector in LEARNED and not self.detector_path:
            raise ValueError(f"reward.detector is {self.detector!r} but reward.detector_path is empty: give the "
                             "folder of `rlt train-detector --out`")
        if self.reset_delay_s < 0 or self.tick_hz <= 0:
            raise ValueError("reward.reset_delay_s must be >= 0 and reward.tick_hz > 0")
        if self.detector_grace_s < 0 or self.detector_failure_after_s <= 0:
            raise ValueError("reward.detector_grace_s must be >= 0 and reward.detector_failure_after_s > 0")


class RewardNode(RltNode):
    CONFIGS = {"arm": ArmConfig, "reward": RewardConfig, "episode": EpisodeConfig}  # prefix -> configuration

    def __init__(self):
        super().__init__("reward")
        # episode ids from the wall clock: a restarted reward node never reuses one (the replay, the learner's
        # outcome gate and the followers would mix two episodes)
        self.episodes = EpisodeManager(self.episode_config, first_episode_id(time.time()))
        self.rejected = 0
        self._lock = threading.RLock()
        self._resetting = False
        self.events = self.create_publisher(EpisodeEvent, "/rlt/events", qos.EVENTS)
        self.create_service(Trigger, "/rlt/mark_success", lambda rq, rs: self._trigger(rs, self._mark, True))
        self.create_service(Trigger, "/rlt/mark_failure", lambda rq, rs: self._trigger(rs, self._mark, False))
        self.create_service(Trigger, "/rlt/start_rl", lambda rq, rs: self._trigger(rs, self._handover))
        self.create_service(Trigger, "/rlt/start_episode", lambda rq, rs: self._trigger(rs, self._start))
        self.create_service(SetBool, "/rlt/intervention", self._on_intervention)
        self.create_service(MarkEpisode, "/rlt/mark_episode", self._on_mark_episode)
        arm = self.arm_config
        self.reset_client = self.create_client(Trigger, arm.reset_service) if arm.reset_service else None
        if self.reward_config.detector == "topic":
            if not arm.success_topic:
                raise ValueError("reward.detector is 'topic' but arm.success_topic is empty")
            self.create_subscription(Bool, arm.success_topic, self._on_detector, qos.STREAM)
        auto = self.episode_config.handover == "auto"
        learned = self.reward_config.detector in LEARNED
        follows = {"switch": auto and self.episode_config.switch == LEARNER,
                   "detector": learned and self.reward_config.detector_path == LEARNER}
        self.switch = self._load_switch() if auto and not follows["switch"] else None
        if self.switch is not None:
            self.gate = self.switch.gate()
        self.detector = self._load_detector() if learned and not follows["detector"] else None
        if follows["switch"]:  # operator mode until the learner's first version arrives
            self.create_subscription(ClassifierWeights, "/rlt/switch_weights", self._on_switch_weights, qos.LATCHED)
        if follows["detector"]:
            self.create_subscription(ClassifierWeights, "/rlt/detector_weights", self._on_detector_weights, qos.LATCHED)
        if self.detector is not None or follows["detector"]:
            self.suggestions = self.create_publisher(String, "/rlt/detector_suggestion", qos.EVENTS)
        if self.switch is not None or self.detector is not None or any(follows.values()):
            self.create_subscription(RLToken, "/rlt/token", self._on_token, qos.STREAM)
        self.create_timer(1.0 / self.reward_config.tick_hz, self._tick)
        if self.reward_config.keyboard:
            threading.Thread(target=self._keyboard, daemon=True).start()
        self._start_timer = self.create_timer(1.0, self._first_start) if self.reward_config.auto_start else None
        detector, handover = self.reward_config.detector, "auto" if self.switch is not None else "operator"
        if follows["detector"]:
            detector += " (the learner's versions; the operator marks until the first arrives)"
        elif learned and self.detector is None:
            detector = "off (failed to load)"
        if follows["switch"]:
            handover = "auto (the learner's versions; the operator hands over until the first arrives)"
        self.get_logger().info(f"ready: arm {arm.name}, detector {detector}, handover {handover}, "
                               f"timeout {self.episode_config.timeout_s} s")

    # --- requests ---------------------------------------------------------------------------------
    def _mark(self, success: bool, source=EventSource.HUMAN, note: str = ""):
        learned = self.reward_config.detector == "auto" and self.detector is not None
        if learned and self.episodes.provisional and source == EventSource.HUMAN:  # the operator overrules it
            return self._publish(self.episodes.overrule(success, self.now(), self.reward_config.detector_grace_s, note))
        event = self._publish(self.episodes.mark(success, self.now(), source, note))
        grace = self.reward_config.detector_grace_s if learned and source == EventSource.DETECTOR else 0.0
        self._schedule_reset(delay=max(self.reward_config.reset_delay_s, grace))  # the reset closes the episode
        return event

    def _handover(self):
        note = LATE_SWITCH if self.switch is not None else ""  # the switch ran and had not handed over
        return self._publish(self.episodes.handover(self.now(), EventSource.HUMAN, note))

    def _start(self):
        if self._resetting:
            raise EpisodeError("the arm is being reset; the next episode starts when it is done")
        return self._publish(self.episodes.start(self.now()))

    def _trigger(self, response, action, *args):
        with self._lock:
            try:
                event = action(*args)
                response.success = True
                response.message = f"episode {event.episode_id}: {event.type.name}"
            except EpisodeError as err:
                self.rejected += 1
                response.success, response.message = False, str(err)
                self.get_logger().warning(f"rejected: {err}")
        return response

    def _on_intervention(self, request, response):
        return self._trigger(response, lambda: self._publish(self.episodes.intervention(request.data, self.now())))

    def _on_mark_episode(self, request, response):
        with self._lock:
            try:
                if len(request.note) > MAX_NOTE:
                    raise EpisodeError(f"note of {len(request.note)} characters: at most {MAX_NOTE}")
                event = self._mark(request.success, EventSource.HUMAN, request.note)
                response.accepted, response.episode_id = True, event.episode_id
                response.message = f"episode {event.episode_id}: {event.type.name}"
            except EpisodeError as err:
                self.rejected += 1
                response.accepted, response.message = False, str(err)
                self.get_logger().warning(f"rejected MarkEpisode: {err}")
        return response

    def _on_detector(self, msg: Bool):
        if not msg.data:
            return
        with self._lock:
            if self.episodes.phase.name != "IDLE":
                self._mark(True, EventSource.DETECTOR, "success detector")

    def _load_switch(self):
        """The handover switch of episode.switch, or None (operator mode) when it cannot be used."""
        from rlt_ros.core.checkpoints import token_identity
        from rlt_ros.core.rlt.switch import HandoverSwitch, SwitchError

        cfg = self.episode_config
        try:
            switch = HandoverSwitch.load(cfg.switch, token_identity(cfg.token_checkpoint or None))
        except (SwitchError, FileNotFoundError) as err:
            self.get_logger().error(f"episode.handover auto: {err}; staying in operator mode (/rlt/start_rl)")
            return None
        self.get_logger().info(f"handover switch {cfg.switch}: threshold {switch.cfg.threshold}, "
                               f"{switch.cfg.consecutive} ticks in a row")
        return switch

    def _load_detector(self):
        """The learned success detector of reward.detector_path, or None (operator mode) when it cannot be used."""
        from rlt_ros.core.checkpoints import token_identity
        from rlt_ros.core.rlt.detector import DetectorError, DetectorRunner, SuccessDetector

        cfg = self.reward_config
        try:
            detector = SuccessDetector.load(cfg.detector_path, token_identity(cfg.detector_token or None))
        except (DetectorError, FileNotFoundError) as err:
            self.get_logger().error(f"reward.detector {cfg.detector}: {err}; staying in operator mode "
                                    "(/rlt/mark_success, /rlt/mark_failure)")
            return None
        self.get_logger().info(f"success detector {cfg.detector_path} ({cfg.detector}): threshold "
                               f"{detector.cfg.threshold}, {detector.cfg.consecutive} ticks in a row, failure after "
                               f"{cfg.detector_failure_after_s} s of critical phase, grace {cfg.detector_grace_s} s")
        return DetectorRunner(detector, cfg.detector_failure_after_s)

    def _on_switch_weights(self, msg: ClassifierWeights):
        """A new version of the switch from learner_node (episode.switch: learner)."""
        from rlt_ros.core.checkpoints import token_identity
        from rlt_ros.core.rlt.switch import HandoverSwitch, SwitchError

        try:
            switch = HandoverSwitch.from_bytes(msg.meta_json, bytes(msg.safetensors),
                                               token_identity(self.episode_config.token_checkpoint or None),
                                               f"/rlt/switch_weights version {msg.version}")
        except SwitchError as err:
            self.rejected += 1
            return self.get_logger().error(f"{err}; keeping the switch in use")
        with self._lock:
            self.switch, self.gate = switch, switch.gate()
        self.get_logger().info(f"handover switch version {msg.version} from the learner: "
                               f"{_held_out(switch.report, 'on_time', 'outside_critical')}")

    def _on_detector_weights(self, msg: ClassifierWeights):
        """A new version of the success detector from learner_node (reward.detector_path: learner); the running
        episode keeps its verdict (at most one per episode)."""
        from rlt_ros.core.checkpoints import token_identity
        from rlt_ros.core.rlt.detector import DetectorError, DetectorRunner, SuccessDetector

        try:
            detector = SuccessDetector.from_bytes(msg.meta_json, bytes(msg.safetensors),
                                                  token_identity(self.reward_config.detector_token or None),
                                                  f"/rlt/detector_weights version {msg.version}")
        except DetectorError as err:
            self.rejected += 1
            return self.get_logger().error(f"{err}; keeping the detector in use")
        with self._lock:
            self.detector = (DetectorRunner(detector, self.reward_config.detector_failure_after_s)
                             if self.detector is None else self.detector.with_model(detector))
        self.get_logger().info(f"success detector version {msg.version} from the learner "
                               f"({self.reward_config.detector}): {_held_out(detector.report, 'accuracy', 'false_success')}")

    def _on_token(self, msg: RLToken):
        """One tick of the switch (VLA phase: its gate hands over once per episode) and of the learned detector
        (critical phase: at most one verdict per episode)."""
        try:
            packet = token_from_msg(msg)
        except MessageError as err:
            self.get_logger().warning(f"rejected token: {err}", throttle_duration_sec=5.0)
            return
        with self._lock:
            if (self.episodes.phase == Phase.IDLE or packet.episode_id != self.episodes.episode_id
                    or packet.stamp < self.episodes.started_at):  # an observation of the scene before the START
                return
            if self.switch is not None and self.episodes.phase == Phase.VLA:
                self._switch_tick(packet)
            if self.detector is not None:
                self._detector_tick(packet)

    def _switch_tick(self, packet: TokenPacket) -> None:
        from rlt_ros.core.rlt.switch import SwitchError

        try:
            p = self.switch.probability(packet.token, packet.proprio)
        except SwitchError as err:
            self.get_logger().error(f"handover switch: {err}; staying in operator mode (/rlt/start_rl)")
            self.switch = None
            return
        if self.gate.update(packet.episode_id, p):
            self._publish(self.episodes.handover(self.now(), EventSource.DETECTOR, f"handover switch p={p:.2f}"))

    def _detector_tick(self, packet: TokenPacket) -> None:
        from rlt_ros.core.rlt.detector import DetectorError

        try:
            p = self.detector.push(packet.episode_id, packet.token, packet.proprio)
        except DetectorError as err:
            self.get_logger().error(f"success detector: {err}; staying in operator mode")
            self.detector = None
            return
        verdict = self.detector.judge(packet.episode_id, self.episodes.critical_elapsed_s(self.now()), p)
        if verdict is None:
            return
        note = f"success detector p={p:.3f}"
        if self.reward_config.detector == "auto":
            self._mark(verdict, EventSource.DETECTOR, note)
            return
        text = f"episode {packet.episode_id}: {'SUCCESS' if verdict else 'FAILURE'} ({note}); confirm with " \
               f"/rlt/mark_{'success' if verdict else 'failure'}"
        self.suggestions.publish(String(data=text))
        self.get_logger().info(f"suggestion: {text}")

    # --- episode cycle ----------------------------------------------------------------------------
    def _publish(self, event):
        self.events.publish(event_to_msg(event))
        self.get_logger().info(f"episode {event.episode_id}: {event.type.name} ({event.source.name})"
                               + (f" {event.note}" if event.note else ""))
        if event.type.terminal:
            self.get_logger().info(f"success rate {self.episodes.success_rate():.2f} over the last "
                                   f"{min(len(self.episodes.history), self.episode_config.stats_window)} episodes")
        return event

    def _tick(self):
        with self._lock:
            event = self.episodes.tick(self.now())
            if event is not None:
                self._publish(event)
                self._schedule_reset()

    def _first_start(self):
        self.destroy_timer(self._start_timer)  # one-shot
        self._schedule_reset(delay=0.0)

    def _schedule_reset(self, delay: float | None = None):
        self._resetting = True
        timer = None

        def fire():  # one-shot: destroyed, so that hours of practice do not pile up cancelled timers
            self.destroy_timer(timer)
            self._request_reset()

        timer = self.create_timer(self.reward_config.reset_delay_s if delay is None else max(delay, 1e-3), fire)

    def _request_reset(self):
        if self.reset_client is None:
            self._reset_done(True, "no reset service: the operator resets the scene")
            return
        if not self.reset_client.service_is_ready():
            self.get_logger().warning(f"waiting for reset service {self.arm_config.reset_service}",
                                      throttle_duration_sec=5.0)
            self._schedule_reset(delay=0.5)
            return
        future = self.reset_client.call_async(Trigger.Request())
        future.add_done_callback(lambda f: self._reset_done(f.result() is not None and f.result().success,
                                                           f.result().message if f.result() else "no answer"))

    def _reset_done(self, ok: bool, message: str):
        with self._lock:
            if not ok:
                self.get_logger().error(f"reset failed: {message}; retrying")
                self._schedule_reset(delay=1.0)
                return
            self._publish(self.episodes.reset_event(self.now()))
            self._resetting = False
            if self.reward_config.auto_start:
                self._publish(self.episodes.start(self.now()))

    def _keyboard(self):
        keys = {"s": (self._mark, True), "f": (self._mark, False), "h": (self._handover,), "n": (self._start,)}
        self.get_logger().info("keyboard: s = success, f = failure, h = hand over to RL, n = next episode")
        while True:
            ready, _, _ = select.select([sys.stdin], [], [], 0.5)
            if not ready:
                continue
            key = sys.stdin.readline().strip().lower()[:1]
            if key in keys:
                action, *args = keys[key]
                with self._lock:
                    try:
                        action(*args)
                    except EpisodeError as err:
                        self.get_logger().warning(f"rejected: {err}")


def _held_out(report: dict, *names: str) -> str:
    test = report.get("test")
    if not test:
        return "no held-out episodes yet"
    shown = ", ".join(f"{n} {test[n]:.2f}" for n in names if test.get(n) is not None)
    return f"{shown} on {test['episodes']} held-out episodes"


def main(args=None):
    run(RewardNode, args)


if __name__ == "__main__":
    main()
