"""Write files and folders under a temporary name and rename them when complete,
so an interrupted step never leaves a half-written output under its final name.

A full disk, a quota or a read-only file system while writing becomes an
:class:`~seq_unet.errors.InputError` naming the output, and the partial file
is removed. Writers whose library cannot report a full disk (libBigWig retries
a failed write forever) or would crash on one (memory maps) check the free
space first with :func:`ensure_free_space`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from seq_unet.errors import InputError

# errors that mean "the output cannot be written here", not a bug
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def free_bytes(folder: str | os.PathLike) -> int:
    """Bytes available to this user in ``folder``'s file system."""
    return shutil.disk_usage(folder).free


def ensure_free_space(folder: str | os.PathLike, need: int, what: str | os.PathLike) -> None:
    """Raise :class:`InputError` if ``folder`` has less than ``need`` bytes free for writing ``what``."""
    free = free_bytes(folder)
    if free < need:
        raise InputError(f"not enough free disk space to write {what}: about {need / 1e6:.1f} MB needed, "
                         f"{free / 1e6:.1f} MB free in {folder}")


def _fsync(path: Path) -> None:
    """Flush a finished file to disk before it is renamed (survives a crash of the machine, not only of us)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(path: Path, exc: OSError) -> InputError:
    return InputError(f"cannot write {path}: {exc.strerror or exc} ({errno.errorcode.get(exc.errno, exc.errno)}); "
                      "nothing was left under that name")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prepare_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {path.parent}: {exc.strerror}") from exc
    if not os.access(path.parent, os.W_OK):
        raise InputError(f"output folder {path.parent} is not writable")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    _prepare_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp creates 0600; give the file the usual permissions
            os.chmod(tmp_path, 0o666 & ~_umask())
            _fsync(tmp_path)
        os.replace(tmp_path, path)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if exc.errno in WRITE_ERRORS:
            raise _write_error(path, exc) from exc
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` on success."""
    path = Path(path)
    _prepare_parent(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in WRITE_ERRORS:
            raise _write_error(path, exc) from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
