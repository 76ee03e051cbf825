"""The same stream on a Dask cluster: shards are counter ranges, merged exactly.

CI starts a 2-process LocalCluster; every cluster result must equal the local
run bit for bit (``Simulation.__eq__`` compares counts and exact sums), also
when a worker is killed mid-run (its shards are recomputed from their ranges).
"""

import json
import os
import signal
import threading

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import mcdrop  # noqa: E402
from mcdrop.cli import main  # noqa: E402
from mcdrop.core.distributed import connect, shard_count, shard_ranges  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def test_shard_ranges_cover_the_run_in_order():
    r = shard_ranges(10, 1003, 7)
    assert r[0][0] == 10 and sum(n for _, n in r) == 1003
    assert all(a + n == b for (a, n), (b, _) in zip(r, r[1:]))
    assert shard_ranges(0, 3, 8) == [(0, 1), (1, 1), (2, 1)]
    assert shard_count(10**6, 8192, 2) == max(8, -(-10**6 * 8192 // 2**30))


def test_simulate_on_a_cluster_is_the_local_run(client):
    x = np.random.default_rng(1).normal(size=(8, 40))
    local = mcdrop.simulate(x, p=0.3, samples=100_000, seed=5, start=17)
    remote = mcdrop.simulate(x, p=0.3, samples=100_000, seed=5, start=17, client=client)
    assert remote == local and remote.info["shards"] >= 8 and remote.info["workers"] == 2
    # keep= is passed on as given, so the keep threshold is the local one's
    assert mcdrop.simulate(x, keep=0.7, samples=5000, seed=5, client=client) == mcdrop.simulate(
        x, keep=0.7, samples=5000, seed=5)


def test_a_variant_on_a_cluster_is_the_local_run(client):
    x = np.abs(np.random.default_rng(2).normal(size=(4, 6, 3, 3)))
    kw = dict(p=0.25, variant="gaussian", structure="channel", samples=40_000, seed=9)
    assert mcdrop.simulate(x, client=client, **kw) == mcdrop.simulate(x, **kw)


def _strip(d):
    d.pop("elapsed_s", None)
    d.pop("environment", None)
    for s in d["simulations"].values():
        s["info"] = {}
    return d


def test_verify_on_a_cluster_is_the_local_run(client):
    kw = dict(samples=10**5, sweep_samples=2000, seed=3)
    a = _strip(mcdrop.verify(client=client, **kw).to_dict())
    b = _strip(mcdrop.verify(**kw).to_dict())
    assert json.dumps(a) == json.dumps(b)


def test_a_worker_killed_mid_run_loses_no_shard(client):
    x = np.random.default_rng(3).normal(size=2048)
    kw = dict(p=0.4, samples=600_000, seed=11)
    pids = client.run(os.getpid)  # {worker address: process id}; the cluster runs on this machine
    victim = sorted(pids)[0]
    killed = threading.Event()

    def kill_once(_n):
        # after the first shard: the other shards are queued or running on both workers
        if not killed.is_set():
            killed.set()
            os.kill(pids[victim], signal.SIGKILL)

    remote = mcdrop.simulate(x, client=client, progress=kill_once, **kw)
    assert killed.is_set()
    assert remote == mcdrop.simulate(x, **kw)
    client.wait_for_workers(2, timeout=60)
    assert victim not in set(client.scheduler_info()["workers"])  # it really died (the nanny restarted it)


def test_cli_verify_workers_and_bad_arguments(capsys):
    assert main(["verify", "--samples", "20000", "--sweep-samples", "1000", "--no-report", "--quiet",
                 "--workers", "2"]) == 0
    assert "PASS" in capsys.readouterr().out
    with pytest.raises(ValueError, match="`workers`"):
        with connect(workers=0):
            pass
    with pytest.raises(ValueError, match="not both"):
        with connect(workers=1, scheduler="tcp://127.0.0.1:1"):
            pass
