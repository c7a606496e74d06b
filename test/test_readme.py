"""The README's parameter table is the one generated from the nodes' configuration dataclasses."""

import re
from pathlib import Path

from rlt_ros.commands.info import markdown_table

ROOT = Path(__file__).resolve().parents[1]


def test_readme_parameter_table_is_current():
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"<!-- PARAMS:BEGIN -->\n(.*?)\n<!-- PARAMS:END -->", readme, re.S).group(1)
    assert table == markdown_table(), "README parameter table is stale: run scripts/update_readme_params.py"


def test_every_node_parameter_has_a_meaning():
    rows = [line for line in markdown_table().splitlines()[2:]]
    assert rows and all(not line.endswith("|  |") for line in rows), [r for r in rows if r.endswith("|  |")]


def test_readers_of_a_parameter_prefix_come_from_the_nodes():
    """`rlt demo --critical-timeout` sets episode.* on every node that reads it, found from the nodes' CONFIGS."""
    from rlt_ros.commands.info import readers_of

    assert readers_of("episode") == ["learner", "reward", "monitor"]
    assert readers_of("driver") == ["sim_arm"] and readers_of("no_such_prefix") == []
