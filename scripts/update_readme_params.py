"""Rewrite the README's parameter table from the nodes' configurations (`rlt info --params --markdown`)."""

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's rlt_ros, not the copy installed in .venv

from rlt_ros.commands.info import markdown_table  # noqa: E402

README = REPO / "README.md"
BLOCK = re.compile(r"(<!-- PARAMS:BEGIN -->\n).*?(<!-- PARAMS:END -->)", re.S)

if __name__ == "__main__":
    README.write_text(BLOCK.sub(lambda m: m.group(1) + markdown_table() + "\n" + m.group(2), README.read_text()))
