"""The tests' child-process helper (tests/apprun.py): a child past its time fails the test with
every thread's stack, naming where each one waits; a child that ends in time gives its output."""

from __future__ import annotations

import pytest

from tests.apprun import run_python

HANGS = """
import threading
def wait_for_good(): threading.Event().wait()
worker = threading.Thread(target=wait_for_good, name="stuck")
worker.start()
print("started", flush=True)
worker.join()
"""


def test_a_hung_child_fails_the_test_with_its_threads_stacks() -> None:
    with pytest.raises(pytest.fail.Exception) as failure:
        run_python("-c", HANGS, timeout=3)
    message = str(failure.value)
    assert "still running after 3 s" in message
    assert "in wait_for_good" in message  # the worker's stack, where it waits
    assert "Current thread" in message or "most recent call first" in message


def test_a_child_that_ends_gives_its_output_and_code() -> None:
    done = run_python("-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)", timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
