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

Which prefix tokens: π0 -- 256 image tokens per camera (SigLIP, 224 px) then the language tokens
(padded to ``tokenizer_max_length``, 48; padding masked out). π0.5 -- the same, but the robot state
enters the prefix as text: its pre-processor normalises the state to [-1, 1], cuts it into 256 bins and
writes the bin numbers into the prompt ("Task: ..., State: 12 200 ...;\\nAction: ", up to 200 tokens),
so the state's discrete tokens are language tokens of the prefix and z_1..z_M carry it. SmolVLA -- 64
image tokens per camera (pixel-shuffled), the language tokens, then one state token (a linear
projection of the state) as the last prefix token.

Loading (no network): ``HF_HUB_OFFLINE=1``, ``PreTrainedConfig.from_pretrained(dir)``,
``Policy.from_pretrained(dir, config=cfg)``, and the checkpoint's own processor pipelines
(``policy_preprocessor.json`` / ``policy_postprocessor.json``: normalisation statistics, tokenizer).
Local folders the checkpoint names by hub id: SmolVLA's VLM (config + tokenizer, ``vlm_path=``) and
π0/π0.5's PaliGemma tokenizer (``tokenizer_path=``; the pre-processor names google/paligemma-3b-pt-224).
Tested with lerobot 0.6.1 (``make setup-vla``) and tiny random-weight models (test/vla/).
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
TINY_SIZES_FILE = "rlt_tiny_sizes.json"  # written by lerobot_tiny next to a shrunk π0/π0.5 (never in real checkpoints)
DTYPES = ("auto", "float32", "bfloat16")  # auto: bfloat16 on CUDA, float32 elsewhere


class LeRobotUnavailableError(ImportError):
    """lerobot (or a package its policies need) is not installed."""


def import_lerobot() -> None:
    """Import lerobot offline; a clear error when it is missing."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import lerobot.policies  # noqa: F401  (registers the policy configs with draccus)
    except ImportError as err:
        raise LeRobotUnavailableError(
            f"the LeRobot VLA backends (smolvla, pi0, pi05) need lerobot 0.6 with its pi and smolvla extras: {err}. "
            "They live in the real-VLA environment: `make setup-vla` (Python >= 3.12, creates .venv-vla), "
            "or `pip install 'lerobot[pi,smolvla]==0.6.1'` in a Python >= 3.12 environment"
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


class CheckpointFolderError(ValueError):
    """A folder that is not a loadable LeRobot policy checkpoint, or a local folder it needs is missing."""


POLICY_FILES = ("config.json", "model.safetensors", PREPROCESSOR_FILE, POSTPROCESSOR_FILE)


def _check_dir(path: Path, kind: str) -> None:
    expected = (f"a LeRobot {kind} policy folder holds {', '.join(POLICY_FILES)} (what the policy's and its processors' "
                "`save_pretrained` write, e.g. a `lerobot-train` output's checkpoints/last/pretrained_model)")
    if not path.is_dir():
        raise CheckpointFolderError(f"LeRobot checkpoint {path}: not a directory; {expected}")
    missing = [name for name in POLICY_FILES if not (path / name).is_file()]
    if missing:
        raise CheckpointFolderError(f"LeRobot checkpoint {path}: not a LeRobot policy folder, missing "
                                    f"{', '.join(missing)}; {expected}")
    try:
        policy_type = json.loads((path / "config.json").read_text()).get("type")
    except (json.JSONDecodeError, AttributeError) as err:
        raise CheckpointFolderError(f"LeRobot checkpoint {path}: config.json is not a LeRobot policy config ({err})") from err
    if policy_type != kind:
        hint = f"set vla.backend: {policy_type}" if policy_type in LEROBOT_KINDS else (
            f"rlt_ros reads {', '.join(LEROBOT_KINDS)} policies" if policy_type else "config.json names no policy 'type'")
        raise CheckpointFolderError(f"LeRobot checkpoint {path} holds a {policy_type!r} policy, not {kind!r}: {hint}")


def _tokenizer_name(path: Path) -> str | None:
    """The tokenizer the checkpoint's pre-processor names (hub id or folder), if it has a tokenizer step."""
    for step in json.loads((path / PREPROCESSOR_FILE).read_text()).get("steps", []):
        if step.get("registry_name") == "tokenizer_processor":
            return step.get("config", {}).get("tokenizer_name")
    return None


