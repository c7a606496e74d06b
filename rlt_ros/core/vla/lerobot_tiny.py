"""Tiny random-weight LeRobot VLAs (SmolVLA, π0, π0.5), built offline for tests and benchmarks.

    pol_dir = make_tiny_vla("pi05", "/tmp/tiny_pi05")     # -> /tmp/tiny_pi05/policy (+ /tmp/tiny_pi05/tokenizer)
    vla = load_backend("pi05", pol_dir, tokenizer_path="/tmp/tiny_pi05/tokenizer")

Nothing is downloaded: the tokenizer is a word-level one made with the ``tokenizers`` library, the
weights are random. ``size="real"`` builds π0/π0.5/SmolVLA at their published sizes (random weights;
for GPU latency benchmarks: π0/π0.5 ≈ 3.5 B parameters).

π0/π0.5 in lerobot 0.6 know only the ``gemma_2b``/``gemma_300m`` variants and hard-code SigLIP-so400m,
a 2048-wide projector and a 257,152-token vocabulary. A tiny one is built under
:func:`tiny_pi_sizes`, which shrinks those sizes while lerobot constructs the model; the sizes are
saved next to the checkpoint (``TINY_SIZES_FILE``), and :class:`~.lerobot_backend.LeRobotBackend`
applies the same patch when it loads a checkpoint that carries that file (real checkpoints never do).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from rlt_ros.core.vla.lerobot_backend import (
    ACTION,
    IMAGE_PREFIX,
    OBS_STATE,
    TINY_SIZES_FILE,
    _smolvla_build_patches,
    import_lerobot,
    tiny_pi_sizes,
)

SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>", "<eos>", "<|im_start|>", "<end_of_utterance>",
                  "<fake_token_around_image>", "<image>", "<global-img>"]
WORDS = list("abcdefghijklmnopqrstuvwxyz0123456789.,:;!?'-_()") + [
    "insert", "the", "peg", "into", "socket", "pick", "place", "Task", "State", "Action"]
# the tiny π0/π0.5 backbone (width = D of the prefix embeddings) and action expert; both need the same
# depth, heads and head_dim (their attention is joint, layer by layer)
TINY_PI = {"vlm": dict(width=64, depth=2, mlp_dim=128, num_heads=2, num_kv_heads=1, head_dim=32),
           "expert": dict(width=32, depth=2, mlp_dim=64, num_heads=2, num_kv_heads=1, head_dim=32),
           "vision": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          patch_size=16),
           "vocab_size": len(SPECIAL_TOKENS) + len(WORDS)}


def make_tokenizer(out_dir: Path, smolvla: bool = False) -> Path:
    """A word-level tokenizer (digits split one by one, as π0.5's state tokens need) saved to ``out_dir``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(),
                                                 pre_tokenizers.Digits(individual_digits=True)])
    kwargs = dict(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")
    if smolvla:
        kwargs.update(bos_token="<|im_start|>", eos_token="<end_of_utterance>", extra_special_tokens={
            "fake_image_token": "<fake_token_around_image>", "image_token": "<image>",
            "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>"})
    else:
        kwargs.update(bos_token="<bos>", eos_token="<eos>")
    out_dir.mkdir(parents=True, exist_ok=True)
    PreTrainedTokenizerFast(**kwargs).save_pretrained(out_dir)
    return out_dir


def _features(cameras, image_size: int, state_dim: int, action_dim: int):
    from lerobot.configs.types import FeatureType, PolicyFeature

    inputs = {f"{IMAGE_PREFIX}{c}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, image_size, image_size))
              for c in cameras}
    inputs[OBS_STATE] = PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))
    return inputs, {ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(action_dim,))}


def _stats(state_dim: int, action_dim: int) -> dict:
    """Normalisation statistics: identity for MEAN_STD, [-1, 1] for π0.5's QUANTILES."""
    import torch

    def one(n):
        return {"mean": torch.zeros(n), "std": torch.ones(n), "min": -torch.ones(n), "max": torch.ones(n),
                "q01": -torch.ones(n), "q99": torch.ones(n)}

    return {OBS_STATE: one(state_dim), ACTION: one(action_dim)}


