"""`rlt launch` / GraphProcesses with real processes: output relay, Ctrl-C, dying and stubborn nodes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import pytest

from ros_harness import ROOT, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180)]


def fake(name: str, code: str) -> tuple[str, list[str]]:
    return name, [sys.executable, "-c", f"import signal, sys, time\n{code}"]


TALKER = fake("talker", "print('hello from talker', flush=True)\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n"
                        "    print('talker stopping', flush=True)")


def sim_arm_spec():
    from rlt_ros import graph

    return [s for s in graph.graph("train", "sim") if s.name == "sim_arm"]


class Lines(io.StringIO):
    def lines(self):
        return self.getvalue().splitlines()


def test_graph_processes_relay_output_and_stop_cleanly(ros_domain, tmp_path):
    from rlt_ros.commands.launch import GraphProcesses

    out = Lines()
    procs = GraphProcesses(sim_arm_spec(), extra=[TALKER], env=ros_domain, out=out, log_dir=tmp_path)
    procs.start()
    wait_for(lambda: any(line.startswith("[sim_arm] ") and "simulated arm ready" in line for line in out.lines()),
             60, what=f"the sim_arm's prefixed log line; got {out.lines()}")
    assert "[talker] hello from talker" in out.lines()
    procs.request_stop()
    assert procs.run() == 0, out.getvalue()
    assert "[talker] talker stopping" in out.lines()  # the node got SIGINT (KeyboardInterrupt), not a kill
    assert procs.exited() == [("sim_arm", 0), ("talker", 0)]
    assert "simulated arm ready" in (tmp_path / "sim_arm.log").read_text()


def test_a_dying_node_stops_the_graph_with_an_error(ros_domain):
    from rlt_ros.commands.launch import GraphProcesses

    out = Lines()
    dying = fake("dying", "time.sleep(1.0)\nprint('giving up', flush=True)\nsys.exit(3)")
    procs = GraphProcesses([], extra=[TALKER, dying], env=ros_domain, out=out)
    t0 = time.monotonic()
    assert procs.run(duration=60) == 1
    assert time.monotonic() - t0 < 20
    assert procs.failures == ["dying died with code 3"]
    assert "[talker] talker stopping" in out.lines()  # the healthy node was stopped, cleanly


def test_a_node_ignoring_sigint_is_killed(ros_domain):
    from rlt_ros.commands.launch import GraphProcesses

    out = Lines()
    stubborn = fake("stubborn", "signal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)")
    procs = GraphProcesses([], extra=[stubborn], env=ros_domain, out=out, stop_timeout=1.0)
    procs.start()
    wait_for(lambda: "[stubborn] ready" in out.lines(), 20, what="the stubborn node")
    t0 = time.monotonic()
    assert procs.run(duration=0.1) == 1
    assert time.monotonic() - t0 < 10
    assert procs.failures and "stubborn had to be killed" in procs.failures[0]


def test_rlt_launch_train_graph_comes_up_and_stops_on_ctrl_c(ros_domain, ros_node, tmp_path):
    """The whole train graph of the simulated arm, as a user starts it; Ctrl-C (SIGINT) stops it with code 0."""
    from rlt_ros import graph

    expected = {s.name for s in graph.graph("train", "sim")}
    log = open(tmp_path / "launch.log", "wb")
    params = tmp_path / "params.yaml"  # keep the learner's replay and checkpoints out of the checkout
    params.write_text(f"learner:\n  ros__parameters:\n    learner:\n      output_dir: {tmp_path / 'learner'}\n")
    launcher = subprocess.Popen([sys.executable, "-m", "rlt_ros.cli", "launch", "train", "arm:=sim",
                                 f"params:={params}"], cwd=ROOT,
                                env=ros_domain, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up():
            # a node joins the ROS graph before it has built its parts (the simulator, the VLA); it is up
            # once it has also logged its start-up line
            names = set(ros_node.get_node_names())
            text = (tmp_path / "launch.log").read_text()
            assert launcher.poll() is None, text[-4000:]
            return expected <= names and all(f"[{name}] " in text for name in expected)
        wait_for(up, 120, ros_node.spin_once, "every node of the train graph, started and logging")
        os.killpg(launcher.pid, signal.SIGINT)
        code = launcher.wait(60)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
        log.close()
    text = (tmp_path / "launch.log").read_text()
    assert code == 0, text[-4000:]
    for name in expected:
        assert f"[{name}] " in text
