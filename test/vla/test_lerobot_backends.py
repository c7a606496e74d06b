"""The LeRobot backends (SmolVLA, π0, π0.5) with tiny random-weight models built offline by lerobot_tiny.

Runs in the real-VLA environment (`make setup-vla`: Python >= 3.12, lerobot 0.6.1); `make test` runs it there.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from rlt_ros.core.types import Observation
from rlt_ros.core.vla import IncompatibleArmError, VLAInputError, load_backend
from rlt_ros.core.vla.lerobot_backend import CheckpointFolderError
from rlt_ros.core.vla.lerobot_tiny import make_tiny_vla

KINDS = ("smolvla", "pi0", "pi05")
JOINTS = ["base_yaw", "shoulder_pitch", "elbow_pitch", "wrist_pitch", "wrist_roll"]


def local_folder_kwargs(kind: str, root) -> dict:
    """The local folder each backend needs next to its checkpoint (VLM for SmolVLA, tokenizer for π0/π0.5)."""
    return {"vlm_path": root / "vlm"} if kind == "smolvla" else {"tokenizer_path": root / "tokenizer"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """kind -> (root folder, policy folder) of a tiny model, built once per module."""
    torch.set_num_threads(1)
    built = {}
    for kind in KINDS:
        root = tmp_path_factory.mktemp(f"tiny_{kind}")
        built[kind] = (root, make_tiny_vla(kind, root, action_dim=5, state_dim=10, joint_names=JOINTS))
    return built


@pytest.fixture(scope="module")
def backends(tiny):
    return {kind: load_backend(kind, pol, joint_names=JOINTS, **local_folder_kwargs(kind, root))
            for kind, (root, pol) in tiny.items()}


def obs(seed=0, size=64, text="insert the peg into the socket", proprio_dim=10):
    rng = np.random.default_rng(seed)
    return Observation(images={c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in ("base", "wrist")},
                       proprio=rng.standard_normal(proprio_dim).astype(np.float32), instruction=text)


# prefix layout of the tiny models (64 px images): SmolVLA 2 x 4 image tokens (patch 16, pixel shuffle 2)
# + its language tokens (<= 16) + 1 state token; π0/π0.5 2 x 16 image tokens (patch 16) + 48 language tokens
# (padded, the padding masked out), π0.5's prompt carrying the state as 10 discretised numbers.
@pytest.mark.parametrize("kind", KINDS)
def test_infer_shapes_mask_and_chunk(backends, kind):
    vla = backends[kind]
    out = vla.infer(obs())
    m = out.prefix_embeddings.shape[0]
    assert vla.embed_dim == 64 and out.prefix_embeddings.shape == (m, 64)
    assert out.prefix_mask.shape == (m,) and out.prefix_mask.dtype == np.bool_
    assert out.reference_chunk.shape == (50, 5) == (vla.chunk_size, vla.action_dim)
    assert np.isfinite(out.prefix_embeddings).all() and np.isfinite(out.reference_chunk).all()
    valid = int(out.prefix_mask.sum())
    if kind == "smolvla":
        assert out.prefix_mask.all() and 2 * 4 + 1 + 1 <= m <= 2 * 4 + 16 + 1
    else:
        assert m == 2 * 16 + 48
        assert out.prefix_mask[: 2 * 16].all() and not out.prefix_mask[-1]  # images valid, language padded
    if kind == "pi05":  # "Task: ..., State: <10 numbers of 1-3 digits>;\nAction: " is much longer than π0's prompt
        assert valid > int(backends["pi0"].infer(obs()).prefix_mask.sum()) + 10


@pytest.mark.parametrize("kind", ("pi0", "pi05"))
def test_pi05_reads_the_state_as_tokens_pi0_does_not(backends, kind):
    """π0.5's prefix depends on the state (its discrete state tokens); π0's prefix does not (state -> expert)."""
    a, b = obs(7), obs(7)
    b.proprio = -a.proprio
    za, zb = backends[kind].infer(a).prefix_embeddings, backends[kind].infer(b).prefix_embeddings
    if kind == "pi05":
        assert not np.allclose(za, zb, atol=1e-4)
    else:
        np.testing.assert_allclose(za, zb, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_captured_prefix_is_the_direct_prefix_forward_and_chunk_is_lerobots(backends, kind):
    """One call gives the embeddings a direct prefix forward gives, and LeRobot's own chunk for the same noise."""
    vla, o = backends[kind], obs(1)
    torch.manual_seed(123)
    out = vla.infer(o)
    batch, prefix, pad = vla.prefix_forward([o])  # embed_prefix + the backbone's prefix-only forward, called directly
    with torch.no_grad():
        torch.manual_seed(123)
        chunk = vla.postprocessor(vla.policy.predict_action_chunk(batch))
    np.testing.assert_allclose(out.prefix_embeddings, prefix[0].float().numpy(), atol=1e-5)
    np.testing.assert_array_equal(out.prefix_mask, pad[0].numpy())
    np.testing.assert_allclose(out.reference_chunk, chunk[0].numpy(), atol=1e-5)
    assert np.abs(out.reference_chunk).max() > 0
    # the instance-level wrappers are gone again
    assert "embed_prefix" not in vars(vla.policy.model) and "forward" not in vars(vla._backbone())


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_reload_restores_the_saved_weights(tiny, backends, kind):
    """Every tensor of model.safetensors is in the reloaded policy, unchanged (not re-initialised)."""
    from safetensors.torch import load_file

    root, pol = tiny[kind]
    saved = load_file(str(pol / "model.safetensors"))
    state = backends[kind].policy.state_dict()
    assert saved and set(saved) <= set(state)
    for name, tensor in saved.items():
        torch.testing.assert_close(state[name].float(), tensor.float(), msg=name)
    again = load_backend(kind, pol, **local_folder_kwargs(kind, root))
    torch.manual_seed(5)
    a = again.infer(obs(2))
    torch.manual_seed(5)
    b = backends[kind].infer(obs(2))
    np.testing.assert_allclose(a.prefix_embeddings, b.prefix_embeddings, atol=1e-6)
    np.testing.assert_allclose(a.reference_chunk, b.reference_chunk, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_batched_inference_and_any_image_size(backends, kind):
    outs = backends[kind].infer_batch([obs(2), obs(3, size=96)])
    assert len(outs) == 2 and all(o.reference_chunk.shape == (50, 5) for o in outs)
    single = backends[kind].infer(obs(2))
    np.testing.assert_allclose(outs[0].prefix_embeddings, single.prefix_embeddings, atol=1e-4)


@pytest.mark.parametrize("kind", ("pi0", "smolvla"))
def test_bfloat16(tiny, kind):
    """dtype=bfloat16 (what auto picks on CUDA) runs and stays close to float32."""
    root, pol = tiny[kind]
    vla16 = load_backend(kind, pol, dtype="bfloat16", **local_folder_kwargs(kind, root))
    vla32 = load_backend(kind, pol, dtype="float32", **local_folder_kwargs(kind, root))
    assert any(p.dtype == torch.bfloat16 for p in vla16.policy.parameters())
    assert all(p.dtype == torch.float32 for p in vla32.policy.parameters())
    z16, z32 = vla16.infer(obs(4)).prefix_embeddings, vla32.infer(obs(4)).prefix_embeddings
    assert z16.dtype == np.float32 and np.isfinite(z16).all()
    assert np.abs(z16 - z32).mean() < 0.1 * np.abs(z32).mean()


# ---- bad input: a clear error at start-up naming cause and fix --------------------------------------
def test_folder_that_is_not_a_lerobot_policy(tiny, tmp_path):
    from rlt_ros.core.vla import default_checkpoint

    with pytest.raises(CheckpointFolderError, match="not a directory"):
        load_backend("pi0", tmp_path / "missing")
    with pytest.raises(CheckpointFolderError, match="not a LeRobot policy folder, missing .*policy_preprocessor.json"):
        load_backend("pi05", default_checkpoint())  # rlt_ros's built-in VLA: config.json + model.safetensors only
    with pytest.raises(CheckpointFolderError, match="holds a 'pi0' policy, not 'pi05': set vla.backend: pi0"):
        load_backend("pi05", tiny["pi0"][1])
    with pytest.raises(ValueError, match="valid choices: builtin, smolvla, pi0, pi05"):
        load_backend("pi1", tiny["pi0"][1])
    with pytest.raises(ValueError, match="not image features of this policy"):
        root, pol = tiny["smolvla"]
        load_backend("smolvla", pol, vlm_path=root / "vlm", camera_map={"base": "observation.images.top"})


def test_missing_tokenizer_or_vlm_folder(tiny, tmp_path):
    root, pol = tiny["pi05"]
    with pytest.raises(CheckpointFolderError, match="no tokenizer_config.json there; point vla.tokenizer_path"):
        load_backend("pi05", pol, tokenizer_path=tmp_path)
    # a real checkpoint names the hub tokenizer, unreachable offline: the error says to set vla.tokenizer_path
    real_like = tmp_path / "pi05_policy"
    shutil.copytree(pol, real_like)
    pre = json.loads((real_like / "policy_preprocessor.json").read_text())
    for step in pre["steps"]:
        if step.get("registry_name") == "tokenizer_processor":
            step["config"]["tokenizer_name"] = "google/paligemma-3b-pt-224"
    (real_like / "policy_preprocessor.json").write_text(json.dumps(pre))
    with pytest.raises(CheckpointFolderError, match="names the tokenizer 'google/paligemma-3b-pt-224'.*set vla.tokenizer_path"):
        load_backend("pi05", real_like)
    assert load_backend("pi05", real_like, tokenizer_path=root / "tokenizer").infer(obs()).reference_chunk.shape == (50, 5)
    with pytest.raises(CheckpointFolderError, match="not a local VLM folder.*set vla.vlm_path"):
        load_backend("smolvla", tiny["smolvla"][1], vlm_path=tmp_path)
    with pytest.raises(ValueError, match="tokenizer_path is for pi0/pi05"):
        load_backend("smolvla", tiny["smolvla"][1], tokenizer_path=root / "tokenizer")


@pytest.mark.parametrize("kind", KINDS)
def test_observation_validation_and_arm_compatibility(backends, kind):
    from rlt_ros.core.arm import ArmConfig

    vla = backends[kind]
    bad = obs(4, proprio_dim=7)
    with pytest.raises(VLAInputError, match="proprio has length 7, this VLA expects 10"):
        vla.infer(bad)
    bad = obs(5)
    del bad.images["wrist"]
    with pytest.raises(VLAInputError, match="missing camera"):
        vla.infer(bad)
    bad = obs(6)
    bad.images["base"] = bad.images["base"][:, :, 0]
    with pytest.raises(VLAInputError, match="image encoding must be rgb8"):
        vla.infer(bad)
    vla.check_compatible(JOINTS)
    with pytest.raises(IncompatibleArmError, match="joint order mismatch.*config/arms/<arm>.yaml"):
        vla.check_compatible(JOINTS[::-1])
    import yaml

    doc = yaml.safe_load(open("config/arms/so101.yaml"))
    so101 = ArmConfig(**doc["/**"]["ros__parameters"]["arm"])
    with pytest.raises(IncompatibleArmError, match="the VLA outputs 5-D actions but the arm takes 6"):
        vla.check_compatible(so101.joint_names)
    vla.check_compatible(JOINTS, camera_names=["wrist", "base", "side"])
    with pytest.raises(IncompatibleArmError, match=r"reads the cameras \['base', 'wrist'\].*missing: \['base'\].*arm.camera_names"):
        vla.check_compatible(JOINTS, camera_names=["top", "wrist"])


def test_pi_joint_names_come_from_the_checkpoint(tiny):
    """π0/π0.5 store the action's joint order (action_feature_names): the joint-order check needs no extra input."""
    root, pol = tiny["pi0"]
    vla = load_backend("pi0", pol, tokenizer_path=root / "tokenizer")
    assert vla.joint_names == JOINTS
    with pytest.raises(IncompatibleArmError, match="joint order mismatch"):
        vla.check_compatible(JOINTS[1:] + JOINTS[:1])
