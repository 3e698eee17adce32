"""The bad-input corpus harness: every case runs one entry point in-process with bad input and
must end with exit code 2 and exactly one ``error:`` line that names the file, camera or field.

A case is a row in a table (see ``tests/test_bad_input_*.py``)::

    Case("room-fps-text", "main", ["--headless", "--room", "{tmp}/room.toml", "--out", "{tmp}/o.npz"],
         expect=["room.toml", "fps"], files={"room.toml": '[[camera]]\\nname = "a"\\n...'})

- ``entry``: ``main`` (main.py), ``calibration`` (python -m calibration), ``engine.evaluate``,
  ``engine.body`` (python -m engine.body), ``recording`` (python -m recording), or the lab's and
  tools' ``training.evaluate`` and ``tools.body.picture``.
- ``args``: the command line; ``{tmp}`` is the case's own temporary folder.
- ``files``: text (str) or bytes written into ``{tmp}`` before the run; ``make``: a function
  ``make(tmp)`` for inputs that need code (numpy arrays, images, videos).
- ``expect``: substrings the ``error:`` line must contain (case-insensitive), e.g. the file name
  and the field.

Each case runs under a timeout (pytest-timeout), so a hang fails the case instead of the suite.
"""

from __future__ import annotations

import importlib
import io
import logging
from collections.abc import Callable, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo"
CASE_TIMEOUT_S = 120

ENTRIES = {
    "main": "main",
    "calibration": "calibration.__main__",
    "engine.evaluate": "engine.evaluate",
    "engine.body": "engine.body.__main__",
    "tools.body.picture": "tools.body.picture",
    "training.evaluate": "training.evaluate",
    "recording": "recording.__main__",
}


@dataclass(frozen=True)
class Case:
    id: str
    entry: str
    args: Sequence[str]
    expect: Sequence[str]
    files: dict[str, str | bytes] = field(default_factory=dict)
    make: Callable[[Path], None] | None = None


@dataclass(frozen=True)
class Outcome:
    code: int | None
    stdout: str
    stderr: str
    crashed: BaseException | None


def run_entry(entry: str, argv: list[str]) -> Outcome:
    """Run an entry point's ``main(argv)`` in-process; any exception that escapes is a crash."""
    module = importlib.import_module(ENTRIES[entry])
    out, err = io.StringIO(), io.StringIO()
    code: int | None
    crashed: BaseException | None = None
    root = logging.getLogger()
    handler = logging.StreamHandler(err)
    root.addHandler(handler)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = module.main(argv)
            except SystemExit as exc:  # argparse errors exit 2
                code = exc.code if isinstance(exc.code, int) else 1
            except Exception as exc:
                crashed, code = exc, None
    finally:
        root.removeHandler(handler)
    return Outcome(code, out.getvalue(), err.getvalue(), crashed)


def prepare(case: Case, tmp: Path) -> list[str]:
    for name, content in case.files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{tmp}", str(tmp)).replace("{demo}", str(DEMO)))
    if case.make is not None:
        case.make(tmp)
    return [a.replace("{tmp}", str(tmp)).replace("{demo}", str(DEMO)) for a in case.args]


def check_case(case: Case, tmp: Path) -> None:
    """Run ``case`` and assert: exit code 2, exactly one ``error:`` line naming what is wrong,
    no traceback."""
    outcome = run_entry(case.entry, prepare(case, tmp))
    if outcome.crashed is not None:
        raise AssertionError(f"{case.id}: traceback instead of an error line") from outcome.crashed
    text = outcome.stderr + outcome.stdout
    assert "Traceback" not in text, f"{case.id}: a traceback was printed:\n{text}"
    assert outcome.code == 2, f"{case.id}: exit code {outcome.code} (expected 2); output:\n{text}"
    errors = [line for line in text.splitlines() if "error:" in line]
    assert len(errors) == 1, f"{case.id}: expected one 'error:' line, got {len(errors)}:\n{text}"
    line = errors[0].lower()
    missing = [e for e in case.expect if e.lower() not in line]
    assert not missing, f"{case.id}: the error line does not name {missing}: {errors[0]!r}"


def parametrize(cases: Sequence[Case]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``@parametrize(CASES)`` on ``def test_x(case, tmp_path)``: one test per case, each with
    the corpus timeout."""
    ids = [c.id for c in cases]
    assert len(set(ids)) == len(ids), "case ids must be unique"

    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        return pytest.mark.timeout(CASE_TIMEOUT_S)(pytest.mark.parametrize("case", cases, ids=ids)(test))

    return decorate
