"""The SROS2 access-control policy of a node graph, generated from rlt_ros/graph.py and the nodes' source.

    from rlt_ros.security import policy_xml
    print(policy_xml("train", "ur"))          # `rlt security-policy --kind train --arm ur --out policy.xml`

Each node of ``graph(kind, arm)`` gets its own enclave ``/rlt_ros/<node>`` (``graph.enclave``), allowed to
publish, subscribe, serve and call exactly what its source creates (``rlt_ros.endpoints``, the same
extraction that writes the topic and service tables of docs/graph.md), with the names the graph's parameter
files and overrides give them. Added on purpose, for every node: publish ``/rosout``, publish and subscribe
``/parameter_events``, serve its own parameter services (:data:`PARAMETER_SERVICES`), and subscribe
``/clock`` when it runs on simulated time. Graphs with a person at the arm (every graph except the demo,
where ``sim_operator`` presses the buttons) get the enclave ``/rlt_ros/operator`` for the operator's tools
(:func:`operator_permissions`): the only one that may call the ``/rlt/*`` services, publish ``/rlt/teleop``
and set parameters (of the actor: ``actor.explore`` and ``actor.record``, the run-time ones).

The policy is the standard sros2 format (``<policy version="0.2.0"><enclaves><enclave path=...>``); a ROS
install turns it into signed permissions with ``ros2 security generate_artifacts`` (docs/security.md). No
rclpy here: building the policy reads source and YAML only (the node modules are imported for their
configuration classes, which needs the ROS interfaces).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterable, Mapping

from rlt_ros import graph as graph_mod

POLICY_VERSION = "0.2.0"
OPERATOR = "operator"  # the enclave /rlt_ros/operator: the operator's tools (ros2 service call, teleop)
# what each kind of endpoint is allowed to do, as sros2 names it: element, attribute
RULES = {"publish": ("topics", "publish"), "subscribe": ("topics", "subscribe"),
         "reply": ("services", "reply"), "request": ("services", "request")}
ROLE_RULE = {"publisher": "publish", "subscription": "subscribe", "service": "reply", "client": "request"}
# services every ROS 2 node serves under its own name (rcl's parameter services; get_type_description since Iron)
PARAMETER_SERVICES = ("describe_parameters", "get_parameter_types", "get_parameters", "list_parameters",
                      "set_parameters", "set_parameters_atomically", "get_type_description")
READ_PARAMETER_SERVICES = ("describe_parameters", "get_parameter_types", "get_parameters", "list_parameters")
RUNTIME_PARAMETER_NODES = ("actor",)  # nodes with parameters that may be changed while they run

Permissions = dict[str, dict[str, set[str]]]  # enclave path -> rule (publish|subscribe|reply|request) -> names


# ---------------------------------------------------------------------------------------------- parameters
def _flatten(block: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in block.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def node_parameters(spec: graph_mod.NodeSpec) -> dict[str, Any]:
    """The parameter values the node of ``spec`` starts with (beyond its defaults), as rcl applies them.

    ``/**`` blocks of the parameter files first, then the blocks naming the node (rcl lets those win), later
    files over earlier ones, then the graph's overrides.
    """
    import yaml

    documents = [yaml.safe_load(Path(path).read_text()) or {} for path in spec.params]
    out: dict[str, Any] = {}
    for keys in (("/**",), (spec.name, f"/{spec.name}")):
        for document in documents:
            for key in keys:
                out.update(_flatten((document.get(key) or {}).get("ros__parameters") or {}))
    out.update(spec.overrides)
    return out


def _absolute(name: str, node: str) -> str:
    """A ROS name as the policy lists it: fully qualified (the nodes run in the namespace /)."""
    if name.startswith("~"):
        return f"/{node}/{name[1:].lstrip('/')}"
    return name if name.startswith("/") else f"/{name}"


# ---------------------------------------------------------------------------------------------- permissions
def standard_permissions(spec: graph_mod.NodeSpec) -> dict[str, set[str]]:
    """What every ROS 2 node needs besides its own endpoints: logging, parameters, and simulated time."""
    rules = {"publish": {"/rosout", "/parameter_events"}, "subscribe": {"/parameter_events"},
             "reply": {f"/{spec.name}/{s}" for s in PARAMETER_SERVICES}, "request": set()}
    if spec.overrides.get("use_sim_time") is True:
        rules["subscribe"].add("/clock")
    return rules


def endpoint_permissions(specs: Iterable[graph_mod.NodeSpec], found: Iterable | None = None) -> Permissions:
    """enclave -> rule -> names of the nodes' own endpoints only (``found``: default ``endpoints()``)."""
    if found is None:
        from rlt_ros.endpoints import endpoints

        found = endpoints()
    found = list(found)
    out: Permissions = {}
    for spec in specs:
        params = node_parameters(spec)
        remaps = dict(spec.remaps)
        rules = out.setdefault(graph_mod.enclave(spec.name), {rule: set() for rule in RULES})
        for endpoint in found:
            if endpoint.node == spec.name:
                for name in endpoint.resolve(params):
                    name = _absolute(remaps.get(name, name), spec.name)
                    rules[ROLE_RULE[endpoint.role]].add(name)
    return out


def operator_permissions(own: Permissions) -> dict[str, set[str]]:
    """The operator's tools: call every /rlt service, teleoperate, read events and parameters, set the actor's."""
    served = {name for rules in own.values() for name in rules["reply"]}
    nodes = [path.rsplit("/", 1)[1] for path in own]
    return {"publish": {"/rosout", "/parameter_events", "/rlt/teleop"},
            "subscribe": {"/parameter_events", "/rlt/events"},
            "reply": set(),
            "request": {name for name in served if name.startswith("/rlt/")}
            | {f"/{node}/{s}" for node in nodes for s in READ_PARAMETER_SERVICES}
            | {f"/{node}/set_parameters" for node in nodes if node in RUNTIME_PARAMETER_NODES}}


def permissions(kind: str, arm: str, found: Iterable | None = None, **graph_kwargs) -> Permissions:
    """Every enclave of the graph with what it may do: the nodes' endpoints, the standard ones, the operator."""
    specs = graph_mod.graph(kind, arm, **graph_kwargs)
    out = endpoint_permissions(specs, found)
    for spec in specs:
        for rule, names in standard_permissions(spec).items():
            out[graph_mod.enclave(spec.name)][rule] |= names
    if "sim_operator" not in {spec.name for spec in specs}:
        out[graph_mod.enclave(OPERATOR)] = operator_permissions(out)
    return out


# ---------------------------------------------------------------------------------------------- the XML
def to_xml(perms: Permissions) -> str:
    """The sros2 policy document (version 0.2.0) granting ``perms``: one enclave, one profile per node."""
    policy = ET.Element("policy", version=POLICY_VERSION)
    enclaves = ET.SubElement(policy, "enclaves")
    for path, rules in perms.items():
        enclave = ET.SubElement(enclaves, "enclave", path=path)
        profile = ET.SubElement(ET.SubElement(enclave, "profiles"), "profile", ns="/", node=path.rsplit("/", 1)[1])
        for rule, (element, attribute) in RULES.items():
            if rules.get(rule):
                group = ET.SubElement(profile, element, {attribute: "ALLOW"})
                for name in sorted(rules[rule]):
                    ET.SubElement(group, element[:-1]).text = name  # <topics><topic>, <services><service>
    ET.indent(policy, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(policy, encoding="unicode") + "\n"


def policy_xml(kind: str, arm: str, **graph_kwargs) -> str:
    """The SROS2 policy of ``graph(kind, arm)`` (``graph_kwargs``: overrides, extra_params, directory)."""
    return to_xml(permissions(kind, arm, **graph_kwargs))


def read_policy(text: str) -> Permissions:
    """A policy document back as enclave -> rule -> names (ALLOW rules only); the reverse of :func:`to_xml`."""
    root = ET.fromstring(text)
    out: Permissions = {}
    for enclave in root.iterfind("./enclaves/enclave"):
        rules = out.setdefault(enclave.get("path"), {rule: set() for rule in RULES})
        for profile in enclave.iterfind("./profiles/profile"):
            for rule, (element, attribute) in RULES.items():
                for group in profile.iterfind(element):
                    if group.get(attribute) == "ALLOW":
                        rules[rule] |= {e.text for e in group.iterfind(element[:-1])}
    return out
