"""Named QoS profiles, the only place rlt_ros chooses QoS.

SENSOR: camera frames and joint states, best effort, newest only (a late frame is useless).
STREAM: RL tokens, chunks, metrics: best effort would lose learner data, so reliable, shallow.
TRANSITIONS: reliable and deep, so a burst at the end of a chunk is never dropped (transitions and their acknowledgements).
EVENTS: episode events, reliable + transient local so a late joiner sees the recent history.
LATCHED: the latest value only, delivered to late joiners (actor weights, robot description).
COMMAND: commands to the arm driver, reliable, newest only.
LATEST: inputs a control loop drains each tick, keeping the newest (tokens, teleop; ros.latest); depth = most per tick.
"""

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)

SENSOR = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT,
                    durability=DurabilityPolicy.VOLATILE)
STREAM = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
TRANSITIONS = QoSProfile(depth=1000, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
EVENTS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.TRANSIENT_LOCAL)
LATCHED = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
COMMAND = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
LATEST = QoSProfile(depth=64, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
