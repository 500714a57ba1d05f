"""The decision threshold: a quantile of a Gumbel fitted to held-out good scores.

An image's score is the maximum over its anomaly map, and maxima of many cells follow an
extreme-value (Gumbel) law; fitting one to a few dozen held-out good scores estimates the tail
that the highest of them alone cannot, so the card can state an expected false-reject rate.
"""

from __future__ import annotations

import math

import numpy as np

EULER_GAMMA = 0.5772156649015329
# Fewer confirmed-good production images than this cannot estimate the tail on their own.
MIN_BURN_IN_IMAGES = 20


def gumbel(scores: np.ndarray) -> tuple[float, float]:
    """Location and scale of a Gumbel fitted to ``scores`` by the method of moments."""
    scores = np.asarray(scores, np.float64)
    if len(scores) < 2:
        raise ValueError("a threshold needs at least two good scores")
    beta = max(float(scores.std(ddof=1)) * math.sqrt(6) / math.pi, 1e-9)
    return float(scores.mean()) - EULER_GAMMA * beta, beta


def threshold_for(scores: np.ndarray, false_reject_rate: float) -> float:
    """The score above which good parts fall with probability ``false_reject_rate``."""
    if not 0 < false_reject_rate < 1:
        raise ValueError(f"false_reject_rate must be in (0, 1), got {false_reject_rate}")
    mu, beta = gumbel(scores)
    return mu - beta * math.log(-math.log(1 - false_reject_rate))


def expected_false_rejects(scores: np.ndarray, threshold: float) -> float:
    """The fitted Gumbel's probability that a good part scores above ``threshold``."""
    mu, beta = gumbel(scores)
    return float(1 - math.exp(-math.exp(-(threshold - mu) / beta)))
