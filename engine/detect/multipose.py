"""Several people per view with BlazePose (full): MediaPipe's person detector now and then
(engine.detect.persons), and each person followed from frame to frame by the landmark network
(engine.detect.landmarks); or, with ``tracking=True``, MediaPipe's Tasks PoseLandmarker.

The Tasks API needs the two BlazePose networks packed as a ``.task`` bundle whose tflite files
carry input-normalisation metadata. The mediapipe wheel ships the bare networks (Apache-2.0,
Google MediaPipe), so the bundle is built from them on first use, offline, with mediapipe's own
metadata writer, and cached per mediapipe version (:func:`pose_bundle`).

Keypoints are the 33 landmarks mapped to COCO-17 (as in :mod:`engine.detect.blazepose`); a
keypoint's confidence is the landmark's visibility clipped to [0, 1].
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.camera import Camera
from core.errors import DetectorError
from core.paths import user_cache_dir
from core.privacy import Box
from core.types import Keypoints2D
from engine.detect.base import register_detector
from engine.detect.blazepose import BLAZEPOSE_TO_COCO17, _quiet_native_stderr
from engine.detect.landmarks import LandmarkNetwork, Region, region_around, region_in_box
from engine.detect.persons import Person, PersonDetector

log = logging.getLogger(__name__)

DETECTOR_FILE, LANDMARKS_FILE = "pose_detector.tflite", "pose_landmarks_detector.tflite"
# (file inside the wheel, name in the bundle, input mean, input std)
_NETWORKS = (
    ("modules/pose_detection/pose_detection.tflite", DETECTOR_FILE, 127.5, 127.5),
    ("modules/pose_landmark/pose_landmark_full.tflite", LANDMARKS_FILE, 0.0, 255.0),
)
FRAME_STEP_MS = 33  # the internal clock's step when no timestamp is given
TORSO = [5, 6, 11, 12]  # COCO-17 shoulders and hips
PLAUSIBLE_KEYPOINTS = 8  # a zoomed-search find needs this many keypoints with confidence > 0.5
PLAUSIBLE_SIZE = 0.05  # ... and a body size (px) of at least this fraction of the image's larger side
HEAD_TORSO = [0, 1, 2, 3, 4, 5, 6, 11, 12]  # COCO-17 face, shoulders and hips
MASK_MARGIN = 0.1  # a known person's blanked outline or box: grown by this fraction of their size
FOLLOW_GRACE_MS = 2000  # a followed person lost (hidden behind someone) is looked for in their last region this long
SEARCH_GRID = (3, 2)  # the zoomed search's (columns, rows) on a landscape frame (turned for a portrait one)


def pose_bundle(cache_dir: Path | None = None) -> Path:
    """The cached PoseLandmarker bundle for the installed mediapipe, built if missing or corrupt."""
    mp = _import_mediapipe()
    folder = (cache_dir or user_cache_dir()) / "mediapipe"
    path = folder / f"pose_landmarker_full-mp{mp.__version__}.task"
    if path.exists():
        if _bundle_ok(path):
            return path
        log.warning("cached pose bundle %s is corrupt; rebuilding it", path)
    try:
        _build_bundle(Path(mp.__file__).parent, path)
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile) as exc:
        raise DetectorError(f"cannot build the pose bundle {path} from the mediapipe wheel: {exc}") from exc
    return path


def _bundle_ok(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return {DETECTOR_FILE, LANDMARKS_FILE} <= set(zf.namelist()) and zf.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def _build_bundle(wheel: Path, path: Path) -> None:
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer, model_asset_bundle_utils

    models = {}
    for source, name, mean, std in _NETWORKS:
        buffer = bytearray((wheel / source).read_bytes())
        writer = metadata_writer.MetadataWriter.create(buffer).add_general_info(name)
        models[name] = bytes(writer.add_image_input(norm_mean=[mean], norm_std=[std]).populate()[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".task.tmp", dir=path.parent)
    os.close(fd)
    try:
        model_asset_bundle_utils.create_model_asset_bundle(models, tmp)
        os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("built the pose bundle %s", path)


def _import_mediapipe() -> Any:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import mediapipe
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DetectorError(f"detector 'blazepose-multi' needs mediapipe 0.10.21 ({exc})") from exc
    return mediapipe


@dataclass
class _Clock:
    """Turns a camera's frame times (s, possibly repeating or going back) into strictly increasing ms."""

    last_ms: int = -1
    offset_ms: int = 0
    step_ms: int = FRAME_STEP_MS

    def tick(self, timestamp: float | None) -> int:
        if timestamp is None:
            ms = self.last_ms + self.step_ms
        else:
            ms = round(timestamp * 1000.0) + self.offset_ms
            if ms <= self.last_ms:  # a repeat or a loop: continue one frame step after the last time
                self.offset_ms += self.last_ms + self.step_ms - ms
                ms = self.last_ms + self.step_ms
            elif self.last_ms >= 0:
                self.step_ms = max(1, min(ms - self.last_ms, 1000))
        self.last_ms = ms
        return ms


