"""The Kaggle-image stand-in's cache (tests/kaggle_image.py ``held_cache``): built under a lock, in a temporary
folder renamed into place only when complete, and held while in use. Checked on a fake build of two files (a
real image venv takes minutes), in separate processes as two test sessions on one machine would be."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import kaggle_image as ki
import pytest

TESTS = Path(__file__).resolve().parent

# A session asking for the cache: the fake build writes a file, waits HOLD seconds (the slow part, when a second
# session arrives), writes the second file; the session then reports what it got, holding it USE seconds.
SESSION = """
import json, os, sys, time
from pathlib import Path
import kaggle_image as ki

dest, builds, hold, use, timeout = Path(sys.argv[1]), Path(sys.argv[2]), *map(float, sys.argv[3:6])


def build(tmp):
    with open(builds, "a") as f:
        f.write(f"{os.getpid()}\\n")
    (tmp / "part-1").write_text("1")
    time.sleep(hold)
    (tmp / "part-2").write_text("2")
    return {"pid": os.getpid()}


with ki.held_cache(dest, build, log=lambda message: None, timeout=timeout) as got:
    time.sleep(use)
    print(json.dumps({"path": str(got), "files": sorted(p.name for p in got.iterdir()),
                      "built_by": json.loads((got / ki.READY).read_text())["pid"]}))
"""


def session(dest: Path, builds: Path, hold: float = 0.0, use: float = 0.0, timeout: float = 60.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    return subprocess.Popen([sys.executable, "-c", SESSION, str(dest), str(builds), str(hold), str(use),
                             str(timeout)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out)


COMPLETE = sorted(["part-1", "part-2", ki.READY])


def test_two_sessions_asking_at_once_get_the_same_complete_folder_built_once(tmp_path: Path):
    dest, builds = tmp_path / "cache" / "image-venv-x", tmp_path / "builds.txt"
    first, second = session(dest, builds, hold=1.5), session(dest, builds, hold=1.5)
    a, b = result(first), result(second)
    assert a["path"] == b["path"] == str(dest)
    assert a["files"] == b["files"] == COMPLETE
    assert len(builds.read_text().split()) == 1 and a["built_by"] == b["built_by"]
    assert sorted(p.name for p in dest.parent.iterdir()) == sorted([dest.name, ki.lock_path(dest).name])


def test_a_killed_build_leaves_nothing_that_is_used(tmp_path: Path):
    dest, builds = tmp_path / "image-venv-x", tmp_path / "builds.txt"
    killed = session(dest, builds, hold=60)
    deadline = time.time() + 30
    while not (builds.exists() and builds.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    assert builds.exists(), "the build never started"
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    assert not dest.exists() and list(tmp_path.glob("image-venv-x.build-*"))  # half-built, under another name
    again = result(session(dest, builds))  # the killed holder's lock went with it: no wait
    assert again["files"] == COMPLETE and again["built_by"] != killed.pid
    assert not list(tmp_path.glob("image-venv-x.build-*"))  # the leftover is cleared


def test_a_folder_without_its_marker_is_rebuilt_not_used(tmp_path: Path):
    dest, builds = tmp_path / "image-venv-x", tmp_path / "builds.txt"
    dest.mkdir()
    (dest / "part-1").write_text("from a build that never finished")
    got = result(session(dest, builds))
    assert got["files"] == COMPLETE and (dest / "part-1").read_text() == "1"


def test_a_second_session_waits_while_the_first_uses_the_folder(tmp_path: Path):
    dest, builds = tmp_path / "image-venv-x", tmp_path / "builds.txt"
    assert result(session(dest, builds))["files"] == COMPLETE
    with ki.held_cache(dest, lambda tmp: pytest.fail("a complete folder is not rebuilt"), log=lambda m: None):
        waiting = session(dest, builds, timeout=1.0)
        _, err = waiting.communicate(timeout=60)
    assert waiting.returncode != 0 and "held by another session" in err


def test_a_folder_that_cannot_be_repaired_is_rebuilt(tmp_path: Path):
    dest, built = tmp_path / "image-venv-x", []

    def build(tmp: Path) -> dict:
        built.append(tmp)
        (tmp / "part-1").write_text(str(len(built)))
        return {}

    def broken(folder: Path) -> None:
        raise RuntimeError("the venv is not back to the image state")

    with ki.held_cache(dest, build, log=lambda m: None):
        pass
    with ki.held_cache(dest, build, repair=lambda folder: None, log=lambda m: None) as got:
        assert (got / "part-1").read_text() == "1"  # repaired in place: not built again
    said = []
    with ki.held_cache(dest, build, repair=broken, log=said.append) as got:
        assert (got / "part-1").read_text() == "2" and ki.is_ready(got)
    assert len(built) == 2 and "rebuilding" in said[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([dest.name, ki.lock_path(dest).name])
