"""Files: atomic writes (a crash mid-write leaves the previous file intact), the cache folder,
npz reading that names the bad file, refusal to overwrite."""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .clips import DataError


def atomic_write(path: str | os.PathLike, write: Callable, suffix: str = ".tmp") -> Path:
    """Call write(fileobj) on a temporary file beside `path`, then rename it into place. Temporary
    files of `path` left by a writer that was killed mid-write are removed first; those of a writer
    still running (two commands building the same dataset cache at once) are left alone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    for stale in path.parent.glob(f"{prefix}*{suffix}"):
        if not _writer_alive(stale.name[len(prefix):]):
            stale.unlink(missing_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f"{prefix}{os.getpid()}.",
                                     suffix=suffix, delete=False) as tmp:
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


def _writer_alive(tail: str) -> bool:
    """Whether the process named in a temporary's name ("PID.random.suffix") still runs. Names
    without a pid (older versions) count as dead; so does a pid of another user's process, which
    would not share this cache folder."""
    pid = tail.split(".", 1)[0]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError, OverflowError):
        return False
    return True


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


def cache_dir() -> Path:
    """Where built datasets and downloads are cached ($DSAE_CACHE, else ~/.cache/dsae_pyro)."""
    return Path(os.environ.get("DSAE_CACHE", Path.home() / ".cache" / "dsae_pyro"))


@contextmanager
def open_npz(path: str | os.PathLike, rebuild: str = "dsae data ... --out FILE"):
    """np.load of an .npz that names the file and the fix when it cannot be read (empty,
    truncated, not an npz, pickled objects), also for arrays read lazily inside the block."""
    try:
        with np.load(path, allow_pickle=False) as z:
            yield z
    except DataError:
        raise
    except (EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path} is not a readable .npz file ({type(e).__name__}: {e}); it may "
                        f"be truncated or of another kind: build it again with `{rebuild}`") from e


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, computed once: it is cached in a hidden file beside it
    (`.NAME.sha256`, keyed by size and modification time) where the folder is writable."""
    path = Path(path)
    stat = path.stat()
    key = f"{stat.st_size} {stat.st_mtime_ns}"
    cache = path.with_name(f".{path.name}.sha256")
    try:
        saved_key, digest = cache.read_text().rsplit(" ", 1)
        if saved_key == key:
            return digest
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    try:
        atomic_write(cache, lambda fh: fh.write(f"{key} {digest}".encode()))
    except OSError:  # a read-only folder: hash again next time
        pass
    return digest
