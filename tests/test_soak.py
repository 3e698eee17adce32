"""tools.soak (a measuring script): a few seconds of the fake pipeline give its JSON figures, and
the temporary recording is deleted."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tools.soak import memory_slope

ROOT = Path(__file__).resolve().parents[1]


def test_memory_slope_is_a_least_squares_line_after_the_warm_up() -> None:
    samples = [(t, 1000.0 + (500 if t < 60 else 2.0 * t / 60), 0) for t in range(0, 600, 5)]  # 2 MB/min after 60 s
    slope, used = memory_slope(samples, 60.0, 595.0)
    assert slope == pytest.approx(2.0) and used == 108
    assert memory_slope(samples[:2], 0.0, 10.0) == (None, 2)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_short_soak_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    before = set(Path(tempfile.gettempdir()).glob("soak-*"))
    cmd = [sys.executable, "-m", "tools.soak", "--minutes", "0.1", "--interval", "0.5", "--warmup", "0.02",
           "--record", "--detector", "fake", "--no-body", "--json", str(out)]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["frame_sets"] > 0 and data["sets_per_s"] > 0 and data["minutes"] >= 0.1
    assert data["recorded_sets"] + data["dropped_sets"] <= data["frame_sets"]
    assert len(data["rss_samples"]) >= 10 and all(s["mb"] > 0 for s in data["rss_samples"])
    assert data["peak_rss_mb"] == max(s["mb"] for s in data["rss_samples"])
    assert isinstance(data["slope_mb_per_min"], float) and "warm-up" in data["slope_fit"]
    assert data["recording_mb"] > 0
    assert set(Path(tempfile.gettempdir()).glob("soak-*")) == before  # the recording was deleted
    assert "slope" in result.stdout
