"""Subcommands of the `rlt` command line (see rlt_ros/cli.py)."""
