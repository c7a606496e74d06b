"""The core never imports rclpy or ROS message packages: import every core module with them blocked."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE_MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in (ROOT / "rlt_ros" / "core").rglob("*.py"))

BLOCKER = r"""
import sys, importlib, importlib.abc
BLOCKED = ("rclpy", "rosidl", "std_msgs", "sensor_msgs", "geometry_msgs", "trajectory_msgs", "std_srvs",
           "visualization_msgs", "diagnostic_msgs", "builtin_interfaces", "rcl_interfaces", "rlt_ros.msg",
           "rlt_ros.srv", "rlt_ros.ros", "rlt_ros.nodes")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"core module imported ROS package {name!r}")
sys.meta_path.insert(0, Block())
failed = []
for module in sys.argv[1:]:
    try:
        importlib.import_module(module)
    except ImportError as err:
        if "ROS package" in str(err):
            failed.append(f"{module}: {err}")
        elif "lerobot" in str(err) or "transformers" in str(err):
            pass  # optional backends: their absence is not a purity problem
        else:
            failed.append(f"{module}: {err!r}")
print("\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_core_modules_found():
    assert "rlt_ros.core.validation" in CORE_MODULES and len(CORE_MODULES) >= 5


def test_core_imports_without_ros():
    result = subprocess.run([sys.executable, "-c", BLOCKER, *CORE_MODULES], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
