"""Progress bars on stderr (tqdm), silent when stderr is not a terminal."""

from __future__ import annotations

import sys


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_bar(total: int, desc: str, unit: str = "sample", *, enabled: bool | None = None):
    """A tqdm bar on stderr showing items per second, or a no-op bar.

    ``enabled=None`` shows the bar only when stderr is a TTY.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _NullBar()
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )
