"""Every export format from a session recorded on the bundled demo (tests/data/demo_session), each
checked by the client people open it with: Blender (BVH, GLB), ezc3d (C3D), pyarrow (Parquet), a
TRC header reader; one skeleton per tracked id."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_export_bvh_amass import blender_heads
from test_export_glb import _PROBE, REPO

from core.types import SMPL_JOINT_NAMES
from recording.exports import FORMATS, export
from recording.motion import load_motions

SOURCE = Path(__file__).parent / "data" / "demo_session" / "results.npz"
FRAMES = [10, 40, 70]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    out = tmp_path_factory.mktemp("demo_export")
    return {name: export(SOURCE, name, out / "demo") for name in FORMATS}


def test_every_format_writes_one_skeleton_per_id(exported: dict[str, list[Path]]) -> None:
    people = [m.person for m in load_motions(SOURCE)]
    assert people == [1, 2]  # the subject and the demo's bystander
    for name, fmt in FORMATS.items():
        files = exported[name]
        assert all(f.is_file() and f.stat().st_size > 1000 for f in files), name
        if fmt.one_per_person:
            assert [f.name for f in files] == [f"demo_person{p}{fmt.suffixes[0]}" for p in people], name
        else:
            assert len(files) == 1, name


def test_c3d_and_trc_read_back_with_names_units_and_rate(exported: dict[str, list[Path]]) -> None:
    import ezc3d

    motion = load_motions(SOURCE)[0].span()
    c3d = ezc3d.c3d(str(exported["c3d"][0]))
    point = c3d["parameters"]["POINT"]
    labels = point["LABELS"]["value"]
    assert len(labels) == 41 and labels[0] == "coco_nose" and "smpl_pelvis" in labels
    assert point["UNITS"]["value"] == ["mm"] and point["RATE"]["value"][0] == pytest.approx(motion.fps, rel=1e-3)
    data = c3d["data"]["points"]  # [4, markers, frames], millimetres
    pelvis = labels.index("smpl_pelvis")
    assert data.shape[2] == len(motion)
    np.testing.assert_allclose(data[:3, pelvis, FRAMES].T / 1000.0, motion.joints[FRAMES, 0], atol=1e-4)
    lines = exported["trc"][0].read_text().splitlines()
    header = dict(zip(lines[1].split("\t"), lines[2].split("\t"), strict=False))
    assert header["Units"] == "mm" and int(header["NumFrames"]) == len(motion) and int(header["NumMarkers"]) == 41
    assert float(header["DataRate"]) == pytest.approx(motion.fps, rel=1e-3)


def test_tables_hold_a_row_per_person_and_frame(exported: dict[str, list[Path]]) -> None:
    import pyarrow.parquet as pq

    motions = load_motions(SOURCE)
    table = pq.read_table(exported["parquet"][0])
    assert table.num_rows == sum(len(m) for m in motions)
    assert sorted(set(table.column("person").to_pylist())) == [1, 2]
    with exported["csv"][0].open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == table.num_rows
    first = next(r for r in rows if r["person"] == "1" and r["valid"] in ("1", "True", "true"))
    frame = int(first["frame"])
    assert float(first["smpl_pelvis_z"]) == pytest.approx(motions[0].joints[frame, 0, 2], abs=1e-4)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("blender") is None, reason="Blender is not installed (tools/system_deps.sh --tests)")
def test_blender_opens_the_demo_bvh_and_glb_with_our_joints(exported: dict[str, list[Path]], tmp_path: Path) -> None:
    motions = {m.person: m.span() for m in load_motions(SOURCE)}
    jobs = [[f"p{p}", str(path), "Y", "Z", FRAMES] for p, path in zip(motions, exported["bvh"], strict=True)]
    heads = blender_heads(tmp_path, jobs)
    for p, motion in motions.items():
        held = motion.joints.copy()
        for f in range(1, len(held)):  # the BVH holds the last valid pose over a gap
            if not motion.valid[f]:
                held[f] = held[f - 1]
        for f in FRAMES:
            got = np.array([heads[f"p{p}"][str(f)][name] for name in SMPL_JOINT_NAMES])
            assert np.abs(got - held[f]).max() < 0.01, (p, f)
    probe = tmp_path / "probe.py"
    probe.write_text(_PROBE.format(repo=str(REPO)))
    motion = motions[1]
    args = json.dumps({"glb": str(exported["glb"][0]), "frames": FRAMES, "vertices": [0, 3000],
                       "out": str(tmp_path / "probe.json")})  # fmt: skip
    run = subprocess.run(["blender", "-b", "--factory-startup", "--python-exit-code", "1", "--python", str(probe), "--", args],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONNOUSERSITE": "1"})  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    got = json.loads((tmp_path / "probe.json").read_text())
    assert got["fps"] == 60  # the demo's rate; Blender's frame k is the k-th frame-set (time 0 at frame 0)
    for f in FRAMES:
        joints = np.array([got["frames"][str(f)]["joints"][n] for n in SMPL_JOINT_NAMES])
        assert np.abs(joints - motion.joints[f]).max() < 0.01, f
    first, last = (np.array(got["frames"][str(f)]["vertices"]) for f in (FRAMES[0], FRAMES[-1]))
    moved = np.linalg.norm(first - last)
    assert moved > 0.005  # the mesh follows the skeleton
