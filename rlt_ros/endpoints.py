"""The topics, services and clients each node of rlt_ros/graph.py creates, read from the nodes' source.

One extraction serves two readers: scripts/update_docs.py (the topic and service tables of docs/graph.md)
and rlt_ros.security (the SROS2 access-control policy). The nodes' ``create_publisher`` /
``create_subscription`` / ``create_latest_input`` / ``create_service`` / ``create_client`` calls are read
with ``ast``; nothing is started and rclpy is not imported here (:func:`endpoints` imports the node modules
for their configuration classes, which needs the ROS interfaces).

A name is either a literal (``"/rlt/token"``, or an f-string over a literal loop) or a node parameter
(``arm.command_topic``; ``arm.camera_topics``: one endpoint per element). :meth:`Endpoint.resolve` turns it
into the name a given graph uses, from that graph's parameter values.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any, Mapping

NODES_DIR = Path(__file__).resolve().parent / "nodes"


@dataclasses.dataclass(frozen=True)
class Endpoint:
    node: str
    role: str  # publisher | subscription | service | client
    msg_type: str  # pkg/Type
    name: str  # topic or service name as the docs show it: `/literal`, or `prefix.field` (default ...)
    qos: str  # profile name, '' for services
    topic: str = ""  # the literal name; '' when the name is a parameter's value
    parameter: str = ""  # `prefix.field` whose value is the name (a list: one name per element); '' for a literal
    default: Any = None  # the parameter's default

    def resolve(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The name(s) this endpoint has in a node with parameter values ``params`` (name -> value).

        A parameter set to '' means the node does not create the endpoint (every such call in the nodes is
        guarded by ``if <parameter>:``): no name.
        """
        if not self.parameter:
            return (self.topic,)
        value = params.get(self.parameter, self.default)
        values = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        return tuple(str(v) for v in values if v)


Name = tuple[str, str, str, Any]  # (as shown in the docs, literal, parameter, default)



def _imports(tree: ast.Module) -> dict[str, str]:
    """Imported class name -> 'pkg/Type' for ROS interface imports (``from pkg.msg import Type``)."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[-1] in ("msg", "srv"):
            for alias in node.names:
                out[alias.asname or alias.name] = f"{node.module.split('.')[0]}/{alias.name}"
    return out


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}


def _enclosing_loops(node: ast.AST, parents: dict):
    """(target, iterable) of every loop or comprehension around ``node``, innermost first."""
    while node in parents:
        node = parents[node]
        generators = node.generators if isinstance(node, (ast.DictComp, ast.ListComp, ast.SetComp,
                                                           ast.GeneratorExp)) else []
        yield from ((g.target, g.iter) for g in generators)
        if isinstance(node, ast.For):
            yield node.target, node.iter


def _loop_values(node: ast.AST, name: str, parents: dict) -> list[str] | None:
    """Literal strings a loop or comprehension around ``node`` binds to ``name`` (None if not literal)."""
    for target, iterable in _enclosing_loops(node, parents):
        if isinstance(target, ast.Name) and target.id == name and isinstance(iterable, (ast.Tuple, ast.List)):
            if all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in iterable.elts):
                return [e.value for e in iterable.elts]
    return None


def _loop_source(node: ast.AST, name: str, parents: dict, source: str) -> str | None:
    """The iterable expression a loop or comprehension around ``node`` takes ``name`` from."""
    for target, iterable in _enclosing_loops(node, parents):
        if name in [t.id for t in ast.walk(target) if isinstance(t, ast.Name)]:
            return ast.get_source_segment(source, iterable)
    return None


def _parameter(field_name: str, configs: dict[str, type], suffix: str = "") -> Name:
    """The name given by a configuration field of the node (found by its field name), with its default."""
    hits = [(prefix, cls) for prefix, cls in configs.items()
            if field_name in {f.name for f in dataclasses.fields(cls)}]
    if len(hits) != 1:
        raise ValueError(f"cannot tell which configuration holds the field {field_name!r}: {hits}")
    prefix, cls = hits[0]
    default = getattr(cls(), field_name)
    shown = ", ".join(default) if isinstance(default, (tuple, list)) else default
    shown = f" (default `{shown}`)" if shown else " (default `''`: none)"
    return f"`{prefix}.{field_name}`{shown}{suffix}", "", f"{prefix}.{field_name}", default


def _names(arg: ast.AST, call: ast.Call, parents: dict, source: str, configs: dict[str, type]) -> list[Name]:
    """The topic/service name(s) an argument of a create_* call stands for."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [(f"`{arg.value}`", arg.value, "", None)]
    if isinstance(arg, ast.Attribute):
        return [_parameter(arg.attr, configs)]
    if isinstance(arg, ast.JoinedStr):
        values = [v for v in arg.values if isinstance(v, ast.FormattedValue)]
        if len(values) == 1 and isinstance(values[0].value, ast.Name):
            options = _loop_values(call, values[0].value.id, parents)
            if options is not None:
                template = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in arg.values)
                return [(f"`{template.format(o)}`", template.format(o), "", None) for o in options]
    if isinstance(arg, ast.Name):
        iterable = _loop_source(call, arg.id, parents, source) or ""
        fields = re.findall(r"\.(\w+_topics)\b", iterable)
        if len(fields) == 1:
            return [_parameter(fields[0], configs, ", one per camera")]
    raise ValueError(f"cannot document the name argument {ast.get_source_segment(source, arg)!r} "
                     f"(line {call.lineno}); give it as a string or a configuration field")


