"""``rlt security-policy``: write the SROS2 access-control policy of a node graph, and say how to enforce it.

    rlt security-policy --kind train --arm ur --out policy.xml

The policy comes from rlt_ros/graph.py and the nodes' source (rlt_ros.security): one enclave per node,
``/rlt_ros/<node>``, plus ``/rlt_ros/operator`` for the operator's tools. SROS2 needs a ROS install whose
DDS has the security plugins (the Fast DDS of the PyPI wheels has none): see docs/security.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlt_ros.core.arm import ARMS
from rlt_ros.graph import KINDS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=KINDS, default="train", help="the graph (default: train)")
    parser.add_argument("--arm", choices=ARMS, default="ur", help="the arm (default: ur)")
    parser.add_argument("--params", type=Path, action="append", default=[], metavar="FILE",
                        help="an extra parameter file the graph is launched with (params:=FILE), applied last")
    parser.add_argument("--keystore", default="~/rlt_keystore", help="keystore folder shown in the next steps")
    parser.add_argument("--out", type=Path, required=True, help="where to write the policy (e.g. policy.xml)")


def next_steps(out: Path, keystore: str, enclaves: list[str], operator: bool) -> str:
    """What to run on a ROS install to create the keystore and run every node in its enclave."""
    lines = ["On a ROS 2 install with a DDS that has the security plugins (not the pip path: docs/security.md):",
             f"  ros2 security create_keystore {keystore}",
             f"  ros2 security generate_artifacts -k {keystore} -p {out}    # a key and signed permissions per enclave",
             f"  export ROS_SECURITY_KEYSTORE={keystore}",
             "  export ROS_SECURITY_ENABLE=true",
             "  export ROS_SECURITY_STRATEGY=Enforce",
             "Then `ros2 launch rlt_ros <kind>.launch.py` and `rlt launch` run each node in its enclave; "
             "a node started by hand needs:"]
    lines += [f"  {path.rsplit('/', 1)[1]}: --ros-args --enclave {path}" for path in enclaves
              if not path.endswith("/operator")]
    if operator:
        lines += ["The operator's tools (ros2 service call /rlt/..., teleop on /rlt/teleop, "
                  "ros2 param set /actor ...):",
                  "  ROS_SECURITY_ENCLAVE_OVERRIDE=/rlt_ros/operator ros2 service call /rlt/start_rl "
                  "std_srvs/srv/Trigger"]
    lines.append("Drivers, cameras and RViz outside rlt_ros need enclaves of their own (docs/security.md).")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from rlt_ros.security import permissions, to_xml

    perms = permissions(args.kind, args.arm, extra_params=tuple(str(p) for p in args.params))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_xml(perms))
    print(f"wrote {args.out}: the SROS2 policy of the {args.kind} graph on arm {args.arm}, "
          f"{len(perms)} enclaves ({', '.join(perms)})")
    print(next_steps(args.out, args.keystore, list(perms), operator=any(p.endswith("/operator") for p in perms)))
    return 0
