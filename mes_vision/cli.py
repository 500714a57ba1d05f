"""``python -m mes_vision train|score``: the command line of the quality expert and the line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mes_vision.burn_in import burn_in
from mes_vision.errors import ImageError, VisionError
from mes_vision.features import SCORERS, FeatureConfig
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
    train.add_argument(
        "--short-side",
        type=int,
        default=FeatureConfig.short_side,
        help="pixels of the region's shorter side the model works at (never enlarged)",
    )
    train.add_argument(
        "--roi", type=_roi, help="region of interest in the camera frame: LEFT,TOP,WIDTH,HEIGHT"
    )
    train.add_argument("--scorer", choices=SCORERS, help="force a scorer (default: choose)")
    train.add_argument("--false-reject-rate", type=float, default=TrainConfig.false_reject_rate)
    train.add_argument("--seed", type=int, default=0)
    burn = sub.add_parser(
        "burn-in", help="recalibrate the threshold on production images confirmed good"
    )
    burn.add_argument("model_dir", type=Path)
    burn.add_argument("images", nargs="+", type=Path)
    burn.add_argument("--false-reject-rate", type=float, default=TrainConfig.false_reject_rate)
    score = sub.add_parser("score", help="score images, one JSON line per image")
    score.add_argument("model_dir", type=Path)
    score.add_argument("images", nargs="+", type=Path)
    score.add_argument("--heatmap-dir", type=Path, help="write an anomaly heat-map PNG per image")
    score.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    return parser


def _roi(text: str) -> tuple[int, int, int, int]:
    try:
        left, top, width, height = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--roi must be four integers LEFT,TOP,WIDTH,HEIGHT, got {text!r}"
        ) from None
    if left < 0 or top < 0 or width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"--roi {text}: LEFT, TOP >= 0 and WIDTH, HEIGHT > 0")
    return left, top, width, height


def _train(args: argparse.Namespace) -> int:
    size = args.short_side
    minimum = 4 * FeatureConfig().multiple
    if size < minimum:
        raise VisionError(f"--short-side must be at least {minimum} (got {size})")
    if not 0 < args.false_reject_rate < 0.5:
        raise VisionError(f"--false-reject-rate must be in (0, 0.5), got {args.false_reject_rate}")
    config = TrainConfig(
        features=replace(FeatureConfig(), short_side=size),
        roi=args.roi,
        scorer=args.scorer,
        false_reject_rate=args.false_reject_rate,
        seed=args.seed,
    )
    card = train_model(args.dataset_dir, args.out, config)
    summary = {
        "model_dir": str(args.out),
        "threshold": card.threshold,
        "threshold_method": card.threshold_method,
        "validation": {
            k: card.validation[k]
            for k in (
                "scorer",
                "auroc",
                "expected_false_reject_rate",
                "false_reject_rate",
                "synthetic_recall",
                "defect_recall",
            )
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
            image = open_image(path, inspector.framing)
            result = inspector.score_image(image, with_map=args.heatmap_dir is not None)
        except ImageError as exc:
            failed += 1
            line.update(verdict="ERROR", reason=str(exc))
        else:
            line.update(score=result.score, verdict=result.verdict)
            if args.heatmap_dir is not None and result.anomaly_map is not None:
                out = args.heatmap_dir / f"{path.stem}.heatmap.png"
                write_heatmap(out, image, result.anomaly_map, result.threshold)
                line["heatmap"] = str(out)
        print(json.dumps(line), flush=True)
    return 1 if failed else 0


def _burn_in(args: argparse.Namespace) -> int:
    card = burn_in(args.model_dir, list(args.images), args.false_reject_rate)
    print(
        json.dumps(
            {
                "model_dir": str(args.model_dir),
                **card.validation["burn_in"],
                "threshold": card.threshold,
            }
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "burn-in":
            return _burn_in(args)
        return _score(args)
    except VisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
