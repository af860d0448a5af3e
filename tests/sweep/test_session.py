"""The sweep's Ray session: the early read of the sweep file's resources agrees with the validated spec; an early
Ray is taken only when the engine asks for the same one (else stopped); the thread that starts Ray is the one that
stops it, in the background, and the command waits for it; and a bad sweep file still exits 2 with its error and
leaves no Ray running although Ray was started before the validation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

import psutil
import pytest

from biocircuits.app.sweep import session
from biocircuits.app.sweep.engine import ray_session
from biocircuits.app.sweep.spec import load_sweep

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "resources", ["", "resources: {cpu: 2}\n", "resources: {cpu: 0.5}\n", "resources: {cpu: 2, threads: 3}\n"]
)
def test_the_early_read_of_the_threads_agrees_with_the_validated_sweep(sweep_dir, resources):
    path = sweep_dir / "sweep.yaml"
    path.write_text("experiment: exp.yaml\nseeds: [0, 1]\n" + resources)
    spec, _ = load_sweep(path)
    assert session.planned_threads(path) == spec.resources.torch_threads()


@pytest.mark.parametrize(
    "text", ["- a list\n", "resources: {cpu: two}\n", "resources: {cpu: -1}\n", "resources: {threads: 1.5}\n", "{"]
)
def test_a_sweep_file_that_does_not_read_plainly_starts_nothing_early(sweep_dir, text, monkeypatch, capsys):
    path = sweep_dir / "sweep.yaml"
    path.write_text(text)
    assert session.planned_threads(path) is None
    assert session.planned_threads(sweep_dir / "missing.yaml") is None
    monkeypatch.setattr(session, "start", lambda *args: pytest.fail("Ray started"))
    session.start_early([str(path)])
    session.start_early(["--max-concurrent", "0", str(sweep_dir / "exp.yaml")])  # the command's parser reports it
    assert capsys.readouterr() == ("", "")


class FakeRay(types.ModuleType):
    """``ray`` as the session uses it: records which thread called init and shutdown, and when."""

    def __init__(self) -> None:
        super().__init__("ray")
        self.calls: list[tuple[str, str, float]] = []
        self.up = False

    def init(self, **kwargs) -> None:
        self.calls.append(("init", threading.current_thread().name, time.monotonic()))
        self.kwargs, self.up = kwargs, True

    def shutdown(self) -> None:
        time.sleep(0.2)  # Ray's stop takes a while: the command goes on meanwhile
        self.calls.append(("shutdown", threading.current_thread().name, time.monotonic()))
        self.up = False

    def is_initialized(self) -> bool:
        return self.up


@pytest.fixture
def fake_ray(monkeypatch):
    ray = FakeRay()
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setitem(sys.modules, "ray.tune", types.ModuleType("ray.tune"))
    monkeypatch.setattr(session, "_early", [])
    monkeypatch.setattr(session, "_owners", [])
    return ray


def test_one_thread_starts_and_stops_ray_and_the_command_waits_for_the_stop(fake_ray):
    with ray_session(None, 2, 1):
        assert fake_ray.up and fake_ray.kwargs["num_cpus"] == 2
        assert fake_ray.kwargs["runtime_env"]["env_vars"]["OMP_NUM_THREADS"] == "1"
    left = time.monotonic()
    session.release()
    (init, owner, _), (stop, stopper, stopped) = fake_ray.calls
    assert (init, stop) == ("init", "shutdown") and owner == stopper != threading.main_thread().name
    assert stopped > left and not fake_ray.up  # stopped after the session was left, down once release returned


def test_an_early_ray_is_taken_only_with_the_same_settings(fake_ray, sweep_dir):
    path = sweep_dir / "sweep.yaml"
    path.write_text("experiment: exp.yaml\nresources: {cpu: 2}\n")
    session.start_early([str(path), "--set", "train.steps=2"])
    with ray_session(None, None, 2):  # what the sweep asks for: taken as it is
        pass
    session.release()
    assert [c[0] for c in fake_ray.calls] == ["init", "shutdown"]

    fake_ray.calls.clear()
    session.start_early([str(path)])
    with ray_session(None, None, 3):  # other threads (the validated file differs): stopped, a new one started
        assert fake_ray.kwargs["runtime_env"]["env_vars"]["OMP_NUM_THREADS"] == "3"
    session.release()
    assert [c[0] for c in fake_ray.calls] == ["init", "shutdown", "init", "shutdown"]


def ray_processes(temp_dir: str) -> list[str]:
    """Command lines of live processes that belong to the Ray whose files are under ``temp_dir``."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if temp_dir in cmd:
            found.append(cmd[:200])
    return found


@pytest.mark.slow
def test_a_bad_sweep_exits_2_with_its_error_and_leaves_no_ray_running(sweep_dir):
    pytest.importorskip("ray")
    path = sweep_dir / "sweep.yaml"
    path.write_text("experiment: exp.yaml\nset: {train.epochz: 1}\nresources: {cpu: 1}\n")
    temp_dir = tempfile.mkdtemp(prefix="bcray", dir="/tmp")  # short: Ray's socket paths must fit
    try:
        check_bad_sweep(path, sweep_dir / "out", temp_dir)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def check_bad_sweep(path: Path, out: Path, temp_dir: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "RAY_TMPDIR": temp_dir}
    done = subprocess.run(
        [sys.executable, "-m", "biocircuits", "sweep", str(path), "--output", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert "set.train.epochz" in done.stderr and "Traceback" not in done.stderr
    assert list(Path(temp_dir).glob("**/session_2*")), "Ray did not start early"  # it did, before validation
    deadline = time.monotonic() + 10  # stopped processes may take a moment to be gone
    while ray_processes(temp_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not ray_processes(temp_dir)
    assert not out.exists()
