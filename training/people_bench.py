"""Benchmark of cross-view association + tracking on synthetic multi-person scenes.

    python -m training.people_bench --people 3 --views 4 --frames 300 --json out.json

Runs every frame-set through ``engine.people.associate`` (with the tracker's prediction as the
prior) and ``engine.people.Tracker`` and prints association precision / recall / F1, IDF1, id
switches per 1,000 person-frames, MPJPE per person of the triangulated keypoints (mm) and the
median time per frame-set of association and tracking (ms; wall clock, and the thread's CPU
time, which a busy machine disturbs less). ``--uncalibrated`` instead tracks every view alone with
``Tracker2D`` and reports IDF1 and id switches per view; ``--clean`` leaves out the left/right
swaps, merged skeletons and false positives of the synthetic detector.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from engine.people import IdCounter, Tracker, Tracker2D, associate
from engine.people.track import L_HIP, R_HIP
from training.people_metrics import AssociationCounter, id_switches, idf1, mpjpe
from training.synth.people import DetectorNoise, PeopleScene, sample_people_scene

MATCH_M = 0.5  # a prediction coincides with a person within this ground distance (mid-hip)
MATCH_PX = 40.0  # uncalibrated: within this image distance of the person's projected mid-hip


def run_scene(scene: PeopleScene) -> dict:
    """Raw results of one scene: counts, per-frame truth/prediction, errors and times."""
    tracker = Tracker()
    counter = AssociationCounter()
    truth, predicted = [], []
    errors: dict[int, list[float]] = {}
    assoc_ms, track_ms, cpu_ms = [], [], []
    V = len(scene.cameras)
    for t, time_s in enumerate(scene.times):
        who = scene.detection_person[t]
        filled = scene.detections[t, :, :, :, 2].max(-1) > 0  # [V, Pmax]: the first slots of each view
        dets = [scene.detections[t, v][filled[v]] for v in range(V)]
        start, cpu_start = time.perf_counter(), time.thread_time()
        # engine.people.associate_and_track, timed in its two halves
        priors = tracker.predict(time_s)
        groups = associate(scene.cameras, dets, priors if len(priors) else None, hidden=tracker.established(time_s))
        middle = time.perf_counter()
        ids = tracker.update(time_s, [g.points for g in groups], [len(g.detections) == 1 for g in groups])
        track_ms.append(1e3 * (time.perf_counter() - middle))
        assoc_ms.append(1e3 * (middle - start))
        cpu_ms.append(1e3 * (time.thread_time() - cpu_start))
        counter.add([g.detections for g in groups], who)
        seen = np.unique(who[who >= 0])
        truth.append({int(p): _hip(scene.keypoints[t, p]) for p in seen})
        predicted.append({i: c for i, g in zip(ids, groups, strict=True) if i >= 0 and (c := _center(g.points)) is not None})
        for g in groups:
            owners = {int(who[v, i]) for v, i in g.detections.items()}
            if len(owners) == 1 and len(g.detections) >= 2:
                (p,) = owners
                error = mpjpe(g.points, scene.keypoints[t, p])
                if np.isfinite(error):
                    errors.setdefault(p, []).append(error)
    return {
        "counter": counter,
        "truth": truth,
        "predicted": predicted,
        "errors": errors,
        "assoc_ms": assoc_ms,
        "track_ms": track_ms,
        "cpu_ms": cpu_ms,
    }


def _hip(keypoints: np.ndarray) -> np.ndarray:
    """Ground position (x, y) of the mid-hip."""
    return 0.5 * (keypoints[L_HIP, :2] + keypoints[R_HIP, :2])


def _center(points: np.ndarray) -> np.ndarray | None:
    """Ground position of triangulated keypoints ``[17, 4]``: the mid-hip's, else the mean's."""
    ok = (np.nan_to_num(points[:, 3]) > 0) & np.all(np.isfinite(points[:, :3]), -1)
    if ok[L_HIP] and ok[R_HIP]:
        return _hip(points)
    return points[ok, :2].mean(0) if ok.any() else None


def benchmark(people: int, views: int, frames: int, scenes: int = 1, seed: int = 0, noise: DetectorNoise | None = None) -> dict:
    """Scores over ``scenes`` random scenes (seeds ``seed``, ``seed + 1``...)."""
    counter = AssociationCounter()
    idtp = idfp = idfn = switches = person_frames = 0
    errors: dict[str, list[float]] = {}
    assoc_ms: list[float] = []
    track_ms: list[float] = []
    cpu_ms: list[float] = []
    for k in range(scenes):
        result = run_scene(sample_people_scene(people, views, frames, seed + k, noise=noise))
        for name in ("pure", "grouped", "recalled", "relevant"):
            setattr(counter, name, getattr(counter, name) + getattr(result["counter"], name))
        score = idf1(result["truth"], result["predicted"], MATCH_M)
        idtp, idfp, idfn = idtp + score.idtp, idfp + score.idfp, idfn + score.idfn
        switches += id_switches(result["truth"], result["predicted"], MATCH_M)
        person_frames += sum(len(f) for f in result["truth"])
        for p, e in result["errors"].items():
            errors.setdefault(f"scene{k}/person{p + 1}", []).extend(e)
        assoc_ms += result["assoc_ms"]
        track_ms += result["track_ms"]
        cpu_ms += result["cpu_ms"]
    association = counter.score()
    return {
        "people": people,
        "views": views,
        "frames": frames,
        "scenes": scenes,
        "noise": asdict(noise or DetectorNoise()),
        "association_precision": round(association.precision, 4),
        "association_recall": round(association.recall, 4),
        "association_f1": round(association.f1, 4),
        "idf1": round(2 * idtp / max(1, 2 * idtp + idfp + idfn), 4),
        "id_switches_per_1000": round(1000 * switches / max(1, person_frames), 3),
        "id_switches": switches,
        "person_frames": person_frames,
        "mpjpe_mm_per_person": {k: round(1000 * float(np.mean(v)), 1) for k, v in errors.items()},
        "mpjpe_mm_mean": round(1000 * float(np.mean([e for v in errors.values() for e in v])), 1) if errors else None,
        "association_ms_median": round(float(np.median(assoc_ms)), 3),
        "tracking_ms_median": round(float(np.median(track_ms)), 3),
        "total_ms_median": round(float(np.median(np.add(assoc_ms, track_ms))), 3),
        "total_cpu_ms_median": round(float(np.median(cpu_ms)), 3),  # this thread's CPU time: less hurt by a busy machine
    }


def run_views_2d(scene: PeopleScene) -> tuple[int, int, int, int, int, list[float]]:
    """Each view alone through a ``Tracker2D`` (one id counter for all): summed IDTP, IDFP, IDFN,
    id switches, person-frames (people detected in the view) and the time per view and frame."""
    counter = IdCounter()
    trackers = [Tracker2D(counter=counter) for _ in scene.cameras]
    totals = np.zeros(5, np.int64)
    times: list[float] = []
    for v, (camera, tracker) in enumerate(zip(scene.cameras, trackers, strict=True)):
        truth, predicted = [], []
        for t, time_s in enumerate(scene.times):
            filled = scene.detections[t, v, :, :, 2].max(-1) > 0
            dets = list(scene.detections[t, v][filled])
            who = scene.detection_person[t, v][filled]
            start = time.perf_counter()
            ids = tracker.update(time_s, dets)
            times.append(1e3 * (time.perf_counter() - start))
            truth.append({int(p): camera.project(_hip3(scene.keypoints[t, p])) for p in who if p >= 0})
            predicted.append({i: _center_2d(d) for i, d in zip(ids, dets, strict=True) if i >= 0})
        score = idf1(truth, predicted, MATCH_PX)
        switches = id_switches(truth, predicted, MATCH_PX)
        totals += [score.idtp, score.idfp, score.idfn, switches, sum(len(f) for f in truth)]
    idtp, idfp, idfn, switches, person_frames = (int(x) for x in totals)
    return idtp, idfp, idfn, switches, person_frames, times


def _hip3(keypoints: np.ndarray) -> np.ndarray:
    return 0.5 * (keypoints[L_HIP] + keypoints[R_HIP])


def _center_2d(detection: np.ndarray) -> np.ndarray:
    """Image position of a detection ``[17, 3]``: its mid-hip, else the mean of its confident keypoints."""
    ok = detection[:, 2] >= 0.3
    if ok[L_HIP] and ok[R_HIP]:
        return 0.5 * (detection[L_HIP, :2] + detection[R_HIP, :2])
    return detection[ok, :2].mean(0) if ok.any() else detection[:, :2].mean(0)


def benchmark_2d(
    people: int, views: int, frames: int, scenes: int = 1, seed: int = 0, noise: DetectorNoise | None = None
) -> dict:
    """Uncalibrated views: every view tracked alone with ``Tracker2D``."""
    totals = np.zeros(5, np.int64)
    times: list[float] = []
    for k in range(scenes):
        *counts, scene_times = run_views_2d(sample_people_scene(people, views, frames, seed + k, noise=noise))
        totals += counts
        times += scene_times
    idtp, idfp, idfn, switches, person_frames = (int(x) for x in totals)
    return {
        "mode": "uncalibrated (Tracker2D per view)",
        "people": people,
        "views": views,
        "frames": frames,
        "scenes": scenes,
        "idf1": round(2 * idtp / max(1, 2 * idtp + idfp + idfn), 4),
        "id_switches_per_1000": round(1000 * switches / max(1, person_frames), 3),
        "id_switches": switches,
        "person_frames": person_frames,
        "tracking_ms_median_per_view": round(float(np.median(times)), 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=3)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--scenes", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clean", action="store_true", help="no left/right swaps, merged skeletons or false positives")
    parser.add_argument("--uncalibrated", action="store_true", help="track every view alone (Tracker2D) instead")
    parser.add_argument("--json", type=Path, default=None, help="write the results to this file")
    args = parser.parse_args(argv)
    noise = DetectorNoise(swap=0.0, merge=0.0, false_positive=0.0) if args.clean else None
    run = benchmark_2d if args.uncalibrated else benchmark
    result = run(args.people, args.views, args.frames, args.scenes, args.seed, noise)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
