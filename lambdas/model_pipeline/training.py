"""Step 2's logic: fetch the validated images, train with mes_vision, store the model.

The images are listed again and must still have the content hash that validation fixed, so the
registry's lineage names exactly what the model learnt from.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from lambdas.model_pipeline.datasets import (
    DatasetListing,
    DatasetObject,
    content_hash,
    training_images,
)
from lambdas.model_pipeline.errors import DatasetInvalid
from lambdas.model_pipeline.layout import dataset_prefix, model_prefix, model_version
from lambdas.model_pipeline.requests import TrainEvent, TrainingResult
from mes_vision import DatasetError, ModelCard, TrainConfig, train_model

# Step Functions passes at most 256 KB between states; the full card stays in model.json.
MAX_SKIPPED_IN_STATE = 20


class Dataset(DatasetListing, Protocol):
    def download(self, objects: list[DatasetObject], prefix: str, into: Path) -> None: ...


class ModelStore(Protocol):
    def upload(self, model_dir: Path, prefix: str) -> list[str]: ...


def state_card(card: ModelCard) -> dict[str, Any]:
    """The card as JSON data, with the list of skipped images cut short if it is long."""
    data = json.loads(card.to_json())
    skipped = data.get("images", {}).get("skipped", {})
    if len(skipped) > MAX_SKIPPED_IN_STATE:
        kept = dict(sorted(skipped.items())[:MAX_SKIPPED_IN_STATE])
        data["images"]["skipped"] = kept
        data["images"]["skipped_total"] = len(skipped)
    return data


def train(
    event: TrainEvent,
    dataset: Dataset,
    store: ModelStore,
    config: TrainConfig,
    now: Callable[[], float] = time.time,
) -> TrainingResult:
    """Train a model version on the validated dataset and upload model.onnx and model.json.

    Raises ``DatasetInvalid`` if the dataset changed since validation or mes_vision finds it
    unusable; any other error propagates. The scratch directory is always deleted.
    """
    version = model_version(now())
    prefix = dataset_prefix(event.site, event.line, event.station)
    source = f"s3://{dataset.bucket}/{prefix}"
    good, defect = training_images(dataset.objects(prefix))
    if content_hash([*good, *defect]) != event.dataset.content_hash:
        raise DatasetInvalid(f"{source} changed since it was validated; start a new training")

    target = model_prefix(event.site, event.line, event.station, version)
    with tempfile.TemporaryDirectory(prefix="model-pipeline-") as scratch:
        data_dir, model_dir = Path(scratch) / "dataset", Path(scratch) / "model"
        dataset.download([*good, *defect], prefix, data_dir)
        try:
            card = train_model(data_dir, model_dir, replace(config, roi=event.dataset.roi))
        except DatasetError as err:
            # mes_vision names local paths; the expert knows the S3 ones.
            raise DatasetInvalid(str(err).replace(f"{data_dir}/", source)) from err
        store.upload(model_dir, target)
    return TrainingResult(model_version=version, s3_prefix=target, card=state_card(card))
