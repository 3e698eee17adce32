"""How well the monitor's rules do on labelled synthetic scenes (monitoring.scenes), run through
the app's own path: the multi-person pipeline (association, tracking, triangulation and, unless
``--no-bodies``, a HeatFormer body per person with the refinement) and then
``Monitor.update_estimate``.

    python -m monitoring.benchmark --json out/monitoring_bench.json [--scenes N] [--no-bodies] [--quick]

Scenes cycle over every kind (falls and confounders) x 1 and 2 people x 4 and 2 views, with fresh
random seeds. Per event type it reports recall, precision and the latency of the 'raised' event
after the labelled time (a fall's impact; for on_floor and no_movement the moment the condition
reached its threshold; the moment the pelvis left the bed), and false falls per 24 h of
confounders, with and without a second person. The scenes use shortened thresholds
(monitoring.scenes.SCENE_THRESHOLDS: on_floor_s 10, no_movement_s 15; written in the JSON).

A scene that would end after ``--budget-s`` (default 540 s; predicted from the speed so far) is
skipped, so the default run ends within 10 minutes on a 2-core CPU; the JSON lists the skipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.types import BodyEstimate, Event
from engine.people_stage import PeopleStage
from engine.pipeline import Pipeline
from monitoring.monitor import Monitor
from monitoring.scenes import (
    COCO_HIPS,
    CONFOUNDER_KINDS,
    KINDS,
    SCENE_THRESHOLDS,
    Label,
    Scene,
    SceneDetector,
    SceneSource,
    make_scene,
    scene_set,
)

EVALUATED = ("fall", "on_floor", "no_movement", "bed_exit")
# A raised event matches a label of its type and person when it comes within (before, after) seconds of it.
WINDOWS = {"fall": (-1.0, 5.0), "on_floor": (-3.0, 5.0), "no_movement": (-5.0, 5.0), "bed_exit": (-1.0, 5.0)}
TARGETS = {
    "fall": {"recall_min": 0.95, "median_latency_s_max": 2.0, "false_per_24h_max": 1.0,
             "note": "with a second person present (the 2-person figures)"},
    "on_floor": {"abs_latency_s_max": 1.0, "note": "raised within 1 s of the threshold"},
    "no_movement": {"abs_latency_s_max": 1.0, "note": "raised within 1 s of the threshold"},
    "bed_exit": {"latency_s_max": 2.0, "note": "raised within 2 s of leaving the bed"},
}  # fmt: skip
DEFAULT_SCENES = 26  # every kind x 1 and 2 people (views alternate): about 9 minutes with bodies on 2 cores


@dataclass
class SceneResult:
    name: str
    kind: str
    category: str
    people: int
    views: int
    duration_s: float
    labels: list[Label]
    raised: list[tuple[str, int, float]]  # (type, scene person or -1, t) of every raised event
    matched: list[tuple[str, int, float, float]] = field(default_factory=list)  # (type, person, label t, latency)
    missed: list[tuple[str, int, float]] = field(default_factory=list)
    false: list[tuple[str, int, float]] = field(default_factory=list)
    seconds: float = 0.0
    frame_sets: int = 0


class Runner:
    """Builds the app's pipeline for a scene (the models loaded once) and runs it with a monitor."""

    def __init__(self, bodies: bool) -> None:
        self.bodies = bodies
        self.body_model = self.model = None
        if bodies:
            from engine.pipeline import load_models

            self.body_model, self.model = load_models(with_body=True)

    def pipeline(self, scene: Scene) -> Pipeline:
        body = None
        if self.model is not None:
            from engine.heatformer.live import LiveBody
            from engine.heatformer.people import PeopleBodies

            # As engine.pipeline.build_pipeline makes it (torch backend, refinement on), without the display meshes.
            body = PeopleBodies(LiveBody(self.model, scene.cameras, calibrated=True, refine=True, display=False))
        detector = SceneDetector(scene, seed=scene.seed)
        return Pipeline(
            detector, scene.cameras, workers=2, body_model=self.body_model, body=body, people=PeopleStage(scene.cameras)
        )

    def run(self, scene: Scene) -> SceneResult:
        start = time.perf_counter()
        pipeline = self.pipeline(scene)
        monitor = Monitor(scene.config, wall_start=scene.wall_start)
        votes: dict[int, np.ndarray] = {}
        events: list[Event] = []
        count = 0
        try:
            for i, frameset in enumerate(SceneSource(scene)):
                estimate = pipeline.process(frameset)
                _vote(votes, estimate, scene.truth3d[i])
                events += [e for e in monitor.update_estimate(estimate) if e.phase == "raised"]
                count += 1
        finally:
            pipeline.close()
            monitor.close()
        owner = {track: int(np.argmax(v)) for track, v in votes.items()}
        raised = [(e.type, -1 if e.person is None else owner.get(e.person, -1), e.t) for e in events]
        result = SceneResult(scene.name, scene.kind, scene.category, scene.people, scene.views, scene.duration, scene.labels,
                             raised, seconds=time.perf_counter() - start, frame_sets=count)  # fmt: skip
        score(result)
        return result


