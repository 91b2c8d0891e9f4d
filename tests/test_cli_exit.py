"""How the ``segsearch`` command ends its process (:func:`segsearch.cli.exit_now`): as Python's own exit would --
exit handlers run, output flushed, the status kept, other threads waited for -- without the interpreter's slow
teardown."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )


def test_exit_runs_the_handlers_flushes_the_output_and_keeps_the_status(tmp_path):
    r = run_python(
        """
        import atexit, sys, tempfile
        from segsearch.cli import exit_now
        atexit.register(lambda: open("handler.txt", "w").write("ran"))
        left = tempfile.TemporaryDirectory(dir=".")  # never cleaned up by hand: its finalizer runs at exit
        open("left.txt", "w").write(left.name)
        sys.stdout.write("x" * 100_000)  # more than one buffer, not flushed yet
        sys.stderr.write("a last line")
        exit_now(3)
        """,
        tmp_path,
    )
    assert r.returncode == 3
    assert r.stdout == "x" * 100_000 and r.stderr == "a last line"
    assert (tmp_path / "handler.txt").read_text() == "ran"
    assert not Path(tmp_path / (tmp_path / "left.txt").read_text()).exists()


def test_exit_waits_for_another_thread_as_python_would(tmp_path):
    r = run_python(
        """
        import threading, time
        from segsearch.cli import exit_now
        def late():
            time.sleep(0.5)
            open("thread.txt", "w").write("done")
        threading.Thread(target=late).start()  # not a daemon: Python waits for it before exiting
        exit_now(0)
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "thread.txt").read_text() == "done"


def test_the_command_ends_with_its_status_and_its_error_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "segsearch.cli", "classes", str(tmp_path / "no-such-index")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("segsearch: error: ") and r.stderr.count("\n") == 1
