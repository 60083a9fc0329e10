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
