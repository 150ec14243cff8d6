"""Atomic file writes with the user's permissions: the one I/O helper every room shares.

Why: a reader (the report, a colleague, a resumed probe) must never see a half-written file, so
every file is written to a temporary name in its folder and renamed onto its path. The
temporary file comes from ``tempfile.mkstemp``, which creates it 0600 whatever the umask; the
rename would keep that mode, so a run on a shared file system would be readable by its owner
only. We give the file the mode ``open()`` would have given it, ``0666 & ~umask`` (0644 under
the common 022 umask), before the rename.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable

from rlboundary.errors import UserError


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows (Linux), else set and
    restored at once."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: errno values that mean the storage, not the program, refused a write
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


class StorageError(UserError, OSError):
    """A result could not be written: full disk, quota, read-only file system, permissions."""


def atomic_write(path: str, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)``, then rename onto ``path`` with mode ``0666 & ~umask``.

    Readers never see a half-written file; on any error the temporary file is removed and the
    error propagates, a storage error (:data:`STORAGE_ERRNOS`) as :class:`StorageError`, one
    line naming the file and the free space. Parent folders are created as needed.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    except OSError as e:
        raise _storage(e, path) from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as e:
        raise _storage(e, path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def free_mib(folder: str) -> str:
    """The free space where ``folder`` lives, as ``"812.3 MiB"`` ("unknown" if unreadable)."""
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB"
    except OSError:
        return "unknown"


def _storage(e: OSError, path: str) -> OSError:
    """``e`` as a one-line :class:`StorageError` when the storage refused, else ``e``."""
    if e.errno not in STORAGE_ERRNOS:
        return e
    free = free_mib(os.path.dirname(os.path.abspath(path)))
    return StorageError(e.errno, f"could not write {path}: {os.strerror(e.errno)} ({free} free "
                                 "there); nothing partial was left: free space or choose "
                                 "another run_dir, then run the command again")


def write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    def _w(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    atomic_write(path, _w)


def write_json(path: str, obj) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically (:func:`write_text`)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))
