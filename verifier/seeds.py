"""Every random draw, in one place: ``numpy.random.default_rng([seed, stream, *ids])``.

A draw for one purpose never shifts another's: each purpose has its own stream number, and
adding a stream (or a draw inside one) leaves every other stream as it was.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """Stream ids; append new ones, never renumber."""

    BIJECTION = 1  # pi_r, one sub-stream per relation
    CODEBOOK = 2  # attribute codes, one sub-stream per block of columns
    INIT = 3  # model initialisation for training
    SPLIT = 4  # held-out splits of the mechanism measures
    TRANSFER = 5  # the new bijections of a transfer claim
    BATCH = 6  # mini-batch order
    BASELINE = 7  # frozen random features of the associative baseline
    BENCH_SAMPLE = 8  # the queries bench/convex_bench.py samples
    FIT = 9  # bootstrap resamples of growth fits (verifier/engine/fits.py)
    ORDER = 10  # the example order of a training run (VERIFIER_TRAIN_ORDER, verifier/train/)
    AUGMENT = 11  # synthetic attribute combinations, one sub-stream per step (train/augment.py)


def rng(seed: int, stream: Stream, *ids: int) -> np.random.Generator:
    """A generator for ``(seed, stream, *ids)``; identical on every machine and run."""
    if seed < 0:
        raise ValueError(f"expected a seed >= 0, got {seed}")
    return np.random.default_rng([seed, int(stream), *ids])
