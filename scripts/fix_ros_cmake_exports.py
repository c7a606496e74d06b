"""Repair the build-host paths that the ROS 2 PyPI wheels bake into their CMake exports.

The wheels are built on a manylinux host; 17 ``share/**/*Export.cmake`` files name that host's
Python include directory (``/opt/python/cpXY-cpXY/include/python3.X``) and its numpy include
directory, and CMake stops on paths that do not exist. This rewrites them to the virtual
environment's own Python and numpy include directories. Idempotent.

usage: python fix_ros_cmake_exports.py VENV
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

HOST_PYTHON_INCLUDE = re.compile(r"/opt/python/cp\d+-cp\d+[a-z]*/include/python3\.\d+[a-z]*")
HOST_NUMPY_INCLUDE = re.compile(r"/opt/python/cp\d+-cp\d+[a-z]*/lib/python3\.\d+[a-z]*/site-packages/numpy/(?:_core|core)/include")


def main(venv: str) -> int:
    import numpy

    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    if not Path(python_include, "Python.h").exists():
        print(f"error: {python_include}/Python.h is missing: install the Python headers "
              "(Debian/Ubuntu: apt-get install python3-dev)", file=sys.stderr)
        return 1
    fixed = 0
    for path in sorted(Path(venv, "share").glob("*/cmake/*Export.cmake")):
        text = path.read_text()
        new = HOST_NUMPY_INCLUDE.sub(numpy_include, text)
        new = HOST_PYTHON_INCLUDE.sub(python_include, new)
        if new != text:
            path.write_text(new)
            fixed += 1
    print(f"rewrote {fixed} export files -> {python_include}, {numpy_include}", end="")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    sys.exit(main(sys.argv[1]))
