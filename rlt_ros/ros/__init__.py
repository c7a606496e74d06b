"""ROS 2 plumbing shared by the nodes: message conversions, QoS profiles, parameters."""
