"""The ONNX graph: preprocessed pixels in, ``score`` and ``anomaly_map`` out.

Training runs the same graph truncated after the stage-1 responses or the features, so the
features it fits are exactly those the deployed model computes.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mes_vision.features import FeatureConfig, FilterBank, GoodModel

# Opset 21 / IR 10 (onnx 1.16): every onnxruntime since 1.20 loads it, so older edge runtimes do.
OPSET = 21
IR_VERSION = 10
INPUT = "image"
SCORE = "score"
ANOMALY_MAP = "anomaly_map"
STAGE1 = "stage1"
FEATURES = "features"
EPS = 1e-3


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def pool(self, x: str, size: int, output: str) -> str:
        return self.op("AveragePool", [x], output, kernel_shape=[size, size], strides=[size, size])

    def conv(self, x: str, bank: FilterBank, output: str, stride: int = 1) -> str:
        k = bank.weight.shape[-1]
        w = self.const(f"{output}_w", bank.weight)
        b = self.const(f"{output}_b", bank.bias)
        return self.op("Conv", [x, w, b], output, pads=[k // 2] * 4, strides=[stride, stride])


def _features(
    g: _Builder, config: FeatureConfig, stage1: FilterBank, stage2: FilterBank | None
) -> tuple[str, str | None]:
    """Add the feature extractor; return the stage-1 output and the features (if stage 2)."""
    nchw = g.op("Transpose", [INPUT], "nchw", perm=[0, 3, 1, 2])
    x = g.op("Mul", [nchw, g.const("inv255", np.array(1 / 255, np.float32))], "pixels")
    # Stride 2 with 5x5 kernels still sees every pixel, at a quarter of the later work.
    f1 = g.conv(x, stage1, "f1", stride=2)
    # Rectified stage-1 responses: the local energy of each learned filter.
    h1 = g.op("Abs", [f1], STAGE1)
    if stage2 is None:
        return h1, None
    half = config.stride // 2
    mean1 = g.pool(f1, half, "f1_mean")
    energy1 = g.pool(h1, half, "f1_energy")
    f2 = g.conv(h1, stage2, "f2")
    energy2 = g.pool(g.op("Abs", [f2], "f2_abs"), half, "f2_energy")
    # Logs make the skewed energies closer to Gaussian.
    eps = g.const("eps", np.array(EPS, np.float32))
    log1 = g.op("Log", [g.op("Add", [energy1, eps], "f1_energy_eps")], "f1_log")
    log2 = g.op("Log", [g.op("Add", [energy2, eps], "f2_energy_eps")], "f2_log")
    return h1, g.op("Concat", [mean1, log1, log2], FEATURES, axis=1)


def _scoring(g: _Builder, features: str, good: GoodModel) -> None:
    d = good.whiten.shape[0]
    z = g.op("Conv", [features, g.const("whiten", good.whiten.reshape(d, d, 1, 1))], "whitened")
    # Subtracting the whitened mean after the 1x1 conv equals whitening the centred features.
    mean_w = np.einsum("ij,jyx->iyx", good.whiten, good.mean)[None].astype(np.float32)
    r = g.op("Sub", [z, g.const("mean_whitened", mean_w)], "residual")
    sq = g.op("Mul", [r, r], "residual_sq")
    weighted = g.op("Mul", [sq, g.const("inv_var", good.inv_var[None])], "weighted")
    axis1 = g.const("axis1", np.array([1], np.int64))
    dist2 = g.op("ReduceSum", [weighted, axis1], "dist2", keepdims=1)
    dist = g.op(
        "Sqrt",
        [g.op("Div", [dist2, g.const("dims", np.array(d, np.float32))], "dist2_mean")],
        "dist",
    )
    # Edge padding then a 3x3 binomial blur: one noisy cell cannot decide, borders keep their level.
    pads = g.const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))
    padded = g.op("Pad", [dist, pads], "dist_padded", mode="edge")
    blur = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float32) / 16
    g.op("Conv", [padded, g.const("blur", blur[None, None])], ANOMALY_MAP)
    axes = g.const("axes_map", np.array([1, 2, 3], np.int64))
    g.op("ReduceMax", [ANOMALY_MAP, axes], SCORE, keepdims=0)


def build_model(
    config: FeatureConfig,
    stage1: FilterBank,
    stage2: FilterBank | None = None,
    good: GoodModel | None = None,
) -> onnx.ModelProto:
    """The graph up to what is known: stage-1 responses, features, or the full scorer."""
    g = _Builder()
    s = config.image_size
    h1, features = _features(g, config, stage1, stage2)
    if features is None:
        outputs = [helper.make_tensor_value_info(h1, TensorProto.FLOAT, ["N", None, None, None])]
    elif good is None:
        outputs = [
            helper.make_tensor_value_info(features, TensorProto.FLOAT, ["N", None, None, None])
        ]
    else:
        _scoring(g, features, good)
        grid = config.grid
        outputs = [
            helper.make_tensor_value_info(SCORE, TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info(ANOMALY_MAP, TensorProto.FLOAT, ["N", 1, grid, grid]),
        ]
    graph = helper.make_graph(
        g.nodes,
        "mes_vision_anomaly",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", s, s, 3])],
        outputs,
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mes_vision"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model