def _vote(votes: dict[int, np.ndarray], estimate: BodyEstimate, truth: np.ndarray) -> None:
    """Count, for every track, which scene person (``truth`` ``[P, 17, 3]``) its pelvis is nearest to."""
    pelvis = truth[:, list(COCO_HIPS)].mean(axis=1)
    for person in estimate.people:
        if person.keypoints3d is None:
            continue
        hips = person.keypoints3d[list(COCO_HIPS)]
        ok = hips[:, 3] > 0
        if not ok.any():
            continue
        seen = hips[ok, :3].mean(axis=0)
        nearest = int(np.argmin(np.linalg.norm(pelvis - seen, axis=1)))
        votes.setdefault(person.id, np.zeros(len(truth)))[nearest] += 1


def score(result: SceneResult) -> None:
    """Match raised events to labels (earliest in the window, same type and person); the rest of the
    evaluated types are false alarms."""
    used: set[int] = set()
    for label in result.labels:
        before, after = WINDOWS[label.type]
        found = [k for k, (kind, person, t) in enumerate(result.raised)
                 if k not in used and kind == label.type and person == label.person
                 and label.t + before <= t <= label.t + after]  # fmt: skip
        if found:
            k = min(found, key=lambda k: result.raised[k][2])
            used.add(k)
            result.matched.append((label.type, label.person, label.t, result.raised[k][2] - label.t))
        else:
            result.missed.append(tuple(label))  # type: ignore[arg-type]
    result.false = [r for k, r in enumerate(result.raised) if k not in used and r[0] in EVALUATED]


def summarise(results: list[SceneResult]) -> dict[str, Any]:
    """Per event type: recall, precision, latencies; false falls per 24 h of confounders."""
    out: dict[str, Any] = {}
    for kind in EVALUATED:
        lat = [m[3] for r in results for m in r.matched if m[0] == kind]
        labels = sum(1 for r in results for lab in r.labels if lab.type == kind)
        false = sum(1 for r in results for f in r.false if f[0] == kind)
        found = len(lat)
        figures: dict[str, Any] = {"labels": labels, "detected": found, "false_alarms": false, "recall": _ratio(found, labels),
                                   "precision": _ratio(found, found + false)}  # fmt: skip
        if lat:
            figures |= {"latency_median_s": round(statistics.median(lat), 3), "latency_max_s": round(max(lat), 3),
                        "latency_min_s": round(min(lat), 3), "abs_latency_max_s": round(max(abs(x) for x in lat), 3)}  # fmt: skip
        out[kind] = figures
    confounders = [r for r in results if r.category == "confounder"]
    hours = sum(r.duration_s for r in confounders)
    false_falls = sum(1 for r in confounders for f in r.false if f[0] == "fall")
    out["fall"]["confounder_seconds"] = round(hours, 1)
    out["fall"]["confounder_false_falls"] = false_falls
    out["fall"]["false_per_24h"] = None if hours == 0 else round(false_falls / hours * 86400.0, 1)
    out["fall"]["false_per_24h_resolution"] = None if hours == 0 else round(86400.0 / hours, 1)
    out["other_raised"] = _counts([f[0] for r in results for f in r.raised if f[0] not in EVALUATED])
    return out


def _ratio(a: int, b: int) -> float | None:
    return None if b == 0 else round(a / b, 3)


def _counts(items: list[str]) -> dict[str, int]:
    return {k: items.count(k) for k in sorted(set(items))}


