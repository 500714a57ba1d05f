"""Burn-in: recalibrate the threshold on the first production images quality confirms as good.

The training threshold rests on a few dozen images; the line's own good parts, under its own
light, tell the tail better. The model graph is untouched; only the card's threshold changes,
and the card keeps what it replaced.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mes_vision import calibration
from mes_vision.card import MODEL_FILE, ModelCard
from mes_vision.errors import VisionError
from mes_vision.inspector import Inspector
from mes_vision.preprocess import ImageSource
from mes_vision.store import write_model_dir


def burn_in(
    model_dir: str | Path, confirmed_good: list[ImageSource], false_reject_rate: float = 0.01
) -> ModelCard:
    """Set the threshold from ``confirmed_good`` production images and rewrite the card.

    Raises ``VisionError`` with fewer than ``MIN_BURN_IN_IMAGES`` readable images; an
    unreadable image raises ``ImageError`` naming it, and nothing is written.
    """
    if len(confirmed_good) < calibration.MIN_BURN_IN_IMAGES:
        raise VisionError(
            f"burn-in needs at least {calibration.MIN_BURN_IN_IMAGES} confirmed-good images, "
            f"got {len(confirmed_good)}"
        )
    inspector = Inspector.load(model_dir)
    scores = np.array([v.score for v in inspector.score_batch(confirmed_good)])
    card = inspector.card
    previous = card.threshold
    card.threshold = calibration.threshold_for(scores, false_reject_rate)
    card.threshold_method = (
        f"burn-in: Gumbel fitted to {len(scores)} confirmed-good production images, quantile "
        f"{1 - false_reject_rate:.3f}"
    )
    card.validation["burn_in"] = {
        "images": len(scores),
        "previous_threshold": previous,
        "good_score_max": float(scores.max()),
        "expected_false_reject_rate": calibration.expected_false_rejects(scores, card.threshold),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_model_dir(model_dir, (Path(model_dir) / MODEL_FILE).read_bytes(), card)
    return card
