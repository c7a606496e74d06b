"""The SROS2 policy (rlt_ros.security, `rlt security-policy`) grants exactly the node graph's endpoints.

No ROS install or DDS: the policy is parsed with xml.etree and compared with the endpoints that
rlt_ros.endpoints reads from the nodes' source (the extraction behind docs/graph.md's tables).
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import pytest

from rlt_ros import graph, security
from rlt_ros.core.arm import ARMS
from rlt_ros.endpoints import Endpoint, endpoints

GRAPHS = [(kind, arm) for kind in graph.KINDS for arm in ARMS if kind != "demo" or arm == "sim"]
# the element names of the sros2 policy schema (sros2/policy/schemas/policy.xsd, version 0.2.0)
SROS2_ELEMENTS = {"policy", "enclaves", "enclave", "profiles", "profile", "topics", "topic", "services", "service"}
RULES = {"publisher": "publish", "subscription": "subscribe", "service": "reply", "client": "request"}


@pytest.fixture(scope="module")
def found() -> list[Endpoint]:
    return endpoints()


def expected(kind: str, arm: str, found: list[Endpoint]) -> dict[str, dict[str, set[str]]]:
    """enclave -> rule -> names: each node's extracted endpoints with this graph's names, plus the standard ones."""
    out = {}
    for spec in graph.graph(kind, arm):
        params = security.node_parameters(spec)
        rules = {"publish": {"/rosout", "/parameter_events"}, "subscribe": {"/parameter_events"},
                 "reply": {f"/{spec.name}/{s}" for s in security.PARAMETER_SERVICES}, "request": set()}
        if arm == "sim" and not spec.driver:
            rules["subscribe"].add("/clock")  # use_sim_time
        for e in found:
            if e.node == spec.name:
                rules[RULES[e.role]] |= set(e.resolve(params))
        out[f"/rlt_ros/{spec.name}"] = rules
    return out


def problems(text: str, kind: str, arm: str, found: list[Endpoint]) -> list[str]:
    """What the policy ``text`` grants differently from the graph's endpoints (the operator's enclave aside)."""
    root = ET.fromstring(text)
    out = [f"element <{e.tag}> is not in the sros2 policy schema"
           for e in root.iter() if e.tag not in SROS2_ELEMENTS]
    if root.tag != "policy" or root.get("version") != "0.2.0":
        out.append(f"root <{root.tag} version={root.get('version')}>, not <policy version=\"0.2.0\">")
    granted = security.read_policy(text)
    granted.pop("/rlt_ros/operator", None)
    want = expected(kind, arm, found)
    out += [f"enclave {path} is missing" for path in sorted(set(want) - set(granted))]
    out += [f"enclave {path} is not a node of the graph" for path in sorted(set(granted) - set(want))]
    for path in sorted(set(want) & set(granted)):
        for rule in ("publish", "subscribe", "reply", "request"):
            wanted, given = want[path][rule], granted[path][rule]
            out += [f"{path} may not {rule} {n}" for n in sorted(wanted - given)]
            out += [f"{path} may {rule} {n} without an endpoint" for n in sorted(given - wanted)]
    return out


@pytest.mark.parametrize("kind,arm", GRAPHS)
def test_the_policy_grants_exactly_the_graphs_endpoints(kind, arm, found):
    text = security.policy_xml(kind, arm)
    assert problems(text, kind, arm, found) == []
    paths = [e.get("path") for e in ET.fromstring(text).iterfind("./enclaves/enclave")]
    assert len(paths) == len(set(paths))
    for enclave in ET.fromstring(text).iterfind("./enclaves/enclave"):
        profiles = enclave.findall("./profiles/profile")
        assert len(profiles) == 1 and profiles[0].get("ns") == "/"
        assert enclave.get("path") == graph.enclave(profiles[0].get("node"))
        for group in profiles[0]:
            assert group.tag in ("topics", "services") and dict(group.attrib) in (
                [{"publish": "ALLOW"}, {"subscribe": "ALLOW"}] if group.tag == "topics"
                else [{"reply": "ALLOW"}, {"request": "ALLOW"}])
            assert all(child.tag == group.tag[:-1] and child.text.startswith("/") for child in group)


def test_the_check_fails_on_a_publisher_missing_from_the_policy(found):
    """A node that publishes a topic the policy does not grant (the policy made before the publisher was added)."""
    extra = dataclasses.replace(next(e for e in found if e.node == "actor" and e.role == "publisher"),
                                name="`/rlt/extra`", topic="/rlt/extra", parameter="", default=None)
    stale = security.policy_xml("train", "ur")
    assert problems(stale, "train", "ur", [*found, extra]) == ["/rlt_ros/actor may not publish /rlt/extra"]
    # generated from the same extraction, the policy follows the source
    regenerated = security.to_xml(security.permissions("train", "ur", found=[*found, extra]))
    assert problems(regenerated, "train", "ur", [*found, extra]) == []


def test_the_check_fails_on_a_grant_without_an_endpoint(found):
    perms = security.permissions("train", "ur", found=found)
    perms["/rlt_ros/monitor"]["publish"].add("/scaled_joint_trajectory_controller/joint_trajectory")
    del perms["/rlt_ros/reward"]
    assert problems(security.to_xml(perms), "train", "ur", found) == [
        "enclave /rlt_ros/reward is missing",
        "/rlt_ros/monitor may publish /scaled_joint_trajectory_controller/joint_trajectory without an endpoint"]


def who(perms, rule: str, name: str) -> list[str]:
    return sorted(path for path, rules in perms.items() if name in rules[rule])


@pytest.mark.parametrize("arm", ARMS)
def test_who_may_command_the_arm_teach_the_actor_and_press_the_buttons(arm):
    perms = security.permissions("train", arm)
    command = graph.graph("train", arm)[0]  # any node: arm.* is shared
    command_topic = security.node_parameters(command)["arm.command_topic"]
    assert who(perms, "publish", command_topic) == ["/rlt_ros/actor"]
    assert who(perms, "publish", "/rlt/actor_weights") == ["/rlt_ros/learner"]
    assert who(perms, "publish", "/rlt/transitions") == ["/rlt_ros/actor"]
    assert who(perms, "publish", "/rlt/events") == ["/rlt_ros/reward"]
    assert who(perms, "publish", "/rlt/teleop") == ["/rlt_ros/operator"]
    for service in ("/rlt/start_rl", "/rlt/mark_success", "/rlt/mark_failure", "/rlt/intervention",
                    "/rlt/mark_episode", "/rlt/start_episode", "/rlt/actor/activate"):
        assert who(perms, "request", service) == ["/rlt_ros/operator"], service
    assert who(perms, "request", "/actor/set_parameters") == ["/rlt_ros/operator"]
    assert who(perms, "request", "/learner/set_parameters") == []
    if arm == "ur":
        assert who(perms, "publish", "/clock") == [] and who(perms, "subscribe", "/clock") == []
    if arm == "sim":
        assert who(perms, "publish", "/clock") == ["/rlt_ros/sim_arm"]
        assert who(perms, "reply", "/sim_arm/reset") == ["/rlt_ros/sim_arm"]
        assert who(perms, "request", "/sim_arm/reset") == ["/rlt_ros/reward"]


def test_in_the_demo_the_simulated_operator_presses_the_buttons():
    perms = security.permissions("demo", "sim")
    assert "/rlt_ros/operator" not in perms
    assert perms["/rlt_ros/sim_operator"]["request"] == {"/rlt/start_rl", "/rlt/mark_success", "/rlt/mark_failure"}
    assert who(perms, "publish", "/rlt/teleop") == [] and who(perms, "request", "/rlt/actor/activate") == []


def test_parameters_the_way_rcl_applies_them(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("actor:\n  ros__parameters:\n    arm: {command_topic: /from_node_block}\n"
                     "/**:\n  ros__parameters:\n    arm: {command_topic: /wild, joint_states_topic: /js}\n")
    second.write_text("/**:\n  ros__parameters:\n    arm: {command_topic: /later_wild, joint_states_topic: /js2}\n")
    spec = graph.NodeSpec("actor_node", "actor", params=(str(first), str(second)))
    assert security.node_parameters(spec) == {"arm.command_topic": "/from_node_block", "arm.joint_states_topic": "/js2"}
    spec = dataclasses.replace(spec, overrides={"arm.command_topic": "/override"})
    assert security.node_parameters(spec)["arm.command_topic"] == "/override"


def test_the_policy_follows_the_graphs_parameter_files(tmp_path):
    extra = tmp_path / "cams.yaml"
    extra.write_text("/**:\n  ros__parameters:\n    arm:\n      camera_topics: [/cam/a, /cam/b]\n")
    perms = security.permissions("eval", "franka", extra_params=(str(extra),))
    assert {"/cam/a", "/cam/b"} <= perms["/rlt_ros/observation"]["subscribe"]
    assert "/camera/base/image_raw" not in perms["/rlt_ros/observation"]["subscribe"]
    assert "/rlt_ros/learner" not in perms  # no learner in the eval graph


def test_the_cli_writes_the_policy_and_the_next_steps(tmp_path, capsys, found):
    from rlt_ros.cli import main

    out = tmp_path / "policy.xml"
    assert main(["security-policy", "--kind", "train", "--arm", "ur", "--out", str(out)]) == 0
    assert problems(out.read_text(), "train", "ur", found) == []
    printed = capsys.readouterr().out
    for step in ("ros2 security create_keystore", f"generate_artifacts -k ~/rlt_keystore -p {out}",
                 "ROS_SECURITY_KEYSTORE=", "ROS_SECURITY_ENABLE=true", "ROS_SECURITY_STRATEGY=Enforce",
                 "--ros-args --enclave /rlt_ros/actor", "ROS_SECURITY_ENCLAVE_OVERRIDE=/rlt_ros/operator"):
        assert step in printed, step


def test_nodes_start_in_their_enclave_when_security_is_enabled():
    from rlt_ros.commands.launch import GraphProcesses

    spec = graph.graph("train", "sim")[0]
    assert graph.ros_args(spec, enclave="/rlt_ros/sim_arm")[-2:] == ["--enclave", "/rlt_ros/sim_arm"]
    assert "--enclave" not in graph.ros_args(spec)
    kwargs = graph.launch_node_kwargs(spec, enclave="/rlt_ros/sim_arm")
    assert kwargs["ros_arguments"] == ["--enclave", "/rlt_ros/sim_arm"]
    assert "ros_arguments" not in graph.launch_node_kwargs(spec)
    for enabled in ("true", ""):
        commands = GraphProcesses(graph.graph("train", "sim"), env={"ROS_SECURITY_ENABLE": enabled}).commands()
        for name, argv in commands:
            assert (argv[-2:] == ["--enclave", f"/rlt_ros/{name}"]) == bool(enabled), argv
