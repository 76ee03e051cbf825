"""Progress bars on stderr (tqdm), silent when stderr is not a terminal.

Long ``verify``/``audit`` runs show a bar with the work done and its rate
(mask draws per second); ``--quiet`` turns it off, and so does a stderr that
is not a TTY (CI logs, pipes), so logs never fill with carriage returns.
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm

__all__ = ["make_bar"]


class _NullBar:
    """A bar that does nothing (the off switch)."""

    disable = True

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _isatty(stream) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed or odd streams
        return False


def make_bar(total: int, desc: str, unit: str = "sample", *, enabled: bool | None = None,
             file=None):
    """A tqdm bar on stderr showing items per second, or a no-op bar.

    Parameters
    ----------
    total : int
        Units of work expected (e.g. mask draws).
    desc : str
        Label in front of the bar.
    unit : str, default "sample"
        Name of one unit; the rate reads ``<k><unit>/s`` with SI prefixes
        (e.g. ``1.2Gdraw/s``).
    enabled : bool or None, default None
        ``True`` always shows the bar, ``False`` never; ``None`` shows it
        only when the output stream is a TTY.
    file : file-like, optional
        Where to draw (default ``sys.stderr``, looked up at call time).

    Returns
    -------
    tqdm.tqdm or a no-op bar
        Both have ``update(n)``, ``close()``, ``set_postfix_str(s)`` and
        work as context managers.
    """
    stream = sys.stderr if file is None else file
    if enabled is None:
        enabled = _isatty(stream)
    if not enabled or stream is None:
        return _NullBar()
    # A terminal that reports a 0 x 0 size (a bare pty, `script`, some CI
    # consoles) makes tqdm draw nothing (0 columns, and a bar "below" a
    # 0-line screen is hidden): fall back to 80 x 24 there.
    try:
        size = os.get_terminal_size(stream.fileno())
        width, height = size.columns, size.lines
    except (AttributeError, OSError, ValueError):
        width, height = 0, 0
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        file=stream,
        dynamic_ncols=width > 0,
        ncols=None if width > 0 else 80,
        nrows=None if height > 0 else 24,
        leave=False,
        mininterval=0.2,
        smoothing=0.1,
    )
