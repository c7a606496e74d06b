"""Helpers for tests that run real ROS 2 nodes over DDS.

Every test gets its own ROS_DOMAIN_ID and localhost-only discovery; node processes start in their
own process group and are killed (SIGINT, then SIGKILL) at teardown, so no process is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def isolated_env(domain_id: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ROS_DOMAIN_ID=str(domain_id),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        RMW_IMPLEMENTATION="rmw_fastrtps_cpp",
        FASTDDS_DEFAULT_PROFILES_FILE=str(ROOT / "config" / "fastdds_shm.xml"),
        AMENT_PREFIX_PATH=env.get("AMENT_PREFIX_PATH", sys.prefix),
        MUJOCO_GL=env.get("MUJOCO_GL", "egl"),
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])]),
        PYTHONUNBUFFERED="1",
    )
    return env


class Processes:
    """Start node processes; ``close()`` stops all of them and reports any still alive."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir, self.procs = env, log_dir, []

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.log_dir,
                                start_new_session=True)
        proc.log_path = self.log_dir / f"{name}.log"
        self.procs.append(proc)
        return proc

    def start_module(self, name: str, module: str, *args: str) -> subprocess.Popen:
        return self.start(name, [sys.executable, "-m", module, *args])

    def log(self, proc) -> str:
        return Path(proc.log_path).read_text(errors="replace")

    def stop(self, proc, timeout: float = 10.0) -> int:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        return proc.returncode

    def close(self) -> None:
        for proc in self.procs:
            self.stop(proc)
        for proc in self.procs:  # the process group too (children of a launcher)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_for(predicate, timeout: float, spin=None, what="condition"):
    """Poll ``predicate`` (spinning ``spin()`` between polls) until true or raise after ``timeout``; ``what``
    (a string, or a callable giving one at the time of failure, e.g. a node's log) names what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if spin is not None:
            spin()
        else:
            time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