def _check_tokenizer(kind: str, path: Path, tokenizer_path: str | Path | None) -> str | None:
    """The local tokenizer folder to use (None: the one the checkpoint names), or an error naming the fix."""
    if tokenizer_path is not None:
        if not (Path(tokenizer_path) / "tokenizer_config.json").is_file():
            raise CheckpointFolderError(
                f"{kind} tokenizer_path {tokenizer_path}: no tokenizer_config.json there; point vla.tokenizer_path at a "
                "local copy of the PaliGemma tokenizer (e.g. `hf download google/paligemma-3b-pt-224 --include "
                "'tokenizer*' special_tokens_map.json --local-dir DIR` on a machine with network)")
        return str(tokenizer_path)
    named = _tokenizer_name(path)
    if named is not None and not Path(named).is_dir():
        raise CheckpointFolderError(
            f"{kind} checkpoint {path}: its pre-processor names the tokenizer {named!r}, which is not a local folder, "
            "and loading is offline; set vla.tokenizer_path (tokenizer_path=) to a local copy of it (e.g. "
            f"`hf download {named} --include 'tokenizer*' special_tokens_map.json --local-dir DIR` on a machine with network)")
    return None


def _resolve_dtype(dtype: str, device: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"vla dtype {dtype!r}: valid choices are {', '.join(DTYPES)}")
    if dtype == "auto":
        return "bfloat16" if str(device).startswith("cuda") else "float32"
    return dtype


@contextlib.contextmanager
def tiny_pi_sizes(kind: str, sizes: dict | None):
    """While lerobot builds a π0/π0.5: the Gemma, SigLIP, projector and vocabulary sizes of ``sizes``
    (see lerobot_tiny.TINY_PI) instead of those lerobot hard-codes. ``sizes=None``: no change.

    lerobot's ``PaliGemmaWithExpertModel`` sets the hard-coded sizes on the transformers configs, then builds
    the two models from them; the models' constructors are wrapped here to shrink those configs first."""
    if sizes is None:
        yield
        return
    import importlib

    modeling = importlib.import_module(f"lerobot.policies.{kind}.modeling_{kind}")
    real = modeling.get_gemma_config, modeling.PaliGemmaForConditionalGenerationWithPiGemma, modeling.PiGemmaForCausalLM
    vocab, width = sizes["vocab_size"], sizes["vlm"]["width"]

    def get_gemma_config(variant):
        return modeling.GemmaConfig(**sizes["vlm" if variant == "gemma_2b" else "expert"])

    def paligemma(config):
        config.text_config.vocab_size = config._vocab_size = vocab  # noqa: SLF001
        config.image_token_index = vocab - 1
        for name, value in {**sizes["vision"], "projection_dim": width}.items():
            setattr(config.vision_config, name, value)
        return real[1](config=config)

    def expert(config):
        config.vocab_size = vocab
        return real[2](config=config)

    modeling.get_gemma_config, modeling.PaliGemmaForConditionalGenerationWithPiGemma, modeling.PiGemmaForCausalLM = (
        get_gemma_config, paligemma, expert)
    try:
        yield
    finally:
        modeling.get_gemma_config, modeling.PaliGemmaForConditionalGenerationWithPiGemma, modeling.PiGemmaForCausalLM = real


