"""Atomic file output: write to a temporary file beside the target, then move.

A partial or corrupt report is never left behind: if rendering fails (or is
interrupted), the temporary file is removed and the target is untouched.
Problems with the output path itself (a directory, no permission, a parent
that is a file, a full disk) are reported as ``ValueError`` naming the path.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "check_writable"]


def check_writable(path) -> Path:
    """Return ``path`` as a Path whose directory exists (created) and is writable.

    Raises
    ------
    ValueError
        If ``path`` is a directory, its directory cannot be created, or it
        cannot be written.
    """
    p = Path(path)
    if str(path) == "" or p.name == "":
        raise ValueError(f"output path {str(path)!r} has no file name.")
    if p.exists() and p.is_dir():
        raise ValueError(f"output path {str(p)!r} is a directory; give a file name.")
    parent = p.parent  # Path("r.pdf").parent is Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"cannot create the directory of output path {str(p)!r}: {exc.strerror or exc}."
        ) from None
    if not os.access(parent, os.W_OK):
        raise ValueError(
            f"output path {str(p)!r} is not writable (no write permission on {str(parent)!r})."
        )
    if p.exists() and not os.access(p, os.W_OK):
        raise ValueError(f"output path {str(p)!r} exists and is not writable.")
    return p


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    If the body raises, the temporary file is deleted and ``path`` is left
    as it was (absent, or its previous content).
    """
    target = check_writable(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent))
    except OSError as exc:
        raise ValueError(f"cannot write beside output path {str(target)!r}: {exc.strerror or exc}.") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
    try:
        try:
            yield tmp
        except OSError as exc:
            # e.g. the disk filled up while the report was being written
            raise ValueError(f"writing {str(target)!r} failed: {exc.strerror or exc}.") from exc
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise ValueError(f"cannot move the finished file onto {str(target)!r}: {exc.strerror or exc}.") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
