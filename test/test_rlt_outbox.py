"""The actor's durable outbox (core.rlt.outbox): kept until acknowledged, sent again, bounded, over restarts."""

import pytest

from rlt_ros.core.rlt.outbox import Outbox


@pytest.mark.parametrize("on_disk", [True, False])
def test_kept_until_acknowledged_and_sent_again_when_due(tmp_path, on_disk):
    box = Outbox(tmp_path / "outbox" if on_disk else None, capacity=10, resend_after_s=5.0)
    for i in range(3):
        assert box.put((100, 2 * i), b"t%d" % i, now=0.0) == ""
    assert len(box) == 3 and box.due(now=4.9, limit=10) == []  # not yet due
    assert box.ack([(100, 2), (100, 99)]) == 1  # an unknown key is ignored
    assert box.due(now=5.0, limit=1) == [((100, 0), b"t0")]  # oldest first, at most `limit`
    assert box.due(now=5.0, limit=10) == [((100, 4), b"t2")]  # t0 was just sent again: not due
    assert box.due(now=10.0, limit=10) == [((100, 0), b"t0"), ((100, 4), b"t2")]
    assert box.counters["outbox_resent"] == 4 and box.counters["outbox_acked"] == 1
    if on_disk:
        assert sorted(p.name for p in (tmp_path / "outbox").iterdir()) == ["100_0.bin", "100_4.bin"]


def test_a_restarted_actor_sends_what_was_not_acknowledged(tmp_path):
    box = Outbox(tmp_path, resend_after_s=5.0)
    box.put((1, 0), b"zero", 0.0)
    box.put((1, 2), b"two", 0.0)
    box.ack([(1, 0)])
    (tmp_path / "1_4.tmp").write_bytes(b"cut off by a kill")  # a write never finished: never sent, not kept
    again = Outbox(tmp_path, resend_after_s=5.0)
    assert len(again) == 1 and again.due(now=0.0, limit=10) == [((1, 2), b"two")]  # due at once
    assert not list(tmp_path.glob("*.tmp"))


def test_full_outbox_drops_the_oldest_and_says_so(tmp_path):
    box = Outbox(tmp_path, capacity=2)
    box.put((1, 0), b"a", 0.0)
    box.put((1, 2), b"b", 0.0)
    warning = box.put((1, 4), b"c", 0.0)
    assert "outbox full" in warning and "episode 1 index 0" in warning and box.counters["outbox_dropped"] == 1
    assert len(box) == 2 and not (tmp_path / "1_0.bin").exists()
    with pytest.raises(ValueError, match="capacity"):
        Outbox(None, capacity=0)
