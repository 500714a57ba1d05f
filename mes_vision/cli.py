"""``python -m mes_vision train|score``: the command line of the quality expert and the line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mes_vision.errors import ImageError, VisionError
from mes_vision.features import FeatureConfig
from mes_vision.heatmap import write_heatmap
from mes_vision.inspector import Inspector
from mes_vision.preprocess import open_image
from mes_vision.train import TrainConfig, train_model

log = logging.getLogger("mes_vision")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mes_vision", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a model from DATASET_DIR/good and /defect")
    train.add_argument("dataset_dir", type=Path)
    train.add_argument("--out", type=Path, required=True, help="model directory to write")
    train.add_argument("--image-size", type=int, default=FeatureConfig.image_size)
    train.add_argument("--seed", type=int, default=0)
    score = sub.add_parser("score", help="score images, one JSON line per image")
    score.add_argument("model_dir", type=Path)
    score.add_argument("images", nargs="+", type=Path)
    score.add_argument("--heatmap-dir", type=Path, help="write an anomaly heat-map PNG per image")
    score.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    return parser


def _train(args: argparse.Namespace) -> int:
    size = args.image_size
    if size < 32 or size % 8:
        raise VisionError(f"--image-size must be a multiple of 8, at least 32 (got {size})")
    config = TrainConfig(features=replace(FeatureConfig(), image_size=size), seed=args.seed)
    card = train_model(args.dataset_dir, args.out, config)
    summary = {
        "model_dir": str(args.out),
        "threshold": card.threshold,
        "threshold_method": card.threshold_method,
        "validation": {
            k: card.validation[k] for k in ("auroc", "false_reject_rate", "defect_recall")
        },
        "images": {k: card.images[k] for k in ("good_used", "defect_used", "skipped")},
        "training_seconds": card.training_seconds,
    }
    print(json.dumps(summary))
    return 0


def _score(args: argparse.Namespace) -> int:
    inspector = Inspector.load(args.model_dir, intra_op_threads=args.threads)
    failed = 0
    for path in args.images:
        line: dict[str, object] = {"image": str(path)}
        try:
            image = open_image(path, inspector.image_size)
            result = inspector.score_image(image, with_map=args.heatmap_dir is not None)
        except ImageError as exc:
            failed += 1
            line.update(verdict="ERROR", reason=str(exc))
        else:
            line.update(score=result.score, verdict=result.verdict)
            if args.heatmap_dir is not None and result.anomaly_map is not None:
                out = args.heatmap_dir / f"{path.stem}.heatmap.png"
                write_heatmap(
                    out, image, result.anomaly_map, result.threshold, inspector.image_size
                )
                line["heatmap"] = str(out)
        print(json.dumps(line), flush=True)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _train(args) if args.command == "train" else _score(args)
    except VisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
