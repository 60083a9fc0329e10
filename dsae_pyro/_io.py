"""Atomic file writes: a crash mid-write leaves the previous file intact."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable, suffix: str = ".tmp") -> Path:
    """Call write(fileobj) on a temporary file beside `path`, then rename it into place. Temporary
    files of `path` left by a writer that was killed mid-write are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    for stale in path.parent.glob(f"{prefix}*{suffix}"):
        stale.unlink(missing_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=prefix, suffix=suffix,
                                     delete=False) as tmp:
        try:
            write(tmp)
        except BaseException:
            os.unlink(tmp.name)
            raise
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp.name, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
    os.replace(tmp.name, path)
    return path


def check_output(path: str | os.PathLike, force: bool = False) -> Path:
    """Before any work: refuse to replace an existing file unless `force`, and an output whose
    folder cannot be written. Raises ValueError naming the file and the fix."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder; give a file name")
    if path.exists() and not force:
        raise ValueError(f"{path} already exists; pass --force to replace it, or choose another --out")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write {path}: {folder} is not writable; choose another --out")
    return path

