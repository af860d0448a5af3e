"""tools/docstring_roles.py: Sphinx roles become mkdocstrings cross-references to the object Python would find from
the module that holds them; run twice it changes nothing; no role is left in the package."""

import importlib.util
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docstring_roles", ROOT / "tools" / "docstring_roles.py")
roles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(roles)


def package(tmp_path: Path) -> Path:
    """A tiny ``biocircuits`` with a subpackage, a re-export, a class with a method and a module named like its
    function."""
    files = {
        "biocircuits/__init__.py": "",
        "biocircuits/apply.py": "def apply():\n    pass\n",
        "biocircuits/dale/__init__.py": "from .slot import Slot\n",
        "biocircuits/dale/slot.py": "import torch\n\nLIMIT = 3\n\nclass Slot:\n    def counts(self):\n        pass\n",
        "biocircuits/dale/audit.py": "from biocircuits.dale import Slot as Held\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_targets_resolve_as_python_would(tmp_path):
    root = package(tmp_path)
    module = "biocircuits.dale.audit"
    cases = {
        ":class:`Held`": "[`Held`][biocircuits.dale.slot.Slot]",  # an alias, followed through the re-export
        ":class:`~.slot.Slot`": "[`Slot`][biocircuits.dale.slot.Slot]",  # relative, last component shown
        ":meth:`Held.counts`": "[`Held.counts`][biocircuits.dale.slot.Slot.counts]",
        ":mod:`.slot`": "[`slot`][biocircuits.dale.slot]",
        ":data:`biocircuits.dale.slot.LIMIT`": "[`biocircuits.dale.slot.LIMIT`][biocircuits.dale.slot.LIMIT]",
        ":func:`biocircuits.apply`": "[`biocircuits.apply`][biocircuits.apply.apply]",  # the function, not its module
        ":mod:`biocircuits.apply`": "[`biocircuits.apply`][biocircuits.apply]",
        ":func:`torch.zeros`": "`torch.zeros`",  # outside the package: plain code
        ":func:`nowhere`": "`nowhere`",
    }
    for role, expected in cases.items():
        assert roles.rewrite(f'"""See {role}."""', module, root)[0] == f'"""See {expected}."""', role
    assert roles.rewrite('""":meth:`counts`"""', "biocircuits.dale.slot", root)[0] == (
        '"""[`counts`][biocircuits.dale.slot.Slot.counts]"""'
    )


def test_long_lines_are_rewrapped_and_a_second_run_changes_nothing(tmp_path):
    root = package(tmp_path)
    text = textwrap.dedent('''\
        def f():
            """Undo :func:`biocircuits.apply` in place, like ``torch.nn.utils.parametrize.remove_parametrizations``:
            each layer gets its class back. :class:`~biocircuits.dale.slot.Slot` and :meth:`~biocircuits.dale.slot.
            Slot.counts` (a role broken over two lines)."""
        ''')
    once, unresolved = roles.rewrite(text, "biocircuits.dale.audit", root)
    assert not unresolved and ":func:" not in once and ":class:" not in once
    assert all(len(line) <= roles.WIDTH for line in once.splitlines())
    words = " ".join(text.split()).replace(
        ":func:`biocircuits.apply`", "[`biocircuits.apply`][biocircuits.apply.apply]"
    )
    words = words.replace(":class:`~biocircuits.dale.slot.Slot`", "[`Slot`][biocircuits.dale.slot.Slot]")
    words = words.replace(
        ":meth:`~biocircuits.dale.slot. Slot.counts`", "[`counts`][biocircuits.dale.slot.Slot.counts]"
    )
    assert " ".join(once.split()) == words  # the same words, only reflowed
    assert roles.rewrite(once, "biocircuits.dale.audit", root)[0] == once


def test_no_role_is_left_in_the_package(capsys):
    assert roles.main(["--check", str(ROOT / "biocircuits")]) == 0, capsys.readouterr().out


def test_comments_get_plain_code_and_the_code_never_changes(tmp_path):
    root = package(tmp_path)
    text = textwrap.dedent("""\
        class A:
            # what the class is, for the cross-checks of attachments (:meth:`~biocircuits.dale.slot.Slot.counts`), never
            exact: bool = False  # the next line of code, which a reflow must not swallow
            learns: bool = False
        """)
    new, _ = roles.rewrite(text, "biocircuits.dale.audit", root)
    assert "(`counts`)" in new and "][" not in new  # a comment is not rendered: no link
    assert roles.code_of(new) == roles.code_of(text)
    assert new.splitlines()[-2:] == text.splitlines()[-2:]
