"""Install the optional LeRobot VLA backends without replacing rlt_ros's torch (`make setup`, step 8).

requirements/lerobot.txt: lines ``# no-deps: <req>`` are installed with ``--no-deps`` (lerobot itself:
its declared torch<2.11 would replace the project's torch); every other requirement line is installed
normally, constrained to the torch already in the environment.

usage: python install_lerobot.py requirements/lerobot.txt
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path


def main(path: str) -> int:
    import torch

    lines = Path(path).read_text().splitlines()
    no_deps = [ln.split(":", 1)[1].strip() for ln in lines if ln.strip().startswith("# no-deps:")]
    normal = [ln.split("#", 1)[0].strip() for ln in lines]
    normal = [ln for ln in normal if ln]
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraint:
        constraint.write(f"torch=={torch.__version__}\n")
    steps = []
    if normal:
        steps.append([*pip, "-c", constraint.name, *normal])
    if no_deps:
        steps.append([*pip, "--no-deps", *no_deps])
    for cmd in steps:
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            print("\n".join((result.stdout + result.stderr).splitlines()[-15:]), file=sys.stderr)
            return result.returncode
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    sys.exit(main(sys.argv[1]))
