"""capture.replay.SessionReplay and capture.sources on synthetic and real (demo) videos."""

from __future__ import annotations

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
