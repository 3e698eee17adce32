"""The runner's overlap: each set's body stage on its own thread while the next set is detected,
results published in order, nothing detected dropped at the end, and the same results as one set
at a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from core.types import BodyEstimate, FrameSet
from engine.detect.fake import FakeDetector
from engine.people_stage import PeopleStage
from engine.pipeline import Pipeline
from engine.runner import PipelineRunner, RunnerState
from tests.test_pipeline_people import ROOM, frameset, walkers


class WalkingSource:
    """Frame-sets of the two walkers: the detector is moved as each set is read (as a camera's
    frame is taken), so whatever thread detects it sees that set's people."""

    fps = 30.0
    skipped_sets = 0

    def __init__(self, detector: FakeDetector, sets: int) -> None:
        self.detector, self.sets, self.index = detector, sets, 0
        self.camera_names = [c.name for c in ROOM]

    def open(self) -> None: ...

    def close(self) -> None: ...

    def rewind(self) -> None:
        self.index = 0

    def next(self) -> FrameSet | None:
        if self.index >= self.sets:
            return None
        self.detector.move(walkers(self.index))
        self.index += 1
        return frameset(ROOM, self.index - 1)

    def __iter__(self) -> Iterator[FrameSet]:
        while (fs := self.next()) is not None:
            yield fs


class SlowBody:
    """A body stage that takes ``seconds`` and records when and on which thread it ran;
    ``fail_at`` raises on that frame-set index."""

    def __init__(self, seconds: float, fail_at: int | None = None) -> None:
        self.seconds, self.fail_at = seconds, fail_at
        self.spans: dict[int, tuple[float, float]] = {}
        self.threads: set[str] = set()
        self.torch_threads: set[int] = set()  # torch's CPU threads where the body ran

    def __call__(self, estimate: BodyEstimate) -> None:
        start = time.perf_counter()
        self.threads.add(threading.current_thread().name)
        self.torch_threads.add(torch.get_num_threads())
        if estimate.frameset.index == self.fail_at:
            raise RuntimeError(f"body broke on set {self.fail_at}")
        time.sleep(self.seconds)
        self.spans[estimate.frameset.index] = (start, time.perf_counter())


