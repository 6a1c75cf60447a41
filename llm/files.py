"""Writing files so that a crash, an interrupt or a full disk never leaves half of one.

Every package that keeps state on disk (the tool repository, a synthesis run's shards
and manifest, the report) writes through :func:`atomic_write`. It does not lock: two
writers of the same path each leave a whole file, the last one wins.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` whole, or is as it was: written beside it, synced, renamed.

    A failed write (a full disk, an interrupt) removes its temporary file and raises; an
    ``OSError`` names ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
