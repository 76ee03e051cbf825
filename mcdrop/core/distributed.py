"""Shards of one stream on a Dask cluster: counter ranges out, exact merges back.

A reference run is a range of sample indices ``[start, start + samples)`` of
one counter-based stream, and its statistics merge exactly (integer sums), so
a cluster run is the local run cut into contiguous shards: each shard is a
task that computes its sub-range on a worker, and the results are merged in
stream order.  Whatever the number of workers or shards, the merged result is
the local result bit for bit.

A task is a pure function of its counter range: when a worker dies, Dask
(``distributed``) recomputes the lost shards elsewhere from their ranges — a
shard is never dropped, and the result does not change.  Dask is an optional
dependency (``pip install 'mcdrop[dask]'``), imported only here and only when
a ``client`` is given.
"""

from __future__ import annotations

import contextlib
import logging
import math
import uuid
from typing import Any, Callable, Iterator

__all__ = ["SHARD_DRAWS", "shard_ranges", "shard_count", "run_shards", "worker_count", "import_distributed",
           "connect"]

#: Mask draws a shard aims at: large enough that scheduling costs little
#: (about a second of kernel time), small enough to balance the workers.
SHARD_DRAWS = 2**30


def import_distributed():
    """``distributed``, or an ImportError naming the extra to install."""
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise ImportError(
            "a Dask `client` needs the optional packages dask and distributed: "
            "pip install 'mcdrop[dask]'"
        ) from exc
    return distributed


def worker_count(client) -> int:
    """Threads of all workers of ``client`` (each runs one shard at a time)."""
    return max(1, sum(client.nthreads().values()))


def shard_count(samples: int, draws_per_sample: int, workers: int) -> int:
    """Shards of a run: about :data:`SHARD_DRAWS` draws each, at least four per worker thread."""
    by_size = math.ceil(samples * max(draws_per_sample, 1) / SHARD_DRAWS)
    return max(1, min(samples, max(4 * workers, by_size)))


def shard_ranges(start: int, samples: int, shards: int) -> list[tuple[int, int]]:
    """``[(start_i, samples_i), ...]``: ``shards`` contiguous ranges covering the run, in order."""
    shards = max(1, min(int(shards), int(samples)))
    bounds = [start + (samples * i) // shards for i in range(shards + 1)]
    return [(a, b - a) for a, b in zip(bounds[:-1], bounds[1:])]


def run_shards(client, func: Callable, ranges: list[tuple[int, int]], *, kwargs: dict[str, Any],
               progress: Callable[[int], object] | None = None, name: str = "mcdrop-shard") -> list:
    """Run ``func(start=s, samples=n, **kwargs)`` for every range on ``client``; results in range order.

    ``progress(n)`` is called with a shard's sample count as each one
    finishes, in completion order (a progress bar over the whole cluster).
    A shard whose worker is lost is recomputed by the scheduler; an
    exception raised by ``func`` is raised here.
    """
    distributed = import_distributed()
    tag = uuid.uuid4().hex[:12]
    futures = [
        client.submit(func, start=s, samples=n, key=f"{name}-{tag}-{i}", pure=False, **kwargs)
        for i, (s, n) in enumerate(ranges)
    ]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list = [None] * len(futures)
    for fut in distributed.as_completed(futures):
        i = index[fut.key]
        results[i] = fut.result()
        if progress is not None:
            progress(ranges[i][1])
    return results


@contextlib.contextmanager
def connect(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client for the CLI's ``--workers N`` / ``--scheduler ADDRESS`` (None: no cluster).

    ``workers`` starts a ``LocalCluster`` of that many worker *processes*
    with one thread each (Numba kernels release the GIL, but separate
    processes also separate their thread pools); ``scheduler`` joins an
    existing cluster.  Both are closed on exit (an existing cluster keeps
    running).
    """
    if workers is None and scheduler is None:
        yield None
        return
    if workers is not None and scheduler is not None:
        raise ValueError("give `workers` (start a local cluster) or `scheduler` (join one), not both.")
    distributed = import_distributed()
    if scheduler is not None:
        with distributed.Client(scheduler) as client:
            yield client
        return
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"`workers` must be an integer >= 1; got {workers!r}.")
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=logging.WARNING) as cluster, \
            distributed.Client(cluster) as client:
        yield client

