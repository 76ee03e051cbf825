"""Atomic file output: write to a temporary file beside the target, then move.

A partial or corrupt report is never left behind: if rendering fails, the
temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "check_writable"]


def check_writable(path) -> Path:
    """Return ``path`` as a Path whose directory exists (created) and is writable."""
    p = Path(path)
    if p.exists() and p.is_dir():
        raise ValueError(f"output path {str(p)!r} is a directory; give a file name.")
    parent = p.parent if str(p.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the directory of output path {str(p)!r}: {exc}") from None
    if not os.access(parent, os.W_OK):
        raise ValueError(f"output path {str(p)!r} is not writable (no write permission on {str(parent)!r}).")
    return p


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path; on success move it onto ``path``, else delete it."""
    target = check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent))
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
