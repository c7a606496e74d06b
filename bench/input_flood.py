"""actor_node's control rate while another process floods one of its inputs (issue 19 #9), over real DDS.

    python bench/input_flood.py [--seconds 12] [--flood-hz 2000] [--old-actor FILE]

The actor (train graph, simulated arm's parameters, wall clock) is put in an intervention, where every
control tick sends a one-row command, and driven by test/peers/input_flood.py (joint states 50 Hz, RL tokens
and teleop 25 Hz); a second, niced process of the same script floods /rlt/token, then /rlt/teleop. Prints
the commanded rows per second (counted by the actor's own stamps on /rlt/action_chunk) and the actor's CPU,
as a markdown table. The figures depend on the machine's load: note it (the table prints the load average).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test"))


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(seconds: float, flood_hz: float, settle: float = 2.0) -> dict[str, dict]:
    from ros_harness import isolated_env

    env = isolated_env(random.randint(1, 101))
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "RMW_IMPLEMENTATION",
                                           "FASTDDS_DEFAULT_PROFILES_FILE", "AMENT_PREFIX_PATH")})
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from rlt_ros import graph as graph_mod
    from rlt_ros.msg import ActionChunk
    from rlt_ros.ros.conversions import to_seconds

    rclpy.init()
    node = rclpy.create_node("input_flood_bench")
    chunks = []
    node.create_subscription(ActionChunk, "/rlt/action_chunk", lambda m: chunks.append((to_seconds(m.header.stamp), m.rows)),
                             QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    # joint states may be 1 s old: on a loaded machine best-effort joint states arrive late or not at all (the
    # transport's, not the control loop's: also seen by a plain subscriber), which would hide what the loop does
    overrides = {"use_sim_time": False, "actor.autostart": True, "actor.max_joint_state_age_s": 1.0}
    spec = next(s for s in graph_mod.graph("train", "sim", {"actor": overrides}) if s.name == "actor")
    tmp = tempfile.mkdtemp(prefix="input_flood_")
    actor = subprocess.Popen([sys.executable, "-m", spec.module, *graph_mod.ros_args(
        spec, graph_mod.write_overrides(spec, tmp))], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT, start_new_session=True)
    peer = [sys.executable, str(ROOT / "test" / "peers" / "input_flood.py")]
    cases = {"no flood": [], f"/rlt/token at {flood_hz:g} Hz": ["--token-hz", str(flood_hz)],
             f"/rlt/teleop at {flood_hz:g} Hz": ["--teleop-hz", str(flood_hz)]}
    results = {}
    try:
        for episode, (name, flood) in enumerate(cases.items(), start=1):
            duration = str(seconds + (8.0 if episode == 1 else 0.0))  # the actor starts meanwhile
            procs = [subprocess.Popen([*peer, "--episode", str(episode), "--seconds", duration, "--events",
                                       "--joint-states-hz", "50", "--token-hz", "25", "--teleop-hz", "25"],
                                      env=env, stdout=subprocess.PIPE, text=True)]
            if flood:  # niced: on a 2-core machine the flooding Python process would take the driver's core
                procs.append(subprocess.Popen(["nice", "-n", "10", *peer, "--episode", str(episode), "--seconds",
                                               duration, *flood], env=env, stdout=subprocess.PIPE, text=True))
            if episode == 1:
                deadline = time.time() + 40
                while not chunks and time.time() < deadline:
                    rclpy.spin_once(node, timeout_sec=0.05)
            start = time.time() + settle
            stop = start + seconds - settle - 1.0
            while time.time() < start:
                rclpy.spin_once(node, timeout_sec=0.01)
            cpu = _cpu_s(actor.pid)
            while time.time() < stop:
                rclpy.spin_once(node, timeout_sec=0.01)
            cpu = (_cpu_s(actor.pid) - cpu) / (stop - start)
            sent = [p.communicate(timeout=30)[0].strip() for p in procs]
            for _ in range(100):
                rclpy.spin_once(node, timeout_sec=0.01)
            rows = sum(n for stamp, n in chunks if start <= stamp < stop) / (stop - start)
            results[name] = {"rows_per_s": rows, "cpu": cpu, "flood_hz": float(sent[-1].split("=")[-1]) if flood else 0}
    finally:
        os.killpg(actor.pid, signal.SIGINT)
        actor.wait(20)
        node.destroy_node()
        rclpy.shutdown()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=12.0, help="per case")
    ap.add_argument("--flood-hz", type=float, default=2000.0)
    a = ap.parse_args()
    results = measure(a.seconds, a.flood_hz)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| input | flood achieved [msg/s] | commanded rows/s (50 = every tick) | actor CPU [% of a core] |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['flood_hz']:.0f} | {r['rows_per_s']:.1f} | {100 * r['cpu']:.0f} |")


if __name__ == "__main__":
    main()
