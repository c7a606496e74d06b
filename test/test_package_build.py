"""The ROS-install path: the repository builds as the ament package rlt_ros (what `colcon build` runs).

Configures, builds and installs the package with CMake against the PyPI ROS 2 in this venv (the
underlay, as /opt/ros/<distro> would be), then checks the install tree: generated interfaces next to
the hand-written Python package, one executable per node under lib/rlt_ros, launch/ and config/ under
share/rlt_ros, and that a node module imports from the install with the interfaces.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlt_ros.graph import NODES

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_ament_package_build_and_install(tmp_path):
    src, build, install = tmp_path / "src" / "rlt_ros", tmp_path / "build", tmp_path / "install"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:  # a workspace's src/ holds the repository, not the venv
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes((ROOT / rel).read_bytes())
    env = dict(os.environ, AMENT_PREFIX_PATH=sys.prefix, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    for cmd in (["cmake", "-S", str(src), "-B", str(build), f"-DCMAKE_INSTALL_PREFIX={install}",
                 f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
                ["cmake", "--build", str(build), "-j", "2"], ["cmake", "--install", str(build)]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    executables = {p.name for p in (install / "lib" / "rlt_ros").iterdir() if os.access(p, os.X_OK)}
    assert executables == {spec.executable for spec in NODES}
    share = install / "share" / "rlt_ros"
    assert (share / "launch" / "train.launch.py").is_file() and (share / "config" / "arms" / "ur.yaml").is_file()
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "rlt_ros").is_file()
    site = next(install.glob("lib/python3*/site-packages"))
    assert (site / "rlt_ros" / "msg" / "_rl_token.py").is_file() and (site / "rlt_ros" / "cli.py").is_file()
    check = subprocess.run(
        [sys.executable, "-c", "import rlt_ros, rlt_ros.nodes.reward_node; from rlt_ros.msg import RLToken; "
         "print(rlt_ros.__path__)"], cwd=tmp_path, capture_output=True, text=True,
        env=dict(env, PYTHONPATH=str(site), AMENT_PREFIX_PATH=f"{install}:{sys.prefix}",
                 LD_LIBRARY_PATH=f"{install / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}"))
    assert check.returncode == 0, check.stderr
    assert str(site / "rlt_ros") in check.stdout
