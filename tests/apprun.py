"""Running the app (or any script of the repository) in a child interpreter from a test, so that
a hang says where it is: past its time the child gets SIGABRT, on which Python's faulthandler
(``-X faulthandler``) prints every thread's stack, and the test fails with those stacks instead
of a bare timeout (a CI run once spent ten minutes in a hung replay and said nothing more)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from core.paths import ROOT

STACKS_CHARS = 8000  # the end of the child's stderr that a failure shows (the threads' stacks)


def run_python(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -X faulthandler ARGS`` in the repository's root, output captured; past
    ``timeout`` seconds the test fails with the child's threads' stacks."""
    command = [sys.executable, "-X", "faulthandler", *args]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGABRT)
            try:
                out, err = child.communicate(timeout=10)
            except subprocess.TimeoutExpired:  # not even faulthandler answered
                child.kill()
                out, err = child.communicate()
            pytest.fail(f"{' '.join(args)}: still running after {timeout:g} s; its threads then:\n{err[-STACKS_CHARS:]}")
    return subprocess.CompletedProcess(command, child.returncode, out, err)


def run_app(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``main.py ARGS`` (see :func:`run_python`)."""
    return run_python("main.py", *args, timeout=timeout)
