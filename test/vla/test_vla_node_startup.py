"""vla_node with a tiny π0.5 over DDS: it starts and publishes RL tokens; bad input stops it at start-up with an
error naming cause and fix (a token of another VLA, an arm of another action dimension, a missing tokenizer)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from rlt_ros.cli import main as rlt
from rlt_ros.core.vla.lerobot_tiny import make_tiny_vla
from test_train_token_lerobot import JOINTS, write_bag

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny π0.5 and SmolVLA, and an RL token (token_dim 8) trained on the π0.5's embeddings."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("byo")
    pi05 = make_tiny_vla("pi05", root / "pi05", joint_names=JOINTS)
    smolvla = make_tiny_vla("smolvla", root / "smolvla", joint_names=JOINTS)
    write_bag(root / "demos" / "demo", episodes=2, steps=8)
    assert rlt(["train-token", "--vla-kind", "pi05", "--vla", str(pi05), "--tokenizer-path", str(root / "pi05" / "tokenizer"),
                "--demos", str(root / "demos"), "--out", str(root / "token"), "--steps", "3", "--heads", "2",
                "--token-dim", "8", "--layers", "1", "--decoder-layers", "1"]) == 0
    return {"root": root, "pi05": pi05, "smolvla": smolvla, "token": root / "token"}


def start_vla(processes, tmp_path, name: str, vla: dict, arm: str = "sim"):
    params = tmp_path / f"{name}.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"rlt": {"token_dim": 8}}},
                                      "vla": {"ros__parameters": {"vla": vla}}}))
    files = [ROOT / "config" / "rlt.yaml", ROOT / "config" / "arms" / f"{arm}.yaml", params]
    args = ["--ros-args", "-r", "__node:=vla"] + [a for f in files for a in ("--params-file", str(f))]
    return processes.start_module(name, "rlt_ros.nodes.vla_node", *args)


def wait_exit(processes, proc, timeout=120.0) -> tuple[int, str]:
    proc.wait(timeout)
    return proc.returncode, processes.log(proc)


def pi05_params(models, **kw) -> dict:
    return {"backend": "pi05", "checkpoint": str(models["pi05"]),
            "tokenizer_path": str(models["root"] / "pi05" / "tokenizer"), "token_checkpoint": str(models["token"]), **kw}


def test_starts_and_publishes_tokens(processes, ros_node, tmp_path, models):
    from rlt_ros.msg import Observation, RLToken
    from rlt_ros.ros import qos
    from rlt_ros.ros.conversions import header, image_to_msg, to_seconds, token_from_msg

    proc = start_vla(processes, tmp_path, "vla_ok", pi05_params(models))
    tokens = []
    ros_node.create_subscription(RLToken, "/rlt/token", tokens.append, qos.STREAM)
    pub = ros_node.create_publisher(Observation, "/rlt/observation", 1)
    rng = np.random.default_rng(0)
    deadline = time.monotonic() + 150
    while not tokens and time.monotonic() < deadline and proc.poll() is None:
        now = to_seconds(ros_node.get_clock().now().to_msg())
        pub.publish(Observation(header=header(now), camera_names=["base", "wrist"],
                                images=[image_to_msg(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), now)
                                        for _ in range(2)],
                                proprio=rng.normal(size=10).astype(np.float32).tolist()))
        for _ in range(4):
            ros_node.spin_once(0.05)
    log = processes.log(proc)
    assert tokens, f"no RL token from vla_node; its log:\n{log[-3000:]}"
    packet = token_from_msg(tokens[0])
    assert packet.token.shape == (8,) and np.isfinite(packet.token).all()
    assert packet.reference_chunk.shape == (50, 5)
    assert "VLA pi05 VLA: D=64 H=50 A=5" in log


@pytest.mark.parametrize("case", ("token_of_another_vla", "arm_of_another_dimension", "missing_tokenizer"))
def test_bad_input_stops_it_at_start_up(processes, tmp_path, models, case):
    if case == "token_of_another_vla":  # SmolVLA (D = 64 too) with the π0.5's RL token
        vla = {"backend": "smolvla", "checkpoint": str(models["smolvla"]),
               "vlm_path": str(models["root"] / "smolvla" / "vlm"), "token_checkpoint": str(models["token"])}
        arm, expected = "sim", "trained on another VLA (pi05 VLA"
    elif case == "arm_of_another_dimension":  # the 5-joint π0.5 on the 6-joint SO-101
        vla, arm, expected = pi05_params(models), "so101", "the VLA outputs 5-D actions but the arm takes 6"
    else:
        vla = pi05_params(models, tokenizer_path=str(tmp_path / "nowhere"))
        arm, expected = "sim", "no tokenizer_config.json there; point vla.tokenizer_path"
    code, log = wait_exit(processes, start_vla(processes, tmp_path, f"vla_{case}", vla, arm))
    assert code == 1 and "cannot start" in log and expected in log, log[-3000:]