@dataclass
class _Followed:
    """Someone followed from frame to frame by the landmark network alone, in ``region`` (None:
    one made from their ``last`` keypoints): ``confirmed`` once found by the full-frame pass or
    by a follow after the zoomed search; ``lost_ms`` (camera clock) when the last look did not
    find them (they are then looked for again, unreported, for ``FOLLOW_GRACE_MS``)."""

    last: Keypoints2D
    confirmed: bool = False
    lost_ms: int | None = None
    region: Region | None = None


@register_detector("blazepose-multi")
class MultiPoseDetector:
    """Everyone in each view (up to ``max_people``). ``max_side`` downsizes large frames (px)
    for MediaPipe's Tasks graphs (the VIDEO-mode tracker).

    ``detect_people`` lists the people most salient first (mean confidence x body size);
    ``detect_region`` looks for one person afresh inside a box, without tracking.

    By default everyone found is followed from frame to frame by the landmark network alone
    (:class:`engine.detect.landmarks.LandmarkNetwork`, on the region its last answer gave, as
    MediaPipe's own tracker does), each person on their own, so that two people side by side are
    not merged. Every ``detect_every`` frames (and every frame while nobody is followed)
    MediaPipe's person detector runs on the full frame first (:class:`engine.detect.persons.
    PersonDetector`): a followed person it finds is looked for in the region it gives, and anyone
    else it finds is looked at by the network and followed from then on. (MediaPipe's Tasks
    pass did the same but ran the landmark model, with its segmentation, again for everyone it
    found, followed or not: on the 640 px multi-person demo, 6.61 / 6.34 against 7.32 / 7.21
    frame-sets per second with bodies, runs interleaved.)
    ``tracking=True`` uses MediaPipe's VIDEO-mode tracker
    instead (smoothed landmarks, next regions from the last landmarks), but measured on the
    Pose2Sim multi-person trial it often keeps only one of two people walking side by side and
    does not take the other back (probably because their regions overlap), and it is no faster
    with ``max_people`` > 1 on a 2-core CPU. In that mode, every ``redetect_every`` frames a
    full-frame pass adds the people the tracker misses and restarts the camera's tracker. Frame
    times matter to the tracker only; a time that repeats or goes back (a looping replay)
    continues one frame step after the last one (:class:`_Clock`).

    ``cameras`` (the room's, in order) gives each camera its own turn for the full-frame pass and
    the zoomed search, so that a frame-set runs about one of each instead of every camera's at
    once every few sets (the app's views are detected in parallel, next to the bodies of the set
    before: a set with every camera's pass kept both cores busy while the others left one idle).
    On the 640 px multi-person demo (``engine.benchmark --people``, 2 cores) this took the
    frame-sets per second from 6.06 to 7.0 in back-to-back runs, and the composited person kept
    all four views where the aligned passes had lost two of them to a ghost.

    MediaPipe's person detector keys on the face and sees the whole frame shrunk to 224x224, so
    it misses small people in the background, masked faces and people cut by the frame's edge.
    A zoomed search runs it on ``search_grid`` = (columns, rows) overlapping tiles of the frame
    (default: 3 x 2, or 2 x 3 for a portrait frame): all of them on a camera's first call, then
    one tile a call, each tile once every ``search_every`` calls (a whole search in one call held
    its frame-set up: on the 640 px multi-person demo, 9.52 / 9.77 / 9.51 against 9.11 / 9.34 /
    9.44 sets/s, runs interleaved, and the detection's 95th percentile 106-116 against 143-149 ms),
    with the people already found blanked out (their bodies' outlines: else the
    dominant person hides the others from the detector), and the network on what it finds; a
    plausible newcomer is then followed (reported from the first frame that confirms it). On the
    demo's cam02 the masked bystander stands by the subject's hand: 2 x 2 tiles found her in none
    of 11 frames, 2 x 3 in all 11. A confirmed person who is lost (a
    passer-by hides them, or in real time the frames in between are skipped) is looked for in
    their last region for ``FOLLOW_GRACE_MS`` of the camera's time more before being dropped, so that
    a short occlusion does not leave them to the next search. ``search_every=0`` turns this off.
    """

    name = "blazepose-multi"

    def __init__(
        self,
        min_confidence: float = 0.5,
        max_side: int = 960,
        max_people: int = 4,
        tracking: bool = False,
        redetect_every: int = 10,
        cache_dir: Path | None = None,
        search_every: int = 15,
        search_grid: tuple[int, int] | None = None,
        search_overlap: float = 0.25,
        detect_every: int = 4,
        cameras: Sequence[Camera] | None = None,
    ) -> None:
        self._mp = _import_mediapipe()
        from mediapipe.tasks.python import vision

        self._vision = vision
        self._cache_dir = cache_dir
        self._bundle: Path | None = None
        self.min_confidence, self.max_side, self.max_people = min_confidence, max_side, max_people
        self.tracking, self.redetect_every = tracking, redetect_every
        self._trackers: dict[str, Any] = {}
        self._finders: dict[str, Any] = {}
        self._detectors: dict[str, PersonDetector] = {}
        self._frames: dict[str, int] = {}
        self._clocks: dict[str, _Clock] = {}
        self._fresh: set[int] = set()
        self.search_every, self.search_grid, self.search_overlap = search_every, search_grid, search_overlap
        self.detect_every = max(1, detect_every)
        self._calls: dict[str, int] = {}
        self._followed: dict[str, list[_Followed]] = {}
        self.network = LandmarkNetwork()
        # Each camera's full-frame passes and searches fall on other frames than the others' (its
        # place among ``cameras``; unknown cameras: 0), so that every frame-set costs about the same.
        n = max(1, len(cameras or ()))
        self._phases = {c.name: (k * self.detect_every // n, k * max(1, search_every) // n) for k, c in enumerate(cameras or ())}

    def detect_people(self, camera: str, image: np.ndarray, timestamp: float | None = None) -> list[Keypoints2D]:
        ms = self._clocks.setdefault(camera, _Clock()).tick(timestamp)
        calls = self._calls[camera] = self._calls.get(camera, 0) + 1
        if self.tracking:
            people = self._track(camera, image, ms)[: self.max_people]
            people += self._extras(camera, image, people, ms, calls)
        else:
            people = self._everyone(camera, image, ms, calls)
        return sorted(people, key=lambda kp: -salience(kp.points))

    def _everyone(self, camera: str, image: np.ndarray, ms: int, calls: int) -> list[Keypoints2D]:
        """Everyone followed, looked for again by the landmark network. On the camera's turn (and
        while nobody is followed) the person detector runs first: a followed person it finds is
        looked for in the region it gives (as MediaPipe's full pass would), and those it finds whom
        nobody followed are looked at too. On the search's turn, the zoomed search's newcomers
        (reported from the next frame on, once their follow confirms them)."""
        # the people followed, those in view first (a lost one gives way to a newcomer)
        followed = sorted(self._followed.get(camera, []), key=lambda f: f.lost_ms is not None)[: self.max_people]
        finds = self._persons(camera, image, (0, 0)) if self._passing(camera, calls) else []
        matches = match_finds([f.last.points for f in followed], [f.lost_ms is not None for f in followed], finds)
        for k, j in matches.items():
            entry = followed[k]
            followed[k] = _Followed(entry.last, entry.confirmed, entry.lost_ms, finds[j].region)
        kept = self._follow(camera, image, followed, [], ms)
        rest = [p for j, p in enumerate(finds) if j not in matches.values()]
        if rest:
            active = [f.last for f in kept if f.lost_ms is None]
            new_finds = self._discover(camera, image, rest, active, self.max_people - len(active))
            # a lost person found again under another region is theirs from now on
            kept = [f for f in kept if f.lost_ms is None or not any(coincide(f.last.points, n.last.points) for n in new_finds)]
            kept += new_finds
        new: list[Keypoints2D] = []
        if self._searching(camera, calls) and len(kept) < self.max_people:
            known = [f.last for f in kept]
            boxes = self._search_tiles(camera, calls, image.shape)
            new = self._search(camera, blank_bodies(image, known), known, boxes)[: self.max_people - len(kept)]
        self._followed[camera] = kept + [_Followed(p) for p in new]
        return [f.last for f in kept if f.lost_ms is None]

    def _discover(
        self, camera: str, image: np.ndarray, finds: list[Person], known: list[Keypoints2D], room: int
    ) -> list[_Followed]:
        """The person detector's ``finds`` whom nobody followed: each looked at by the landmark
        network, and taken when plausible and not one of ``known`` (confirmed: the detector found
        them), ``room`` at most."""
        found: list[_Followed] = []
        for person in finds:
            if len(found) >= room:
                break
            seen, after = self._look(camera, image, person.region, full=True)
            others = known + [f.last for f in found]
            if plausible(seen.points, image.shape) and not any(coincide(seen.points, k.points) for k in others):
                found.append(_Followed(seen, confirmed=True, region=after))
        return found

    def costly(self, camera: str) -> bool:
        """Whether ``camera``'s next frame runs the person detector: the full-frame pass, or the
        zoomed search's tile (not when ``max_people`` are followed there: the search then has no
        room): the pipeline starts those views first."""
        calls = self._calls.get(camera, 0) + 1
        searching = self._searching(camera, calls) and len(self._followed.get(camera, [])) < self.max_people
        return searching or (not self.tracking and self._passing(camera, calls))

    def _passing(self, camera: str, calls: int) -> bool:
        """Whether call ``calls`` (from 1) of ``camera`` runs the full-frame pass: on the camera's
        turn, and whenever nobody there is followed."""
        phase = self._phases.get(camera, (0, 0))[0]
        return (calls - 1 + phase) % self.detect_every == 0 or not any(f.lost_ms is None for f in self._followed.get(camera, []))

    def _searching(self, camera: str, calls: int) -> bool:
        """Whether call ``calls`` (from 1) of ``camera`` runs the zoomed search: every tile on the
        first, then one tile a call on the first calls of each ``search_every`` (the camera's turn)."""
        if self.search_every <= 0:
            return False
        return calls == 1 or self._search_turn(camera, calls) < self._tile_count()

    def _search_turn(self, camera: str, calls: int) -> int:
        return (calls - 1 + self._phases.get(camera, (0, 0))[1]) % self.search_every

    def _tile_count(self) -> int:
        cols, rows = self.search_grid if self.search_grid is not None else SEARCH_GRID  # the same count either way round
        return cols * rows

    def _search_tiles(self, camera: str, calls: int, shape: tuple[int, ...]) -> list[Box]:
        """The zoomed search's tiles (x0, y0, x1, y1) for call ``calls`` of ``camera`` on a frame of
        ``shape``: all of them on the first call (everyone found from the start), then tile ``j``
        where ``j`` is the call's turn (modulo ``search_every``): each tile once every ``search_every``
        calls, as when the tiles all ran on one call, but a call runs one tile's person detector
        instead of six, so that no frame-set waits for one view's whole search."""
        boxes = tiles(shape, self._grid(shape), self.search_overlap)
        if calls == 1:
            return boxes
        turn = self._search_turn(camera, calls)
        return [box for j, box in enumerate(boxes) if j % self.search_every == turn]

    def _extras(self, camera: str, image: np.ndarray, people: list[Keypoints2D], ms: int, calls: int) -> list[Keypoints2D]:
        """The people followed (those the full-frame pass found earlier, those since a zoomed
        search) that this frame's full-frame pass, if any, did not find, and the search's newcomers.

        Both look at the frame with the people found this frame blanked out, as the person
        detector mostly reports one person per box or tile and a dominant one hides the others: a
        followed person's region without the heads and torsos of those the full-frame pass found
        (their limbs may reach into it; on the frames it runs), the search's tiles without the
        outlines of everyone found or followed (:func:`blank_bodies`; measured: blanking heads and
        torsos only, the detector takes a person's legs for a person and still misses the demo's
        bystander). Tracking mode only (``tracking=True``).
        """
        room = self.max_people - len(people)
        followed = [f for f in self._followed.get(camera, []) if not any(coincide(f.last.points, p.points) for p in people)]
        if followed:
            seen = blank(image, people, HEAD_TORSO) if people else image
            kept = self._follow(camera, seen, followed[:room], people, ms)
        else:
            kept = []
        extras = [f.last for f in kept if f.lost_ms is None]
        new: list[Keypoints2D] = []
        if self._searching(camera, calls) and len(kept) < room:
            known = people + [f.last for f in kept]
            boxes = self._search_tiles(camera, calls, image.shape)
            new = self._search(camera, blank_bodies(image, known), known, boxes)[: room - len(kept)]
        # The VIDEO-mode tracker follows the people it found; a search's find is reported once the
        # next frame's follow confirms it (one-frame false finds).
        self._followed[camera] = kept + [_Followed(p) for p in new]
        return extras

    def _follow(
        self, camera: str, image: np.ndarray, followed: list[_Followed], people: list[Keypoints2D], ms: int
    ) -> list[_Followed]:
        """Each followed person looked for again by the landmark network in their region. Found
        (plausible, there, and not among ``people`` or another followed person): followed on,
        confirmed. Not found, or found on someone already reported (two people side by side, the
        network moved to the other): a confirmed person is kept, lost, for ``FOLLOW_GRACE_MS``
        (looked for in their last region); an unconfirmed search find is dropped."""
        kept: list[_Followed] = []
        for entry in followed:
            lost_ms = ms if entry.lost_ms is None else entry.lost_ms
            if ms - lost_ms >= FOLLOW_GRACE_MS:
                continue  # lost for too long: gone, or for the next search to find
            last = entry.last
            region = entry.region or region_around(last.points)
            if region is None:
                found, after = Keypoints2D.empty(camera), None
            else:  # a search find's first follow confirms it: in full precision (see LandmarkNetwork.run)
                found, after = self._look(camera, image, region, full=not entry.confirmed)
            taken = any(coincide(found.points, p.points) for p in people + [k.last for k in kept])
            if plausible(found.points, image.shape) and same_person(found.points, last.points) and not taken:
                kept.append(_Followed(found, confirmed=True, region=after))
            elif entry.confirmed:
                kept.append(_Followed(last, confirmed=True, lost_ms=lost_ms, region=region))
        return kept

    def _look(
        self, camera: str, image: np.ndarray, region: Region, within: Box | None = None, full: bool = False
    ) -> tuple[Keypoints2D, Region | None]:
        """The landmark network on ``region``: the person there (empty when the network sees no
        body: its pose flag below ``min_confidence``) and the region to look at next. ``full``: a
        look that decides whether someone new is there, in full precision."""
        answer = self.network.run(image, region, within, full)
        if answer.presence < self.min_confidence:
            return Keypoints2D.empty(camera), None
        return Keypoints2D(camera, answer.points), answer.next_region

    def _search(self, camera: str, image: np.ndarray, known: list[Keypoints2D], boxes: list[Box]) -> list[Keypoints2D]:
        """Plausible people, not ``known``, on the zoomed tiles ``boxes`` of ``image``: the person
        detector on each tile, the landmark network on each find's region of ``image`` (most salient
        first; of the finds of one person in overlapping tiles, the most salient)."""
        if self.tracking:
            finder = self._finder(camera)
            finds = [
                found
                for x0, y0, x1, y1 in boxes
                for found in self._run(finder, camera, image[y0:y1, x0:x1], (x0, y0), None)
                if plausible(found.points, image.shape)
            ]
        else:
            regions = [
                person.region
                for x0, y0, x1, y1 in boxes
                for person in self._persons(camera, image[y0:y1, x0:x1], (x0, y0))
                if not any(inside(person.region, k.points) for k in known)
            ]
            looks = (self._look(camera, image, r, full=True)[0] for r in regions)
            finds = [seen for seen in looks if plausible(seen.points, image.shape)]
        new: list[Keypoints2D] = []
        for found in sorted(finds, key=lambda kp: -salience(kp.points)):
            if not any(coincide(found.points, p.points) for p in known + new):
                new.append(found)
        return new

    def _track(self, camera: str, image: np.ndarray, ms: int) -> list[Keypoints2D]:
        """VIDEO mode: the camera's tracker, plus a full-frame pass every ``redetect_every`` frames."""
        if camera not in self._trackers:
            self._trackers[camera] = self._new_landmarker(video=True)
        people = self._run(self._trackers[camera], camera, image, (0, 0), ms)
        self._frames[camera] = self._frames.get(camera, 0) + 1
        if self._frames[camera] % self.redetect_every == 0 and len(people) < self.max_people:
            people += self._newcomers(camera, image, people)
        return people

    def _newcomers(self, camera: str, image: np.ndarray, tracked: list[Keypoints2D]) -> list[Keypoints2D]:
        """People a full-frame detection finds that the tracker does not follow (restarts it if any)."""
        found = self._find(camera, image)
        new = [kp for kp in found if not any(same_person(kp.points, t.points) for t in tracked)]
        if new:
            self._trackers.pop(camera).close()
            self._trackers[camera] = self._new_landmarker(video=True)
        return new

    def detect(self, camera: str, image: np.ndarray) -> Keypoints2D:
        people = self.detect_people(camera, image)
        return people[0] if people else Keypoints2D.empty(camera)

    def detect_region(self, camera: str, image: np.ndarray, box: Box) -> Keypoints2D:
        """Detect one person afresh inside ``box`` = (x0, y0, x1, y1) px (top-down recovery): the
        landmark network on an upright square around the box, then once more on the region its
        answer gives (aligned with the body), both times seeing the box alone (the first answer
        when the second finds nobody)."""
        x0, y0, x1, y1 = box
        if x1 - x0 < 16 or y1 - y0 < 16:
            return Keypoints2D.empty(camera)
        first, region = self._look(camera, image, region_in_box(box), within=box)
        if region is None:
            return first
        found, _ = self._look(camera, image, region, within=box)
        return found if found.found else first

    def _find(self, camera: str, image: np.ndarray) -> list[Keypoints2D]:
        """Everyone in the full frame, from scratch."""
        return self._run(self._finder(camera), camera, image, (0, 0), None)

    @property
    def bundle(self) -> Path:
        """The Tasks bundle (built on first use: only ``tracking=True`` and its passes need it)."""
        if self._bundle is None:
            self._bundle = pose_bundle(self._cache_dir)
        return self._bundle

    def _grid(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """The zoomed search's (columns, rows) for a frame of ``shape`` (h, w, ...)."""
        if self.search_grid is not None:
            return self.search_grid
        cols, rows = SEARCH_GRID
        return (rows, cols) if shape[0] > shape[1] else (cols, rows)

    def _persons(self, camera: str, image: np.ndarray, offset: tuple[int, int]) -> list[Person]:
        """The person detector's finds in ``image`` (the part at ``offset`` of the camera's frame),
        by the camera's own detector graph (made on first use)."""
        if camera not in self._detectors:
            self._detectors[camera] = PersonDetector()
        return [p for p in self._detectors[camera].find(image, offset) if p.score >= self.min_confidence]

    def _finder(self, camera: str) -> Any:
        """The camera's IMAGE-mode landmarker for up to ``max_people`` (made on first use)."""
        if camera not in self._finders:
            self._finders[camera] = self._new_landmarker(video=False, people=self.max_people)
        return self._finders[camera]

    def reset(self, camera: str | None = None) -> None:
        for graphs in (self._trackers, self._finders, self._detectors):
            for name in list(graphs) if camera is None else [camera]:
                graph = graphs.pop(name, None)
                if graph is not None:
                    graph.close()
        for state in (self._calls, self._followed):
            for name in list(state) if camera is None else [camera]:
                state.pop(name, None)
        # The clock survives a reset: a new tracker must still never see an earlier time.

    def close(self) -> None:
        self.reset()

    def _run(self, graph: Any, camera: str, image: np.ndarray, offset: tuple[int, int], ms: int | None) -> list[Keypoints2D]:
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
        frame = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        if id(graph) in self._fresh:
            self._fresh.discard(id(graph))
            with _quiet_native_stderr():  # the first run of a graph prints TFLite/absl banners
                result = graph.detect(frame) if ms is None else graph.detect_for_video(frame, ms)
        else:
            result = graph.detect(frame) if ms is None else graph.detect_for_video(frame, ms)
        return [Keypoints2D(camera, _to_coco(lms, w, h, offset)) for lms in result.pose_landmarks]

    def _new_landmarker(self, video: bool, people: int | None = None) -> Any:
        vision = self._vision
        options = vision.PoseLandmarkerOptions(
            base_options=self._mp.tasks.BaseOptions(model_asset_path=str(self.bundle)),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            num_poses=people or self.max_people,
            min_pose_detection_confidence=self.min_confidence,
            min_pose_presence_confidence=self.min_confidence,
            min_tracking_confidence=self.min_confidence,
        )
        try:
            with _quiet_native_stderr():
                graph = vision.PoseLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            raise DetectorError(f"cannot load the pose bundle {self.bundle} (delete it to rebuild): {exc}") from exc
        self._fresh.add(id(graph))
        return graph


def _to_coco(landmarks: Any, w: int, h: int, offset: tuple[int, int]) -> np.ndarray:
    """33 normalised landmarks to COCO-17 ``[17, 3]`` (px in the full image, visibility in [0, 1])."""
    points = np.array(
        [[landmarks[i].x * w + offset[0], landmarks[i].y * h + offset[1], landmarks[i].visibility] for i in BLAZEPOSE_TO_COCO17],
        np.float32,
    )
    points[:, 2] = np.clip(points[:, 2], 0.0, 1.0)
    return points


def salience(points: np.ndarray) -> float:
    """How prominent a detection ``[17, 3]`` is: mean confidence x the diagonal of its confident keypoints (px)."""
    return float(points[:, 2].mean()) * body_size(points)


def same_person(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two detections ``[17, 3]`` in one view are the same person: torso centres closer
    than a third of the larger body's size."""
    size = max(body_size(a), body_size(b), 1.0)
    return bool(np.linalg.norm(a[TORSO, :2].mean(axis=0) - b[TORSO, :2].mean(axis=0)) < size / 3)


def blank(image: np.ndarray, people: list[Keypoints2D], parts: list[int]) -> np.ndarray:
    """A copy of ``image`` with the box around each person's keypoints ``parts`` (enlarged by
    ``MASK_MARGIN``) black."""
    blanked = image.copy()
    for person in people:
        x0, y0, x1, y1 = grown_box(person.points[parts], MASK_MARGIN, image.shape)
        blanked[y0:y1, x0:x1] = 0
    return blanked


def blank_bodies(image: np.ndarray, people: list[Keypoints2D]) -> np.ndarray:
    """A copy of ``image`` with each person's body black: the convex hull of their confident
    keypoints, each corner moved out by ``MASK_MARGIN`` of their body size. (Their box would also
    hide whoever stands beside an outstretched arm: the demo's bystander in cam02, next to the
    subject's hand.)"""
    blanked = image.copy()
    for person in people:
        seen = person.points[person.points[:, 2] > 0.3, :2].astype(np.float32)
        if len(seen) < 3:
            continue
        hull = cv2.convexHull(seen)[:, 0].astype(np.float64)
        out = hull - hull.mean(axis=0)
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)
        cv2.fillConvexPoly(blanked, np.round(hull + MASK_MARGIN * body_size(person.points) * out).astype(np.int32), (0, 0, 0))
    return blanked


def plausible(points: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Whether a detection ``[17, 3]`` in an image of ``shape`` (h, w, ...) has enough confident
    keypoints and a large enough body to be taken for a person."""
    enough = int((points[:, 2] > 0.5).sum()) >= PLAUSIBLE_KEYPOINTS
    return enough and body_size(points) >= PLAUSIBLE_SIZE * max(shape[:2])


def match_finds(people: list[np.ndarray], lost: list[bool], finds: list[Person]) -> dict[int, int]:
    """Which person detector's find (index into ``finds``) each followed person (index into
    ``people``, their last keypoints ``[17, 3]``; ``lost``: not seen on the last frame) takes: of
    the pairs where the find is centred on the person (:func:`inside`), the nearest first, relative
    to the person's size, people in view before lost ones; each find and each person once."""
    pairs = []
    for k, points in enumerate(people):
        size = max(body_size(points), 1.0)
        centre = points[TORSO, :2].mean(axis=0)
        for j, find in enumerate(finds):
            if inside(find.region, points):
                pairs.append((lost[k], float(np.linalg.norm(centre - (find.region.x, find.region.y))) / size, k, j))
    matches: dict[int, int] = {}
    for _, _, k, j in sorted(pairs):
        if k not in matches and j not in matches.values():
            matches[k] = j
    return matches


def inside(region: Region, points: np.ndarray) -> bool:
    """Whether the person of detection ``points`` ``[17, 3]`` is the one a person detector's
    ``region`` is centred on (its hips' midpoint): their torso centre within a third of their
    body size of it."""
    return bool(np.linalg.norm(points[TORSO, :2].mean(axis=0) - (region.x, region.y)) < max(body_size(points), 1.0) / 3)


def coincide(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two detections ``[17, 3]`` in one view are one person: torso centres closer than a
    third of the smaller body's size (stricter than :func:`same_person`, which lets a large person
    near the camera swallow a small one behind them)."""
    size = max(min(body_size(a), body_size(b)), 1.0)
    return bool(np.linalg.norm(a[TORSO, :2].mean(axis=0) - b[TORSO, :2].mean(axis=0)) < size / 3)


def grown_box(points: np.ndarray, margin: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The box (x0, y0, x1, y1) px around keypoints ``[K, 3]`` (the confident ones), enlarged by ``margin``
    times its larger side on each side and clipped to an image of ``shape`` (h, w, ...)."""
    seen = points[points[:, 2] > 0.3, :2]
    seen = seen if len(seen) >= 2 else points[:, :2]
    (x0, y0), (x1, y1) = seen.min(axis=0), seen.max(axis=0)
    pad = margin * max(x1 - x0, y1 - y0)
    h, w = shape[:2]
    return (max(0, int(x0 - pad)), max(0, int(y0 - pad)), min(w, int(x1 + pad) + 1), min(h, int(y1 + pad) + 1))


def tiles(shape: tuple[int, ...], grid: tuple[int, int], overlap: float) -> list[tuple[int, int, int, int]]:
    """``grid`` = (columns, rows) tiles (x0, y0, x1, y1) px covering an image of ``shape`` (h, w, ...),
    neighbours overlapping by ``overlap`` of a tile's side."""
    h, w = shape[:2]
    (cols, rows), boxes = grid, []
    tw, th = w / (cols - (cols - 1) * overlap), h / (rows - (rows - 1) * overlap)
    for r in range(rows):
        for c in range(cols):
            x0, y0 = c * tw * (1 - overlap), r * th * (1 - overlap)
            boxes.append((round(x0), round(y0), min(w, round(x0 + tw)), min(h, round(y0 + th))))
    return boxes


def body_size(points: np.ndarray) -> float:
    """Diagonal (px) of the box around a detection's confident keypoints (0 when fewer than two)."""
    seen = points[points[:, 2] > 0.3, :2]
    return float(np.linalg.norm(seen.max(axis=0) - seen.min(axis=0))) if len(seen) >= 2 else 0.0
