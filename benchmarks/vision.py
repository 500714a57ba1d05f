#!/usr/bin/env python3
"""mes_vision accuracy and speed, each against its baseline in the same run.

accuracy: per station, a model is trained on 40 good and 5 defect images (one per kind) and
  scored on 60 unseen good images and 60 unseen defects (12 per kind, at four severities from
  faint to obvious). Stations are real photographs (benchmarks/photographs.py: fixtured parts
  and textures) and the generated surfaces of mes_vision.synthetic. Prints image AUROC per
  station and defect kind, the scorer training chose, the false-reject rate and recall at its
  threshold; the baseline is a naive one measured on the same images: the peak of the blurred
  difference from the mean good image.
speed (2 threads): training time for 45 images (40 good + 5 defect, 1 MP JPEG frames); per-image
  latency p50/p99 (one image at a time) and streamed images/s (``Inspector.score_stream``, 2
  workers) for 1024x1024 JPEGs end to end (full decode, resize, ONNX, verdict) against
  decode-only (the same decode and resize) on the same 2 threads.

    .venv/bin/python benchmarks/vision.py [--only accuracy|speed] [--stations NAME...] [--quick]

``--quick``: two stations, small train and test sets, fewer patches, 24 streamed images and one
round (a smoke run: the figures are noisy).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import photographs  # noqa: E402
from benchmarks.figures import figure  # noqa: E402
from mes_vision import FeatureConfig, Inspector, TrainConfig, synthetic, train_model  # noqa: E402
from mes_vision.metrics import auroc  # noqa: E402
from mes_vision.preprocess import Framing, open_image, to_tensor  # noqa: E402

THREADS = 2
STREAM_BATCH = 8
SEVERITIES = (0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Sizes:
    train_good: int = 40
    train_defect: int = 5
    test_good: int = 60
    test_per_severity: int = 3  # per kind: 3 x 4 severities = 12, 60 over the five kinds
    speed_images: int = 300
    latency_images: int = 200
    rounds: int = 5
    patches_per_level: int = FeatureConfig().patches_per_level
    folds: int = TrainConfig().folds


QUICK = Sizes(12, 2, 8, 1, 24, 12, 1, 4_000, 2)


class Station:
    """A photograph station or a generated surface, as encoded camera frames."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.photo = photographs.BY_NAME.get(name)
        self.kind = self.photo.kind if self.photo else "generated"
        self.suffix = ".jpg" if self.photo else ".png"

    def good(self, seed: int) -> bytes:
        if self.photo:
            return photographs.good_frame(self.photo, seed)
        return _png(synthetic.good_image(self.name, seed))

    def defect(self, kind: str, seed: int, severity: float) -> bytes:
        if self.photo:
            return photographs.defect_frame(self.photo, kind, seed, severity)
        return _png(synthetic.defect_image(self.name, kind, seed, severity))

    def write_dataset(self, root: Path, sizes: Sizes) -> Path:
        kinds = synthetic.DEFECT_KINDS
        for folder in ("good", "defect"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(sizes.train_good):
            path = root / "good" / f"good_{i:03d}{self.suffix}"
            path.write_bytes(self.good(100_000 + i))
        for i in range(sizes.train_defect):
            kind = kinds[i % len(kinds)]
            path = root / "defect" / f"{kind}_{i:03d}{self.suffix}"
            path.write_bytes(self.defect(kind, 150_000 + i, 0.75))
        return root


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _naive_scores(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Baseline: peak of the 8x8-blurred absolute difference from the mean good image."""

    def blurred(x: np.ndarray) -> np.ndarray:
        n, h, w, _ = x.shape
        x = x[:, : h // 8 * 8, : w // 8 * 8].mean(axis=3)
        return x.reshape(n, h // 8, 8, w // 8, 8).mean(axis=(2, 4))

    mean = blurred(train).mean(axis=0)
    return np.abs(blurred(test) - mean).max(axis=(1, 2))


def evaluate(station: Station, workdir: Path, config: TrainConfig, sizes: Sizes) -> dict:
    dataset = station.write_dataset(workdir / station.name, sizes)
    started = time.perf_counter()
    card = train_model(dataset, workdir / f"{station.name}-model", config)
    train_s = time.perf_counter() - started
    inspector = Inspector.load(workdir / f"{station.name}-model", intra_op_threads=THREADS)
    framing: Framing = inspector.framing
    # Test seeds are far from the training seeds: every test image is a new part.
    good = [station.good(900_000 + i) for i in range(sizes.test_good)]
    good_scores = np.array([v.score for v in inspector.score_batch(good)])
    defects: dict[str, list[bytes]] = {}
    for k, kind in enumerate(synthetic.DEFECT_KINDS):
        defects[kind] = [
            station.defect(kind, 800_000 + 1000 * k + 10 * i + j, severity)
            for i in range(sizes.test_per_severity)
            for j, severity in enumerate(SEVERITIES)
        ]
    result: dict = {"scorer": card.validation["scorer"], "train_s": train_s}
    scores = {
        kind: np.array([v.score for v in inspector.score_batch(f)]) for kind, f in defects.items()
    }
    for kind, found in scores.items():
        result[kind] = auroc(good_scores, found)
    all_defects = np.concatenate(list(scores.values()))
    result["all"] = auroc(good_scores, all_defects)
    result["FRR"] = float(np.mean(good_scores > inspector.threshold))
    result["recall"] = float(np.mean(all_defects > inspector.threshold))

    def pixels(frames: list[bytes]) -> np.ndarray:
        return to_tensor([open_image(f, framing) for f in frames])

    train_frames = [station.good(100_000 + i) for i in range(sizes.train_good)]
    naive_good = _naive_scores(pixels(train_frames), pixels(good))
    naive_defect = _naive_scores(
        pixels(train_frames), pixels([f for v in defects.values() for f in v])
    )
    result["naive"] = auroc(naive_good, naive_defect)
    return result


def accuracy(stations: list[str], sizes: Sizes = Sizes()) -> float:
    config = TrainConfig(
        features=replace(FeatureConfig(), patches_per_level=sizes.patches_per_level),
        folds=sizes.folds,
    )
    kinds = [*synthetic.DEFECT_KINDS, "all"]
    extra = ["FRR", "recall", "naive"]
    print(
        f"\nimage AUROC (train {sizes.train_good} good + {sizes.train_defect} defect; test "
        f"{sizes.test_good} good + {sizes.test_per_severity * len(SEVERITIES)} per kind at "
        f"severities {SEVERITIES}); FRR and recall at the threshold training chose; naive: "
        "the mean-image baseline's AUROC on the same images"
    )
    print(
        f"{'station':10s} {'kind':9s} {'scorer':8s}"
        + "".join(f"{k:>8s}" for k in kinds)
        + " |"
        + "".join(f"{k:>8s}" for k in extra)
        + "   train s"
    )
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in stations:
            station = Station(name)
            row = evaluate(station, Path(tmp), config, sizes)
            rows[name] = [row[k] for k in kinds + extra]
            cells = [f"{row[k]:8.3f}" for k in kinds + extra]
            print(
                f"{name:10s} {station.kind:9s} {row['scorer']:8s}"
                + "".join(cells[: len(kinds)])
                + " |"
                + "".join(cells[len(kinds) :])
                + f"   {row['train_s']:7.1f}",
                flush=True,
            )
    by_kind: dict[str, list[list[float]]] = {}
    for name, values in rows.items():
        by_kind.setdefault(Station(name).kind, []).append(values)
    for kind, values in by_kind.items():
        mean = np.mean(values, axis=0)
        print(
            f"{'mean':10s} {kind:9s} {'':8s}"
            + "".join(f"{v:8.3f}" for v in mean[: len(kinds)])
            + " |"
            + "".join(f"{v:8.3f}" for v in mean[len(kinds) :])
        )
    all_rows = np.array(list(rows.values()))
    overall = float(all_rows[:, len(kinds) - 1].mean())
    naive = float(all_rows[:, -1].mean())
    figure("image AUROC, mean over stations", overall, "AUROC", "naive mean-image baseline", naive)
    return overall


def _jpeg_1mp(seed: int) -> bytes:
    """A 1024x1024 camera JPEG (quality 90) of a generated part."""
    image = synthetic.good_image("printed_label", seed, size=1024)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _throughputs(works: dict, items: list[bytes], rounds: int) -> dict:
    """Images/s of each of ``works`` over ``items``; rounds alternate between the works and the
    best round counts, so a load spike on a shared machine hits every side alike."""
    best = dict.fromkeys(works, 0.0)
    for work in works.values():
        work(items[: THREADS * 8])  # warm-up
    for _ in range(rounds):
        for name, work in works.items():
            started = time.perf_counter()
            work(items)
            best[name] = max(best[name], len(items) / (time.perf_counter() - started))
    return best


def speed(sizes: Sizes = Sizes()) -> None:
    config = TrainConfig(
        features=replace(FeatureConfig(), patches_per_level=sizes.patches_per_level),
        folds=sizes.folds,
    )
    jpegs = [_jpeg_1mp(i) for i in range(8)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        for folder in ("good", "defect"):
            (root / folder).mkdir(parents=True)
        for i in range(40 if sizes is not QUICK else sizes.train_good):
            (root / "good" / f"g{i:02d}.jpg").write_bytes(_jpeg_1mp(1000 + i))
        for i in range(5 if sizes is not QUICK else sizes.train_defect):
            kind = synthetic.DEFECT_KINDS[i]
            image = synthetic.defect_image("printed_label", kind, 2000 + i, 0.75, size=1024)
            image.save(root / "defect" / f"{kind}.jpg", quality=90)
        count = len(list(root.rglob("*.jpg")))
        started = time.perf_counter()
        train_model(root, Path(tmp) / "model", config)
        train_s = time.perf_counter() - started
        latency_inspector = Inspector.load(Path(tmp) / "model", intra_op_threads=THREADS)
        inspector = Inspector.load(Path(tmp) / "model", intra_op_threads=1)
        # The memory bank is the slowest scorer: its speed too, whichever training chose.
        train_model(root, Path(tmp) / "bank", replace(config, scorer="bank"))
        bank = Inspector.load(Path(tmp) / "bank", intra_op_threads=1)
    framing = inspector.framing
    stream = [jpegs[i % len(jpegs)] for i in range(sizes.speed_images)]

    def decode(data: bytes) -> np.ndarray:
        return np.asarray(open_image(data, framing), dtype=np.float32)

    def decode_2_threads(items: list[bytes]) -> None:
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(decode, items))

    def end_to_end(items: list[bytes], model: Inspector = inspector) -> None:
        for verdict in model.score_stream(items, STREAM_BATCH, workers=THREADS):
            assert verdict.verdict != "ERROR"

    def end_to_end_bank(items: list[bytes]) -> None:
        end_to_end(items, bank)

    for data in stream[:20]:
        latency_inspector.score_image(data)
    latencies = []
    for data in stream[: sizes.latency_images]:
        started = time.perf_counter()
        latency_inspector.score_image(data)
        latencies.append((time.perf_counter() - started) * 1000)
    rates = _throughputs(
        {"decode": decode_2_threads, "e2e": end_to_end, "bank": end_to_end_bank},
        stream,
        sizes.rounds,
    )
    width, height = framing.size
    print(
        f"\nspeed on {THREADS} threads, model input {width}x{height}, "
        f"scorer {inspector.card.validation['scorer']}"
    )
    print(f"training, {count} images (1024x1024 JPEG): {train_s:.1f} s (goal <= 60 s)")
    print(
        f"  latency, end to end one image at a time ({THREADS} intra-op threads): "
        f"p50 {np.percentile(latencies, 50):.2f} ms, p99 {np.percentile(latencies, 99):.2f} ms "
        "(goal p99 <= 30 ms)"
    )
    print(
        f"  end to end, streamed ({THREADS} workers, batches of {STREAM_BATCH}; full decode, "
        f"resize, ONNX, verdict): {rates['e2e']:7.1f} images/s (goal >= 100)"
    )
    print(f"  the same with the memory bank scorer: {rates['bank']:7.1f} images/s")
    print(
        f"  decode-only on {THREADS} threads (same decode and resize, same images): "
        f"{rates['decode']:7.1f} images/s; end to end / decode-only: "
        f"{rates['e2e'] / rates['decode']:.2f}"
    )
    figure(
        f"1 MP JPEG images/s, end to end on {THREADS} threads",
        rates["e2e"],
        "images/s",
        f"decode-only on {THREADS} threads",
        rates["decode"],
    )


ALL_STATIONS = [s.name for s in photographs.STATIONS] + list(synthetic.SURFACES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["accuracy", "speed"])
    parser.add_argument("--stations", nargs="+", default=ALL_STATIONS, choices=ALL_STATIONS)
    parser.add_argument("--quick", action="store_true", help="two stations, small sets, 1 round")
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    stations = ["portrait", "foliage"] if args.quick else args.stations
    if args.only != "speed":
        accuracy(stations, sizes)
    if args.only != "accuracy":
        speed(sizes)


if __name__ == "__main__":
    main()
