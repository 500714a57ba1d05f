"""Fixtures of the edge tests: small real models (trained once), images, configs, a broker."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

COMPONENT_DIR = PROJECT_ROOT / "greengrass_components" / "quality_inspection"
sys.path.insert(0, str(COMPONENT_DIR / "src"))

from quality_inspection.config import ComponentConfig, parse_config  # noqa: E402

from mes_vision import FeatureConfig, TrainConfig, synthetic, train_model  # noqa: E402
from tests.greengrass.broker import Broker, free_port, mosquitto_binary, wait_for  # noqa: E402, F401

IMAGE_PX = 96
SITE, LINE, STATION = "berlin", "body-line-1", "vision-01"
QUALITY_TOPIC = f"mes/v1/{SITE}/{LINE}/{STATION}/quality"
TRIGGER_TOPIC = f"mes/local/{SITE}/{LINE}/{STATION}/image"
# A small input and few PCA patches keep training to about a second per model. Models of 8
# images give a wide spread of held-out scores: the tests ask 0.1% false rejects.
SMALL = TrainConfig(
    features=replace(
        FeatureConfig(), short_side=64, patches_per_level=2000, bank_sizes=(64, 64, 32)
    ),
    folds=3,
    false_reject_rate=0.001,
)


def _train(root: Path, surface: str) -> Path:
    dataset = synthetic.write_dataset(
        root / f"dataset-{surface}", surface, n_good=12, n_defect=2, seed=1, size=IMAGE_PX
    )
    out = root / f"model-{surface}"
    train_model(dataset, out, SMALL)
    return out


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A model of good 'cast' surfaces."""
    return _train(tmp_path_factory.mktemp("models"), "cast")


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory) -> Path:
    """A model of good 'machined' surfaces: it calls a good cast part a DEFECT."""
    return _train(tmp_path_factory.mktemp("models"), "machined")


def write_good(path: Path, seed: int, surface: str = "cast") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic.good_image(surface, 10_000 + seed, IMAGE_PX).save(path, format="PNG")
    return path


def write_defect(path: Path, seed: int, surface: str = "cast") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = synthetic.DEFECT_KINDS[seed % len(synthetic.DEFECT_KINDS)]
    synthetic.defect_image(surface, kind, 20_000 + seed, 1.0, IMAGE_PX).save(path, format="PNG")
    return path


def image_bytes(writer, seed: int, tmp: Path) -> bytes:
    return writer(tmp / f"scratch-{seed}.png", seed).read_bytes()


def make_config(
    tmp_path: Path, model_dir: Path | None = None, camera: dict | None = None, **capture
) -> ComponentConfig:
    return parse_config(
        {
            "station": {"site": SITE, "line": LINE, "station": STATION},
            "publishTopic": QUALITY_TOPIC,
            "camera": {
                "inboxDir": str(tmp_path / "inbox"),
                "pollIntervalMs": 50,
                "settleMs": 200,
                "triggerTopic": TRIGGER_TOPIC,
                "triggerRoot": str(tmp_path / "triggered"),
                "triggerQueue": str(tmp_path / "work" / "triggers.sqlite3"),
                **(camera or {}),
            },
            "model": {
                "componentName": "com.acme.mes.models.SurfaceDefects",
                "version": "1.0.0",
                "dir": str(model_dir) if model_dir else "",
                "intraOpThreads": 1,
            },
            "capture": {
                "dir": str(tmp_path / "captures"),
                "goodSampleRate": 0.0,
                "maxBytes": 50_000_000,
                "maxFiles": 1000,
                "minFreeBytes": 0,
                **capture,
            },
        }
    )


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> Iterator[Broker]:
    binary = mosquitto_binary()
    if binary is None:
        pytest.fail(
            "mosquitto is not installed: `make test` installs it (apt-get install mosquitto)"
        )
    with Broker(binary, tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


# -- AWS (moto) ----------------------------------------------------------------------------


@pytest.fixture
def aws_credentials(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-central-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def s3(aws_credentials):
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="eu-central-1")
        client.create_bucket(
            Bucket="acme-datasets",
            CreateBucketConfiguration={"LocationConstraint": "eu-central-1"},
        )
        yield client


class FlakyS3:
    """Wraps an S3 client: raises connection errors while ``down``; counts PUTs per key."""

    def __init__(self, client) -> None:
        self.client = client
        self.down = False
        self.puts: dict[str, int] = {}
        self.failed_calls = 0

    def _check(self, operation: str) -> None:
        if self.down:
            from botocore.exceptions import EndpointConnectionError

            self.failed_calls += 1
            raise EndpointConnectionError(endpoint_url=f"https://s3.example/{operation}")

    def put_object(self, **kwargs):
        self._check("put_object")
        result = self.client.put_object(**kwargs)
        self.puts[kwargs["Key"]] = self.puts.get(kwargs["Key"], 0) + 1
        return result

    def head_object(self, **kwargs):
        self._check("head_object")
        return self.client.head_object(**kwargs)
