"""bench/vla_latency.py in its --tiny mode: every LeRobot row is measured and printed (the GPU mode runs the
same code at real sizes)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import vla_latency  # noqa: E402


def test_tiny_rows(capsys):
    torch.set_num_threads(1)
    assert vla_latency.main(["--tiny", "--iters", "2", "--no-builtin"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if " tiny random " in line}
    assert set(rows) == {"pi05", "pi0", "smolvla"}
    for kind, cols in rows.items():
        assert cols[3] == "80" if kind != "smolvla" else int(cols[3]) > 8  # M
        assert cols[4] == "64" and cols[5] == "1" and cols[7] == "float32"  # D, batch, dtype
        prefix_p50, chunk_p50 = float(cols[9]), float(cols[12])
        assert 0 < prefix_p50 and 0 < chunk_p50  # prefix only / full chunk measured
        assert float(cols[15]) > 0  # RL token + actor measured


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: --device cuda runs there")
def test_cuda_refused_without_a_gpu(capsys):
    with pytest.raises(SystemExit) as err:
        vla_latency.main(["--device", "cuda"])
    assert err.value.code == 2 and "no CUDA device here" in capsys.readouterr().err
