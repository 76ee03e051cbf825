"""Philox4x32-10 known answers and the counter layout every kernel relies on."""

import numpy as np
import pytest

from mcdrop import rng

# Known-answer vectors published with Random123 (kat_vectors, philox4x32 R=10).
KAT = [
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    (
        [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344],
        [0xA4093822, 0x299F31D0],
        [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1],
    ),
    (
        [0xFFFFFFFF] * 4,
        [0xFFFFFFFF] * 2,
        [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD],
    ),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_known_answers(counter, key, expected):
    out = rng.philox4x32(np.array(counter, dtype=np.uint32), np.array(key, dtype=np.uint32))
    assert out.dtype == np.uint32
    assert out.tolist() == expected


def test_known_answers_batched():
    counters = np.array([c for c, _, _ in KAT[:1]] * 3, dtype=np.uint32)
    out = rng.philox4x32(counters, np.array([0, 0], dtype=np.uint32))
    assert out.shape == (3, 4)
    assert (out == np.array(KAT[0][2], dtype=np.uint32)).all()


def test_counter_layout_uniforms():
    # Word e % 4 of philox(counter=(s_lo, s_hi, b_lo, b_hi)) with b = e // 4.
    key = rng.key_from_seed(2024)
    words = rng.uniforms(key, n=10, samples=3, start=2**32 + 5)
    for i in range(3):
        s = 2**32 + 5 + i
        for e in range(10):
            b = e // 4
            ref = rng.philox4x32(
                np.array([s & 0xFFFFFFFF, s >> 32, b & 0xFFFFFFFF, b >> 32], dtype=np.uint64),
                key,
            )
            assert words[i, e] == ref[e % 4]


def test_bernoulli_mask_is_threshold_of_uniforms():
    key = rng.key_from_seed(7)
    q = 0.3
    words = rng.uniforms(key, n=37, samples=50, start=11)
    mask = rng.bernoulli_mask(key, q, n=37, samples=50, start=11)
    assert (mask == (words < rng.keep_threshold(q))).all()


def test_keep_threshold_edges():
    assert rng.keep_threshold(0.0) == 0
    assert rng.keep_threshold(1.0) == 2**32
    assert rng.effective_keep(1.0) == 1.0
    for q in (0.1, 0.3, 0.5, 0.7, 0.9, 1e-9):
        # the realised keep probability is within 2**-33 of q
        assert abs(rng.effective_keep(q) - q) <= 2.0**-33


def test_key_from_seed_deterministic_and_streams_independent():
    a = rng.key_from_seed(12345)
    assert (a == rng.key_from_seed(12345)).all()
    assert not (a == rng.key_from_seed(12346)).all()
    b = rng.key_from_seed(12345, stream=rng.STREAM_INPUT)
    assert not (a == b).all()
    ss = np.random.SeedSequence(99)
    k1 = rng.key_from_seed(ss)
    k2 = rng.key_from_seed(ss)
    assert (k1 == k2).all()
    assert ss.n_children_spawned == 0  # the caller's SeedSequence is not mutated


def test_child_seed_is_the_spawned_child_without_mutating():
    ss = np.random.SeedSequence(2024, spawn_key=(7,))
    kids = np.random.SeedSequence(2024, spawn_key=(7,)).spawn(3)
    for i in range(3):
        c = rng.child_seed(ss, i)
        assert c.spawn_key == kids[i].spawn_key == (7, i)
        assert (c.generate_state(4) == kids[i].generate_state(4)).all()
    assert ss.n_children_spawned == 0  # unlike ss.spawn()
    assert not (rng.key_from_seed(rng.child_seed(ss, 0)) == rng.key_from_seed(rng.child_seed(ss, 1))).all()


def test_words_look_uniform():
    # 4e5 words in 16 equal bins: chi-square with 15 dof.  The key is fixed, so
    # this is deterministic; the bound (p > 1e-6) guards against a broken round
    # function, which produces grossly non-uniform words.
    from scipy.stats import chisquare

    words = rng.uniforms(rng.key_from_seed(5), n=400, samples=1000)
    hist = np.bincount((words >> 28).ravel(), minlength=16)
    assert chisquare(hist).pvalue > 1e-6


@pytest.mark.parametrize(
    "counter,key,match",
    [([0, 0, 0], [0, 0], "counter"), ([0, 0, 0, 0], [0], "key"), ([0, 0, 0, -1], [0, 0], "counter")],
)
def test_bad_input(counter, key, match):
    with pytest.raises(ValueError, match=match):
        rng.philox4x32(np.array(counter), np.array(key))


def test_bad_seed():
    with pytest.raises(ValueError, match="`seed`"):
        rng.key_from_seed(-1)
    with pytest.raises(TypeError, match="`seed`"):
        rng.key_from_seed("abc")
    with pytest.raises(TypeError, match="`seed`"):
        rng.key_from_seed(1.5)
