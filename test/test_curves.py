"""Learning curves (core.curves) and the demo's progress.png."""

import numpy as np
import pytest

from rlt_ros.core.curves import plot_curves, rolling


def test_rolling_success_and_median_critical_phase():
    rate, med = rolling([True, False, True, True], [4.0, None, 2.0, 3.0], window=2)
    np.testing.assert_allclose(rate, [1.0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(med, [4.0, 4.0, 2.0, 2.5])
    _, med = rolling([False, False], [5.0, 6.0], window=3)  # a failure's critical phase never counts
    assert np.isnan(med).all()
    with pytest.raises(ValueError, match="window"):
        rolling([True], [1.0], window=0)


def test_demo_writes_its_learning_curves(tmp_path):
    from rlt_ros.commands.demo import Progress, plot_progress
    from rlt_ros.core.interfaces import EpisodeEventPacket, EventSource, EventType

    progress = Progress(out=open(tmp_path / "live.txt", "w"))
    for eid in range(1, 31):
        t = 10.0 * eid
        for kind, dt in ((EventType.START, 0.0), (EventType.HANDOVER, 1.0)):
            progress.on_event(EpisodeEventPacket(t + dt, eid, kind, EventSource.SYSTEM))
        if eid == 8:
            progress.first_weights_at_episode = 8
        if eid == 25:
            progress.start_evaluation()
        success = eid % 3 != 0
        end = EventType.SUCCESS if success else EventType.TIMEOUT
        progress.on_event(EpisodeEventPacket(t + 1.0 + 7.0 - eid * 0.1, eid, end, EventSource.HUMAN, float(success)))
    png = plot_progress(progress, tmp_path / "progress.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_plot_curves_draws_every_series(tmp_path):
    x = np.arange(10)
    out = plot_curves({"a": (x, x / 10, x + 1.0), "b": (x, 1 - x / 10, np.full(10, np.nan))}, tmp_path / "c.png",
                      xlabel="episode", title="t", baseline={"success_rate": 0.5, "critical_phase_s": None})
    assert out.is_file() and out.stat().st_size > 10_000
