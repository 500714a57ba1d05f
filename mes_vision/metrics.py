"""Image-level metrics and the choice of the decision threshold."""

from __future__ import annotations

import numpy as np


def auroc(good: np.ndarray, defect: np.ndarray) -> float:
    """Probability that a defect scores above a good image (ties count half)."""
    good = np.asarray(good, np.float64)
    defect = np.asarray(defect, np.float64)
    if not len(good) or not len(defect):
        raise ValueError("AUROC needs good and defect scores")
    greater = (defect[:, None] > good[None, :]).sum()
    ties = (defect[:, None] == good[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(good) * len(defect)))


def good_only_threshold(good: np.ndarray, margin: float) -> float:
    """Just above the highest held-out good score, by ``margin`` times the spread of good scores.

    The margin is for the good parts not yet seen: the highest of a few dozen held-out scores
    underestimates the tail of good parts on the line.
    """
    good = np.asarray(good, np.float64)
    spread = float(np.percentile(good, 75) - np.percentile(good, 25))
    return float(good.max() + margin * spread)


def choose_threshold(
    good: np.ndarray, defect: np.ndarray, margin: float, max_frr: float = 0.05
) -> tuple[float, str]:
    """The decision threshold and how it was chosen.

    Without defect images: ``good_only_threshold``. With them, that threshold is kept when it
    is at least as good by Youden's J (recall minus false-reject rate) as every cut between two
    observed scores that rejects at most ``max_frr`` of the held-out good images; otherwise
    the best such cut is used. A handful of defects never buys recall by rejecting good parts
    wholesale.
    """
    base = good_only_threshold(good, margin)
    if not len(defect):
        return base, "good-only: max held-out good score + margin x IQR"
    scores = np.unique(np.concatenate([good, defect]))
    candidates = [t for t in (scores[1:] + scores[:-1]) / 2 if np.mean(good > t) <= max_frr]

    def youden(t: float) -> float:
        return float(np.mean(defect > t) - np.mean(good > t))

    best = max(candidates, key=youden, default=base)
    if youden(base) >= youden(best):
        return base, "good-only: max held-out good score + margin x IQR (defects agree)"
    method = f"defect-calibrated: best recall - false-reject rate, false rejects <= {max_frr:.0%}"
    return float(best), method
