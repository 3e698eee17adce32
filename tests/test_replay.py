"""capture.replay.SessionReplay and capture.sources on synthetic and real (demo) videos."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from capture.replay import SessionReplay
from capture.sources import SyntheticSource, VideoFileSource, natural_key, sources_from_path
from core.errors import SourceError

ROOT = Path(__file__).resolve().parents[1]
DEMO_VIDEOS = ROOT / "assets" / "demo" / "videos"
FPS = 30.0
PERIOD = 1.0 / FPS


def synthetic(name, frames=10, offset=0.0, fps=FPS, size=(64, 48)):
    return SyntheticSource(name, size=size, frames=frames, fps=fps, offset=offset)


def collect(replay, limit=None):
    sets = []
    try:
        for fs in replay:
            sets.append(fs)
            if limit is not None and len(sets) >= limit:
                break
    finally:
        replay.close()
    return sets


def write_video(path: Path, frames=4, size=(64, 48), fps=25.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        image = np.full((size[1], size[0], 3), 40 * i, np.uint8)
        writer.write(image)
    writer.release()
    assert path.stat().st_size > 0


# ----------------------------------------------------------------------------- synchronization


def test_in_step_sources_give_complete_sets_with_equal_indices():
    names = ["cam_a", "cam_b", "cam_c"]
    replay = SessionReplay([synthetic(n) for n in names])
    assert replay.camera_names == names
    assert replay.fps == FPS
    sets = collect(replay)
    assert len(sets) == 10
    for k, fs in enumerate(sets):
        assert fs.cameras == names  # every camera, in the configured order
        assert {f.index for f in fs.frames.values()} == {k}
        assert fs.index == k
        assert fs.reference_time == pytest.approx(k * PERIOD, abs=1e-12)
        assert fs.skew == pytest.approx(0.0, abs=1e-12)
        assert fs.frames["cam_b"].image.shape == (48, 64, 3)
        assert fs.decode_ms >= 0.0
    assert replay.dropped == {n: 0 for n in names}


def test_next_returns_none_at_the_end():
    replay = SessionReplay([synthetic("a", frames=2), synthetic("b", frames=2)])
    try:
        assert replay.next() is not None
        assert replay.next() is not None
        assert replay.next() is None
        assert replay.next() is None
    finally:
        replay.close()


def test_sources_of_unequal_length_stop_at_the_shortest():
    sets = collect(SessionReplay([synthetic("a", frames=10), synthetic("b", frames=6)]))
    assert [fs.frames["b"].index for fs in sets] == list(range(6))


@pytest.mark.parametrize("periods", [2.0, 2.3, 1.8])
def test_offset_source_grouped_by_nearest_timestamp(periods):
    ahead = synthetic("ahead", offset=periods * PERIOD)
    replay = SessionReplay([ahead, synthetic("b"), synthetic("c")])
    sets = collect(replay)
    shift = round(periods)  # the frames of b/c nearest to ahead's frame k
    assert len(sets) == 10 - shift
    for k, fs in enumerate(sets):
        assert fs.cameras == ["ahead", "b", "c"]
        assert fs.frames["ahead"].index == k
        assert fs.frames["b"].index == k + shift
        assert fs.frames["c"].index == k + shift
        assert fs.skew < 0.5 * PERIOD
        assert fs.skew == pytest.approx(abs(periods - shift) * PERIOD, abs=1e-9)
        times = sorted(f.timestamp for f in fs.frames.values())
        assert fs.reference_time == pytest.approx(times[1], abs=1e-12)  # median
    assert replay.dropped == {"ahead": 0, "b": shift, "c": shift}


def test_source_at_half_the_rate_drops_every_other_frame_of_the_fast_one():
    sets = collect(SessionReplay([synthetic("fast", frames=20, fps=30.0), synthetic("slow", frames=10, fps=15.0)]))
    assert [fs.frames["slow"].index for fs in sets] == list(range(10))
    assert [fs.frames["fast"].index for fs in sets] == list(range(0, 20, 2))
    assert all(fs.skew < 1e-12 for fs in sets)


def test_no_set_with_skew_beyond_half_a_period_when_a_source_cannot_catch_up():
    replay = SessionReplay([synthetic("ahead", offset=20 * PERIOD), synthetic("b")])
    sets = collect(replay)
    assert all(fs.skew < 0.5 * PERIOD for fs in sets), [(fs.skew / PERIOD) for fs in sets]


# ----------------------------------------------------------------------------- loop / realtime


def test_loop_continues_past_the_end_with_increasing_reference_time():
    replay = SessionReplay([synthetic("a", frames=5), synthetic("b", frames=5)], loop=True)
    sets = collect(replay, limit=17)
    assert len(sets) == 17  # 5 frames, looped more than three times
    assert [fs.frames["a"].index for fs in sets] == [k % 5 for k in range(17)]
    assert [fs.index for fs in sets] == list(range(17))
    times = np.array([fs.reference_time for fs in sets])
    np.testing.assert_allclose(np.diff(times), PERIOD, rtol=0, atol=1e-9)  # seamless across the loop
    assert all(fs.skew < 1e-12 for fs in sets)


def test_loop_with_offset_source_still_increases():
    replay = SessionReplay([synthetic("ahead", frames=6, offset=2 * PERIOD), synthetic("b", frames=6)], loop=True)
    sets = collect(replay, limit=14)
    times = np.array([fs.reference_time for fs in sets])
    assert np.all(np.diff(times) > 0)
    assert all(fs.frames["b"].index == fs.frames["ahead"].index + 2 for fs in sets)


def test_realtime_paces_at_the_frame_rate():
    n = 10
    replay = SessionReplay([synthetic("a", frames=n), synthetic("b", frames=n)], realtime=True)
    stamps = []
    try:
        for _ in replay:
            stamps.append(time.perf_counter())
    finally:
        replay.close()
    assert len(stamps) == n
    elapsed = stamps[-1] - stamps[0]  # 9 periods = 0.3 s
    assert 0.8 * (n - 1) * PERIOD < elapsed < 2.5 * (n - 1) * PERIOD
    assert replay.skipped_sets == 0


def test_realtime_speed_factor_and_fast_mode():
    n = 10
    fast = SessionReplay([synthetic("a", frames=n)], realtime=True, speed=3.0)
    t0 = time.perf_counter()
    assert len(collect(fast)) == n
    t_fast = time.perf_counter() - t0  # 9 periods / 3 = 0.1 s
    assert 0.8 * (n - 1) * PERIOD / 3 < t_fast < 0.25
    t0 = time.perf_counter()
    assert len(collect(SessionReplay([synthetic("a", frames=n)]))) == n
    assert time.perf_counter() - t0 < 0.08  # unpaced: no sleeping


# ----------------------------------------------------------------------------- construction errors


def test_replay_needs_sources_with_unique_names():
    with pytest.raises(SourceError, match="at least one"):
        SessionReplay([])
    with pytest.raises(SourceError, match="duplicate"):
        SessionReplay([synthetic("a"), synthetic("a")])


# ----------------------------------------------------------------------------- video files


def test_video_file_source_on_demo_video():
    source = VideoFileSource(DEMO_VIDEOS / "cam01.mp4")
    assert source.name == "cam01"
    with pytest.raises(SourceError, match="not open"):
        source.read()
    source.open()
    try:
        assert source.fps == pytest.approx(60.0)
        assert source.image_size == (1080, 1920)
        assert source.frame_count == 100
        first = source.read()
        second = source.read()
        assert first.image.shape == (1920, 1080, 3) and first.image.dtype == np.uint8
        assert (first.index, second.index) == (0, 1)
        assert (first.timestamp, second.timestamp) == (0.0, pytest.approx(1 / 60))
        assert first.camera == "cam01"
        source.rewind()
        again = source.read()
        assert again.index == 0
        np.testing.assert_array_equal(again.image, first.image)
    finally:
        source.close()


def test_sources_from_demo_folder_in_natural_order():
    sources = sources_from_path(DEMO_VIDEOS)
    assert [s.name for s in sources] == ["cam01", "cam02", "cam03", "cam04"]
    assert all(isinstance(s, VideoFileSource) for s in sources)
    # a session folder keeps its videos in a videos/ sub-folder
    assert [s.name for s in sources_from_path(DEMO_VIDEOS.parent)] == ["cam01", "cam02", "cam03", "cam04"]
    # a single file
    (single,) = sources_from_path(DEMO_VIDEOS / "cam02.mp4")
    assert single.name == "cam02"


def test_natural_key():
    assert sorted(["cam_10", "cam_2", "Cam_1"], key=natural_key) == ["Cam_1", "cam_2", "cam_10"]


def test_sources_from_folder_natural_order_on_real_small_videos(tmp_path):
    for name in ("cam_2.mp4", "cam_10.mp4", "cam_1.mp4"):
        write_video(tmp_path / name, frames=4)
    (tmp_path / "notes.txt").write_text("not a video")
    sources = sources_from_path(tmp_path)
    assert [s.name for s in sources] == ["cam_1", "cam_2", "cam_10"]
    replay = SessionReplay(sources)
    sets = collect(replay)
    assert len(sets) == 4
    for k, fs in enumerate(sets):
        assert fs.cameras == ["cam_1", "cam_2", "cam_10"]
        assert {f.index for f in fs.frames.values()} == {k}
        assert fs.frames["cam_10"].image.shape == (48, 64, 3)
    assert sources[0].image_size == (64, 48)
    assert sources[0].fps == pytest.approx(25.0)


def test_missing_path(tmp_path):
    missing = tmp_path / "nothing_here"
    with pytest.raises(SourceError) as info:
        sources_from_path(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(SourceError, match="not found") as info:
        VideoFileSource(missing / "cam.mp4").open()
    assert str(missing / "cam.mp4") in str(info.value)


def test_empty_folder(tmp_path):
    with pytest.raises(SourceError, match="no video files") as info:
        sources_from_path(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_zero_byte_video(tmp_path):
    empty = tmp_path / "cam01.mp4"
    empty.write_bytes(b"")
    (source,) = sources_from_path(tmp_path)
    with pytest.raises(SourceError) as info:
        source.open()
    message = str(info.value)
    assert str(empty) in message
    assert any(word in message for word in ("no frames", "cannot open", "empty"))
    with pytest.raises(SourceError):
        SessionReplay([source]).open()


def test_garbage_bytes_named_mp4(tmp_path):
    junk = tmp_path / "cam01.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError) as info:
        VideoFileSource(junk).open()
    message = str(info.value)
    assert str(junk) in message
    assert "no frames" in message or "cannot open" in message


def test_unknown_suffix(tmp_path):
    text = tmp_path / "cameras.txt"
    text.write_text("cam01")
    with pytest.raises(SourceError) as info:
        sources_from_path(text)
    assert str(text) in str(info.value) and "'.txt'" in str(info.value)


# ----------------------------------------------------------------------------- demo replay


@pytest.mark.slow
def test_replay_of_the_four_demo_videos_is_in_step():
    replay = SessionReplay(sources_from_path(DEMO_VIDEOS))
    count = 0
    try:
        for fs in replay:
            assert fs.cameras == ["cam01", "cam02", "cam03", "cam04"]
            assert len({f.index for f in fs.frames.values()}) == 1
            assert fs.frames["cam01"].index == count
            assert fs.reference_time == pytest.approx(count / 60.0, abs=1e-9)
            assert fs.frames["cam03"].image.shape == (1920, 1088, 3)
            count += 1
    finally:
        replay.close()
    assert count == 100
    assert replay.dropped == {"cam01": 0, "cam02": 0, "cam03": 0, "cam04": 0}


def test_video_files_at_different_rates_with_a_clock_offset_pair_the_right_frames(tmp_path):
    """A 30 fps camera and a 15 fps camera whose recording started 10 ms later: every set pairs
    the 15 fps frame j with the 30 fps frame 2j (the same instant), and the skew is the offset."""
    write_video(tmp_path / "fast.mp4", frames=30, fps=30.0)
    write_video(tmp_path / "slow.mp4", frames=15, fps=15.0)
    replay = SessionReplay([VideoFileSource(tmp_path / "fast.mp4"), VideoFileSource(tmp_path / "slow.mp4", time_offset=0.010)])
    sets = [fs for fs in collect(replay) if len(fs.frames) == 2]
    assert len(sets) >= 12
    for fs in sets:
        fast, slow = fs.frames["fast"].index, fs.frames["slow"].index
        assert fast == 2 * slow, (fast, slow)
        assert fs.skew == pytest.approx(0.010, abs=1e-6)


# ----------------------------------------------------------------------------- realtime with a slow consumer


class CountingSource(SyntheticSource):
    """A synthetic camera that counts the images it paints (decodes); ``cheap_skip=False`` hides
    ``skip_until`` (a source that must decode to skip) and ``paint_s`` makes decoding slow."""

    def __init__(self, name: str, frames: int, fps: float = 60.0, paint_s: float = 0.0, cheap_skip: bool = True) -> None:
        super().__init__(name, size=(32, 24), frames=frames, fps=fps, painter=self._paint)
        self.painted, self.paint_s = 0, paint_s
        if not cheap_skip:
            self.skip_until = None

    def _paint(self, index: int) -> np.ndarray:
        self.painted += 1
        if self.paint_s:
            time.sleep(self.paint_s)
        return np.full((24, 32, 3), index % 256, np.uint8)


def consume_for(replay: SessionReplay, seconds: float, work_s: float) -> tuple[list, float]:
    """Take sets for ``seconds`` like a consumer that needs ``work_s`` per set."""
    sets, t0 = [], time.perf_counter()
    try:
        while time.perf_counter() - t0 < seconds:
            fs = replay.next()
            if fs is None:
                break
            sets.append(fs)
            time.sleep(work_s)
    finally:
        replay.close()
    return sets, time.perf_counter() - t0


def test_realtime_slow_consumer_always_gets_the_newest_set_without_decoding_the_skipped_ones():
    sources = [CountingSource(n, frames=600) for n in ("a", "b")]
    replay = SessionReplay(sources, realtime=True)
    sets, elapsed = consume_for(replay, 1.5, work_s=0.1)
    assert len(sets) >= 10  # one set per ~0.1 s of work: the replay never stalls
    indices = [fs.frames["a"].index for fs in sets]
    assert all(b - a >= 3 for a, b in itertools.pairwise(indices[1:]))  # late frames skipped
    # The last set shown is the recording's frame at about the time it was shown (60 fps clock).
    assert abs(indices[-1] / 60.0 - (elapsed - 0.1)) < 0.2
    assert replay.skipped_sets > 0 and replay.dropped["a"] > 0
    # Skipped frames are never decoded: each set decodes its own frame and at most one look-ahead.
    assert all(s.painted <= 2 * len(sets) + 2 for s in sources)
    assert indices[-1] > 3 * len(sets)


def test_realtime_never_livelocks_when_decoding_is_slower_than_the_frame_rate():
    """Each decode takes 25 ms against 16.7 ms between frames and the source cannot skip cheaply
    (the frozen demo of issue 25): sets still arrive, each newer than the last."""
    sources = [CountingSource(n, frames=2000, paint_s=0.025, cheap_skip=False) for n in ("a", "b")]
    replay = SessionReplay(sources, realtime=True)
    sets, _ = consume_for(replay, 1.5, work_s=0.05)
    assert len(sets) >= 6
    indices = [fs.frames["a"].index for fs in sets]
    assert indices == sorted(set(indices))


@pytest.mark.slow
def test_realtime_demo_videos_keep_moving_with_a_slow_consumer():
    """The bundled demo (4 x 1080x1920 H.264 at 60 fps, looping) behind a consumer that needs
    0.15 s per set: the replay follows the clock instead of freezing."""
    replay = SessionReplay(sources_from_path(DEMO_VIDEOS), realtime=True, loop=True)
    sets, elapsed = consume_for(replay, 4.0, work_s=0.15)
    assert len(sets) >= 8
    times = np.array([fs.reference_time for fs in sets])
    assert np.all(np.diff(times) > 0)
    # Late frames were skipped (each set is newer than the one after the last), so the replay
    # advanced faster than one frame per set, on the recording's clock.
    assert replay.skipped_sets > 0 and times[-1] >= 2 * len(sets) / 60.0
    for fs in sets:  # frames of a set stay together
        assert fs.skew < 0.5 / 60 + 1e-9


def test_looped_frame_timestamps_keep_increasing():
    replay = SessionReplay([synthetic("a", frames=5), synthetic("b", frames=5)], loop=True)
    sets = collect(replay, limit=17)
    stamps = np.array([fs.frames["a"].timestamp for fs in sets])
    np.testing.assert_allclose(np.diff(stamps), PERIOD, rtol=0, atol=1e-9)
    np.testing.assert_allclose(stamps, [fs.reference_time for fs in sets], atol=1e-9)
