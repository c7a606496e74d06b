"""RL token (RLT stage 1): reconstruction learning, dependence on z_rl, masks, persistence and dimension checks."""

import json

import numpy as np
import pytest
import torch

from rlt_ros.core.rlt.configuration_token import TokenConfig, TokenTrainingConfig
from rlt_ros.core.rlt.modeling_token import (TOKEN_CONFIG, RLTokenModel, TokenDimensionError, TokenEncoder,
                                             pooled_prefix)
from rlt_ros.core.rlt.training_token import evaluate, train_token

torch.set_num_threads(1)


def latent_prefixes(n=240, m=10, d=12, latent=3, seed=0):
    """Prefixes generated from a per-frame latent: only a token that encodes it can reconstruct them."""
    rng = np.random.default_rng(seed)
    lat = rng.normal(size=(n, latent)).astype(np.float32)
    w = rng.normal(size=(m, latent, d)).astype(np.float32)
    z = np.einsum("nl,mld->nmd", lat, w) / np.sqrt(latent) + 0.05 * rng.normal(size=(n, m, d)).astype(np.float32)
    mask = np.ones((n, m), bool)
    mask[::4, -3:] = False  # some shorter prefixes (padding)
    z[~mask] = 0.0
    return z.astype(np.float32), mask, np.arange(n) // 12


def small_cfg(**kw):
    return TokenConfig(**{"embed_dim": 12, "max_tokens": 16, "width": 32, "heads": 4, "token_dim": 8, **kw})


def test_reconstruction_loss_falls_and_decoder_reads_the_token():
    z, mask, eps = latent_prefixes()
    cfg = small_cfg()
    untrained = RLTokenModel(cfg)
    from rlt_ros.core.rlt.training_token import split_by_episode

    _, va = split_by_episode(eps, 0.1, 0)
    before = evaluate(untrained, z[va], mask[va])["val_loss"]
    model, rep = train_token(z, mask, eps, cfg, TokenTrainingConfig(steps=250, batch_size=32, lr=1e-3,
                                                                     warmup_steps=20, eval_every=125),
                             progress=False)
    assert rep.val_loss < 0.5 * before, (before, rep.val_loss)
    # the decoder depends on z_rl: another frame's token reconstructs much worse
    assert rep.val_loss < 0.5 * rep.val_loss_shuffled_token, rep.to_dict()
    zt, mt = torch.from_numpy(z[va]), torch.from_numpy(mask[va])
    with torch.no_grad():
        zero = model.reconstruction_loss(zt, mt, context_dropout=cfg.context_dropout,
                                         z_rl=torch.zeros(len(va), cfg.out_dim))[0].item()
    assert rep.val_loss < 0.5 * zero


def test_loss_ignores_padded_positions():
    z, mask, _ = latent_prefixes(n=8)
    model = RLTokenModel(small_cfg()).eval()
    z2 = z.copy()
    z2[~mask] = 123.0  # garbage where the mask says "padding"
    with torch.no_grad():
        a = model.reconstruction_loss(torch.from_numpy(z), torch.from_numpy(mask), 0.0)[1]
        b = model.reconstruction_loss(torch.from_numpy(z2), torch.from_numpy(mask), 0.0)[1]
        ta = model.encode(torch.from_numpy(z), torch.from_numpy(mask))
        tb = model.encode(torch.from_numpy(z2), torch.from_numpy(mask))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ta, tb)


def test_config_validation_and_round_trip():
    cfg = small_cfg(context_dropout=0.8)
    assert TokenConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert cfg.out_dim == 8 and small_cfg(token_dim=0).out_dim == 32
    with pytest.raises(ValueError, match="divisible by heads"):
        TokenConfig(embed_dim=12, width=30, heads=4)
    with pytest.raises(ValueError, match="context_dropout"):
        TokenConfig(context_dropout=1.5)
    with pytest.raises(ValueError, match="unknown TokenConfig field"):
        TokenConfig.from_dict({"embed_dim": 8, "bogus": 1})


def test_save_load_and_dimension_errors(tmp_path):
    model = RLTokenModel(small_cfg())
    model.save(tmp_path, meta={"note": "test"})
    enc = TokenEncoder.from_dir(tmp_path, expect_embed_dim=12)
    z, mask, _ = latent_prefixes(n=2)
    tok = enc.encode(z[0], mask[0])
    assert tok.shape == (8,) and tok.dtype == np.float32
    with torch.no_grad():
        ref = model.eval().encode(torch.from_numpy(z[:1]), torch.from_numpy(mask[:1]))[0].numpy()
    np.testing.assert_allclose(tok, ref, rtol=1e-5, atol=1e-6)
    assert enc.encode(z, mask).shape == (2, 8)
    with pytest.raises(TokenDimensionError, match="D=12"):
        TokenEncoder.from_dir(tmp_path, expect_embed_dim=2048)
    with pytest.raises(TokenDimensionError, match="width 12"):
        enc.encode(np.zeros((5, 16), np.float32))
    # a config that does not match the weights is refused with the tensor named
    cfg = json.loads((tmp_path / TOKEN_CONFIG).read_text())
    cfg["token_dim"] = 16
    (tmp_path / TOKEN_CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(TokenDimensionError, match="weights and token_config.json disagree"):
        RLTokenModel.from_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="train-token"):
        RLTokenModel.from_dir(tmp_path / "missing")


def test_pooled_prefix_is_masked_mean():
    z = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(pooled_prefix(z, np.array([True, True, False])), z[:2].mean(0))


def test_token_probe_finds_a_signal_and_no_more():
    """bench/token_probe.py's probes: a state that holds the target gives a small held-out error, one that
    does not gives about the target's spread, and the MLP reads a non-linear signal ridge cannot."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "token_probe.py"
    spec = importlib.util.spec_from_file_location("token_probe", path)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 8)).astype(np.float32)
    train = np.arange(600) % 4 != 0
    linear = x[:, :2] * np.float32(1.5)
    assert np.all(probe.ridge_rmse(x, linear, train) < 0.05)
    unrelated = rng.standard_normal((600, 2)).astype(np.float32)
    assert np.all(probe.ridge_rmse(x, unrelated, train) > 0.8)
    bent = np.abs(x[:, :2]) * np.float32(2.0)  # spread ~1.2; invisible to a linear probe
    ridge, mlp = probe.ridge_rmse(x, bent, train), probe.mlp_rmse(x, bent, train, steps=400)
    assert np.all(ridge > 1.0) and np.all(mlp < 0.5 * ridge), (ridge, mlp)
