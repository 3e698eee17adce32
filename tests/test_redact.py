"""Credentials in camera URLs: every form a user can write is redacted by parsing the URL, and the
secret never shows while the host and path stay readable (issue 25, part 5)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pytest

from capture.live import CameraState, LiveCamera
from capture.live import redact as live_redact  # other code imports it from capture.live
from core.urls import redact, scrub, secrets, split_url, url_problem


@dataclass(frozen=True)
class Form:
    id: str
    url: str
    secret: str  # must never appear
    keep: tuple[str, ...]  # must stay readable
    expect: str | None = None  # the exact redacted form, where it is worth pinning


FORMS = [
    Form("password", "rtsp://admin:s3cr3tPW@10.0.0.5:554/stream1", "s3cr3tPW", ("admin", "10.0.0.5:554/stream1"),
         "rtsp://admin:***@10.0.0.5:554/stream1"),
    Form("percent-encoded", "http://user:p%40ssWord7@cam.local/video.mjpg", "ssWord7", ("user", "cam.local/video.mjpg"),
         "http://user:***@cam.local/video.mjpg"),
    Form("slash-in-password", "rtsp://admin:pa/ss/word9@cam.local:554/h264", "word9", ("admin", "cam.local:554/h264"),
         "rtsp://admin:***@cam.local:554/h264"),
    Form("at-in-password", "rtsp://admin:p@ssw@rd9@cam.local/live", "ssw@rd9", ("admin", "cam.local/live"),
         "rtsp://admin:***@cam.local/live"),
    Form("question-mark-in-password", "rtsp://admin:what?ever42@cam.local/live", "ever42", ("cam.local/live",)),
    Form("hash-in-password", "rtsp://admin:num#ber42@cam.local/live", "ber42", ("cam.local/live",)),
    Form("empty-user", "rtsp://:topsecret9@cam.local/live", "topsecret9", ("cam.local/live",), "rtsp://:***@cam.local/live"),
    Form("query-pwd", "http://cam.local/video.cgi?user=admin&pwd=qwerty123", "qwerty123", ("cam.local/video.cgi", "user=admin"),
         "http://cam.local/video.cgi?user=admin&pwd=***"),
    Form("query-password", "http://cam.local/mjpg?password=hunter2xyz&res=hd", "hunter2xyz", ("cam.local/mjpg", "res=hd")),
    Form("query-token", "http://cam.local/stream?token=abcdef123456", "abcdef123456", ("cam.local/stream",)),
    Form("query-pass", "http://cam.local/s.mjpg?pass=opensesame1", "opensesame1", ("cam.local/s.mjpg",)),
    Form("query-key", "http://cam.local/s.mjpg?key=k3yk3yk3y", "k3yk3yk3y", ("cam.local/s.mjpg",)),
    Form("query-api-key", "http://cam.local/s.mjpg?api_key=AKIA99887766", "AKIA99887766", ("cam.local/s.mjpg",)),
    Form("query-auth", "http://cam.local/s.mjpg?auth=YWRtaW46cGFzcw", "YWRtaW46cGFzcw", ("cam.local/s.mjpg",)),
    Form("query-secret", "http://cam.local/s.mjpg?secret=shhh-42", "shhh-42", ("cam.local/s.mjpg",)),
    Form("query-upper-case-key", "http://cam.local/s.mjpg?PassWord=Loud123", "Loud123", ("cam.local/s.mjpg",)),
    Form("query-encoded-value", "http://cam.local/s?token=a%2Fb%3Dc99", "a/b=c99", ("cam.local/s",)),
    Form("fragment-token", "http://cam.local/s#access_token=frag5678", "frag5678", ("cam.local/s",)),
    Form("password-and-token", "rtsp://admin:first111@cam.local/s?token=second222", "second222", ("admin", "cam.local/s"),
         "rtsp://admin:***@cam.local/s?token=***"),
    Form("leading-space", "  rtsp://admin:spacey123@cam.local/x", "spacey123", ("admin", "cam.local/x"),
         "rtsp://admin:***@cam.local/x"),
    Form("leading-tab-newline", "\t\nrtsp://admin:tabbed123@cam.local/x ", "tabbed123", ("cam.local/x",)),
    Form("upper-case-scheme", "RTSP://admin:shout123@cam.local/x", "shout123", ("cam.local/x",)),
    Form("one-slash", "rtsp:/admin:mangled123@cam.local/x", "mangled123", ("cam.local/x",)),  # what type=Path made of it
    Form("no-slashes", "rtsp:admin:bare12345@cam.local/x", "bare12345", ("cam.local/x",)),
    Form("ipv6", "http://admin:v6secret@[fe80::1]:8080/x.mjpg", "v6secret", ("[fe80::1]:8080/x.mjpg",)),
    Form("unknown-scheme", "ftp://admin:ftpsecret@files.local/v.mp4", "ftpsecret", ("files.local/v.mp4",)),
    Form("bad-port", "http://admin:portsecret@cam.local:99999/x", "portsecret", ("cam.local:99999/x",)),
    Form("colon-in-password", "rtsp://admin:a:b:c:d99@cam.local/x", "a:b:c:d99", ("cam.local/x",)),
]  # fmt: skip


@pytest.mark.parametrize("form", FORMS, ids=[f.id for f in FORMS])
def test_redact_hides_the_secret_and_keeps_the_rest(form: Form) -> None:
    shown = redact(form.url)
    assert form.secret not in shown, shown
    for part in form.keep:
        assert part in shown, (part, shown)
    assert "***" in shown
    if form.expect is not None:
        assert shown == form.expect
    assert live_redact(form.url) == shown


@pytest.mark.parametrize("form", FORMS, ids=[f.id for f in FORMS])
def test_scrub_hides_the_secret_in_any_message(form: Form) -> None:
    """A library's message may quote the URL, or the password as its own parser split it."""
    parsed = urlsplit(form.url.strip())
    password = str(parsed.password)
    message = f"cannot open {form.url.strip()}: user {parsed.username} password {password} ({unquote(password)})"
    cleaned = scrub(message, form.url)
    assert form.secret not in cleaned, cleaned
    assert form.keep[0] in cleaned


