"""``python -m recording export``: the format registry, one file per person, --person / --up, the
session's events for multi-person formats, progress and one-line errors. Run through small fake
format modules injected into the registry (the real formats have their own tests)."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from recording import exports
from recording.__main__ import main
from recording.exports import FORMATS, ExportError, ExportFormat, export
from recording.motion import Motion
from tests.test_results_layout import record_session, write_out_file


def fake_single(calls: list[dict[str, object]]) -> types.ModuleType:
    """A single-skeleton format: writes the person's id, first/last time and x positions as JSON."""
    module = types.ModuleType("recording.exports.fake_single")

    def write(motion: Motion, path: Path, *, up: str = "z", progress=None) -> None:
        calls.append({"person": motion.person, "up": up})
        for k in range(4):
            if progress is not None:
                progress(k / 4)
        path.write_text(json.dumps({"person": motion.person, "up": up, "times": [motion.times[0], motion.times[-1]],
                                    "x": np.round(motion.transl[:, 0], 3).tolist()}))  # fmt: skip

    module.write = write  # type: ignore[attr-defined]
    return module


def fake_multi(calls: list[dict[str, object]]) -> types.ModuleType:
    """A multi-person format: the people and the number of events, as JSON."""
    module = types.ModuleType("recording.exports.fake_multi")

    def write_all(motions: list[Motion], path: Path, *, events=None, progress=None) -> None:
        calls.append({"people": [m.person for m in motions], "events": events})
        path.write_text(json.dumps({"people": [m.person for m in motions], "events": None if events is None else len(events)}))

    module.write_all = write_all  # type: ignore[attr-defined]
    return module


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Registers formats ``fake`` (one per person, .fk) and ``fakeall`` (everyone, .fka), and
    ``missing`` (no module in this version); returns the writers' calls."""
    made: list[dict[str, object]] = []
    monkeypatch.setitem(sys.modules, "recording.exports.fake_single", fake_single(made))
    monkeypatch.setitem(sys.modules, "recording.exports.fake_multi", fake_multi(made))
    monkeypatch.setitem(FORMATS, "fake", ExportFormat("fake_single", (".fk",), True, "a test format"))
    monkeypatch.setitem(FORMATS, "fakeall", ExportFormat("fake_multi", (".fka",), False, "a test format"))
    monkeypatch.setitem(FORMATS, "missing", ExportFormat("no_such_module_here", (".m",), True, "not written yet"))
    return made


def read(path: Path) -> dict[str, object]:
    return json.loads(path.read_text())


def test_the_registry_names_every_format_with_its_suffix_and_kind() -> None:
    kinds = {name: (f.module, f.suffix, f.one_per_person) for name, f in FORMATS.items()}
    assert kinds == {"amass": ("amass", ".npz", True), "bvh": ("bvh", ".bvh", True), "glb": ("glb", ".glb", True),
                     "c3d": ("c3d", ".c3d", True), "trc": ("trc", ".trc", True), "csv": ("tables", ".csv", False),
                     "parquet": ("tables", ".parquet", False), "plot": ("plot", ".png", False)}  # fmt: skip


def test_one_file_per_person_each_over_their_own_frames(tmp_path: Path, calls: list[dict[str, object]], capsys) -> None:
    source = write_out_file(tmp_path / "out.npz")
    assert main(["export", str(source), "--format", "fake", "--out", str(tmp_path / "walk.fk")]) == 0
    one, two = read(tmp_path / "walk_person1.fk"), read(tmp_path / "walk_person2.fk")
    assert not (tmp_path / "walk.fk").exists()
    assert one["x"] == [1.0, 1.1, 1.2, 1.3, 1.4, 1.5] and one["times"] == pytest.approx([10.0, 10 + 5 / 30])
    assert two["x"] == [-1.0] * 5 and two["times"] == pytest.approx([10.1, 10 + 7 / 30])
    assert one["up"] == "z" and calls == [{"person": 1, "up": "z"}, {"person": 2, "up": "z"}]  # no --up: the format's own
    captured = capsys.readouterr()
    assert "walk_person1.fk" in captured.out and "walk_person2.fk" in captured.out
    assert "export fake: 100%" in captured.err and "export fake: 0%" in captured.err  # not a terminal: a line a quarter