def make_tiny_vla(kind: str, out_dir: str | Path, action_dim: int = 5, state_dim: int = 10,
                  cameras=("base", "wrist"), image_size: int = 64, chunk_size: int = 50, seed: int = 0,
                  size: str = "tiny", joint_names: list[str] | None = None) -> Path:
    """Build and save a random-weight ``kind`` ("smolvla", "pi0", "pi05") under ``out_dir``; return the policy dir.

    ``out_dir/policy``: the checkpoint (config.json, model.safetensors, processor pipelines);
    ``out_dir/tokenizer`` (π0/π0.5) or ``out_dir/vlm`` (SmolVLA: tokenizer + VLM config): the local
    folder to pass as ``tokenizer_path`` / ``vlm_path``. size="real": the published sizes (GPU benchmarks).
    joint_names: π0/π0.5 store them as the config's ``action_feature_names`` (the backend reads them back).
    """
    out = Path(out_dir)
    policy, pre, post, info = _build(kind, out, action_dim, state_dim, cameras, image_size, chunk_size, seed, size,
                                     joint_names, "float32", "cpu")
    pol_dir = out / "policy"
    pol_dir.mkdir(parents=True, exist_ok=True)
    if kind != "smolvla" and size == "tiny":
        (pol_dir / TINY_SIZES_FILE).write_text(json.dumps(TINY_PI, indent=1) + "\n")
    policy.save_pretrained(pol_dir)
    pre.save_pretrained(pol_dir)
    post.save_pretrained(pol_dir)
    (out / "README.txt").write_text(json.dumps({"what": "random-weight LeRobot VLA for tests", **info}) + "\n")
    return pol_dir


def random_backend(kind: str, work_dir: str | Path, size: str = "real", device: str = "cpu", dtype: str = "auto",
                   cameras=("base", "wrist"), action_dim: int = 6, state_dim: int = 12, seed: int = 0):
    """A LeRobotBackend over a random-weight ``kind`` built in memory on ``device`` (nothing saved but the
    tokenizer / VLM config in ``work_dir``): real-size models for latency benchmarks without writing GBs."""
    from rlt_ros.core.vla.lerobot_backend import IMAGE_PREFIX as PREFIX
    from rlt_ros.core.vla.lerobot_backend import LeRobotBackend, _resolve_dtype

    dtype = _resolve_dtype(dtype, device)
    policy, pre, post, _ = _build(kind, Path(work_dir), action_dim, state_dim, cameras, 64, 50, seed, size, None,
                                  dtype, device)
    if kind == "smolvla" and dtype == "bfloat16":
        import torch

        policy.model.vlm_with_expert.to(torch.bfloat16)
    return LeRobotBackend(kind, policy.to(device), pre, post, {c: f"{PREFIX}{c}" for c in cameras}, device=device)


def _build(kind, out: Path, action_dim, state_dim, cameras, image_size, chunk_size, seed, size, joint_names, dtype,
           device):
    if kind not in ("smolvla", "pi0", "pi05"):
        raise ValueError(f"unknown LeRobot VLA kind {kind!r}; valid choices: smolvla, pi0, pi05")
    if size not in ("tiny", "real"):
        raise ValueError(f"size must be 'tiny' or 'real', got {size!r}")
    import_lerobot()
    import torch

    torch.manual_seed(seed)
    with torch.device(device):  # real sizes: build the parameters where they will run
        if kind == "smolvla":
            return _make_smolvla(out, action_dim, state_dim, cameras, image_size, chunk_size, size, device)
        return _make_pi(kind, out, action_dim, state_dim, cameras, image_size, chunk_size, size, joint_names, dtype,
                        device)


