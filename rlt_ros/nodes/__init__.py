"""ROS 2 nodes: thin adapters over rlt_ros.core. Each <name>_node.py defines main() and becomes an executable."""
