"""``import biocircuits`` has no side effect (it leaves ``sys.excepthook`` alone whatever ``sys.argv`` says, and imports
no torch until a public name is used); the command's entry point (biocircuits/__main__.py) installs the Ctrl-C hook."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("argv", [["/usr/local/bin/biocircuits", "run", "x.yaml"], ["-m", "validate", "x.yaml"]])
def test_importing_the_package_leaves_the_excepthook_alone(argv):
    done = python(
        f"import sys\nsys.argv = {argv!r}\nhook = sys.excepthook\nimport biocircuits as bc\n"
        "print(sys.excepthook is hook)\nbc.apply, bc.Constraints\nprint(sys.excepthook is hook)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


def test_import_is_light_and_the_first_public_name_loads_the_api():
    done = python(
        "import sys\nimport biocircuits as bc\nprint('torch' in sys.modules)\n"
        "import biocircuits.apply\nprint(callable(bc.apply), bc.apply.__module__)\n"
        "print(bc.dale.__name__, bc.nn.FeedbackLinear.__name__, 'torch' in sys.modules)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "biocircuits.apply", "biocircuits.dale", "FeedbackLinear", "True"]


def test_an_unknown_name_is_an_attribute_error():
    import biocircuits as bc

    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        bc.nothing  # noqa: B018
    assert {"apply", "nn", "Constraints"} <= set(dir(bc))


def test_the_entry_point_installs_the_hook(monkeypatch, capsys):
    from biocircuits.__main__ import entry, quiet_interrupt

    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)  # restored after the test
    monkeypatch.setattr(sys, "argv", ["biocircuits", "--version"])
    with pytest.raises(SystemExit) as stop:
        entry()
    assert stop.value.code == 0 and "biocircuits" in capsys.readouterr().out
    assert sys.excepthook is quiet_interrupt


def test_the_hook_exits_130_quietly_on_ctrl_c_and_passes_other_errors_on():
    head = "import sys\nfrom biocircuits.__main__ import quiet_interrupt\nsys.excepthook = quiet_interrupt\n"
    ctrl_c = python(head + "raise KeyboardInterrupt\n")
    assert ctrl_c.returncode == 130 and ctrl_c.stderr == "interrupted\n", ctrl_c.stderr
    other = python(head + "raise ValueError('boom')\n")
    assert other.returncode == 1 and "Traceback" in other.stderr and "ValueError: boom" in other.stderr
