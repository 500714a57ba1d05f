"""The ONNX graph: preprocessed pixels in, ``score`` and ``anomaly_map`` out.

Training runs the same graph truncated after the stage-1 responses or the features, so the
features it fits are exactly those the deployed model computes.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mes_vision.features import BLUR_RADIUS, FeatureConfig, FilterBank, GoodModel, blur_taps

# Opset 21 / IR 10 (onnx 1.16): every onnxruntime since 1.20 loads it, so older edge runtimes do.
OPSET = 21
IR_VERSION = 10
INPUT = "image"
SCORE = "score"
ANOMALY_MAP = "anomaly_map"
STAGE1 = "stage1"
FEATURES = "features"
EPS = 1e-3
# onnxruntime's blocked (NCHWc) convolutions work on channel blocks of this size (AVX-512).
CHANNEL_BLOCK = 16


def feature_groups(config: FeatureConfig) -> tuple[int, ...]:
    """Sizes of the feature groups in graph order: colour, mean stage-1 response, PCA
    residual, stage-1 and stage-2 log energies."""
    return (3, config.channels1, 1, config.channels1, config.channels2)


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

    def conv(
        self, x: str, weight: np.ndarray, bias: np.ndarray, output: str, pads: list[int], stride=1
    ) -> str:
        w = self.const(f"{output}_w", weight.astype(np.float32))
        b = self.const(f"{output}_b", np.asarray(bias, np.float32))
        return self.op("Conv", [x, w, b], output, pads=pads, strides=[stride, stride])

    def channels(self, x: str, start: int, end: int, output: str) -> str:
        bounds = [
            self.const(f"{output}_{n}", np.array([v], np.int64))
            for n, v in (("start", start), ("end", end), ("axis", 1))
        ]
        return self.op("Slice", [x, *bounds], output)

    def pool(
        self,
        x: str,
        size: int,
        output: str,
        channels: int,
        bias: float | None = None,
        inputs: int | None = None,
    ) -> str:
        """Average pooling of the first ``channels`` of ``inputs`` channels (plus ``bias``) as
        a convolution: onnxruntime runs it in its blocked layout beside the other
        convolutions, where AveragePool-19+ on fewer than 16 channels takes a much slower
        generic path."""
        kernel = np.zeros((channels, inputs or channels, size, size), np.float32)
        kernel[np.arange(channels), np.arange(channels)] = 1 / size**2
        operands = [x, self.const(f"{output}_w", kernel)]
        if bias is not None:
            operands.append(self.const(f"{output}_b", np.full(channels, bias, np.float32)))
        return self.op("Conv", operands, output, kernel_shape=[size, size], strides=[size, size])


def _features(
    g: _Builder, config: FeatureConfig, stage1: FilterBank, stage2: FilterBank | None
) -> tuple[str, str | None]:
    """Add the feature extractor; return the stage-1 output and the features (if stage 2)."""
    nchw = g.op("Transpose", [INPUT], "nchw", perm=[0, 3, 1, 2])
    # Pixel values stay 0..255: the 1/255 scaling is folded into every kernel that reads them.
    w1 = stage1.weight.astype(np.float64) / 255
    out1, cin, k1, _ = w1.shape
    # The scorer pads stage 1 with zero filters to a multiple of onnxruntime's channel block
    # (16 with AVX-512, 8 with AVX2): the stage-2 convolution then reads a blocked input, much
    # faster than its plain path for an odd channel count. The padded responses are exactly
    # 0, so every result is the same; training reads the unpadded stage 1.
    pad1 = (-out1) % CHANNEL_BLOCK if stage2 is not None else 0
    w1_padded = np.concatenate([w1, np.zeros((pad1, cin, k1, k1))])
    bias1 = np.concatenate([stage1.bias, np.zeros(pad1)])
    # Stride 2 with 5x5 kernels still sees every pixel, at a quarter of the later work.
    f1 = g.conv(nchw, w1_padded, bias1, "f1", pads=[k1 // 2] * 4, stride=2)
    # Rectified stage-1 responses: the local energy of each learned filter.
    h1 = g.op("Abs", [f1], STAGE1)
    if stage2 is None:
        return h1, None
    half = config.stride // 2
    # Every purely linear per-cell feature is one convolution of the pixels at the cell
    # stride, the pooling folded into its kernels: the mean colour (chroma has little patch
    # variance, so PCA alone would drop stains), the mean stage-1 response and the part of
    # ||p - m||^2 linear in the pixels (-2 m.p + ||m||^2) for the PCA residual below.
    mean = stage1.mean.astype(np.float64)
    colour = np.zeros((cin, cin, 1, 1))
    colour[np.arange(cin), np.arange(cin)] = 1 / 255
    linear_w, pads = _pooled(
        [(_box(colour, config.stride), False), (w1, True), (-2 * mean / 255, True)],
        k1,
        config.stride,
    )
    linear_b = np.concatenate([np.zeros(cin), stage1.bias, [(mean**2).sum()]])
    linear = g.conv(nchw, linear_w, linear_b, "pooled_linear", pads, config.stride)
    # Logs make the skewed energies closer to Gaussian; the pooling adds their epsilon.
    energy1 = g.pool(h1, half, "f1_energy_eps", out1, bias=EPS, inputs=out1 + pad1)
    w2 = np.concatenate(
        [stage2.weight, np.zeros((len(stage2.bias), pad1, *stage2.weight.shape[2:]))], axis=1
    )
    f2 = g.conv(h1, w2, stage2.bias, "f2", pads=[stage2.weight.shape[-1] // 2] * 4)
    f2_abs = g.op("Abs", [f2], "f2_abs")
    energy2 = g.pool(f2_abs, half, "f2_energy_eps", len(stage2.bias), bias=EPS)
    log1 = g.op("Log", [energy1], "f1_log")
    log2 = g.op("Log", [energy2], "f2_log")
    # PCA residual (the "Q statistic"): patch energy the learned filters do not explain, per
    # cell. Thin scratches and cracks look like no good patch and land here. The cell mean of
    # ||p - m||^2 - ||W(p - m)||^2 is expanded into convolutions, so patches are never
    # materialised; the difference is never negative, so the Relu only catches rounding.
    energy_w, _ = _pooled([(np.ones((1, cin, k1, k1)) / 255**2, True)], k1, config.stride)
    pixels_sq = g.op("Mul", [nchw, nchw], "pixels_sq")
    energy = g.conv(pixels_sq, energy_w, np.zeros(1), "patch_energy", pads, config.stride)
    cross = g.channels(linear, cin + out1, cin + out1 + 1, "patch_cross")
    centred = g.op("Add", [energy, cross], "patch_centred")
    # ||W(p - m)||^2: the squared responses summed over the filters and pooled by one
    # convolution, which reads them in the blocked layout (stage 1 is padded to a block).
    f1_sq = g.op("Mul", [f1, f1], "f1_sq")
    summed = np.full((1, out1 + pad1, half, half), 1 / half**2, np.float32)
    explained = g.op(
        "Conv",
        [f1_sq, g.const("explained_w", summed)],
        "explained",
        kernel_shape=[half, half],
        strides=[half, half],
    )
    residual = g.op("Relu", [g.op("Sub", [centred, explained], "residual1_raw")], "residual1")
    log_res = g.op(
        "Log",
        [g.op("Add", [residual, g.const("eps_res", np.array(1e-5, np.float32))], "residual1_eps")],
        "residual1_log",
    )
    linear = g.channels(linear, 0, cin + out1, "pooled_linear_features")
    return h1, g.op("Concat", [linear, log_res, log1, log2], FEATURES, axis=1)


def _box(kernel: np.ndarray, size: int) -> np.ndarray:
    """``kernel`` (1x1) spread over ``size`` x ``size`` and divided by its area: a mean."""
    return np.tile(kernel, (1, 1, size, size)) / size**2


def _pooled(
    banks: list[tuple[np.ndarray, bool]], k1: int, stride: int
) -> tuple[np.ndarray, list[int]]:
    """One convolution kernel at the cell ``stride`` (and its pads) with the output channels of
    ``banks``: each a ``k1`` x ``k1`` kernel at stride 2 (padding ``k1 // 2``) averaged over
    ``stride / 2`` squared outputs when flagged, else a kernel applied as is at the cell
    stride, aligned to the cell's first pixel."""
    half, pad = stride // 2, k1 // 2
    size = max(k1 + 2 * (half - 1), pad + stride)
    parts = []
    for weight, pooled in banks:
        out = np.zeros((weight.shape[0], weight.shape[1], size, size))
        if pooled:
            for j in range(half):
                for i in range(half):
                    out[:, :, 2 * j : 2 * j + k1, 2 * i : 2 * i + k1] += weight / half**2
        else:
            k = weight.shape[-1]
            out[:, :, pad : pad + k, pad : pad + k] = weight
        parts.append(out)
    end = max(0, size - stride - pad)
    return np.concatenate(parts), [pad, pad, end, end]


def _scoring(g: _Builder, features: str, good: GoodModel) -> None:
    d = good.whiten.shape[0]
    z = g.op("Conv", [features, g.const("whiten", good.whiten.reshape(d, d, 1, 1))], "whitened")
    # Subtracting the whitened mean after the 1x1 conv equals whitening the centred features.
    mean_w = np.einsum("ij,jyx->iyx", good.whiten, good.mean)[None].astype(np.float32)
    r = g.op("Sub", [z, g.const("mean_whitened", mean_w)], "residual")
    sq = g.op("Mul", [r, r], "residual_sq")
    weighted = g.op("Mul", [sq, g.const("inv_var", good.inv_var[None])], "weighted")
    # One mean squared distance map per feature group, scaled to its typical peak on good.
    maps = len(good.map_weight)
    dist2 = g.op(
        "Conv", [weighted, g.const("map_weight", good.map_weight[:, :, None, None])], "dist2"
    )
    # Blurring squared distances adds up evidence over neighbouring cells, which long thin
    # defects (scratches, cracks) need; edge padding keeps the border at its level.
    k = BLUR_RADIUS
    pads = g.const("pads", np.array([0, 0, k, k, 0, 0, k, k], np.int64))
    padded = g.op("Pad", [dist2, pads], "dist2_padded", mode="edge")
    # The binomial blur is separable: a column pass then a row pass, 2 * (2k + 1) taps per
    # cell instead of (2k + 1)^2.
    taps = blur_taps().astype(np.float32)
    column = g.const("blur_column", np.tile(taps[:, None], (maps, 1, 1, 1)))
    row = g.const("blur_row", np.tile(taps[None, :], (maps, 1, 1, 1)))
    blurred = g.op("Conv", [padded, column], "blurred_columns", group=maps)
    blurred = g.op("Conv", [blurred, row], "blurred", group=maps)
    if maps > 1:
        axis1 = g.const("axis1", np.array([1], np.int64))
        blurred = g.op("ReduceMax", [blurred, axis1], "blurred_max", keepdims=1)
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
