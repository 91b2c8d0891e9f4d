"""Private Xvfb displays for the sketch tool's tests (tests/test_gui*.py; the fixtures ``display`` and
``small_display`` are in conftest.py). Without Xvfb, xdotool or tkinter those tests skip, unless
SEGSEARCH_REQUIRE_GUI=1 (CI), which makes that a failure.
"""

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REQUIRE = os.environ.get("SEGSEARCH_REQUIRE_GUI", "") == "1"


def unavailable(why: str):
    if REQUIRE:
        pytest.fail(f"SEGSEARCH_REQUIRE_GUI=1 but {why}")
    pytest.skip(why)


@contextlib.contextmanager
def xvfb(size: str):
    """Start a private Xvfb display (:90..:99) with a screen of ``size`` ("WxH"); yields its name."""
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed (apt-get install xvfb xdotool)")
    try:
        import tkinter  # noqa: F401
    except ImportError:
        unavailable("tkinter is not available (apt-get install python3-tk)")
    proc = disp = None
    for n in range(90, 100):
        if Path(f"/tmp/.X{n}-lock").exists() or Path(f"/tmp/.X11-unix/X{n}").exists():
            continue
        p = subprocess.Popen(
            ["Xvfb", f":{n}", "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and p.poll() is None and not Path(f"/tmp/.X11-unix/X{n}").exists():
            time.sleep(0.05)
        if p.poll() is None and Path(f"/tmp/.X11-unix/X{n}").exists():
            proc, disp = p, f":{n}"
            break
        p.kill()
        p.wait()
    if proc is None:
        unavailable("no free X display among :90..:99 for Xvfb")
    try:
        yield disp
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
