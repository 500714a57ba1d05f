"""The model registry under moto: records, the life cycle, and races between decisions."""

import itertools
import math

import boto3
import pytest

from lambdas.model_pipeline.registry import (
    ALLOWED_TRANSITIONS,
    ApprovalNotPending,
    Gate,
    InvalidTransition,
    Lineage,
    ModelNotFound,
    ModelRecord,
    ModelRegistry,
    ModelStatus,
    check_transition,
)
from tests.lambdas.model_pipeline.conftest import MODELS_TABLE, REGION, STATION_KEY

VERSION = "1.0.1795169220"
CARD = {"threshold": 12.5, "validation": {"auroc": 0.97, "good_score": {"min": 1.25}}}


def record(version=VERSION, status=ModelStatus.TRAINED, station=STATION_KEY, **fields):
    values = {
        "requested_by": "quality.expert",
        "metrics": {"auroc": 0.97, "defect_recall": None, "threshold": 12.5},
        "gate": Gate(passed=True, unmeasured=["defect_recall"]),
        "lineage": Lineage(
            dataset_bucket="datasets",
            dataset_prefix="datasets/berlin/body-line-1/vision-01/",
            content_hash="0" * 64,
            good_images=25,
            defect_images=0,
        ),
        "card": CARD,
    }
    return ModelRecord(station=station, model_version=version, status=status, **(values | fields))


class PagedClient:
    """A DynamoDB client whose queries and scans return two items per page."""

    def __init__(self, dynamodb):
        self._dynamodb = dynamodb
        self.pages = 0

    def __getattr__(self, name):
        return getattr(self._dynamodb, name)

    def query(self, **request):
        self.pages += 1
        return self._dynamodb.query(Limit=2, **request)

    def scan(self, **request):
        self.pages += 1
        return self._dynamodb.scan(Limit=2, **request)


@pytest.mark.parametrize(
    ("current", "target"),
    [(c, t) for c, t in itertools.product(ModelStatus, ModelStatus)],
)
def test_only_the_life_cycle_transitions_are_allowed(current, target):
    allowed = {
        (ModelStatus.TRAINED, ModelStatus.APPROVED),
        (ModelStatus.TRAINED, ModelStatus.REJECTED),
        (ModelStatus.APPROVED, ModelStatus.DEPLOYED),
    }
    assert {(c, t) for c, targets in ALLOWED_TRANSITIONS.items() for t in targets} == allowed
    if (current, target) in allowed:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidTransition) as raised:
            check_transition(current, target, STATION_KEY, VERSION)
        message = str(raised.value)
        assert f"from {current.value} to {target.value}" in message
        assert STATION_KEY in message and VERSION in message


def test_a_record_reads_back_as_it_was_registered(registry):
    stored = registry.register(record(metrics={"auroc": 0.97, "defect_recall": None}))

    again = registry.get(STATION_KEY, VERSION)

    assert again == stored
    assert again.card == CARD  # nested floats survive exactly
    assert again.metrics == {"auroc": 0.97, "defect_recall": None}
    assert again.lineage.good_images == 25
    assert again.created_at and again.updated_at


def test_a_metric_that_is_not_a_number_is_stored_as_null(registry):
    registry.register(record(metrics={"auroc": math.nan}))

    assert registry.get(STATION_KEY, VERSION).metrics == {"auroc": None}


def test_registering_twice_keeps_one_record_and_never_moves_its_status_back(registry):
    registry.register(record())
    registry.transition(STATION_KEY, VERSION, ModelStatus.APPROVED, approved_by="jane")

    again = registry.register(record(status=ModelStatus.TRAINED))

    assert again.status is ModelStatus.APPROVED
    assert [r.status for r in registry.list(STATION_KEY)] == [ModelStatus.APPROVED]


