"""The learned handover switch: training on recorded token streams, Platt calibration, the hysteresis gate,
save/load with the RL token's identity, too few labels; token bags; practice's token log -> `rlt train-switch`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from rlt_fakes import FakeReachEnv, FakeVLA, PooledToken
from rlt_ros.core.checkpoints import token_checkpoint, token_identity
from rlt_ros.core.data.token_bags import TokenBagWriter, read_labelled_episodes
from rlt_ros.core.interfaces import EpisodeEventPacket, EventSource, EventType, Phase, TokenPacket
from rlt_ros.core.rlt.configuration_switch import SwitchConfig
from rlt_ros.core.rlt.switch import (HandoverSwitch, HysteresisGate, LabelledEpisode, SwitchError,
                                     SwitchMismatchError, calibration_error, fit_platt, train_switch)

torch.set_num_threads(1)

IDENTITY = {"token": "token_a", "token_sha256": "a" * 64}
FAST = dict(hidden=(16,), steps=300)


def synthetic_episodes(n: int, seed: int = 0, informative: bool = True, hz: float = 25.0) -> list[LabelledEpisode]:
    """Streams whose token[0] is a distance d falling from 1 at a random speed; the operator presses when
    d <= 0.4 (the critical phase). ``informative=False``: d is left out of the tokens."""
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n):
        speed = rng.uniform(0.15, 0.3)  # per s
        t = 100.0 * i + np.arange(int(hz * rng.uniform(5.0, 7.0))) / hz
        d = 1.0 - speed * (t - t[0])
        tokens = rng.normal(0.0, 0.01, (len(t), 4))
        tokens[:, 1] += rng.normal()  # a nuisance that differs between episodes
        if informative:
            tokens[:, 0] += d
        proprio = rng.normal(0.0, 1.0, (len(t), 3))
        episodes.append(LabelledEpisode(i + 1, t, tokens.astype(np.float32), proprio.astype(np.float32),
                                        float(t[d <= 0.4][0])))
    return episodes


def test_switch_hands_over_at_the_press_on_held_out_episodes():
    switch = train_switch(synthetic_episodes(40), SwitchConfig(**FAST, test_fraction=0.3), IDENTITY)
    test = switch.report["test"]
    assert switch.report["episodes"] == {"train": 20, "calibration": 8, "test": 12, "unlabelled": 0}
    assert test["episodes"] == 12 and test["on_time"] >= 0.9 and test["outside_critical"] == 0.0
    assert test["calibration_error"] < 0.1 and test["tick_accuracy"] > 0.95


def test_switch_without_signal_fails_the_metrics():
    """The metric can fail: tokens that do not show the distance give no on-time handover."""
    switch = train_switch(synthetic_episodes(40, informative=False), SwitchConfig(**FAST, test_fraction=0.3))
    assert switch.report["test"]["on_time"] < 0.5


def test_hysteresis_gate_fires_once_per_episode_after_k_ticks():
    gate = HysteresisGate(threshold=0.5, consecutive=3)
    fired = [gate.update(7, p) for p in (0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9)]
    assert fired == [False, False, False, False, False, True, False, False]  # the dip restarts the count
    assert not gate.update(7, 0.99)
    assert [gate.update(8, p) for p in (0.6, 0.6, 0.6)] == [False, False, True]  # a new episode re-arms it
    at_threshold = HysteresisGate(0.5, 2)
    assert not any(at_threshold.update(1, 0.5) for _ in range(5))  # strictly above the threshold


def test_platt_scaling_calibrates_an_overconfident_classifier():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0.0, 2.0, 20000)
    y = (rng.random(true_logit.size) < 1 / (1 + np.exp(-true_logit))).astype(np.float32)
    overconfident = torch.as_tensor(5.0 * true_logit, dtype=torch.float32)
    a, b = fit_platt(overconfident, torch.as_tensor(y))
    assert a == pytest.approx(0.2, abs=0.02) and abs(b) < 0.1
    before = calibration_error(torch.sigmoid(overconfident).numpy(), y)
    after = calibration_error(torch.sigmoid(a * overconfident + b).numpy(), y)
    assert before > 0.08 and after < 0.02


def test_save_load_round_trip_and_a_switch_for_another_token(tmp_path):
    episodes = synthetic_episodes(12)
    switch = train_switch(episodes, SwitchConfig(**FAST, test_fraction=0.0), IDENTITY)
    switch.save(tmp_path / "switch")
    loaded = HandoverSwitch.load(tmp_path / "switch", IDENTITY)
    ep = episodes[0]
    np.testing.assert_allclose(loaded.probabilities(ep.tokens, ep.proprio), switch.probabilities(ep.tokens, ep.proprio))
    assert loaded.cfg == switch.cfg and loaded.report == json.loads(json.dumps(switch.report))
    with pytest.raises(SwitchMismatchError, match="trained on the RL token token_a .* retrain"):
        HandoverSwitch.load(tmp_path / "switch", {"token": "token_b", "token_sha256": "b" * 64})
    with pytest.raises(SwitchError, match="trained for another token or arm"):
        loaded.probability(np.zeros(5, np.float32), np.zeros(3, np.float32))
    with pytest.raises(SwitchError, match="not a handover switch folder"):
        HandoverSwitch.load(tmp_path / "nothing", IDENTITY)
    (tmp_path / "switch" / "switch.json").write_text("{")
    with pytest.raises(SwitchError, match="not a valid handover switch"):
        HandoverSwitch.load(tmp_path / "switch", IDENTITY)


def test_token_identity_tells_token_weights_apart(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(token_checkpoint(), copy)
    assert token_identity(copy)["token_sha256"] == token_identity()["token_sha256"]
    assert token_identity()["vla_weights_sha256"]
    with open(copy / "token.safetensors", "r+b") as f:  # other weights, same file layout
        f.seek(-4, 2)
        last = f.read(4)
        f.seek(-4, 2)
        f.write(bytes(b ^ 0xFF for b in last))
    assert token_identity(copy)["token_sha256"] != token_identity()["token_sha256"]
    with pytest.raises(FileNotFoundError, match="rlt train-token"):
        token_identity(tmp_path)


def test_too_few_labelled_episodes_or_a_missing_class():
    with pytest.raises(SwitchError, match="9 episodes with an operator's handover press .* at least 10"):
        train_switch(synthetic_episodes(9), SwitchConfig(**FAST))
    unpressed = [LabelledEpisode(e.episode_id, e.stamps, e.tokens, e.proprio, None) for e in synthetic_episodes(20)]
    with pytest.raises(SwitchError, match=r"5 episodes with .* \(of 25 recorded\)"):
        train_switch(synthetic_episodes(5) + unpressed, SwitchConfig(**FAST))
    from_the_press = [LabelledEpisode(e.episode_id, e.stamps, e.tokens, e.proprio, float(e.stamps[0]))
                      for e in synthetic_episodes(12)]
    with pytest.raises(SwitchError, match="no token before the handover press"):
        train_switch(from_the_press, SwitchConfig(**FAST))


def _packet(stamp, episode, phase, value=0.0):
    return TokenPacket(stamp=stamp, episode_id=episode, phase=phase, token=np.full(4, value, np.float32),
                       proprio=np.zeros(3, np.float32), joint_names=("a", "b"),
                       reference_chunk=np.zeros((2, 2), np.float32), step_dt=0.02)


def test_token_bag_round_trip_takes_only_human_presses(tmp_path):
    ev = lambda t, ep, kind, source=EventSource.HUMAN: EpisodeEventPacket(  # noqa: E731
        t, ep, kind, source, 1.0 if kind == EventType.SUCCESS else 0.0)
    with TokenBagWriter(tmp_path / "bag") as bag:
        bag.write_token(_packet(0.5, 3, Phase.RL))  # episode 3 began before the recording: skipped
        bag.write_event(ev(1.0, 3, EventType.SUCCESS))
        bag.write_event(ev(2.0, 4, EventType.START, EventSource.SYSTEM))
        for i in range(10):
            bag.write_token(_packet(2.0 + 0.1 * i, 4, Phase.VLA if i < 6 else Phase.RL, i))
        bag.write_token(_packet(2.2, 4, Phase.IDLE))  # no episode running: skipped
        bag.write_event(ev(2.6, 4, EventType.HANDOVER))
        bag.write_event(ev(3.0, 4, EventType.SUCCESS))
        bag.write_token(_packet(3.5, 4, Phase.RL))  # after the end: skipped
        bag.write_event(ev(4.0, 5, EventType.START, EventSource.SYSTEM))
        bag.write_token(_packet(4.1, 5, Phase.VLA))
        bag.write_event(ev(4.2, 5, EventType.HANDOVER, EventSource.DETECTOR))  # no label
        bag.write_event(ev(4.5, 5, EventType.FAILURE))
    episodes = read_labelled_episodes([tmp_path])  # a folder of bags
    assert [e.episode_id for e in episodes] == [4, 5]
    four, five = episodes
    assert four.handover_s == pytest.approx(2.6) and five.handover_s is None
    np.testing.assert_allclose(four.stamps, 2.0 + 0.1 * np.arange(10))
    np.testing.assert_allclose(four.tokens[:, 0], np.arange(10))
    assert four.labels().tolist() == [0.0] * 6 + [1.0] * 4 and four.proprio.shape == (10, 3)
    with pytest.raises(ValueError, match="exists and is not empty"):
        TokenBagWriter(tmp_path / "bag")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no bag"):
        read_labelled_episodes([tmp_path / "empty"])


def test_practice_token_log_feeds_train_switch(tmp_path, capsys):
    """In-process practice records the stream and the simulated operator's presses as a bag; the command
    trains on it, prints the held-out metrics and writes a switch that loads for the same token only."""
    from rlt_ros import cli
    from rlt_ros.core.rlt.configuration_practice import PracticeConfig
    from rlt_ros.core.rlt.configuration_rlt import RLTConfig
    from rlt_ros.core.rlt.practice import Practice, StateReader

    rlt = RLTConfig(chunk_size=10, action_dim=2, token_dim=8, proprio_dim=4, actor_hidden=(32,), critic_hidden=(32,))
    cfg = PracticeConfig(episodes=12, start="home", policy="vla", critical_timeout_s=1.0, checkpoint_every=0)
    with TokenBagWriter(tmp_path / "tokens") as bag:
        Practice(FakeReachEnv(), FakeVLA(), StateReader("token", PooledToken(8)), rlt, cfg, progress=False,
                 token_log=bag).run()
    episodes = read_labelled_episodes([tmp_path / "tokens"])
    assert len(episodes) == 12 and all(e.handover_s is not None for e in episodes)
    for e in episodes:
        assert np.allclose(np.diff(e.stamps), 0.04)  # one token per observation at 25 Hz, approach included
        assert 0 < e.labels().sum() < len(e.stamps)
    assert all(a.stamps[-1] < b.stamps[0] for a, b in zip(episodes, episodes[1:]))  # one clock across episodes

    args = ["train-switch", "--bags", str(tmp_path / "tokens"), "--out", str(tmp_path / "switch"), "--steps", "200",
            "--test-fraction", "0.25"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "held-out episodes: 3; handover within ±0.2 s of the press:" in out
    switch = HandoverSwitch.load(tmp_path / "switch", token_identity())
    assert switch.report["episodes"]["train"] == 7 and switch.token_dim == 8 and switch.proprio_dim == 4
    assert cli.main(args[:-2] + ["--test-bags", str(tmp_path / "tokens"), "--out", str(tmp_path / "all")]) == 0
    assert "held-out episodes: 12;" in capsys.readouterr().out  # all of --test-bags (here: the training bag itself)
    assert cli.main(args[:-2] + ["--min-episodes", "13", "--out", str(tmp_path / "other")]) == 2
    assert "12 episodes with an operator's handover press (of 12 recorded): the switch needs at least 13" in \
        capsys.readouterr().err


def test_token_bag_payload_decodes_with_rclpy(tmp_path):
    """The bag holds the CDR of rlt_ros's own messages, as `ros2 bag record /rlt/token /rlt/events` would."""
    serialization = pytest.importorskip("rclpy.serialization", reason="rclpy not installed")
    from mcap.reader import make_reader

    from rlt_ros.msg import EpisodeEvent, RLToken

    with TokenBagWriter(tmp_path / "bag") as bag:
        bag.write_token(_packet(1.25, 9, Phase.VLA, 3.0))
        bag.write_event(EpisodeEventPacket(1.5, 9, EventType.HANDOVER, EventSource.HUMAN, 0.0, "press"))
    with open(tmp_path / "bag" / "bag_0.mcap", "rb") as f:
        raw = {channel.topic: message.data for _, channel, message in make_reader(f).iter_messages()}
    token = serialization.deserialize_message(raw["/rlt/token"], RLToken)
    event = serialization.deserialize_message(raw["/rlt/events"], EpisodeEvent)
    assert token.episode_id == 9 and token.phase == RLToken.PHASE_VLA and list(token.token) == [3.0] * 4
    assert token.header.stamp.sec == 1 and token.header.stamp.nanosec == 250_000_000 and token.chunk_rows == 2
    assert event.type == EpisodeEvent.HANDOVER and event.source == EpisodeEvent.SOURCE_HUMAN and event.note == "press"


def test_episode_config_handover_modes():
    from rlt_ros.core.episode import EpisodeConfig

    assert EpisodeConfig().handover == "operator"
    assert EpisodeConfig(handover="auto", switch="runs/switch").switch == "runs/switch"
    with pytest.raises(ValueError, match="episode.switch is empty"):
        EpisodeConfig(handover="auto")
    with pytest.raises(ValueError, match=r"'button' is not one of \('operator', 'auto'\)"):
        EpisodeConfig(handover="button")
