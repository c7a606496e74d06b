"""LeRobot VLAs (SmolVLA, π0, π0.5) behind the VLABackend interface, loaded offline from a local directory.

    vla = load_backend("smolvla", "/models/my_smolvla", device="cuda",
                       camera_map={"base": "observation.images.top", "wrist": "observation.images.wrist"},
                       joint_names=["shoulder_pan", ...])
    out = vla.infer(obs)   # prefix_embeddings [M, D] (final-layer, post-norm), prefix_mask [M], reference_chunk [H, A]

How the prefix embeddings are read: LeRobot's ``sample_actions`` embeds the prefix (``embed_prefix``:
image tokens of every camera, language tokens, and for SmolVLA the state token), runs the VLM backbone
once over it with ``inputs_embeds=[prefix, None]`` to fill the KV cache, and throws the backbone's
output away. During ``predict_action_chunk`` this backend wraps ``embed_prefix`` and the backbone's
``forward`` (instance attributes, restored afterwards) and keeps that output: the final-layer,
post-norm prefix states [B, L, D] (the backbone applies its final norm to every stream it returns)
and the prefix padding mask [B, L]. So one call gives both the embeddings and LeRobot's own action
chunk, at the cost of a single prefix pass.

Loading (no network): ``HF_HUB_OFFLINE=1``, ``PreTrainedConfig.from_pretrained(dir)``,
``Policy.from_pretrained(dir, config=cfg)``, and the checkpoint's own processor pipelines
(``policy_preprocessor.json`` / ``policy_postprocessor.json``: normalisation statistics, tokenizer).
SmolVLA needs its VLM's config and tokenizer as a local folder: ``vlm_path=`` (or ``vlm_model_name``
in the checkpoint's config.json pointing at a local folder).

Status: SmolVLA is tested offline with a tiny random-weight model (test/test_vla_lerobot.py). π0/π0.5
use the same code path, but lerobot 0.4.4's π0/π0.5 need a patched transformers that is not on PyPI,
so they are untested here.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rlt_ros.core.types import Observation, VLAOutput
from rlt_ros.core.vla.base import VLABackend

LEROBOT_KINDS = ("smolvla", "pi0", "pi05")
OBS_STATE = "observation.state"
ACTION = "action"
IMAGE_PREFIX = "observation.images."
PREPROCESSOR_FILE = "policy_preprocessor.json"
POSTPROCESSOR_FILE = "policy_postprocessor.json"


class LeRobotUnavailableError(ImportError):
    """lerobot (or a package its policies need) is not installed."""


def import_lerobot() -> None:
    """Import lerobot offline, with placeholders for its dataset-only dependencies; clear error if missing."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from rlt_ros.core.vla._lerobot_compat import prepare_lerobot_import

    prepare_lerobot_import()
    try:
        import lerobot.policies  # noqa: F401  (registers the policy configs with draccus)
    except ImportError as err:
        raise LeRobotUnavailableError(
            f"the LeRobot VLA backends need lerobot 0.4.x: {err}. Install them with "
            "`pip install --no-deps lerobot==0.4.4 && pip install -r requirements/lerobot.txt` (see that file)"
        ) from err
    with contextlib.suppress(ImportError):
        import huggingface_hub.constants as hf_constants

        hf_constants.HF_HUB_OFFLINE = True


def _policy_class(kind: str):
    if kind == "smolvla":
        from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

        return SmolVLAPolicy
    if kind == "pi0":
        from lerobot.policies.pi0.modeling_pi0 import PI0Policy

        return PI0Policy
    if kind == "pi05":
        from lerobot.policies.pi05.modeling_pi05 import PI05Policy

        return PI05Policy
    raise ValueError(f"unknown LeRobot VLA kind {kind!r}; valid choices: {', '.join(LEROBOT_KINDS)}")


