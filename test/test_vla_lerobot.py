"""The LeRobot backend with a tiny random-weight SmolVLA built offline (skipped when lerobot is not installed)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("lerobot")

import torch  # noqa: E402

from rlt_ros.core.types import Observation  # noqa: E402
from rlt_ros.core.vla import IncompatibleArmError, VLAInputError, load_backend  # noqa: E402
from rlt_ros.core.vla.lerobot_backend import LeRobotBackend, make_tiny_smolvla  # noqa: E402

JOINTS = ["base_yaw", "shoulder_pitch", "elbow_pitch", "wrist_pitch", "wrist_roll"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return make_tiny_smolvla(tmp_path_factory.mktemp("tiny_smolvla"), action_dim=5, state_dim=10)


@pytest.fixture(scope="module")
def backend(tiny_dir):
    return load_backend("smolvla", tiny_dir, joint_names=JOINTS)


def obs(seed=0, size=64, text="insert the peg into the socket"):
    rng = np.random.default_rng(seed)
    return Observation(images={c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in ("base", "wrist")},
                       proprio=rng.standard_normal(10).astype(np.float32), instruction=text)


def test_infer_returns_prefix_embeddings_and_chunk(backend):
    out = backend.infer(obs())
    m = out.prefix_embeddings.shape[0]
    assert backend.embed_dim == 64 and out.prefix_embeddings.shape == (m, 64)
    # 2 cameras x 4 image tokens (64 px, patch 16, pixel-shuffle 2) + language tokens + 1 state token
    assert m >= 2 * 4 + 1 + 1
    assert out.prefix_mask.shape == (m,) and out.prefix_mask.dtype == np.bool_ and out.prefix_mask.all()
    assert out.reference_chunk.shape == (50, 5) == (backend.chunk_size, backend.action_dim)
    assert np.isfinite(out.prefix_embeddings).all() and np.isfinite(out.reference_chunk).all()


def test_captured_prefix_is_the_backbone_output_and_chunk_is_lerobots(backend):
    """The captured embeddings equal embed_prefix + backbone forward (final norm), and capturing does not
    change LeRobot's chunk for the same noise."""
    from lerobot.policies.smolvla.modeling_smolvla import make_att_2d_masks

    o = obs(1)
    torch.manual_seed(123)
    out = backend.infer(o)
    policy = backend.policy
    with torch.no_grad():
        batch = backend.preprocessor(backend._batch([o]))
        images, img_masks = policy.prepare_images(batch)
        state = policy.prepare_state(batch)
        embs, pad, att = policy.model.embed_prefix(images, img_masks, batch["observation.language.tokens"],
                                                   batch["observation.language.attention_mask"], state=state)
        (prefix_out, _), _ = policy.model.vlm_with_expert.forward(
            attention_mask=make_att_2d_masks(pad, att), position_ids=torch.cumsum(pad, 1) - 1,
            past_key_values=None, inputs_embeds=[embs, None], use_cache=True, fill_kv_cache=True)
        torch.manual_seed(123)
        chunk = backend.postprocessor(policy.predict_action_chunk(batch))
    np.testing.assert_allclose(out.prefix_embeddings, prefix_out[0].numpy(), atol=1e-5)
    np.testing.assert_array_equal(out.prefix_mask, pad[0].numpy())
    np.testing.assert_allclose(out.reference_chunk, chunk[0].numpy(), atol=1e-5)
    # the instance-level wrappers are gone again
    assert "embed_prefix" not in vars(policy.model) and "forward" not in vars(policy.model.vlm_with_expert)


def test_batched_inference_and_any_image_size(backend):
    outs = backend.infer_batch([obs(2), obs(3, size=96)])
    assert len(outs) == 2 and all(o.reference_chunk.shape == (50, 5) for o in outs)


def test_validation_and_compatibility(backend):
    bad = obs(4)
    bad.proprio = np.zeros(7, np.float32)
    with pytest.raises(VLAInputError, match="proprio has length 7, this VLA expects 10"):
        backend.infer(bad)
    bad = obs(5)
    del bad.images["wrist"]
    with pytest.raises(VLAInputError, match="missing camera"):
        backend.infer(bad)
    backend.check_compatible(JOINTS)
    with pytest.raises(IncompatibleArmError, match="joint order mismatch"):
        backend.check_compatible(JOINTS[::-1])


def test_loading_errors(tiny_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        LeRobotBackend.from_pretrained("smolvla", tmp_path / "missing")
    with pytest.raises(ValueError, match="holds a 'smolvla' policy, not 'pi0'"):
        LeRobotBackend.from_pretrained("pi0", tiny_dir)
    with pytest.raises(ValueError, match="not image features of this policy"):
        LeRobotBackend.from_pretrained("smolvla", tiny_dir, camera_map={"base": "observation.images.top"})
    with pytest.raises(ValueError, match="valid choices: builtin, smolvla, pi0, pi05"):
        load_backend("pi1", tiny_dir)
