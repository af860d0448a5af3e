"""Claiming a run folder: one process at a time (an ``fcntl.flock`` on ``<folder>/.lock``), and never into an
earlier run unless resuming it or moving it aside (``--overwrite``). Nothing is ever deleted."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from biocircuits.errors import RunFolderError

RUN_FILES = ("config.yaml", "metrics.jsonl", "checkpoint.pt", "summary.json")
LOCK_NAME = ".lock"


def holds_run(path: Path) -> bool:
    """True when ``path`` holds any file of a run (started, interrupted or finished)."""
    return any((path / name).exists() for name in RUN_FILES)


def aside_name(path: Path) -> Path:
    """The first free ``<name>.old-<n>`` beside ``path`` (n = 1, 2, ...): where ``--overwrite`` moves a run."""
    n = 1
    while path.with_name(f"{path.name}.old-{n}").exists():
        n += 1
    return path.with_name(f"{path.name}.old-{n}")


def _lock(path: Path, key: str) -> int:
    """Create ``path`` (and its parents) and take its lock without waiting; returns the lock's file descriptor."""
    if path.exists() and not path.is_dir():
        raise RunFolderError(
            "the output path is a file, not a folder",
            key=key,
            given=str(path),
            expected="a folder (or a path that does not exist yet)",
            suggestion="choose another --output",
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except (NotADirectoryError, FileExistsError):
        raise RunFolderError(
            "a parent of the output path is a file",
            key=key,
            given=str(path),
            expected="a path under folders only",
            suggestion="choose another --output",
        ) from None
    except OSError as err:
        raise RunFolderError(
            f"cannot write the run folder ({err.strerror or type(err).__name__})",
            key=key,
            given=str(path),
            expected="a writable folder",
            suggestion="check its permissions or choose another --output",
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise RunFolderError(
            f"another process (pid {holder}) is writing into this folder",
            key=key,
            given=str(path),
            expected="a folder no other run is using",
            suggestion="wait for it to finish, or choose another --output",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _release(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextmanager
def claim_folder(
    path: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    key: str = "--output",
    holds: Callable[[Path], bool] = holds_run,
    what: str = "run",
) -> Iterator[Path | None]:
    """Hold ``path`` for one run (or comparison) while the block runs. A folder that already ``holds`` a run is
    refused unless ``resume`` (continue it) or ``overwrite`` (move it aside to
    [`aside_name`][biocircuits.train.claim.aside_name], never delete); yields where an earlier run was moved (or None).
    Only the main process (``RANK`` 0) claims under torchrun."""
    if resume and overwrite:
        raise RunFolderError(
            "--resume and --overwrite exclude each other",
            key="--overwrite",
            suggestion="--resume continues the run; --overwrite moves it aside and starts afresh",
        )
    if int(os.environ.get("RANK", "0")) != 0:
        yield None
        return
    path = Path(path)
    fd = _lock(path, key)
    moved = None
    try:
        if holds(path):
            if overwrite:
                moved = aside_name(path)
                os.rename(path, moved)  # the lock moves with it; we still hold it until the fresh folder is ours
                fd, old = _lock(path, key), fd
                _release(old)
            elif not resume:
                raise RunFolderError(
                    f"this folder already holds a {what}",
                    key=key,
                    given=str(path),
                    expected="an empty or new folder",
                    suggestion="continue it with --resume, move it aside with --overwrite (kept as "
                    f"{aside_name(path).name}), or choose another --output",
                )
        yield moved
    finally:
        _release(fd)