class _TokenizerOnlyProcessor:
    """Stands in for transformers.AutoProcessor while SmolVLA is built: SmolVLA only reads
    ``processor.tokenizer`` (its image-token ids); the full SmolVLM processor would import torchvision."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    @classmethod
    def from_pretrained(cls, name_or_path, **kwargs):
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(name_or_path, **kwargs))


@contextlib.contextmanager
def _smolvla_build_patches():
    import lerobot.policies.smolvla.smolvlm_with_expert as swe

    saved = swe.AutoProcessor
    swe.AutoProcessor = _TokenizerOnlyProcessor
    try:
        yield
    finally:
        swe.AutoProcessor = saved


def _check_dir(path: Path) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"LeRobot checkpoint {path}: not a directory (expected config.json + model.safetensors "
                                "+ policy_preprocessor.json/policy_postprocessor.json, e.g. a `save_pretrained` output)")
    for name in ("config.json", "model.safetensors", PREPROCESSOR_FILE, POSTPROCESSOR_FILE):
        if not (path / name).is_file():
            raise FileNotFoundError(f"LeRobot checkpoint {path}: missing {name}")


class LeRobotBackend(VLABackend):
    """A LeRobot policy (SmolVLA, π0, π0.5), frozen, behind the VLABackend interface."""

    def __init__(self, kind: str, policy, preprocessor, postprocessor, camera_map: dict[str, str],
                 joint_names: list[str] | None = None, device: str = "cpu"):
        self._kind = kind
        self.policy = policy.eval()
        for p in self.policy.parameters():
            p.requires_grad_(False)
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.camera_map = dict(camera_map)
        self.device = device
        cfg = policy.config
        self._action_dim = int(cfg.output_features[ACTION].shape[0])
        self._proprio_dim = int(cfg.input_features[OBS_STATE].shape[0]) if OBS_STATE in cfg.input_features else None
        self._joint_names = list(joint_names or [])
        if self._joint_names and len(self._joint_names) != self._action_dim:
            raise ValueError(f"{len(self._joint_names)} joint_names given for a {self._action_dim}-D {kind} action")
        self._embed_dim = int(self._backbone_width())

    # ---- loading ----------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, kind: str, path: str | Path, device: str = "cpu", camera_map: dict[str, str] | None = None,
                        joint_names: list[str] | None = None, vlm_path: str | Path | None = None,
                        num_threads: int | None = None) -> "LeRobotBackend":
        """Load ``kind`` from the local directory ``path`` (no network).

        camera_map: our camera role -> the policy's image feature key (default: role r -> "observation.images.r").
        joint_names: the action's joint order, for check_compatible (LeRobot configs do not store names).
        vlm_path: SmolVLA only: local folder with the VLM's config.json + tokenizer (overrides vlm_model_name).
        """
        if kind not in LEROBOT_KINDS:
            raise ValueError(f"unknown LeRobot VLA kind {kind!r}; valid choices: {', '.join(LEROBOT_KINDS)}")
        path = Path(path)
        _check_dir(path)
        import_lerobot()
        import torch
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.processor import PolicyProcessorPipeline
        from lerobot.processor.converters import policy_action_to_transition, transition_to_policy_action

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        cfg = PreTrainedConfig.from_pretrained(str(path))
        if cfg.type != kind:
            raise ValueError(f"LeRobot checkpoint {path} holds a {cfg.type!r} policy, not {kind!r}; use kind={cfg.type!r}")
        cfg.device = device
        tokenizer_dir = None
        if kind == "smolvla":
            if vlm_path is not None:
                cfg.vlm_model_name = str(vlm_path)
            if not Path(cfg.vlm_model_name).is_dir():
                raise FileNotFoundError(
                    f"SmolVLA checkpoint {path}: vlm_model_name={cfg.vlm_model_name!r} is not a local folder; offline "
                    "loading needs the VLM's config.json + tokenizer locally: pass vlm_path=/path/to/SmolVLM2-500M-Video-Instruct")
            tokenizer_dir = cfg.vlm_model_name
        build = _smolvla_build_patches() if kind == "smolvla" else contextlib.nullcontext()
        with build:
            policy = _policy_class(kind).from_pretrained(str(path), config=cfg)
        policy.to(device)
        overrides: dict[str, Any] = {"device_processor": {"device": device}}
        if tokenizer_dir is not None:
            overrides["tokenizer_processor"] = {"tokenizer_name": tokenizer_dir}
        pre = PolicyProcessorPipeline.from_pretrained(str(path), config_filename=PREPROCESSOR_FILE, overrides=overrides)
        post = PolicyProcessorPipeline.from_pretrained(
            str(path), config_filename=POSTPROCESSOR_FILE, overrides={"device_processor": {"device": "cpu"}},
            to_transition=policy_action_to_transition, to_output=transition_to_policy_action)
        image_keys = [k for k in cfg.input_features if k.startswith(IMAGE_PREFIX)]
        if camera_map is None:
            camera_map = {k[len(IMAGE_PREFIX):]: k for k in image_keys}
        bad = {r: k for r, k in camera_map.items() if k not in image_keys}
        if bad:
            raise ValueError(f"camera_map {bad}: not image features of this policy; its image features are {image_keys}")
        return cls(kind, policy, pre, post, camera_map, joint_names=joint_names, device=device)

    def _backbone_width(self) -> int:
        model = self.policy.model
        if self._kind == "smolvla":
            return model.vlm_with_expert.config.text_config.hidden_size
        pge = model.paligemma_with_expert
        cfg = pge.paligemma.config
        return getattr(cfg, "text_config", cfg).hidden_size

    # ---- properties -------------------------------------------------------------------------------
    @property
    def kind(self) -> str:  # type: ignore[override]
        return self._kind

    @property
    def embed_dim(self) -> int:
        return self._embed_dim

    @property
    def chunk_size(self) -> int:
        return int(self.policy.config.chunk_size)

    @property
    def action_dim(self) -> int:
        return self._action_dim

    @property
    def joint_names(self) -> list[str]:
        return list(self._joint_names)

    @property
    def camera_names(self) -> list[str]:
        return list(self.camera_map)

    @property
    def image_size(self) -> None:
        return None  # LeRobot resizes (with padding) to its own input size

    @property
    def proprio_dim(self) -> int | None:
        return self._proprio_dim

    # ---- inference --------------------------------------------------------------------------------
    def _backbone(self):
        m = self.policy.model
        return m.vlm_with_expert if self._kind == "smolvla" else m.paligemma_with_expert

    @contextlib.contextmanager
    def _capture_prefix(self, captured: dict):
        """Keep what sample_actions computes and discards: the prefix pad mask and the prefix output."""
        model, backbone = self.policy.model, self._backbone()
        orig_embed, orig_forward = model.embed_prefix, backbone.forward

        def embed_prefix(*args, **kwargs):
            out = orig_embed(*args, **kwargs)
            captured.setdefault("pad_masks", out[1])
            return out

        def forward(*args, **kwargs):
            out = orig_forward(*args, **kwargs)
            embeds = kwargs.get("inputs_embeds")
            if embeds is not None and embeds[0] is not None and embeds[1] is None and "prefix" not in captured:
                captured["prefix"] = out[0][0]
            return out

        model.embed_prefix, backbone.forward = embed_prefix, forward
        try:
            yield
        finally:
            del model.embed_prefix, backbone.forward  # drop the instance attributes: the class methods return

    def _batch(self, observations: list[Observation]) -> dict[str, Any]:
        import torch

        batch: dict[str, Any] = {}
        for role, key in self.camera_map.items():
            imgs = np.stack([o.images[role] for o in observations])  # uint8 [B, H, W, 3]
            batch[key] = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div_(255.0)
        if self._proprio_dim is not None:
            batch[OBS_STATE] = torch.from_numpy(np.stack([np.asarray(o.proprio, np.float32) for o in observations]))
        batch["task"] = [o.instruction for o in observations]
        return batch

    def _infer_batch(self, observations: list[Observation]) -> list[VLAOutput]:
        sizes = {tuple(o.images[r].shape for r in self.camera_map) for o in observations}
        if len(sizes) > 1:  # images of different sizes cannot be stacked: one forward each
            return [out for o in observations for out in self._infer_batch([o])]
        return self._infer_stacked(observations)

    def _infer_stacked(self, observations: list[Observation]) -> list[VLAOutput]:
        import torch

        captured: dict = {}
        with torch.no_grad():
            batch = self.preprocessor(self._batch(observations))
            with self._capture_prefix(captured):
                actions = self.policy.predict_action_chunk(batch)
            actions = self.postprocessor(actions)
        if "prefix" not in captured or "pad_masks" not in captured:
            raise RuntimeError(f"{self._kind}: could not capture the prefix embeddings (lerobot version changed?)")
        z = captured["prefix"].float().cpu().numpy()
        mask = captured["pad_masks"].bool().cpu().numpy()
        chunk = actions.float().cpu().numpy()[:, :, : self._action_dim]
        assert z.shape[:2] == mask.shape and z.shape[2] == self._embed_dim, (z.shape, mask.shape)
        assert chunk.shape == (len(observations), self.chunk_size, self._action_dim), chunk.shape
        return [VLAOutput(prefix_embeddings=z[i], prefix_mask=mask[i], reference_chunk=chunk[i])
                for i in range(len(observations))]


# ---- a tiny random-weight SmolVLA for offline tests and benchmarks ----------------------------------
def make_tiny_smolvla(out_dir: str | Path, action_dim: int = 5, state_dim: int = 10, cameras=("base", "wrist"),
                      image_size: int = 64, chunk_size: int = 50, seed: int = 0) -> Path:
    """Build and save a tiny SmolVLA with random weights (no download): ``out_dir/vlm`` holds a tiny
    SmolVLMConfig + a word-level tokenizer made with ``tokenizers``; ``out_dir/policy`` the policy
    checkpoint with its processor pipelines (identity-ish normalisation stats). Returns the policy dir."""
    import_lerobot()
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, SmolVLMConfig

    out = Path(out_dir)
    vlm_dir, pol_dir = out / "vlm", out / "policy"
    vlm_dir.mkdir(parents=True, exist_ok=True)
    specials = ["<pad>", "<unk>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>", "<global-img>"]
    words = list("abcdefghijklmnopqrstuvwxyz0123456789.,:;!?'-_()") + ["insert", "the", "peg", "into", "socket", "pick", "place"]
    vocab = {t: i for i, t in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<|im_start|>", eos_token="<end_of_utterance>",
        extra_special_tokens={"fake_image_token": "<fake_token_around_image>", "image_token": "<image>",
                              "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"},
    ).save_pretrained(vlm_dir)
    SmolVLMConfig(
        text_config=dict(model_type="llama", vocab_size=len(vocab), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                         max_position_embeddings=512, pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=image_size, patch_size=16),
        scale_factor=2, image_token_id=vocab["<image>"], vocab_size=len(vocab),
    ).save_pretrained(vlm_dir)
    feats = {f"{IMAGE_PREFIX}{c}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, image_size, image_size)) for c in cameras}
    feats[OBS_STATE] = PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))
    cfg = SmolVLAConfig(
        input_features=feats, output_features={ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(action_dim,))},
        vlm_model_name=str(vlm_dir), load_vlm_weights=False, num_vlm_layers=2, num_expert_layers=1,
        chunk_size=chunk_size, n_action_steps=chunk_size, resize_imgs_with_padding=(image_size, image_size),
        tokenizer_max_length=16, num_steps=2, device="cpu", push_to_hub=False,
    )
    torch.manual_seed(seed)
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    with _smolvla_build_patches():
        policy = SmolVLAPolicy(cfg)
    stats = {
        OBS_STATE: {"mean": torch.zeros(state_dim), "std": torch.ones(state_dim)},
        ACTION: {"mean": torch.zeros(action_dim), "std": torch.ones(action_dim)},
    }
    pre, post = make_smolvla_pre_post_processors(cfg, dataset_stats=stats)
    policy.save_pretrained(pol_dir)
    pre.save_pretrained(pol_dir)
    post.save_pretrained(pol_dir)
    (out / "README.txt").write_text(json.dumps({"what": "tiny random-weight SmolVLA for tests", "vlm": str(vlm_dir)}) + "\n")
    return pol_dir
