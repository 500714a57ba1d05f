"""Atomic writing of a model directory: a failure leaves the old model or nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from mes_vision.card import CARD_FILE, MODEL_FILE, ModelCard
from mes_vision.errors import VisionError


def write_model_dir(out_dir: str | Path, model_bytes: bytes, card: ModelCard) -> Path:
    """Write ``model.onnx`` and ``model.json`` to a sibling temp dir, then rename it into place.

    An existing model directory is replaced; any other non-empty directory is refused so a
    typo in ``--out`` cannot delete someone's files.
    """
    out = Path(out_dir)
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / CARD_FILE).exists())
    ):
        raise VisionError(f"{out} exists and is not a model directory; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _write(tmp / MODEL_FILE, model_bytes)
        _write(tmp / CARD_FILE, card.to_json().encode())
        if out.exists():
            # Rename the old model aside first: the swap is two renames, never a partial copy.
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            old.rmdir()
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
