"""Python packaging of rlt_ros for the path without a ROS install (`make setup` runs `pip install .`).

With a ROS 2 install, colcon builds the package from CMakeLists.txt instead (interfaces + this same
Python package). Both derive the node executables from one fact: every ``rlt_ros/nodes/<name>_node.py``
with a ``main()`` is the executable ``<name>_node``.
"""

import re
from glob import glob
from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).parent
PACKAGE = "rlt_ros"
VERSION = re.search(r"<version>(.+?)</version>", (HERE / "package.xml").read_text()).group(1)
NODES = sorted(Path(p).stem for p in glob(f"{PACKAGE}/nodes/*_node.py"))


def share_tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing ``folder`` (recursively) under share/rlt_ros/."""
    entries: dict[str, list[str]] = {}
    for path in sorted(HERE.glob(f"{folder}/**/*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(HERE)
            entries.setdefault(f"share/{PACKAGE}/{rel.parent}", []).append(str(rel))
    return list(entries.items())


setup(
    name=PACKAGE,
    version=VERSION,
    description="RL Token (RLT) online refinement of a frozen VLA for ROS 2 arms",
    # namespace discovery also lists the data-only folders (rlt_ros/checkpoints/*), whose files package_data ships
    packages=find_namespace_packages(include=[PACKAGE, f"{PACKAGE}.*"], exclude=["*.__pycache__"]),
    package_data={PACKAGE: ["checkpoints/**/*"]},
    include_package_data=True,
    python_requires=">=3.10",
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *share_tree("launch"),
        *share_tree("config"),
    ],
    entry_points={
        "console_scripts": [
            f"rlt = {PACKAGE}.cli:main",
            *(f"{node} = {PACKAGE}.nodes.{node}:main" for node in NODES),
        ],
    },
    zip_safe=False,
)
