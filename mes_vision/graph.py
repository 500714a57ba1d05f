"""The ONNX graph: preprocessed pixels in, ``score`` and ``anomaly_map`` out.

Training runs the same graph twice: truncated after the features, to fit the scorers on
exactly what the deployed model computes, and whole with each level's peak as an extra output,
to normalise the levels and calibrate the threshold on held-out images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mes_vision.features import (
    STD_EPS,
    FeatureConfig,
    FilterBank,
    PositionModel,
    Whitening,
    blur_taps,
)

# Opset 21 / IR 10 (onnx 1.16): every onnxruntime since 1.20 loads it, so older edge runtimes do.
OPSET = 21
IR_VERSION = 10
INPUT = "image"
SCORE = "score"
ANOMALY_MAP = "anomaly_map"
LEVEL_PEAKS = "level_peaks"
ENERGY_EPS = 1e-3
# Filter responses are computed at every RESPONSE_STEP-th pixel in each direction.
RESPONSE_STEP = 2
RESIDUAL_EPS = 1e-4


@dataclass(frozen=True)
class LevelScorer:
    """One level's whitening and its model of good: a ``PositionModel`` or a bank ``[M, D]``."""

    whitening: Whitening
    good: PositionModel | np.ndarray


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()

    def const(self, name: str, value: np.ndarray, dtype=np.float32) -> str:
        """An initializer; a name already added is shared (one value per name)."""
        if name in self._names:
            return name
        self._names.add(name)
        self.initializers.append(
            numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype), name)
        )
        return name

    def ints(self, name: str, values: Sequence[int]) -> str:
        return self.const(name, np.array(values, np.int64), np.int64)

    def op(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def conv(self, x: str, weight: np.ndarray, output: str, bias=None, pads=None) -> str:
        operands = [x, self.const(f"{output}_w", weight)]
        if bias is not None:
            operands.append(self.const(f"{output}_b", bias))
        k = weight.shape[-1]
        return self.op("Conv", operands, output, pads=pads or [k // 2] * 4)

    def avg_pool(self, x: str, size: int, output: str) -> str:
        return self.op("AveragePool", [x], output, kernel_shape=[size, size], strides=[size, size])


def _standardised_pyramid(g: _Builder, config: FeatureConfig) -> list[str]:
    """The input standardised per image (as ``features.standardise``) and its 2x2 averages."""
    nchw = g.op("Transpose", [INPUT], "nchw", perm=[0, 3, 1, 2])
    # LayerNormalization over C, H and W is features.standardise, in one fused kernel.
    levels = [
        g.op(
            "LayerNormalization",
            [
                nchw,
                g.const("ln_scale", np.ones((3, 1, 1))),
                g.const("ln_bias", np.zeros((3, 1, 1))),
            ],
            "level0",
            axis=1,
            epsilon=STD_EPS,
        )
    ]
    # 2x2 averages as a convolution: AveragePool on 3 channels takes a slow generic path.
    halve = np.zeros((3, 3, 2, 2))
    halve[np.arange(3), np.arange(3)] = 0.25
    for level in range(1, config.levels):
        levels.append(
            g.op(
                "Conv",
                [levels[-1], g.const("halve_w", halve)],
                f"level{level}",
                kernel_shape=[2, 2],
                strides=[2, 2],
            )
        )
    return levels


def _pooled_kernel(weight: np.ndarray, cell: int) -> np.ndarray:
    """``weight[out, in, k, k]`` applied at every RESPONSE_STEP-th pixel of a cell and
    averaged over the cell, as one kernel for a convolution at stride ``cell``."""
    samples = cell // RESPONSE_STEP
    k = weight.shape[-1]
    size = k + RESPONSE_STEP * (samples - 1)
    out = np.zeros((*weight.shape[:2], size, size))
    for i in range(samples):
        for j in range(samples):
            y, x = RESPONSE_STEP * i, RESPONSE_STEP * j
            out[:, :, y : y + k, x : x + k] += weight / samples**2
    return out


def _level_features(g: _Builder, x: str, bank: FilterBank, config: FeatureConfig, n: int) -> str:
    """Per cell: mean colour, log mean |response| and mean response of each filter, and the
    log mean energy the filters leave unexplained (PCA's Q statistic, where scratches land).

    Responses are taken at every second pixel: the 5x5 filters still see every pixel, at a
    quarter of the work. Every feature linear in the pixels is one convolution at the cell
    stride, its averaging folded into the kernel."""
    k, cell = config.kernel, config.cell
    cin, channels = bank.weight.shape[1], bank.weight.shape[0]
    f = g.op(
        "Conv",
        [x, g.const(f"l{n}_response_w", bank.weight), g.const(f"l{n}_response_b", bank.bias)],
        f"l{n}_response",
        pads=[k // 2] * 4,
        strides=[RESPONSE_STEP] * 2,
    )
    per_cell = cell // RESPONSE_STEP
    energy = g.avg_pool(g.op("Abs", [f], f"l{n}_abs"), per_cell, f"l{n}_energy")
    log_energy = g.op(
        "Log",
        [g.op("Add", [energy, g.const("energy_eps", np.array(ENERGY_EPS))], f"l{n}_e")],
        f"l{n}_log_energy",
    )
    # The mean colour (chroma has little patch variance, so the filters alone would miss
    # stains), the mean responses and the -2 m.p part of ||p - m||^2, in one convolution.
    size = k + RESPONSE_STEP * (per_cell - 1)
    box = np.zeros((cin, cin, size, size))
    for c in range(cin):
        box[c, c, k // 2 : k // 2 + cell, k // 2 : k // 2 + cell] = 1 / cell**2
    linear_w = np.concatenate(
        [box, _pooled_kernel(bank.weight, cell), _pooled_kernel(-2 * bank.mean, cell)]
    )
    linear_b = np.concatenate([np.zeros(cin), bank.bias, [(bank.mean**2).sum()]])
    pads = [k // 2, k // 2, size - cell - k // 2, size - cell - k // 2]
    linear = g.op(
        "Conv",
        [x, g.const(f"l{n}_linear_w", linear_w), g.const(f"l{n}_linear_b", linear_b)],
        f"l{n}_linear",
        pads=pads,
        strides=[cell, cell],
    )
    colour, mean, cross = (f"l{n}_colour", f"l{n}_mean", f"l{n}_cross")
    g.nodes.append(
        helper.make_node(
            "Split",
            [linear, g.ints(f"l{n}_split", [cin, channels, 1])],
            [colour, mean, cross],
            name=f"l{n}_split",
            axis=1,
        )
    )
    # ||p - m||^2 = sum of x^2 over the patch - 2 m.p + ||m||^2; ||W(p - m)||^2 = sum of f^2.
    squares = g.op(
        "Conv",
        [
            g.op("Mul", [x, x], f"l{n}_x_sq"),
            g.const(f"l{n}_sq_w", _pooled_kernel(np.ones((1, cin, k, k)), cell)),
        ],
        f"l{n}_patch_sq",
        pads=pads,
        strides=[cell, cell],
    )
    explained = g.avg_pool(
        g.op(
            "ReduceSum",
            [g.op("Mul", [f, f], f"l{n}_response_sq"), g.ints(f"l{n}_axis1", [1])],
            f"l{n}_explained_samples",
            keepdims=1,
        ),
        per_cell,
        f"l{n}_explained",
    )
    centred = g.op("Add", [squares, cross], f"l{n}_patch_energy")
    # Never negative but for rounding, which the Relu removes.
    residual = g.op("Relu", [g.op("Sub", [centred, explained], f"l{n}_q_raw")], f"l{n}_q")
    log_residual = g.op(
        "Log",
        [g.op("Add", [residual, g.const("q_eps", np.array(RESIDUAL_EPS))], f"l{n}_q_eps")],
        f"l{n}_log_q",
    )
    return g.op("Concat", [colour, log_energy, mean, log_residual], f"features{n}", axis=1)


def _distance(g: _Builder, features: str, scorer: LevelScorer, n: int, shape) -> str:
    """Mean squared whitened distance of each cell from good, ``[N, maps, h, w]``: one map
    per feature group for the position scorer, one for the bank."""
    w = scorer.whitening
    d = len(w.mean)
    z = g.conv(
        features, w.matrix.reshape(d, d, 1, 1), f"l{n}_z", bias=-(w.matrix @ w.mean), pads=[0] * 4
    )
    if isinstance(scorer.good, PositionModel):
        r = g.op("Sub", [z, g.const(f"l{n}_good_mean", scorer.good.mean[None])], f"l{n}_r")
        weighted = g.op(
            "Mul",
            [
                g.op("Mul", [r, r], f"l{n}_r_sq"),
                g.const(f"l{n}_inv_var", scorer.good.inv_var[None]),
            ],
            f"l{n}_weighted",
        )
        weight = scorer.good.map_weight[:, :, None, None]
        return g.conv(weighted, weight, f"l{n}_dist2", pads=[0] * 4)
    bank = np.asarray(scorer.good, np.float64)
    h, w_ = shape
    # ||z - b||^2 = ||z||^2 - 2 z.b + ||b||^2 for every cell and bank row: one MatMul.
    rows = g.op(
        "Transpose",
        [g.op("Reshape", [z, g.ints(f"l{n}_flat", [0, d, -1])], f"l{n}_z_flat")],
        f"l{n}_cells",
        perm=[0, 2, 1],
    )
    # A column of ones on the cells and ||b||^2 under the bank: one MatMul adds it too.
    ones = g.op(
        "Pad",
        [rows, g.ints(f"l{n}_ones_pads", [0, 0, 0, 0, 0, 1]), g.const("one", np.array(1.0))],
        f"l{n}_cells_1",
    )
    augmented = np.concatenate([-2 * bank.T, (bank**2).sum(axis=1)[None]])
    dots = g.op("MatMul", [ones, g.const(f"l{n}_bank_t", augmented)], f"l{n}_dots")
    nearest = g.op("ReduceMin", [dots, g.ints(f"l{n}_axis2", [2])], f"l{n}_nearest", keepdims=1)
    z_sq = g.op(
        "ReduceSum",
        [g.op("Mul", [rows, rows], f"l{n}_cells_sq"), g.ints(f"l{n}_axis2b", [2])],
        f"l{n}_z_sq",
        keepdims=1,
    )
    dist2 = g.op("Relu", [g.op("Add", [nearest, z_sq], f"l{n}_d2_raw")], f"l{n}_d2_rows")
    grid = g.op("Reshape", [dist2, g.ints(f"l{n}_grid", [0, 1, h, w_])], f"l{n}_d2_grid")
    return g.op("Mul", [grid, g.const(f"l{n}_inv_d", np.array(1 / d))], f"l{n}_dist2")


def _blur(g: _Builder, x: str, radius: int, n: int, maps: int) -> str:
    """Binomial blur of each map with edge padding: thin defects add up over neighbouring cells."""
    if radius == 0:
        return x
    pads = g.ints(f"l{n}_blur_pads", [0, 0, radius, radius, 0, 0, radius, radius])
    padded = g.op("Pad", [x, pads], f"l{n}_padded", mode="edge")
    taps = blur_taps(radius)
    column = g.op(
        "Conv",
        [padded, g.const(f"l{n}_blur_col_w", np.tile(taps[None, None, :, None], (maps, 1, 1, 1)))],
        f"l{n}_blur_col",
        group=maps,
    )
    return g.op(
        "Conv",
        [column, g.const(f"l{n}_blur_row_w", np.tile(taps[None, None, None, :], (maps, 1, 1, 1)))],
        f"l{n}_blurred",
        group=maps,
    )


def map_count(scorer: LevelScorer) -> int:
    return len(scorer.good.map_weight) if isinstance(scorer.good, PositionModel) else 1


def build_model(
    config: FeatureConfig,
    input_size: tuple[int, int],
    banks: Sequence[FilterBank],
    scorers: Sequence[LevelScorer] | None = None,
    norms: Sequence[float] | None = None,
) -> onnx.ModelProto:
    """The graph up to what is known: the features of every level (``features0``..) without
    ``scorers``, else the scorer. ``norms``: each map's typical peak on good images (1 when
    not yet known; maps in level order, then group order), by which it is divided before the
    maximum over maps."""
    width, height = input_size
    g = _Builder()
    levels = _standardised_pyramid(g, config)
    features = [_level_features(g, x, banks[n], config, n) for n, x in enumerate(levels)]
    if scorers is None:
        outputs = [
            helper.make_tensor_value_info(f, TensorProto.FLOAT, ["N", None, None, None])
            for f in features
        ]
    else:
        counts = [map_count(s) for s in scorers]
        norms = np.asarray(norms if norms is not None else np.ones(sum(counts)), np.float64)
        offsets = np.cumsum([0, *counts])
        b = config.border
        grid_h, grid_w = height // config.cell, width // config.cell
        maps, peaks = [], []
        for n, f in enumerate(features):
            shape = (grid_h >> n, grid_w >> n)
            level_map = _blur(
                g, _distance(g, f, scorers[n], n, shape), config.blur_radius, n, counts[n]
            )
            if n:
                scales = g.const(f"l{n}_scales", np.array([1, 1, 2**n, 2**n]))
                level_map = g.op("Resize", [level_map, "", scales], f"l{n}_up", mode="nearest")
            level_map = g.op(
                "Slice",
                [
                    level_map,
                    g.ints(f"l{n}_start", [b, b]),
                    g.ints(f"l{n}_end", [grid_h - b, grid_w - b]),
                    g.ints(f"l{n}_axes", [2, 3]),
                ],
                f"l{n}_map",
            )
            peaks.append(
                g.op(
                    "ReduceMax",
                    [level_map, g.ints(f"l{n}_axes_map", [2, 3])],
                    f"l{n}_peak",
                    keepdims=0,
                )
            )
            inverse = 1 / norms[offsets[n] : offsets[n + 1]]
            maps.append(
                g.op(
                    "Mul",
                    [level_map, g.const(f"l{n}_norm", inverse[None, :, None, None])],
                    f"l{n}_normed",
                )
            )
        g.op("Concat", peaks, LEVEL_PEAKS, axis=1)
        combined = g.op(
            "ReduceMax",
            [g.op("Concat", maps, "maps", axis=1), g.ints("axis1", [1])],
            "combined",
            keepdims=1,
        )
        g.op("Sqrt", [combined], ANOMALY_MAP)
        g.op("ReduceMax", [ANOMALY_MAP, g.ints("axes_map", [1, 2, 3])], SCORE, keepdims=0)
        map_h, map_w = grid_h - 2 * b, grid_w - 2 * b
        outputs = [
            helper.make_tensor_value_info(SCORE, TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info(ANOMALY_MAP, TensorProto.FLOAT, ["N", 1, map_h, map_w]),
            helper.make_tensor_value_info(LEVEL_PEAKS, TensorProto.FLOAT, ["N", int(offsets[-1])]),
        ]
    graph = helper.make_graph(
        g.nodes,
        "mes_vision_anomaly",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", height, width, 3])],
        outputs,
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="mes_vision"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model
