"""Quality-inspection models that quality experts train themselves from their own images.

An unsupervised anomaly model of "good" parts (learned patch-PCA filter banks and a Gaussian
per location), exported as one ONNX graph that scores on a CPU at line speed.
"""

from mes_vision.card import FORMAT_VERSION, ModelCard
from mes_vision.errors import (
    DatasetError,
    ImageError,
    ModelFormatError,
    ModelNotFoundError,
    VisionError,
)
from mes_vision.features import FeatureConfig
from mes_vision.inspector import Inspector, Verdict
from mes_vision.train import TrainConfig, train_model

__all__ = [
    "FORMAT_VERSION",
    "DatasetError",
    "FeatureConfig",
    "ImageError",
    "Inspector",
    "ModelCard",
    "ModelFormatError",
    "ModelNotFoundError",
    "TrainConfig",
    "Verdict",
    "VisionError",
    "train_model",
]