def test_approval_stamps_the_reviewer_and_uses_up_the_token(registry):
    registry.register(record())
    registry.store_approval_token(STATION_KEY, VERSION, "token-1")
    assert registry.get(STATION_KEY, VERSION).approval_token == "token-1"

    approved = registry.transition(
        STATION_KEY, VERSION, ModelStatus.APPROVED, approved_by="jane", decision_comment="ok"
    )

    assert approved.status is ModelStatus.APPROVED
    assert (approved.approved_by, approved.decision_comment) == ("jane", "ok")
    assert approved.approved_at and approved.approval_token is None
    assert registry.get(STATION_KEY, VERSION) == approved


def test_deployment_records_the_deployment_id(registry):
    registry.register(record())
    registry.transition(STATION_KEY, VERSION, ModelStatus.APPROVED, approved_by="jane")

    deployed = registry.transition(STATION_KEY, VERSION, ModelStatus.DEPLOYED, deployment_id="d-1")

    assert (deployed.status, deployed.deployment_id) == (ModelStatus.DEPLOYED, "d-1")
    assert deployed.deployed_at and deployed.approved_by == "jane"


def test_a_forbidden_transition_changes_nothing(registry):
    registry.register(record(status=ModelStatus.REJECTED))
    before = registry.get(STATION_KEY, VERSION)

    with pytest.raises(InvalidTransition, match="from REJECTED to APPROVED"):
        registry.transition(STATION_KEY, VERSION, ModelStatus.APPROVED, approved_by="jane")

    assert registry.get(STATION_KEY, VERSION) == before


def test_of_two_concurrent_approvals_exactly_one_wins(registry):
    # Given two reviewers who both read the model while it was TRAINED
    registry.register(record())
    stale = registry.get(STATION_KEY, VERSION)
    first = registry.transition(STATION_KEY, VERSION, ModelStatus.APPROVED, approved_by="jane")
    reads = iter([stale])  # the second reviewer's read happened before the first one's write
    second = ModelRegistry(MODELS_TABLE)
    real_get = second.get
    second.get = lambda station, version: next(reads, None) or real_get(station, version)

    # When the second one writes too
    with pytest.raises(InvalidTransition, match="from APPROVED to APPROVED"):
        second.transition(STATION_KEY, VERSION, ModelStatus.APPROVED, approved_by="joe")

    # Then the first decision stands
    assert first.approved_by == "jane"
    assert registry.get(STATION_KEY, VERSION).approved_by == "jane"


def test_a_transition_sets_only_known_fields(registry):
    registry.register(record())

    with pytest.raises(ValueError, match="cannot set status"):
        registry.transition(STATION_KEY, VERSION, ModelStatus.APPROVED, status="DEPLOYED")


def test_an_unknown_model_is_reported(registry):
    with pytest.raises(ModelNotFound, match=f"no model {VERSION} registered for"):
        registry.get(STATION_KEY, VERSION)
    with pytest.raises(ModelNotFound):
        registry.transition(STATION_KEY, VERSION, ModelStatus.APPROVED)
    with pytest.raises(ModelNotFound):
        registry.store_approval_token(STATION_KEY, VERSION, "token")


def test_only_a_trained_model_can_wait_for_approval(registry):
    registry.register(record(status=ModelStatus.REJECTED))

    with pytest.raises(ApprovalNotPending, match="is REJECTED, not TRAINED"):
        registry.store_approval_token(STATION_KEY, VERSION, "token")

    assert registry.get(STATION_KEY, VERSION).approval_token is None


def test_listing_reads_every_page_newest_first(aws):
    paged = PagedClient(boto3.client("dynamodb", region_name=REGION))
    registry = ModelRegistry(MODELS_TABLE, dynamodb=paged)
    versions = [f"1.0.{1_795_169_220 + i}" for i in range(5)]
    for version in versions:
        registry.register(record(version=version))
    registry.register(record(station="berlin/body-line-1/vision-02"))

    paged.pages = 0
    station_models = registry.list(STATION_KEY)
    query_pages, paged.pages = paged.pages, 0
    everything = registry.list()

    assert [r.model_version for r in station_models] == versions[::-1]
    assert len(everything) == 6
    assert query_pages == 3 and paged.pages >= 3  # both listings went past their first page


def test_redacted_records_hide_the_token():
    assert record(approval_token="secret").redacted().approval_token is None
