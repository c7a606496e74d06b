"""ROS parameters declared from the core's configuration dataclasses (one owner per setting).

``declare_config(node, Config, prefix)`` declares one parameter per dataclass field, with the
field's comment as description and its default as default, reads them back, and builds the
dataclass (whose ``__post_init__`` validates). ``reject_unknown_parameters`` makes a parameter given
to the node that no component declared an error instead of silently ignoring it.
"""

from __future__ import annotations

import dataclasses

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from rlt_ros.core.config_fields import field_docs

# parameters every rclpy node has
_BUILTIN = {"use_sim_time", "start_type_description_service"}


class ParameterError(ValueError):
    """A node received a parameter it does not know, or a value its configuration rejects."""


def _ros_default(value):
    """The default as ROS sees it: tuples become lists; None for an empty list (no ROS type)."""
    if isinstance(value, (tuple, list)):
        return list(value) or None
    return value


def declare_config(node: Node, cls: type, prefix: str = ""):
    """Declare ``cls``'s fields as parameters ``<prefix><field>`` and return the validated config."""
    docs = field_docs(cls)
    values = {}
    defaults = cls()
    for field in dataclasses.fields(cls):
        name = prefix + field.name
        default = getattr(defaults, field.name)
        descriptor = ParameterDescriptor(name=name, description=docs.get(field.name, ""))
        ros_default = _ros_default(default)
        if ros_default is None:  # empty list: type unknown to ROS until set; accept any
            descriptor.dynamic_typing = True
            node.declare_parameter(name, None, descriptor)
            value = node.get_parameter(name).value
            value = default if value is None else value
        else:
            node.declare_parameter(name, ros_default, descriptor)
            value = node.get_parameter(name).value
        if isinstance(default, tuple):
            value = tuple(value)
        elif isinstance(default, float) and isinstance(value, int):
            value = float(value)
        values[field.name] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise ParameterError(f"{node.get_name()}: invalid parameters for {cls.__name__} "
                             f"(prefix '{prefix}'): {err}") from err


RENAMED = {"episode.switch_token": "episode.token_checkpoint"}  # old name -> new name (refused with the new one)


def reject_unknown_parameters(node: Node, shared: tuple[str, ...] = ("arm.", "rlt.", "episode.")) -> None:
    """Raise if a parameter override (from YAML or --ros-args -p) names no declared parameter.

    ``shared`` namespaces come from the ``/**`` block of a parameter file and reach every node; a node
    that declares nothing in such a namespace ignores it, a node that declares any of it checks it all
    (so each parameter is checked by at least the nodes that use it).
    """
    # rclpy keeps the overrides it was started with here on every distro from Humble to Kilted;
    # there is no public accessor without declaring them all automatically.
    overrides = set(getattr(node, "_parameter_overrides", {}).keys())
    declared = set(node._parameters.keys()) | _BUILTIN
    unused_shared = tuple(p for p in shared if not any(d.startswith(p) for d in declared))
    unknown = sorted(k for k in overrides - declared if not any(k.startswith(p) for p in unused_shared))
    renamed = [f"{k} is now {RENAMED[k]}" for k in unknown if k in RENAMED]
    if renamed:
        raise ParameterError(f"{node.get_name()}: renamed parameters: {'; '.join(renamed)}")
    if unknown:
        raise ParameterError(f"{node.get_name()}: unknown parameters {unknown}; "
                             f"valid parameters: {sorted(declared - _BUILTIN)}")
