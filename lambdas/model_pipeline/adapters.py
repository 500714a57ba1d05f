"""S3 access of the pipeline: the dataset bucket (list, download) and the model bucket."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lambdas.common.aws import client
from lambdas.model_pipeline.datasets import DatasetObject
from lambdas.model_pipeline.layout import CARD_FILE, MODEL_FILE

CONTENT_TYPES = {MODEL_FILE: "application/octet-stream", CARD_FILE: "application/json"}


class S3Dataset:
    """A dataset bucket; ``s3`` is created on first use if not given."""

    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        self.bucket = bucket
        self._client = s3

    @property
    def _s3(self) -> Any:
        return self._client or client("s3")

    def objects(self, prefix: str) -> list[DatasetObject]:
        """Every object under ``prefix`` (all pages), keys relative to the prefix."""
        found = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for item in page.get("Contents", []):
                found.append(DatasetObject(item["Key"][len(prefix) :], item["ETag"]))
        return found

    def download(self, objects: Iterable[DatasetObject], prefix: str, into: Path) -> None:
        """Each object to ``into/<relative key>``, so ``good/`` and ``defect/`` are kept."""
        for obj in objects:
            target = into / obj.key
            target.parent.mkdir(parents=True, exist_ok=True)
            self._s3.download_file(self.bucket, prefix + obj.key, str(target))


class S3ModelStore:
    """The model bucket: a trained model's files under its version's prefix."""

    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        self.bucket = bucket
        self._client = s3

    def upload(self, model_dir: Path, prefix: str) -> list[str]:
        """Upload model.onnx and model.json; returns their keys."""
        s3 = self._client or client("s3")
        keys = []
        for name, content_type in CONTENT_TYPES.items():
            key = prefix + name
            s3.upload_file(
                str(model_dir / name), self.bucket, key, ExtraArgs={"ContentType": content_type}
            )
            keys.append(key)
        return keys
