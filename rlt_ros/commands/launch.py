"""``rlt launch train|eval arm:=sim [rviz:=false] [minutes:=M] [params:=my.yaml]``: a node graph without ``ros2 launch``.

It starts the same nodes as ``ros2 launch rlt_ros train.launch.py arm:=sim`` (both build from
``rlt_ros.graph``), one process per node::

    python -m rlt_ros.nodes.<executable> --ros-args -r __node:=<name> --params-file ... --params-file ...

prints their output prefixed with the node name (``[actor] ...``), forwards Ctrl-C (SIGINT) to all,
and stops the whole graph when one node exits by itself. Exit status: 0 when every node ended cleanly,
1 when a node failed, died, or had to be killed.

:class:`GraphProcesses` is the reusable part (``rlt demo`` starts its graph through it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

from rlt_ros.core.arm import ARMS
from rlt_ros import graph as graph_mod
from rlt_ros.graph import KINDS, NodeSpec

LAUNCH_ARGS = {
    "arm": f"the arm: {'|'.join(ARMS)} (default sim)",
    "rviz": "true|false: also start rviz2 with config/rlt.rviz when rviz2 is installed (default false)",
    "minutes": "stop the graph after this many minutes (default: run until Ctrl-C)",
    "params": "an extra ROS parameter file applied after config/rlt.yaml and config/arms/<arm>.yaml",
    **graph_mod.VLA_LAUNCH_ARGS,
}
# return codes of a process that stopped because it was asked to (SIGINT or SIGTERM)
_CLEAN_STOP = {0, -signal.SIGINT, 128 + signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGTERM}


def graph_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of node processes: ``base`` (default os.environ) plus what ROS from PyPI needs.

    AMENT_PREFIX_PATH defaults to this interpreter's prefix (the venv is the ament prefix of the ROS
    wheels); FASTDDS_DEFAULT_PROFILES_FILE to config/fastdds_shm.xml (a shared-memory segment large
    enough for camera images); output is unbuffered so that prefixed lines appear as they are logged.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("AMENT_PREFIX_PATH", sys.prefix)
    profile = graph_mod.config_dir() / "fastdds_shm.xml"
    if profile.is_file():
        env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "1")
    # the rlt_ros that runs this launcher is the one the nodes import (a checkout on PYTHONPATH, or installed)
    root = str(Path(graph_mod.__file__).resolve().parents[1])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths and root not in site.getsitepackages():
        env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM when the launcher dies (even by SIGKILL), so no node is orphaned. And
    SIGINT stops it even when the launcher ignores SIGINT (a background job of a script: `rlt demo &`)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class _Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    reader: threading.Thread | None = None
    stop_requested: bool = False
    killed: bool = False


class GraphProcesses:
    """Start a graph's nodes as processes, relay their output, stop them together.

    Usage::

        with GraphProcesses(graph("train", "sim")) as procs:
            code = procs.run(minutes * 60)     # or procs.start(); ...; procs.stop()

    Each child runs in its own session (a terminal's Ctrl-C reaches only the launcher, which forwards
    SIGINT once) and, on Linux, dies with the launcher. Create and stop it from the main thread or from a
    thread that outlives the graph (the kernel ties the children's lifetime to the creating thread).
    """

    def __init__(self, specs: Sequence[NodeSpec], extra: Sequence[tuple[str, list[str]]] = (),
                 env: dict[str, str] | None = None, out: IO[str] | None = None, log_dir: Path | str | None = None,
                 stop_timeout: float = 15.0, python: str = sys.executable):
        self.specs = list(specs)
        self.env = graph_env(env)
        self.out = out if out is not None else sys.stdout
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.stop_timeout = stop_timeout
        self._python = python
        self._extra = list(extra)
        self._children: list[_Child] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.failures: list[str] = []  # one line per node that failed, died or had to be killed

    # ------------------------------------------------------------------ lifecycle
    def commands(self) -> list[tuple[str, list[str]]]:
        """(name, argv) of every process; writes the nodes' overrides files."""
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="rlt_launch_")
        out = []
        for spec in self.specs:
            overrides = graph_mod.write_overrides(spec, self._tmp.name)
            enclave = graph_mod.enclave(spec.name) if graph_mod.security_enabled(self.env) else None
            out.append((spec.name, [self._python, "-m", spec.module, *graph_mod.ros_args(spec, overrides, enclave)]))
        return out + self._extra

    def start(self) -> None:
        if self._children:
            raise RuntimeError("GraphProcesses.start(): already started")
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        for name, argv in self.commands():
            child = _Child(name, argv)
            self._spawn(child)
            self._children.append(child)

    def _spawn(self, child: _Child) -> None:
        child.proc = subprocess.Popen(child.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True,
                                      preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        child.reader = threading.Thread(target=self._relay, args=(child,), name=f"relay-{child.name}", daemon=True)
        child.reader.start()
        self._say(f"started {child.name} (pid {child.proc.pid}): {' '.join(child.argv)}")

    def restart(self, name: str) -> subprocess.Popen:
        """Start node ``name`` again, with the same command line, after its process ended (fault injection)."""
        child = self._child(name)
        if child.proc.poll() is None:
            raise RuntimeError(f"{name} is still running (pid {child.proc.pid})")
        child.reader.join(timeout=2.0)
        self._spawn(child)
        return child.proc

    def process(self, name: str) -> subprocess.Popen:
        """The process of node ``name`` (after ``start()``)."""
        return self._child(name).proc

    def _child(self, name: str) -> _Child:
        for child in self._children:
            if child.name == name:
                return child
        raise KeyError(f"no node {name!r} in this graph; nodes: {[c.name for c in self._children]}")

    def request_stop(self) -> None:
        """Ask ``run()`` to stop the graph (safe from a signal handler or another thread)."""
        self._stop.set()

    def exited(self) -> list[tuple[str, int]]:
        """(name, return code) of the processes that have ended."""
        return [(c.name, c.proc.returncode) for c in self._children if c.proc.poll() is not None]

    def run(self, duration: float | None = None) -> int:
        """Start (if needed), wait until ``duration`` s pass, ``request_stop()``, or a node exits; stop all.

        Returns 0 when every node ended cleanly, else 1 (see ``failures``).
        """
        if not self._children:
            self.start()
        deadline = None if duration is None else time.monotonic() + duration
        while not self._stop.wait(0.1):
            ended = self.exited()
            if ended:
                for name, code in ended:
                    self._say(f"{name} exited with code {code}; stopping the graph")
                break
            if deadline is not None and time.monotonic() >= deadline:
                self._say(f"{duration:g} s elapsed; stopping the graph")
                break
        return self.stop()

    def stop(self) -> int:
        """SIGINT to every node, SIGTERM then SIGKILL to those still running after ``stop_timeout``."""
        for child in self._children:
            if child.proc.poll() is None:
                child.stop_requested = True
                self._signal(child, signal.SIGINT)
        self._wait_all(self.stop_timeout)
        for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            alive = [c for c in self._children if c.proc.poll() is None]
            if not alive:
                break
            for child in alive:
                child.killed = True
                self._say(f"{child.name} did not stop after SIGINT; sending {sig.name}")
                self._signal(child, sig)
            self._wait_all(grace)
        for child in self._children:
            if child.reader is not None:
                child.reader.join(timeout=2.0)
        self.failures = [f for f in (self._failure(c) for c in self._children) if f]
        for line in self.failures:
            self._say(f"FAILED: {line}")
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return 1 if self.failures else 0

    def __enter__(self) -> "GraphProcesses":
        return self

    def __exit__(self, *exc) -> None:
        if any(c.proc.poll() is None for c in self._children):
            self.stop()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _failure(child: _Child) -> str | None:
        code = child.proc.returncode
        if child.killed:
            return f"{child.name} had to be killed (code {code})"
        if child.stop_requested:
            return None if code in _CLEAN_STOP else f"{child.name} ended with code {code} while stopping"
        return None if code == 0 else f"{child.name} died with code {code}"

    def _wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for child in self._children:
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass

    @staticmethod
    def _signal(child: _Child, sig: int) -> None:
        try:
            os.killpg(child.proc.pid, sig)  # the node and anything it started
        except ProcessLookupError:
            pass

    def _relay(self, child: _Child) -> None:
        log = open(self.log_dir / f"{child.name}.log", "a") if self.log_dir is not None else None
        try:
            for raw in iter(child.proc.stdout.readline, b""):
                line = raw.decode(errors="replace").rstrip("\n")
                if log is not None:
                    log.write(line + "\n")
                    log.flush()
                self._write(f"[{child.name}] {line}")
        finally:
            child.proc.stdout.close()
            if log is not None:
                log.close()

    def _say(self, text: str) -> None:
        self._write(f"[rlt launch] {text}")

    def _write(self, line: str) -> None:
        with self._lock:
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except (ValueError, OSError):  # output closed (e.g. a pipe to `head`): keep draining the child
                pass


# ---------------------------------------------------------------------------------------- command
def parse_launch_args(items: Sequence[str]) -> dict[str, str]:
    """``["arm:=sim", "rviz:=true"]`` -> {"arm": "sim", "rviz": "true"}; unknown names are an error."""
    values = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ValueError(f"launch argument {item!r}: expected name:=value, e.g. arm:=sim")
        if name not in LAUNCH_ARGS:
            raise ValueError(f"unknown launch argument {name!r}; valid: {', '.join(LAUNCH_ARGS)}")
        values[name] = value
    return values


def _bool(name: str, value: str) -> bool:
    if value.lower() in ("true", "1", "yes", "on"):
        return True
    if value.lower() in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name}:={value}: expected true or false")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=KINDS, help="the graph: train (with the learner) or eval")
    parser.add_argument("launch_args", nargs="*", metavar="name:=value",
                        help="; ".join(f"{k}: {v}" for k, v in LAUNCH_ARGS.items()))
    parser.add_argument("--log-dir", type=Path, default=None, help="also write each node's output to <dir>/<node>.log")
    parser.add_argument("--dry-run", action="store_true", help="print the node commands and exit")


