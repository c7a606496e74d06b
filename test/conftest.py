import os
import random
import signal

import pytest

from ros_harness import Processes, isolated_env

_used_domains: set[int] = set()
# the processes tests start stop on SIGINT even when pytest runs as a background job of a script (SIGINT
# ignored, which exec passes on to children; a handled signal is reset to its default instead)
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def ros_domain(monkeypatch, tmp_path):
    """An isolated ROS 2 domain for this test: env applied to this process and to node processes, which run in
    the test's tmp_path (relative defaults such as runs/rlt stay out of the checkout and out of other tests)."""
    monkeypatch.chdir(tmp_path)
    domain = random.Random(os.getpid() * 7919 + len(_used_domains)).randint(1, 101)
    while domain in _used_domains:
        domain = domain % 101 + 1
    _used_domains.add(domain)
    env = isolated_env(domain)
    for key in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "RMW_IMPLEMENTATION",
                "FASTDDS_DEFAULT_PROFILES_FILE", "AMENT_PREFIX_PATH"):
        monkeypatch.setenv(key, env[key])
    return env


@pytest.fixture
def processes(ros_domain, tmp_path):
    procs = Processes(ros_domain, tmp_path)
    yield procs
    procs.close()


@pytest.fixture
def ros_node(ros_domain):
    """An rclpy context + node in this test process, on the test's domain; shut down afterwards."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f"test_{os.getpid()}", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    node.spin_once = lambda timeout=0.05: executor.spin_once(timeout_sec=timeout)
    try:
        yield node
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
