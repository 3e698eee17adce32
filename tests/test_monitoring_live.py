"""The monitor in a live run: a synthetic scene played in real time through the real pipeline
(``main.py --scene``), killed mid-run, and its events file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_sigkill_during_a_live_run_keeps_every_event_raised_before_it(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    command = [sys.executable, "main.py", "--headless", "--scene", "fall_forward:2", "--no-body", "--events", str(events), "-v"]
    log = tmp_path / "stderr.txt"
    with log.open("wb") as err:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and "event fall raised" not in log.read_text(errors="replace"):
                assert process.poll() is None, log.read_text(errors="replace")[-2000:]
                time.sleep(0.05)
            os.kill(process.pid, signal.SIGKILL)  # at once, mid-run: the scene plays on for seconds more
            process.wait(10)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == -signal.SIGKILL
    logged = re.findall(r"event (\w+) (\w+) person=(\w+) zone=\w+ t=([\d.]+)", log.read_text(errors="replace"))
    assert ("fall", "raised") in {(kind, phase) for kind, phase, _, _ in logged}
    written = [json.loads(line) for line in events.read_text().splitlines()]
    for kind, phase, person, t in logged:  # each event is in the file before it is logged
        assert any(e["type"] == kind and e["phase"] == phase and str(e["person"]) == person and abs(e["t"] - float(t)) < 0.01
                   for e in written), (kind, phase, person, t)  # fmt: skip
    fall = next(e for e in written if e["type"] == "fall")
    # the faller's id is 1 or 2 (whoever was confirmed first); the visitor never falls
    assert fall["person"] in (1, 2) and fall["state"]["posture"] == "on_floor" and fall["state"]["head_z"] < 0.5
    assert len([e for e in written if e["type"] == "fall" and e["phase"] == "raised"]) == 1


def test_bad_scene_specs_are_one_error_line(capsys) -> None:
    assert main.main(["--headless", "--scene", "moonwalk", "--events", "/tmp/x.jsonl"]) == 2
    assert "--scene moonwalk: unknown scene 'moonwalk' (known: fall_forward" in capsys.readouterr().err
    assert main.main(["--headless", "--scene", "crouch:3", "--events", "/tmp/x.jsonl"]) == 2
    assert "scenes have 1 or 2 people" in capsys.readouterr().err