def run(args: argparse.Namespace) -> int:
    try:
        values = parse_launch_args(args.launch_args)
        arm = values.get("arm", "sim")
        rviz = _bool("rviz", values.get("rviz", "false"))
        minutes = float(values["minutes"]) if "minutes" in values else None
        if minutes is not None and minutes <= 0:
            raise ValueError(f"minutes:={minutes:g}: must be > 0")
        extra_params = (values["params"],) if "params" in values else ()
        specs = graph_mod.graph(args.kind, arm, overrides=graph_mod.vla_overrides(values), extra_params=extra_params)
    except (ValueError, FileNotFoundError) as err:
        print(f"rlt launch: {err}", file=sys.stderr)
        return 2
    extra = []
    if rviz:
        if shutil.which("rviz2"):
            extra.append(("rviz", ["rviz2", "-d", graph_mod.rviz_config()]))
        else:
            print("rlt launch: rviz:=true but rviz2 is not installed (it is not on PyPI; install ROS 2 with "
                  "rviz2 and run it with -d config/rlt.rviz); continuing without it", file=sys.stderr)
    procs = GraphProcesses(specs, extra=extra, log_dir=args.log_dir)
    if args.dry_run:
        for name, argv in procs.commands():
            print(f"{name}: {' '.join(argv)}")
        procs.stop()
        return 0

    def on_signal(signum, frame):
        del frame
        procs.request_stop()
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts the launcher

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with procs:
        return procs.run(None if minutes is None else minutes * 60.0)
