"""Step 4 under moto: the registry record of a gated model, written once."""

from lambdas.model_pipeline import register_model
from lambdas.model_pipeline.registry import ModelStatus
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.model_pipeline.conftest import MODEL_BUCKET, STATION_KEY, sample_state

PASSED = {"passed": True, "reasons": [], "unmeasured": ["auroc"]}


def register(state):
    return register_model.lambda_handler(state, LambdaContext())


def test_a_model_that_passed_the_gate_is_registered_trained_with_its_lineage(registry):
    state = sample_state(evaluation=PASSED)

    assert register(state) == {"status": "TRAINED"}

    record = registry.get(STATION_KEY, state["training"]["model_version"])
    assert record.status is ModelStatus.TRAINED
    assert record.requested_by == "quality.expert"
    assert record.requested_by_sub == "0a1b2c3d-requester"  # who may not approve it
    assert record.metrics == {
        "threshold": 14.25,
        "auroc": 0.97,
        "defect_recall": 0.75,
        "false_reject_rate": 0.04,
    }
    assert record.gate.unmeasured == ["auroc"]
    assert record.lineage.content_hash == state["dataset"]["content_hash"]
    assert (record.lineage.good_images, record.lineage.defect_images) == (24, 4)
    assert record.lineage.dataset_sha256 == state["training"]["card"]["dataset_sha256"]
    assert (record.model_bucket, record.model_prefix) == (
        MODEL_BUCKET,
        state["training"]["s3_prefix"],
    )
    assert record.card == state["training"]["card"]
    assert record.rejected_by is None


def test_a_model_that_failed_the_gate_is_registered_rejected_with_the_reasons(registry):
    state = sample_state()  # defect recall below the minimum

    assert register(state) == {"status": "REJECTED"}

    record = registry.get(STATION_KEY, state["training"]["model_version"])
    assert record.status is ModelStatus.REJECTED
    assert record.rejected_by == "quality-gate" and record.rejected_at
    assert record.rejection_reasons == ["defect_recall 0.750 is below the minimum 0.800"]


def test_a_rerun_neither_duplicates_nor_regresses_the_model(registry):
    state = sample_state(evaluation=PASSED)
    version = state["training"]["model_version"]
    register(state)
    first = registry.get(STATION_KEY, version)

    assert register(state) == {"status": "TRAINED"}
    assert registry.get(STATION_KEY, version) == first

    registry.transition(STATION_KEY, version, ModelStatus.APPROVED, approved_by="jane")
    assert register(state) == {"status": "APPROVED"}
    assert [r.status for r in registry.list(STATION_KEY)] == [ModelStatus.APPROVED]
