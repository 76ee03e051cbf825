"""The kernel layer: Philox4x32-10, the Numba kernels, exact accumulators, the stream driver.

=================  ==========================================================
``rng``            Philox4x32-10 (known-answer tested), keys from SeedSequence
``kernels``        the kernel family's shared parts (thread partition, mask
                   fill, uint8 counters and their flush) and the Bernoulli-mask
                   kernels (every two-point law; DropConnect)
``noise_kernel``   Gaussian noise on an exact grid
``model_kernels``  a linear model's loss and an MLP on the masks (suites)
``fold_kernels``   one pass over an audit's batch of outputs
``accumulators``   the exact superaccumulator; Welford/Chan moments
``stream``         the shard/stream driver (batches, trace grid, threads)
``distributed``    shards of one stream on a Dask cluster (optional ``dask`` extra)
``progress``       progress bars on stderr
=================  ==========================================================

Jitted kernels are private; each has a typed, documented wrapper.  A value
depends only on (key, sample index, element index), and every accumulator
is an integer or an exact sum, so thread counts and shard splits cannot
change a result.  This layer imports no scipy and nothing above it.
"""

__all__: list[str] = []