def _qos_name(arg: ast.AST | None, tree: ast.Module) -> str:
    """A named profile of rlt_ros/ros/qos.py, or the settings of a profile the node defines itself."""
    if arg is None:
        return ""
    if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "qos":
        return f"`{arg.attr}`"
    if isinstance(arg, ast.Constant) and isinstance(arg.value, int):
        return f"depth {arg.value}, reliable"  # rclpy's default profile with this depth
    if isinstance(arg, ast.Name):
        for stmt in tree.body:
            if (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)
                    and any(isinstance(t, ast.Name) and t.id == arg.id for t in stmt.targets)):
                return ", ".join(profile_settings(stmt.value).values())
    raise ValueError(f"cannot document the QoS argument at line {arg.lineno}: use a profile of rlt_ros.ros.qos")


def profile_settings(call: ast.Call) -> dict[str, str]:
    """QoSProfile(...) keyword arguments as words: {"depth": "depth 5", "reliability": "best effort", ...}."""
    out = {}
    for k in call.keywords:
        if k.arg == "depth":
            out["depth"] = f"depth {ast.literal_eval(k.value)}"
        elif isinstance(k.value, ast.Attribute):
            out[k.arg] = k.value.attr.lower().replace("_", " ")
    out.setdefault("reliability", "reliable")
    return out


ROLES = {"create_publisher": "publisher", "create_subscription": "subscription",
         "create_latest_input": "subscription", "create_service": "service", "create_client": "client"}


def endpoints() -> list[Endpoint]:
    """Every publisher, subscription, service and client the nodes of rlt_ros/graph.py create."""
    from rlt_ros.commands.info import node_configs
    from rlt_ros.graph import NODES

    configs = dict(node_configs())
    out = []
    for spec in NODES:
        path = NODES_DIR / f"{spec.executable}.py"
        source = path.read_text()
        tree = ast.parse(source)
        imports, parents = _imports(tree), _parents(tree)
        for call in ast.walk(tree):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr in ROLES and len(call.args) >= 2):
                continue
            role = ROLES[call.func.attr]
            type_arg = call.args[0]
            msg_type = imports.get(type_arg.id, type_arg.id) if isinstance(type_arg, ast.Name) else "?"
            qos_arg = {"publisher": 2, "subscription": 3}.get(role)
            qos_node = call.args[qos_arg] if qos_arg is not None and len(call.args) > qos_arg else None
            qos = _qos_name(qos_node, tree)
            for shown, topic, parameter, default in _names(call.args[1], call, parents, source, configs[spec.name]):
                out.append(Endpoint(spec.name, role, msg_type, shown, qos, topic, parameter, default))
    return out