def test_person_and_up_choose_one_file_as_named(tmp_path: Path, calls: list[dict[str, object]]) -> None:
    source = write_out_file(tmp_path / "out.npz")
    assert main(["export", str(source), "--format", "fake", "--out", str(tmp_path / "two"), "--person", "2", "--up", "y"]) == 0
    assert read(tmp_path / "two.fk") == {"person": 2, "up": "y", "times": pytest.approx([10.1, 10 + 7 / 30]), "x": [-1.0] * 5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz", "two.fk"]


def test_a_multi_person_format_gets_everyone_and_the_sessions_events(tmp_path: Path, calls: list[dict[str, object]]) -> None:
    folder = record_session(tmp_path / "s", [{"type": "fall", "t": 10.1, "person": 2}])
    assert main(["export", str(folder), "--format", "fakeall", "--out", str(tmp_path / "all.fka")]) == 0
    assert read(tmp_path / "all.fka") == {"people": [1, 2], "events": 1}
    assert calls[0]["events"] == [{"format_version": 1, "type": "fall", "t": 10.1, "person": 2}]
    export(write_out_file(tmp_path / "out.npz"), "fakeall", tmp_path / "b.fka", person=1)
    assert read(tmp_path / "b.fka") == {"people": [1], "events": None}  # a results file keeps no events


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--format", "missing", "--out", "x.m"], "format missing is not available in this version"),
        (["--format", "fake", "--out", "x.bvh"], "--out x.bvh: a fake export is written to a .fk file"),
        (["--format", "fake", "--out", "x.fk", "--person", "9"], "--person 9: nobody with that id in"),
        (["--format", "fakeall", "--out", "x.fka", "--up", "y"], "--up y: a fakeall export keeps the world frame"),
        (["--format", "fake", "--out", "nowhere/x.fk"], "the folder nowhere does not exist"),
    ],
)
def test_errors_are_one_line_naming_the_flag_or_file(
    tmp_path: Path, calls: list[dict[str, object]], capsys, monkeypatch: pytest.MonkeyPatch, args: list[str], expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    source = write_out_file(tmp_path / "out.npz")
    assert main(["export", str(source), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"] and calls == []


def test_a_source_without_bodies_is_one_error_naming_it(tmp_path: Path, calls: list[dict[str, object]], capsys) -> None:
    np.savez(tmp_path / "kp.npz", keypoints=np.zeros((3, 2, 17, 3)), timestamps=np.arange(3.0))
    assert main(["export", str(tmp_path / "kp.npz"), "--format", "fake", "--out", str(tmp_path / "x.fk")]) == 2
    assert "kp.npz: no body parameters" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "absent"), "--format", "fake", "--out", str(tmp_path / "x.fk")]) == 2
    assert "absent" in capsys.readouterr().err


def test_a_format_needing_a_missing_package_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(name: str) -> None:
        raise ModuleNotFoundError("No module named 'pygltflib'", name="pygltflib")

    monkeypatch.setattr(exports.importlib, "import_module", fail)
    with pytest.raises(ExportError, match="format glb needs the Python package 'pygltflib'"):
        exports.export_module("glb")


@pytest.mark.gui
def test_the_export_dialog_exports_on_a_worker_thread_and_shows_errors(
    tmp_path: Path, calls: list[dict[str, object]], qtbot
) -> None:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        pytest.skip("GUI tests need a display: run them with `make test` (Xvfb)")
    from app.export_dialog import ExportDialog

    folder = record_session(tmp_path / "s")
    dialog = ExportDialog(None, recording=folder)
    qtbot.addWidget(dialog)
    dialog.format.setCurrentIndex(dialog.format.findData("fake"))
    dialog.out_path.setText(str(tmp_path / "walk.fk"))
    dialog.person.setValue(2)
    dialog.export_button.click()
    qtbot.waitUntil(lambda: dialog.written != [], timeout=10000)
    assert dialog.written == [tmp_path / "walk.fk"] and read(tmp_path / "walk.fk")["person"] == 2
    assert dialog.bar.value() == 100 and dialog.worker is not None and dialog.worker.name == "export"
    assert "wrote" in dialog.message.text() and dialog.export_button.isEnabled()
    dialog.person.setValue(9)  # nobody: the error is shown in the dialog
    dialog.export_button.click()
    qtbot.waitUntil(lambda: dialog.message.text().startswith("error:"), timeout=10000)
    assert "--person 9: nobody with that id" in dialog.message.text() and dialog.export_button.isEnabled()
    dialog.from_file.setChecked(True)
    dialog.results_path.setText(str(write_out_file(tmp_path / "out.npz")))
    dialog.format.setCurrentIndex(dialog.format.findData("fakeall"))
    dialog.person.setValue(0)  # everyone
    dialog.out_path.setText(str(tmp_path / "all.fka"))
    dialog.export_button.click()
    qtbot.waitUntil(lambda: dialog.written == [tmp_path / "all.fka"], timeout=10000)
    assert read(tmp_path / "all.fka") == {"people": [1, 2], "events": None}
