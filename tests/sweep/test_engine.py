"""When Ray Tune itself fails (e.g. its memory monitor kills the workers because other jobs filled the node), the
sweep records every unfinished trial ``interrupted`` with the engine's error, writes the results, exits 1, and the
same command continues it. Tune's run is replaced by one that raises, so no Ray starts."""

from __future__ import annotations

import contextlib
import json

import pytest

tune = pytest.importorskip("ray.tune")

import biocircuits.app.sweep.command as sweep_app  # noqa: E402
from biocircuits.app.cli import main  # noqa: E402


class FailingTuner:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def fit(self):
        raise RuntimeError("Caught unexpected exception: 2 worker(s) were killed due to the node running low on memory")


def test_an_engine_failure_is_recorded_and_the_sweep_can_continue(sweep_dir, monkeypatch, capsys):
    monkeypatch.setattr(tune, "Tuner", FailingTuner)
    monkeypatch.setattr(tune, "with_parameters", lambda fn, **kwargs: fn)
    monkeypatch.setattr(tune, "with_resources", lambda fn, resources: fn)
    monkeypatch.setattr(sweep_app, "ray_session", lambda *args: contextlib.nullcontext())
    path = sweep_dir / "sweep.yaml"
    path.write_text("experiment: exp.yaml\nseeds: [0, 1]\n")
    out = sweep_dir / "out"
    assert main(["sweep", str(path), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Ray Tune failed (RuntimeError: Caught unexpected exception" in err and "rerun the same command" in err
    rows = json.loads((out / "results.json").read_text())
    assert [(r["seed"], r["status"]) for r in rows] == [(0, "interrupted"), (1, "interrupted")]
    assert all(r["reason"].startswith("the engine failed: RuntimeError: Caught unexpected") for r in rows)
    capsys.readouterr()
    assert main(["sweep", str(path), "--output", str(out)]) == 1  # the rerun takes both up again
    assert "2 trials, 0 done, 2 to run" in capsys.readouterr().out