@pytest.mark.parametrize(
    "text",
    ["usb:0", "videos/cam01.mp4", "/data/rec@home/cam1.mp4", "C:\\videos\\cam@1.mp4", "http://cam.local/video.mjpg",
     "http://cam.local/p?user=bob&res=hd", "http://cam.local:8080/v?mail=a@b.com", "rtsp://viewer@cam.local/s"],
)  # fmt: skip
def test_redact_leaves_urls_without_secrets_alone(text: str) -> None:
    assert redact(text) == text
    assert secrets(text) == []


def test_split_url_finds_the_host_after_the_last_at() -> None:
    parts = split_url("rtsp://admin:p@ss/w?rd@cam.local:554/live?x=1")
    assert parts is not None
    assert (parts.user, parts.password, parts.host, parts.port) == ("admin", "p@ss/w?rd", "cam.local", "554")
    assert (parts.path, parts.query) == ("/live", "x=1")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://cam.local:99999/x", "port '99999' is not a number from 1 to 65535"),
        ("http://cam.local:0/x", "port '0' is not a number from 1 to 65535"),
        ("http://cam.local:80a/x", "port '80a' is not a number from 1 to 65535"),
        ("ftp://cam.local/x", "unknown scheme 'ftp'"),
        ("http:///x.mjpg", "has no host"),
        ("http://:pw@/x.mjpg", "has no host"),
        ("rtsp:/cam.local/x", "needs '//'"),
        ("rtsp://admin:pa/ss@cam.local/x", "percent-encoded"),
        ("http://cam local/x", "not a valid host name"),
        (" http://cam.local/x", "spaces around it"),
        ("http://cam.local/my video", "spaces in its path"),
    ],
)
def test_url_problems_are_named(url: str, problem: str) -> None:
    found = url_problem(url)
    assert found is not None and problem in found, found
    assert "pa/ss" not in found


def test_good_urls_have_no_problem() -> None:
    for url in ("rtsp://admin:s3cr3t@10.0.0.5:554/stream1", "http://cam.local/video.mjpg", "http://[::1]:8080/x",
                "http://u:p%2Fq@cam.local/x?token=abc"):  # fmt: skip
        assert url_problem(url) is None, url


def test_a_camera_never_logs_or_shows_its_secrets(caplog: pytest.LogCaptureFixture) -> None:
    """A camera whose opener fails with a message quoting the URL: the state, the health and the
    log carry the host, never the password or the token."""
    url = "http://admin:pa55word@127.0.0.1:9/x.mjpg?token=tok3n"

    def opener(_: str) -> object:
        raise OSError(f"HTTP 401 from {url} (user admin, password pa55word)")

    caplog.set_level(logging.DEBUG, logger="capture.live")
    cam = LiveCamera("door", url, backoff=0.05, give_up=2, opener=opener)
    cam.start()
    deadline = time.monotonic() + 5
    while cam.state != CameraState.FAILED and time.monotonic() < deadline:
        time.sleep(0.01)
    health = cam.health()
    cam.stop()
    assert health.state == CameraState.FAILED
    shown = " ".join([health.source, health.error or "", caplog.text])
    assert "127.0.0.1:9/x.mjpg" in shown and "admin:***@" in shown
    assert "pa55word" not in shown and "tok3n" not in shown


@pytest.mark.gui
@pytest.mark.skipif(not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")), reason="needs a display (Xvfb)")
def test_room_dialog_shows_sources_redacted_and_saves_them_whole(qtbot, tmp_path) -> None:
    from app.room_dialog import SOURCE, RoomDialog
    from capture.room import CameraEntry, Room, load_room

    url = "rtsp://admin:pa55word@cam.local/live?token=tok3n"
    dialog = RoomDialog(Room("Lab", [CameraEntry("door", url, (640, 480), 25.0)]))
    qtbot.addWidget(dialog)
    assert dialog.table.item(0, SOURCE).text() == "rtsp://admin:***@cam.local/live?token=***"
    dialog.add_row(CameraEntry("hall", "usb:0", (640, 480), 30.0))
    dialog.table.item(1, SOURCE).setText("http://viewer:typed123@10.0.0.7/v.mjpg")  # the user types a new URL
    assert dialog.table.item(1, SOURCE).text() == "http://viewer:***@10.0.0.7/v.mjpg"
    assert dialog.save(tmp_path / "room.toml")
    assert [c.source for c in load_room(tmp_path / "room.toml").cameras] == [url, "http://viewer:typed123@10.0.0.7/v.mjpg"]
    shown = " ".join(dialog.table.item(r, c).text() for r in range(2) for c in range(5)) + dialog.message.text()
    assert "pa55word" not in shown and "tok3n" not in shown and "typed123" not in shown


@pytest.mark.parametrize("source", ["rtsp//admin:hunter2pw@cam.local/x", "rtsp:admin:hunter2pw@cam.local/x",
                                    "admin:hunter2pw@cam.local", "videos/admin:hunter2pw@cam.mp4"])  # fmt: skip
def test_a_mistyped_camera_url_read_as_a_path_does_not_show_its_password(source: str) -> None:
    from capture.sources import sources_from_path
    from core.errors import SourceError

    with pytest.raises(SourceError) as caught:
        sources_from_path(source)
    message = str(caught.value)
    assert "hunter2pw" not in message and "admin" not in message and "***@cam" in message
