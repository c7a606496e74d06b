"""The documentation: every relative link resolves inside the repository, and the generated pages are current."""

import importlib.util
import re
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
# top-level folders that a fresh clone does not have (environment, build outputs, runs, recorded data)
SKIP_DIRS = {".venv", "build", "install", "log", "runs", "data"}
INLINE_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*(?:href|src)=\"([^\"]+)\"", re.I)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def anchors(text: str) -> set[str]:
    """GitHub's anchors of a markdown page's headings: lower case, punctuation dropped, spaces as hyphens."""
    out: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", re.sub(r"```.*?```", "", text, flags=re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = 0
        while (slug if n == 0 else f"{slug}-{n}") in out:
            n += 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _update_docs():
    spec = importlib.util.spec_from_file_location("update_docs", ROOT / "scripts" / "update_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def markdown_files() -> list[Path]:
    """README.md, CONTRIBUTING.md, docs/*.md and every other markdown file of the repository."""
    files = []
    for path in sorted(ROOT.rglob("*.md")):
        parts = path.relative_to(ROOT).parts
        if parts[0] in SKIP_DIRS or any(p.startswith(".") for p in parts[:-1]):
            continue
        files.append(path)
    return files


def links(text: str) -> list[str]:
    """Link targets of a markdown text (inline, reference definitions, HTML), outside code spans and blocks."""
    text = CODE.sub("", text)
    return INLINE_LINK.findall(text) + REFERENCE_DEF.findall(text) + HTML_LINK.findall(text)


def test_the_documents_exist():
    names = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    for required in ("README.md", "CONTRIBUTING.md", "docs/method.md", "docs/parameters.md",
                     "docs/experiments.md", "docs/graph.md"):
        assert required in names, f"{required} is missing"
    assert (ROOT / "LICENSE").is_file() and (ROOT / "CITATION.cff").is_file()


def test_link_extraction_finds_every_kind_of_link():
    text = ("[a](docs/a.md) ![img](b.png \"title\") [c][ref] `[not](code.md)`\n"
            "[ref]: <docs/c.md>\n<a href=\"d.md\">d</a>\n```\n[nor](block.md)\n```\n")
    assert links(text) == ["docs/a.md", "b.png", "docs/c.md", "d.md"]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve_inside_the_repository(path):
    bad = []
    for target in links(path.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # a URL (https:, mailto:) or an anchor in the same page
        file_part = unquote(target.split("#", 1)[0].split("?", 1)[0])
        resolved = (path.parent / file_part).resolve()
        if not resolved.is_relative_to(ROOT):
            bad.append(f"{target} points outside the repository")
        elif not resolved.exists():
            bad.append(f"{target} does not exist")
        elif resolved.relative_to(ROOT).parts[:1] and resolved.relative_to(ROOT).parts[0] in SKIP_DIRS:
            bad.append(f"{target} points into a build or run folder that a fresh clone does not have")
        elif "#" in target and resolved.suffix == ".md" and target.split("#", 1)[1] not in anchors(resolved.read_text()):
            bad.append(f"{target}: no heading with that anchor")
    for target in links(path.read_text()):
        if target.startswith("#") and target[1:] not in anchors(path.read_text()):
            bad.append(f"{target}: no heading with that anchor in this page")
    assert not bad, f"{path.relative_to(ROOT)}: " + "; ".join(bad)


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_document_refers_to_files_outside_the_repository(path):
    text = path.read_text()
    assert "../shared" not in text and "/work/" not in text, (
        f"{path.relative_to(ROOT)} refers to a file outside the repository; link a page under docs/ instead")


def test_anchors_follow_github():
    assert anchors("# A `b` c\n## 2.1 The: x, y's\n## A b c\n") == {"a-b-c", "21-the-x-ys", "a-b-c-1"}


def test_generated_pages_are_current():
    update_docs = _update_docs()
    for path, text in update_docs.expected().items():
        assert path.read_text() == text, (
            f"{path.relative_to(ROOT)} is stale: run `.venv/bin/python scripts/update_docs.py`")


def test_parameter_reference_is_the_nodes_table():
    """docs/parameters.md holds `rlt info --params --markdown`, every parameter with a meaning."""
    from rlt_ros.commands.info import markdown_table

    table = markdown_table()
    assert table in (ROOT / "docs" / "parameters.md").read_text()
    rows = table.splitlines()[2:]
    assert rows and all(not line.endswith("|  |") for line in rows), [r for r in rows if r.endswith("|  |")]


def test_readers_of_a_parameter_prefix_come_from_the_nodes():
    """`rlt demo --critical-timeout` sets episode.* on every node that reads it, found from the nodes' CONFIGS."""
    from rlt_ros.commands.info import readers_of

    assert readers_of("episode") == ["learner", "reward", "monitor"]
    assert readers_of("driver") == ["sim_arm"] and readers_of("no_such_prefix") == []


def test_graph_reference_lists_every_topic_and_service_of_the_nodes():
    update_docs = _update_docs()
    graph = (ROOT / "docs" / "graph.md").read_text()
    names = {e.name for e in update_docs.endpoints()}
    assert {"`/rlt/token`", "`/rlt/mark_success`", "`/rlt/actor_weights`", "`/rlt/start_rl`"} <= names
    assert all(name in graph for name in names)


def test_readme_test_command_is_the_ci_command():
    """CI runs `.ci/run`, which runs `make test`: the README tells users the same command."""
    assert "make test\n" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make test\b", readme, re.M), "README.md must show `make test` as the test command"
    assert re.search(r"^make demo\b", readme, re.M), "README.md must show `make demo`"


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 260