def action_joint_names(cfg) -> list[str]:
    """Joint names of the action from a LeRobot policy config (``action_feature_names``), [] when absent."""
    names = getattr(cfg, "action_feature_names", None) or []
    return [n[: -len(".pos")] if n.endswith(".pos") else n for n in names]


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
        # the action's joint order: given, else the config's action_feature_names (π0/π0.5 in lerobot 0.6 store
        # them; "<joint>.pos" as LeRobot's robots name them), else unknown (check_compatible checks the dimension)
        self._joint_names = list(joint_names or action_joint_names(cfg))
        if self._joint_names and len(self._joint_names) != self._action_dim:
            raise ValueError(f"{len(self._joint_names)} joint_names given for a {self._action_dim}-D {kind} action")
        self._embed_dim = int(self._backbone_width())

    # ---- loading ----------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, kind: str, path: str | Path, device: str = "cpu", camera_map: dict[str, str] | None = None,
                        joint_names: list[str] | None = None, vlm_path: str | Path | None = None,
                        tokenizer_path: str | Path | None = None, dtype: str = "auto",
                        num_threads: int | None = None) -> "LeRobotBackend":
        """Load ``kind`` from the local directory ``path`` (no network).

        camera_map: our camera role -> the policy's image feature key (default: role r -> "observation.images.r").
        joint_names: the action's joint order, for check_compatible (default: the config's action_feature_names,
        which π0/π0.5 in lerobot 0.6 store; SmolVLA's config has none: then only the dimension is checked).
        vlm_path: SmolVLA: local folder with the VLM's config.json + tokenizer (overrides vlm_model_name).
        tokenizer_path: π0/π0.5: local folder with the PaliGemma tokenizer (overrides the pre-processor's hub id).
        dtype: "auto" (bfloat16 on CUDA, float32 elsewhere), "float32" or "bfloat16": π0/π0.5's config dtype
        (LeRobot keeps the vision tower, projector and norms in float32), SmolVLA's VLM + action expert.
        """
        if kind not in LEROBOT_KINDS:
            raise ValueError(f"unknown LeRobot VLA kind {kind!r}; valid choices: {', '.join(LEROBOT_KINDS)}")
        path = Path(path)
        _check_dir(path, kind)
        dtype = _resolve_dtype(dtype, device)
        if kind == "smolvla" and tokenizer_path is not None:
            raise ValueError("tokenizer_path is for pi0/pi05; SmolVLA's tokenizer comes with its VLM folder (vlm_path)")
        if kind != "smolvla" and vlm_path is not None:
            raise ValueError(f"vlm_path is for SmolVLA; {kind} needs only its tokenizer locally (tokenizer_path)")
        tokenizer_dir = None if kind == "smolvla" else _check_tokenizer(kind, path, tokenizer_path)
        import_lerobot()
        import torch
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.processor import PolicyProcessorPipeline
        from lerobot.processor.converters import policy_action_to_transition, transition_to_policy_action

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        cfg = PreTrainedConfig.from_pretrained(str(path))
        cfg.device = device
        if kind == "smolvla":
            if vlm_path is not None:
                cfg.vlm_model_name = str(vlm_path)
            if not (Path(cfg.vlm_model_name) / "config.json").is_file():
                raise CheckpointFolderError(
                    f"SmolVLA checkpoint {path}: vlm_model_name={cfg.vlm_model_name!r} is not a local VLM folder; offline "
                    "loading needs the VLM's config.json + tokenizer locally: set vla.vlm_path (vlm_path=) to e.g. "
                    "/models/SmolVLM2-500M-Video-Instruct")
            tokenizer_dir = cfg.vlm_model_name
            build = _smolvla_build_patches()
        else:
            cfg.dtype = dtype
            tiny = path / TINY_SIZES_FILE
            build = tiny_pi_sizes(kind, json.loads(tiny.read_text()) if tiny.is_file() else None)
        with build:
            policy = _policy_class(kind).from_pretrained(str(path), config=cfg)
        policy.to(device)
        if kind == "smolvla" and dtype == "bfloat16":  # as LeRobot loads SmolVLM: the VLM + expert in bf16
            policy.model.vlm_with_expert.to(torch.bfloat16)
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

    def prefix_forward(self, observations: list[Observation]):
        """The prefix pass alone, called directly as ``sample_actions`` calls it (no denoising): returns the
        pre-processed batch, the final-layer prefix states [B, L, D] and the pad mask [B, L] (torch tensors).
        For benchmarks (prefix-only latency) and for checking what :meth:`infer` captures."""
        import torch

        lang = ("observation.language.tokens", "observation.language.attention_mask")
        policy = self.policy
        with torch.no_grad():
            batch = self.preprocessor(self._batch(observations))
            if self._kind == "smolvla":
                from lerobot.policies.smolvla.modeling_smolvla import make_att_2d_masks

                images, img_masks = policy.prepare_images(batch)
                embs, pad, att = policy.model.embed_prefix(images, img_masks, batch[lang[0]], batch[lang[1]],
                                                           state=policy.prepare_state(batch))
                att_4d = make_att_2d_masks(pad, att)
            else:
                from lerobot.policies.common.vla_utils import make_att_2d_masks, prepare_attention_masks_4d

                images, img_masks = policy._preprocess_images(batch)
                embs, pad, att = policy.model.embed_prefix(images, img_masks, batch[lang[0]], batch[lang[1]])
                att_4d = prepare_attention_masks_4d(make_att_2d_masks(pad, att))
            (prefix, _), _ = self._backbone().forward(
                attention_mask=att_4d, position_ids=torch.cumsum(pad, 1) - 1, past_key_values=None,
                inputs_embeds=[embs, None], use_cache=True)
        return batch, prefix, pad

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