def _make_smolvla(out: Path, action_dim, state_dim, cameras, image_size, chunk_size, size, device):
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors
    from transformers import SmolVLMConfig

    vlm_dir = out / "vlm"
    make_tokenizer(vlm_dir, smolvla=True)
    vocab = len(SPECIAL_TOKENS) + len(WORDS)
    if size == "tiny":
        text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=16)
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, patch_size=16)
        layers = dict(num_vlm_layers=2, num_expert_layers=1, num_steps=2, tokenizer_max_length=16)
    else:  # SmolVLM2-500M-Video-Instruct's sizes, 16 of its 32 layers as SmolVLA uses them
        text = dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                    num_key_value_heads=5, head_dim=64)
        vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, patch_size=16)
        layers = dict(num_vlm_layers=16, num_expert_layers=-1, num_steps=10, tokenizer_max_length=48)
        image_size = 512
    SmolVLMConfig(
        text_config=dict(model_type="llama", vocab_size=vocab, max_position_embeddings=8192, pad_token_id=0, **text),
        vision_config=dict(image_size=image_size, **vision),
        scale_factor=2 if size == "tiny" else 4, image_token_id=SPECIAL_TOKENS.index("<image>"), vocab_size=vocab,
    ).save_pretrained(vlm_dir)
    inputs, outputs = _features(cameras, image_size, state_dim, action_dim)
    cfg = SmolVLAConfig(input_features=inputs, output_features=outputs, vlm_model_name=str(vlm_dir),
                        load_vlm_weights=False, chunk_size=chunk_size, n_action_steps=chunk_size,
                        resize_imgs_with_padding=(image_size, image_size), device=device, push_to_hub=False, **layers)
    with _smolvla_build_patches():
        policy = SmolVLAPolicy(cfg)
    pre, post = make_smolvla_pre_post_processors(cfg, dataset_stats=_stats(state_dim, action_dim))
    return policy, pre, post, {"kind": "smolvla", "size": size, "vlm_path": str(vlm_dir)}


def _make_pi(kind: str, out: Path, action_dim, state_dim, cameras, image_size, chunk_size, size, joint_names,
             dtype, device):
    import importlib

    tok_dir = out / "tokenizer"
    make_tokenizer(tok_dir)
    inputs, outputs = _features(cameras, image_size if size == "tiny" else 224, state_dim, action_dim)
    mod = importlib.import_module(f"lerobot.policies.{kind}.configuration_{kind}")
    cfg_cls = mod.PI0Config if kind == "pi0" else mod.PI05Config
    common = dict(input_features=inputs, output_features=outputs, chunk_size=chunk_size, n_action_steps=chunk_size,
                  device=device, dtype=dtype, push_to_hub=False, action_feature_names=list(joint_names) if joint_names else None)
    if size == "tiny":
        cfg = cfg_cls(image_resolution=(image_size, image_size), num_inference_steps=2, tokenizer_max_length=48,
                      **common)
    else:
        cfg = cfg_cls(**common)
    processors = importlib.import_module(f"lerobot.policies.{kind}.processor_{kind}")
    modeling = importlib.import_module(f"lerobot.policies.{kind}.modeling_{kind}")
    policy_cls = modeling.PI0Policy if kind == "pi0" else modeling.PI05Policy
    sizes = TINY_PI if size == "tiny" else None
    with tiny_pi_sizes(kind, sizes), _local_tokenizer(processors, tok_dir):
        policy = policy_cls(cfg)
        make = getattr(processors, f"make_{kind}_pre_post_processors")
        pre, post = make(cfg, dataset_stats=_stats(state_dim, action_dim))
    return policy, pre, post, {"kind": kind, "size": size, "tokenizer_path": str(tok_dir)}


@contextlib.contextmanager
def _local_tokenizer(processors_module, tok_dir: Path):
    """While π0/π0.5's processors are built: their TokenizerProcessorStep reads ``tok_dir`` instead of the
    hard-coded hub name google/paligemma-3b-pt-224."""
    real = processors_module.TokenizerProcessorStep

    def local(**kwargs):
        return real(**{**kwargs, "tokenizer_name": str(tok_dir)})

    processors_module.TokenizerProcessorStep = local
    try:
        yield
    finally:
        processors_module.TokenizerProcessorStep = real