def by_group(results: list[SceneResult], key: Callable[[SceneResult], object]) -> dict[str, Any]:
    groups: dict[str, list[SceneResult]] = {}
    for r in results:
        groups.setdefault(str(key(r)), []).append(r)
    return {name: summarise(group) for name, group in sorted(groups.items())}


def per_kind(results: list[SceneResult]) -> dict[str, Any]:
    """Each kind: scenes, falls detected / labelled and fall latencies, false alarms by type."""
    out: dict[str, Any] = {}
    for kind in KINDS:
        rows = [r for r in results if r.kind == kind]
        if not rows:
            continue
        falls = [m[3] for r in rows for m in r.matched if m[0] == "fall"]
        out[kind] = {"scenes": len(rows), "falls_labelled": sum(1 for r in rows for lab in r.labels if lab.type == "fall"),
                     "falls_detected": len(falls), "fall_latencies_s": [round(x, 2) for x in falls],
                     "missed": _counts([m[0] for r in rows for m in r.missed]),
                     "false_alarms": _counts([f[0] for r in rows for f in r.false])}  # fmt: skip
    return out


def verdicts(two: dict[str, Any], everyone: dict[str, Any]) -> dict[str, Any]:
    """Each target against its figure (falls: with a second person present; the rest: all scenes)."""
    fall = two["fall"]
    checks: dict[str, Any] = {
        "fall_recall": (fall["recall"], fall["recall"] is not None and fall["recall"] >= 0.95),
        "fall_median_latency_s": (fall.get("latency_median_s"), (fall.get("latency_median_s") or 99) <= 2.0),
        "fall_false_per_24h": (fall["false_per_24h"], fall["false_per_24h"] is not None and fall["false_per_24h"] <= 1.0),
    }
    for kind in ("on_floor", "no_movement"):
        f = everyone[kind]
        checks[f"{kind}_abs_latency_max_s"] = (
            f.get("abs_latency_max_s"),
            f["recall"] == 1.0 and (f.get("abs_latency_max_s") or 99) <= 1.0,
        )
    bed = everyone["bed_exit"]
    checks["bed_exit_latency_max_s"] = (
        bed.get("latency_max_s"),
        bed["recall"] == 1.0 and (bed.get("latency_max_s") or 99) <= 2.0,
    )
    return {name: {"value": value, "met": bool(met)} for name, (value, met) in checks.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True, help="where to write the figures")
    parser.add_argument("--scenes", type=int, default=None, help=f"how many scenes (default {DEFAULT_SCENES}; --quick 13)")
    parser.add_argument("--no-bodies", action="store_true", help="keypoints only: triangulated COCO-17, no HeatFormer")
    parser.add_argument("--quick", action="store_true", help="one scene of each kind, keypoints only (about a minute)")
    parser.add_argument("--seed", type=int, default=1000, help="the first scene seed")
    parser.add_argument("--fps", type=float, default=10.0, choices=(10.0, 15.0))
    parser.add_argument("--budget-s", type=float, default=540.0, help="skip scenes that would end after this many seconds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 copes best with a busy CPU)")
    parser.add_argument("--confounders-only", action="store_true",
                        help="only the confounders (every kind x 1, 2 people x 4, 2 views, seeds from --seed): "
                        "hours of them for the false-fall rate (keypoints only: about 0.6 s a scene)")  # fmt: skip
    parser.add_argument("--people", type=int, choices=(1, 2), default=None,
                        help="--confounders-only: only scenes with this many people (default: 1 and 2 taking turns)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.people is not None and not args.confounders_only:
        parser.error("--people goes with --confounders-only")
    import torch

    torch.set_num_threads(args.threads)
    bodies = not (args.no_bodies or args.quick)
    count = args.scenes or (len(KINDS) if args.quick else DEFAULT_SCENES)
    start = time.perf_counter()
    runner = Runner(bodies)
    results: list[SceneResult] = []
    skipped: list[str] = []
    chosen: Iterator[Scene]
    if args.confounders_only:
        combos = [(k, p, v) for k in CONFOUNDER_KINDS for p in (1, 2) for v in (4, 2) if args.people in (None, p)]
        chosen = (make_scene(*combos[i % len(combos)], args.seed + i // len(combos), args.fps) for i in range(count))
    elif args.quick and args.scenes is None:  # one of each kind, 1 and 2 people and 4 and 2 views taking turns
        chosen = iter([make_scene(k, 1 + j % 2, 4 if j % 4 < 2 else 2, args.seed, args.fps) for j, k in enumerate(KINDS)])
    else:
        chosen = scene_set(count, args.seed, args.fps)
    for i, scene in enumerate(chosen):
        load = len(scene.times) * scene.people
        done = sum(r.frame_sets * r.people for r in results)
        rate = sum(r.seconds for r in results) / done if done else (0.08 if bodies else 0.005)  # s per person and set
        elapsed = time.perf_counter() - start
        if elapsed + 1.2 * rate * load > args.budget_s:
            skipped.append(scene.name)
            print(f"[{i + 1}/{count}] {scene.name:32s} skipped: would end after the {args.budget_s:.0f} s budget", flush=True)
            continue
        result = runner.run(scene)
        results.append(result)
        print(f"[{i + 1}/{count}] {scene.name:32s} {result.frame_sets:4d} sets {result.seconds:6.1f} s  "
              f"labels {len(scene.labels)} matched {len(result.matched)} missed {[m[0] for m in result.missed]} "
              f"false {[f[0] for f in result.false]}  (total {time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    two = summarise([r for r in results if r.people == 2]) if any(r.people == 2 for r in results) else None
    everyone = summarise(results)
    report = {
        "format_version": 1,
        "settings": {
            "scenes_requested": count,
            "scenes_run": len(results),
            "skipped_for_budget": skipped,
            "torch_threads": args.threads,
            "bodies": bodies,
            "body_stage": "HeatFormer (torch) + refinement, no display meshes" if bodies else "none: triangulated keypoints",
            "fps": args.fps,
            "first_seed": args.seed,
            "confounders_only": args.confounders_only,
            "people": args.people or "1 and 2",
            "thresholds": dataclasses.asdict(SCENE_THRESHOLDS),
            "thresholds_note": "shortened for short scenes: on_floor_s 10 (default 60), no_movement_s 15 (default 300)",
            "room": "synthetic 4 x 4 m, cameras 640x480 f=320 px at 2.2 m in the corners (2 views: adjacent corners)",
            "detector_noise": "2-3 px Gaussian, 2 % outlier keypoints 15-60 px, confidences 0.6-0.95, "
            "2 % missed people, views dropping out 0.3-1.5 s about every 15 s",
            "windows_s": WINDOWS,
        },
        "targets": TARGETS,
        "verdicts": verdicts(two, everyone) if two is not None else None,
        "all": everyone,
        "two_people": two,
        "by_people": by_group(results, lambda r: f"{r.people}_people"),
        "by_views": by_group(results, lambda r: f"{r.views}_views"),
        "by_kind": per_kind(results),
        "scenes": [
            {
                "name": r.name,
                "duration_s": round(r.duration_s, 1),
                "frame_sets": r.frame_sets,
                "seconds": round(r.seconds, 1),
                "labels": [list(lab) for lab in r.labels],
                "raised": [[k, p, round(t, 2)] for k, p, t in r.raised],
                "missed": [list(m) for m in r.missed],
                "false": [list(f) for f in r.false],
            }
            for r in results
        ],
        "wall_s": round(time.perf_counter() - start, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, default=_plain))
    _print_summary(report)
    return 0


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _print_summary(report: dict[str, Any]) -> None:
    print(f"\n{report['settings']['scenes_run']} scenes in {report['wall_s']:.0f} s (bodies: {report['settings']['bodies']})")
    for group in ("all", "two_people"):
        figures = report[group]
        if figures is None:
            continue
        print(f"{group}:")
        for kind in EVALUATED:
            f = figures[kind]
            print(f"  {kind:12s} recall {f['recall']}  precision {f['precision']}  latency median {f.get('latency_median_s')} "
                  f"max {f.get('latency_max_s')}  (labels {f['labels']}, false {f['false_alarms']})")  # fmt: skip
        print(f"  false falls per 24 h of confounders: {figures['fall']['false_per_24h']} "
              f"(one alarm = {figures['fall']['false_per_24h_resolution']})")  # fmt: skip
    if report["verdicts"]:
        for name, v in report["verdicts"].items():
            print(f"  target {name}: {v['value']} -> {'met' if v['met'] else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
