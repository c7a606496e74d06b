"""``rlt info``: what is installed, and every node's parameters (from the nodes' configuration dataclasses).

``rlt info --params --markdown`` prints the parameter table of docs/parameters.md (scripts/update_docs.py
writes it there; test/test_docs.py keeps them equal).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", action="store_true", help="list every node's parameters with their meaning")
    parser.add_argument("--markdown", action="store_true", help="as a markdown table (with --params)")


def node_configs() -> list[tuple[str, dict[str, type]]]:
    """(node name, {parameter prefix: configuration dataclass}) of every node of the graph."""
    from rlt_ros.graph import NODES

    out = []
    for spec in NODES:
        module = importlib.import_module(spec.module)
        node_class = next(c for c in vars(module).values()
                          if isinstance(c, type) and c.__module__ == module.__name__ and "CONFIGS" in vars(c))
        out.append((spec.name, node_class.CONFIGS))
    return out


def readers_of(prefix: str) -> list[str]:
    """Names of the nodes that read the parameters ``<prefix>.*``."""
    return [name for name, configs in node_configs() if prefix in configs]


def node_parameters() -> list[tuple[str, str, str, str]]:
    """(nodes, parameter, default, meaning) for every parameter of every node, shared ones once."""
    from rlt_ros.core.config_fields import field_docs
    from rlt_ros.graph import NODES

    owners: dict[tuple[str, type], list[str]] = {}
    for name, configs in node_configs():
        for prefix, cls in configs.items():
            owners.setdefault((prefix, cls), []).append(name)
    rows = []
    for (prefix, cls), nodes in owners.items():
        nodes = ["all nodes"] if len(nodes) == len(NODES) else nodes
        docs, defaults = field_docs(cls), cls()
        for f in dataclasses.fields(cls):
            default = getattr(defaults, f.name)
            shown = "''" if default == "" else (list(default) if isinstance(default, tuple) else default)
            rows.append((", ".join(nodes), f"{prefix}.{f.name}", str(shown), docs.get(f.name, "")))
    return rows


def markdown_table() -> str:
    lines = ["| nodes | parameter | default | meaning |", "|---|---|---|---|"]
    lines += [f"| {n} | `{p}` | `{d}` | {m.replace('|', '&#124;')} |" for n, p, d, m in node_parameters()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.params:
        if args.markdown:
            print(markdown_table())
        else:
            for nodes, name, default, meaning in node_parameters():
                print(f"{name:<34} {default:<24} {meaning}  [{nodes}]")
        return 0
    import torch

    import rlt_ros
    from rlt_ros.core.checkpoints import base_vla_checkpoint, token_checkpoint
    from rlt_ros.graph import config_dir

    print(f"rlt_ros {rlt_ros.__version__} ({', '.join(rlt_ros.__path__)})")
    print(f"python {sys.version.split()[0]} at {sys.executable}; torch {torch.__version__} "
          f"(cuda {'yes' if torch.cuda.is_available() else 'no'})")
    try:
        from rlt_ros.msg import RLToken  # noqa: F401
        import rclpy  # noqa: F401
        print("ROS 2: rclpy and the rlt_ros interfaces import")
    except ImportError as err:
        print(f"ROS 2: not usable ({err}); run `make setup`")
    print(f"config: {config_dir()}")
    for name, path in (("base VLA", base_vla_checkpoint()), ("RL token", token_checkpoint())):
        print(f"{name}: {path} ({'present' if path.is_dir() else 'MISSING'})")
    return 0
