"""Two real nodes in separate processes exchange an RLToken and a MarkEpisode call over DDS."""

import sys

import numpy as np
import pytest

from ros_harness import ROOT, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.timeout(90)]


def test_token_and_mark_episode_over_dds(processes, ros_node):
    from std_msgs.msg import String

    from rlt_ros.core.interfaces import Phase, TokenPacket
    from rlt_ros.msg import RLToken
    from rlt_ros.ros import qos
    from rlt_ros.ros.conversions import token_from_msg, token_to_msg
    from rlt_ros.srv import MarkEpisode

    peer = processes.start("token_peer", [sys.executable, str(ROOT / "test" / "peers" / "token_peer.py")])
    echoes, rejections = [], []
    ros_node.create_subscription(RLToken, "/peer/echo", echoes.append, qos.STREAM)
    ros_node.create_subscription(String, "/peer/rejected", rejections.append, qos.STREAM)
    pub = ros_node.create_publisher(RLToken, "/rlt/token", qos.STREAM)
    client = ros_node.create_client(MarkEpisode, "/rlt/mark_episode")

    # before any token, marking is refused
    assert client.wait_for_service(timeout_sec=30), processes.log(peer)
    def call(success, note):
        future = client.call_async(MarkEpisode.Request(success=success, note=note))
        wait_for(future.done, 10, ros_node.spin_once, "MarkEpisode response")
        return future.result()
    assert not call(True, "too early").accepted

    rng = np.random.default_rng(0)
    sent = TokenPacket(stamp=12.5, episode_id=7, phase=Phase.RL, token=rng.normal(size=64).astype(np.float32),
                       proprio=rng.normal(size=10).astype(np.float32), joint_names=("j1", "j2", "j3"),
                       reference_chunk=rng.normal(size=(50, 3)).astype(np.float32), step_dt=0.02)
    wait_for(lambda: pub.get_subscription_count() > 0, 20, ros_node.spin_once, "peer subscription")
    def publish_until_echo():
        pub.publish(token_to_msg(sent))
        ros_node.spin_once(0.2)
        return bool(echoes)
    wait_for(publish_until_echo, 20, what="the RLToken echo")
    got = token_from_msg(echoes[0])
    assert got.episode_id == 7 and got.phase == Phase.RL and got.joint_names == sent.joint_names
    np.testing.assert_array_equal(got.token, sent.token)
    np.testing.assert_array_equal(got.reference_chunk, sent.reference_chunk)
    assert got.stamp == pytest.approx(12.5)

    # a malformed token (chunk length != rows x cols) is rejected by the peer's validation
    bad = token_to_msg(sent)
    bad.chunk_rows = 49
    pub.publish(bad)
    wait_for(lambda: bool(rejections), 10, ros_node.spin_once, "the rejection")
    assert "reference_chunk" in rejections[0].data and "49 x 3" in rejections[0].data

    first = call(True, "peg fully inserted")
    assert first.accepted and first.episode_id == 7, first.message
    second = call(False, "double mark")
    assert not second.accepted and "already marked" in second.message
    assert processes.stop(peer) in (0, -2), processes.log(peer)


def test_a_hanging_rclpy_teardown_still_exits():
    """After the node's close(), a hung rclpy teardown ends the process (code 0) instead of waiting for SIGKILL."""
    import subprocess
    import sys

    code = ("import threading, time\n"
            "from rlt_ros.ros import node_base\n"
            "node_base.RCLPY_CLEANUP_S = 0.5\n"
            "threading.Thread(target=node_base._exit_if_teardown_hangs, args=(threading.Event(), 'stuck')).start()\n"
            "time.sleep(30)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0 and "[stuck] rclpy teardown still running after 0.5 s: exiting" in proc.stderr


def test_ctrl_c_during_message_conversion_is_a_clean_stop():
    """Ctrl-C while rclpy converts a received message (seen in CI-like runs: monitor_node exited 1 with
    "Unable to convert call argument '0' to Python object") stops the node cleanly: close() runs, code 0."""
    import subprocess

    proc = subprocess.run([sys.executable, str(ROOT / "test" / "peers" / "interrupted_listener.py")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "closed" in proc.stdout
    assert "stopping: the shutdown signal interrupted a callback (Unable to convert" in proc.stderr


def test_a_renamed_parameter_is_refused_with_its_new_name(ros_node):
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from rlt_ros.ros.parameters import ParameterError, reject_unknown_parameters

    node = Node("renamed_probe", context=ros_node.context,
                parameter_overrides=[Parameter("episode.switch_token", value="/runs/token")])
    try:
        node.declare_parameter("episode.timeout_s", 30.0)
        with pytest.raises(ParameterError, match="episode.switch_token is now episode.token_checkpoint"):
            reject_unknown_parameters(node)
    finally:
        node.destroy_node()
