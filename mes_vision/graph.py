"""The ONNX graph: preprocessed pixels in, ``score`` and ``anomaly_map`` out.

Training runs the same graph truncated after the stage-1 responses or the features, so the
features it fits are exactly those the deployed model computes.
"""

from __future__ import annotations

import math

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
BLUR_RADIUS = 2


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
    # PCA residual (the "Q statistic"): patch energy the learned filters do not explain. Thin
    # scratches and cracks look like no good patch and land here; ||p - m||^2 is expanded
    # into convolutions so the patches are never materialised.
    k1 = stage1.weight.shape[-1]
    ones = g.const("ones1", np.ones_like(stage1.mean))
    conv_kw = {"pads": [k1 // 2] * 4, "strides": [2, 2]}
    x2 = g.op("Mul", [x, x], "pixels_sq")
    energy = g.op("Conv", [x2, ones], "patch_energy", **conv_kw)
    cross = g.op("Conv", [x, g.const("mean1x2", 2 * stage1.mean)], "patch_cross", **conv_kw)
    centred = g.op("Sub", [energy, cross], "patch_centred_part")
    m2 = g.const(
        "mean1_sq", np.array(float((stage1.mean.astype(np.float64) ** 2).sum()), np.float32)
    )
    centred = g.op("Add", [centred, m2], "patch_centred")
    axis1 = g.const("axis1_f", np.array([1], np.int64))
    explained = g.op("ReduceSum", [g.op("Mul", [f1, f1], "f1_sq"), axis1], "explained", keepdims=1)
    residual = g.op("Relu", [g.op("Sub", [centred, explained], "residual1_raw")], "residual1")
    residual = g.pool(residual, half, "residual1_pool")
    log_res = g.op(
        "Log",
        [g.op("Add", [residual, g.const("eps_res", np.array(1e-5, np.float32))], "residual1_eps")],
        "residual1_log",
    )
    # Mean colour per cell: chroma has little patch variance, so PCA alone would drop stains.
    colour = g.pool(x, config.stride, "colour")
    return h1, g.op("Concat", [colour, log_res, mean1, log1, log2], FEATURES, axis=1)


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
    dist2 = g.op("Div", [dist2, g.const("dims", np.array(d, np.float32))], "dist2_mean")
    # Blurring squared distances adds up evidence over neighbouring cells, which long thin
    # defects (scratches, cracks) need; edge padding keeps the border at its level.
    k = BLUR_RADIUS
    pads = g.const("pads", np.array([0, 0, k, k, 0, 0, k, k], np.int64))
    padded = g.op("Pad", [dist2, pads], "dist2_padded", mode="edge")
    taps = np.array([math.comb(2 * k, i) for i in range(2 * k + 1)], np.float32)
    blur = np.outer(taps, taps) / taps.sum() ** 2
    blurred = g.op("Conv", [padded, g.const("blur", blur[None, None])], "blurred")
    g.op("Sqrt", [blurred], ANOMALY_MAP)
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
