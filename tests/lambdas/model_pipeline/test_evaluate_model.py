"""Step 3: the quality gate, pure, and through its handler."""

import math

import pytest

from lambdas.model_pipeline import evaluate_model
from lambdas.model_pipeline.gate import evaluate
from lambdas.model_pipeline.settings import EnvVar
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.model_pipeline.conftest import sample_state


def card(auroc, recall):
    return {"threshold": 1.0, "validation": {"auroc": auroc, "defect_recall": recall}}


def test_a_model_at_or_above_both_minimums_passes():
    result = evaluate(card(0.9, 0.8), min_auroc=0.9, min_defect_recall=0.8)

    assert (result.passed, result.reasons, result.unmeasured) == (True, [], [])


@pytest.mark.parametrize(
    ("auroc", "recall", "reasons"),
    [
        (0.85, 0.95, ["auroc 0.850 is below the minimum 0.900"]),
        (0.95, 0.5, ["defect_recall 0.500 is below the minimum 0.800"]),
        (
            0.6,
            0.1,
            [
                "auroc 0.600 is below the minimum 0.900",
                "defect_recall 0.100 is below the minimum 0.800",
            ],
        ),
    ],
)
def test_each_metric_below_its_minimum_fails_with_a_reason(auroc, recall, reasons):
    result = evaluate(card(auroc, recall), min_auroc=0.9, min_defect_recall=0.8)

    assert not result.passed
    assert result.reasons == reasons


@pytest.mark.parametrize(
    "validation",
    [
        {"auroc": None, "defect_recall": None, "false_reject_rate": 0.02},  # no defect images
        {"auroc": math.nan, "defect_recall": "n/a"},
        {},
    ],
)
def test_unmeasured_metrics_do_not_fail_the_gate_but_are_listed(validation):
    result = evaluate({"validation": validation}, min_auroc=0.9, min_defect_recall=0.8)

    assert result.passed
    assert result.unmeasured == ["auroc", "defect_recall"]


def test_a_measured_failure_is_not_hidden_by_an_unmeasured_metric():
    result = evaluate(card(0.5, None), min_auroc=0.9, min_defect_recall=0.8)

    assert not result.passed
    assert result.unmeasured == ["defect_recall"]


def test_the_handler_applies_the_configured_minimums(environment, monkeypatch):
    monkeypatch.setenv(EnvVar.MIN_DEFECT_RECALL, "0.7")
    state = sample_state()  # auroc 0.97, defect recall 0.75

    result = evaluate_model.lambda_handler(state, LambdaContext())

    assert result == {"passed": True, "reasons": [], "unmeasured": []}