class TimedDetector(FakeDetector):
    """Records when each frame-set's detection started (by the set's first call)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.started: list[float] = []
        self._lock = threading.Lock()

    def detect_people(self, camera, image, timestamp=None):
        with self._lock:
            if self.calls % len(ROOM) == 0:
                self.started.append(time.perf_counter())
        return super().detect_people(camera, image, timestamp)


def people_pipeline(detector: FakeDetector, body) -> Pipeline:
    return Pipeline(detector, ROOM, body=body, people=PeopleStage(ROOM))


def run_threaded(detector: FakeDetector, body: SlowBody, sets: int) -> tuple[PipelineRunner, list[int]]:
    """The walkers through the people pipeline on the runner's own thread, as the window runs it:
    the runner, and the frame-set indices in the order they were published."""
    pipeline = people_pipeline(detector, body)
    published: list[int] = []
    pipeline.subscribe(lambda e: published.append(e.frameset.index))
    runner = PipelineRunner(WalkingSource(detector, sets), pipeline)
    runner.start()
    assert runner.wait(20.0)
    pipeline.close()
    return runner, published


def test_bodies_run_beside_the_next_detection_and_results_come_in_order() -> None:
    detector = TimedDetector(ROOM, people=walkers(0))
    body = SlowBody(0.05)
    runner, published = run_threaded(detector, body, 12)
    assert runner.state == RunnerState.FINISHED and runner.processed == 12
    assert published == list(range(12))
    latest = runner.latest()
    assert latest is not None and latest.frameset.index == 11 and len(latest.people) == 2
    assert body.threads == {"body"}
    # the next set's detection started while this set's body was still running
    overlapped = [
        i for i, (start, end) in body.spans.items() if i + 1 < len(detector.started) and start < detector.started[i + 1] < end
    ]
    assert len(overlapped) >= 5, (body.spans, detector.started)
    # and never more than one set ahead: set i + 2 is not detected before set i's body has begun
    assert all(detector.started[i + 2] >= body.spans[i][0] for i in body.spans if i + 2 < len(detector.started))


@pytest.mark.parametrize("overlap", [True, False])
def test_the_runners_body_stages_use_one_torch_thread_and_the_rest_keeps_torchs(overlap: bool) -> None:
    """torch's OpenMP threads spin beside the detector: the runner's thread that runs the bodies
    sets OpenMP to BODY_THREADS (1) for itself only; the calling thread keeps its own setting, and
    so does a thread started later."""
    here = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        detector = FakeDetector(ROOM, people=walkers(0))
        body = SlowBody(0.0)
        pipeline = people_pipeline(detector, body)
        runner = PipelineRunner(WalkingSource(detector, 4), pipeline, overlap=overlap)
        runner.start()
        assert runner.wait(20.0) and runner.processed == 4
        pipeline.close()
        assert body.threads == ({"body"} if overlap else {"pipeline"})
        assert body.torch_threads == {1}
        assert torch.get_num_threads() == 2
        # a thread that starts using torch afterwards (an export, say) still gets the default
        later: list[int] = []
        thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert later == [2]
    finally:
        torch.set_num_threads(here)


def test_a_failing_body_fails_the_run_after_publishing_what_came_before() -> None:
    runner, published = run_threaded(FakeDetector(ROOM, people=walkers(0)), SlowBody(0.0, fail_at=8), 20)
    assert runner.state == RunnerState.FAILED and runner.error is not None and "body broke on set 8" in runner.error
    assert published == list(range(8))


def test_a_stop_and_the_set_limit_finish_every_set_already_detected() -> None:
    detector = FakeDetector(ROOM, people=walkers(0))
    pipeline = people_pipeline(detector, SlowBody(0.02))
    begun: list[int] = []
    begin = pipeline.begin
    pipeline.begin = lambda fs: begun.append(fs.index) or begin(fs)  # type: ignore[method-assign]
    published: list[int] = []
    stop = threading.Event()

    def publish(estimate: BodyEstimate) -> None:
        published.append(estimate.frameset.index)
        if estimate.frameset.index == 5:
            stop.set()

    pipeline.subscribe(publish)
    runner = PipelineRunner(WalkingSource(detector, 50), pipeline, stop_event=stop)
    runner.run()
    assert runner.state == RunnerState.STOPPED
    assert published == begun and len(published) in (6, 7)  # the set detected beside set 5's body is finished too
    limited = PipelineRunner(WalkingSource(detector, 50), pipeline, max_sets=9)
    published.clear()
    limited.run()
    pipeline.close()
    assert limited.processed == 9 and len(published) == 9


@pytest.mark.slow
def test_overlapped_bodies_equal_one_set_at_a_time(model) -> None:
    from engine.heatformer.live import LiveBody
    from engine.heatformer.people import PeopleBodies

    results: dict[bool, list[BodyEstimate]] = {}
    for overlap in (True, False):
        detector = FakeDetector(ROOM, people=walkers(0))
        pipeline = people_pipeline(detector, PeopleBodies(LiveBody(model, ROOM, calibrated=True)))
        results[overlap] = []
        pipeline.subscribe(results[overlap].append)
        PipelineRunner(WalkingSource(detector, 10), pipeline, overlap=overlap).run()
        pipeline.close()
    assert len(results[True]) == len(results[False]) == 10
    bodies = 0
    for a, b in zip(results[True], results[False], strict=True):
        assert [p.id for p in a.people] == [p.id for p in b.people]
        for pa, pb in zip(a.people, b.people, strict=True):
            assert (pa.body is None) == (pb.body is None)
            if pa.body is not None and pb.body is not None and pa.body.joints is not None:
                bodies += 1
                for name in ("pose", "betas", "transl", "joints"):
                    assert np.array_equal(getattr(pa.body, name), getattr(pb.body, name)), name
    assert bodies >= 10  # both walkers have world bodies once their tracks are confirmed
