"""What every rlt_ros node shares: parameter declaration from the core's configs, and main().

A node lists its configurations in ``CONFIGS = {prefix: ConfigClass}``; ``RltNode`` declares each
config's fields as parameters ``<prefix>.<field>``, rejects unknown parameters, and exposes the built
configs as attributes ``<prefix>_config``. ``rlt info --params`` and docs/parameters.md
read the same ``CONFIGS``. ``run(NodeClass)`` is the canonical rclpy main: init, spin,
clean shutdown on Ctrl-C or external shutdown, a non-zero exit code on a configuration error.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from rlt_ros.ros.parameters import ParameterError, declare_config, reject_unknown_parameters


class RltNode(Node):
    CONFIGS: dict[str, type] = {}  # parameter prefix -> configuration dataclass (each node sets its own)
    RUNTIME: tuple[str, ...] = ()  # parameters that `ros2 param set` may change while the node runs

    def __init__(self, name: str, **kwargs):
        super().__init__(name, **kwargs)
        for prefix, cls in self.CONFIGS.items():
            setattr(self, f"{prefix}_config", declare_config(self, cls, f"{prefix}."))
        reject_unknown_parameters(self)
        if "arm" in self.CONFIGS and not self.arm_config.configured:
            raise ParameterError(f"{name}: arm.joint_names is empty; pass --params-file config/arms/<arm>.yaml")
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _on_set_parameters(self, params):
        """Accept changes to ``RUNTIME`` parameters (validated by their dataclass, then ``on_config_changed``);
        refuse every other one: it is read at start-up, and accepting it would change nothing."""
        from rcl_interfaces.msg import SetParametersResult

        updates: dict[str, dict] = {}
        for p in params:
            if p.name == "use_sim_time" and p.value == self.get_parameter("use_sim_time").value:
                continue  # rclpy sets it at start-up; switching clocks while running would stop the node
            if p.name not in self.RUNTIME:
                changeable = f"; changeable while running: {', '.join(self.RUNTIME)}" if self.RUNTIME else ""
                return SetParametersResult(successful=False, reason=f"{p.name} is read at start-up: restart "
                                           f"{self.get_name()} to change it{changeable}")
            prefix, field = p.name.split(".", 1)
            updates.setdefault(prefix, {})[field] = p.value
        try:
            changed = {prefix: dataclasses.replace(getattr(self, f"{prefix}_config"), **fields)
                       for prefix, fields in updates.items()}
        except (TypeError, ValueError) as err:
            return SetParametersResult(successful=False, reason=str(err))
        for prefix, config in changed.items():
            setattr(self, f"{prefix}_config", config)
            self.on_config_changed(prefix, config)
            self.get_logger().info(f"parameters changed: {updates[prefix]}")
        return SetParametersResult(successful=True)

    def create_latest_input(self, msg_type, topic: str, handle, qos_profile):
        """A subscription the executor never runs: the owner's control tick calls ``take()``, which hands the
        newest message since the last tick to ``handle`` (ros.latest; a flood then cannot starve the tick)."""
        from rlt_ros.ros.latest import LatestInput

        return LatestInput(self, msg_type, topic, handle, qos_profile)

    def on_config_changed(self, prefix: str, config) -> None:
        """Called after a ``RUNTIME`` parameter of ``<prefix>_config`` changed (nodes that have some override it)."""

    def now(self) -> float:
        """ROS time (simulated time when use_sim_time is set) in seconds."""
        return self.get_clock().now().nanoseconds * 1e-9


RCLPY_CLEANUP_S = 8.0  # longest wait for rclpy's own teardown after the node closed (below rlt launch's 15 s)


def _exit_if_teardown_hangs(done: threading.Event, name: str) -> None:
    """rclpy's executor teardown can hang after Ctrl-C (known rclpy executor issues). The node's own
    ``close()`` (which saves what must be saved) has run by then; exit instead of waiting for SIGKILL."""
    if not done.wait(RCLPY_CLEANUP_S):
        print(f"[{name}] rclpy teardown still running after {RCLPY_CLEANUP_S:g} s: exiting", file=sys.stderr, flush=True)
        os._exit(0)


def _shut_down_within(seconds: float) -> bool:
    """True once rclpy is shut down, waiting up to ``seconds``: rclpy's SIGINT handler may run just after
    the conversion it interrupted raised."""
    deadline = time.monotonic() + seconds
    while rclpy.ok() and time.monotonic() < deadline:
        time.sleep(0.01)
    return not rclpy.ok()


def run(node_class, args=None) -> None:
    """Create and spin ``node_class()`` on a single-threaded executor; exit code 1 when the node cannot start
    (configuration, hardware). One thread: rclpy's MultiThreadedExecutor costs ~4x the CPU per message
    (measured: 3.4 ms against 0.8 ms at 100 Hz), and a node's default callback group runs one callback at a
    time anyway; slow work (a VLA forward, deserialising weights, training) runs in the node's own threads."""
    rclpy.init(args=args)
    node = None
    executor = SingleThreadedExecutor()
    code = 0
    try:
        node = node_class()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ParameterError, ValueError, RuntimeError, FileNotFoundError) as err:
        if node is None:
            rclpy.logging.get_logger(node_class.__name__).fatal(f"cannot start: {err}")
            code = 1
        elif isinstance(err, RuntimeError) and _shut_down_within(0.5):
            # the stop signal arrived while rclpy converted a received message to Python: pybind11 reports
            # the interrupted conversion as "Unable to convert call argument '0' to Python object"
            rclpy.logging.get_logger(node.get_name()).info(f"stopping: the shutdown signal interrupted a callback ({err})")
        else:  # a failure while running is a bug: show the traceback
            raise
    finally:
        if node is not None and hasattr(node, "close"):
            node.close()
        done = threading.Event()
        threading.Thread(target=_exit_if_teardown_hangs, args=(done, node_class.__name__), daemon=True).start()
        executor.shutdown(timeout_sec=RCLPY_CLEANUP_S / 2)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        done.set()
    if code:
        sys.exit(code)
