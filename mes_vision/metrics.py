"""Image-level metrics."""

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
