"""The pure rules of production execution, without a database."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from mes_domain.enterprise import BillOfMaterials, BomItem, ExecutionStatus
from mes_domain.production import CommandId, OperationStatus
from services.common.errors import RuleViolation
from services.production_execution import domain
from services.production_execution.domain import Action, RunTime, Step
from tests.services.production_execution.conftest import release_command

S = OperationStatus


@pytest.mark.parametrize(
    ("status", "action", "after"),
    [
        (S.READY, Action.START, S.RUNNING),
        (S.PAUSED, Action.START, S.RUNNING),
        (S.RUNNING, Action.PAUSE, S.PAUSED),
        (S.RUNNING, Action.COMPLETE, S.COMPLETED),
        (S.PAUSED, Action.COMPLETE, S.COMPLETED),
        (S.RUNNING, Action.SCRAP, S.RUNNING),
        (S.PAUSED, Action.SCRAP, S.PAUSED),
        (S.RUNNING, Action.COUNT, S.RUNNING),
    ],
)
def test_allowed_transitions(status, action, after):
    assert domain.next_status(status, action) is after


def test_every_other_transition_is_refused_with_the_status_field():
    allowed = set(domain.TRANSITIONS)
    refused = [(s, a) for s in S for a in Action if (s, a) not in allowed]
    # PENDING and COMPLETED operations take no command at all
    assert {(S.PENDING, a) for a in Action} | {(S.COMPLETED, a) for a in Action} <= set(refused)
    for status, action in refused:
        with pytest.raises(RuleViolation) as refusal:
            domain.next_status(status, action)
        assert refusal.value.field == "status"
        assert status.value in refusal.value.message


def test_run_time_excludes_pauses_and_never_runs_backwards():
    clock = RunTime()
    clock = clock.start(1_000_000)
    assert clock.at(1_004_000) == 4.0
    clock = clock.stop(1_005_000)  # pause after 5 s
    assert (clock.running_since, clock.run_time_s) == (None, 5.0)
    assert clock.at(1_100_000) == 5.0  # paused: no time adds up
    clock = clock.start(1_020_000)  # resumed 15 s later
    assert clock.started_at == 1_000_000  # the first start stays
    assert clock.stop(1_022_500).run_time_s == 7.5
    assert clock.stop(1_010_000).run_time_s == 5.0  # a clock gone back adds nothing


def test_routing_steps_sequence_by_operation_number():
    routing = release_command(kinds=("press", "welding", "assembly")).routing
    shuffled = routing.model_copy(update={"operations": list(reversed(routing.operations))})
    steps = domain.routing_steps(shuffled)
    assert [(s.operation_no, s.follows, s.status) for s in steps] == [
        (10, None, S.READY),
        (20, 10, S.PENDING),
        (30, 20, S.PENDING),
    ]


def test_ready_after_promotes_only_pending_followers():
    steps = [
        Step(10, None, S.COMPLETED),
        Step(20, 10, S.PENDING),
        Step(21, 10, S.RUNNING, rework=True),
        Step(30, 20, S.PENDING),
    ]
    assert domain.ready_after(10, steps) == [20]
    assert domain.ready_after(20, steps) == [30]
    assert domain.ready_after(30, steps) == []


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([S.READY, S.PENDING], ExecutionStatus.RELEASED),
        ([S.RUNNING, S.PENDING], ExecutionStatus.IN_PROGRESS),
        ([S.PAUSED, S.PENDING], ExecutionStatus.IN_PROGRESS),
        ([S.COMPLETED, S.READY], ExecutionStatus.IN_PROGRESS),
        ([S.COMPLETED, S.COMPLETED], ExecutionStatus.COMPLETED),
    ],
)
def test_order_status_follows_its_operations(statuses, expected):
    assert domain.order_status(statuses) is expected


def _bom(*items: tuple[str, float, str], base: float = 1.0) -> BillOfMaterials:
    return BillOfMaterials(
        v=1,
        source_system="ERP",
        document_id="BOM-1",
        revision=0,
        issued_at=1_700_000_000_000,
        bom_id="BOM-1",
        material_id="BODY-1",
        base_quantity=base,
        items=[
            BomItem(position=i + 1, component_id=c, quantity=q, uom=u)
            for i, (c, q, u) in enumerate(items)
        ],
    )


def test_backflush_is_component_quantity_times_good_over_base_quantity():
    bom = _bom(("SHEET", 4, "EA"), ("PAINT", 0.1, "L"), ("SHEET", 2, "EA"), base=2)
    consumed = domain.backflush(bom, 3)
    assert [(m.material_id, m.quantity, m.uom) for m in consumed] == [
        ("SHEET", 9.0, "EA"),  # (4 + 2) x 3 / 2: a component listed twice adds up
        ("PAINT", 0.15, "L"),  # rounded: not 0.15000000000000002
    ]
    assert domain.backflush(bom, 0) == []
    assert domain.backflush(None, 5) == []
    reserved = domain.requirements(bom, 10)
    assert [(r.material_id, r.quantity) for r in reserved] == [("SHEET", 30.0), ("PAINT", 0.5)]


def test_a_component_in_two_units_is_refused_at_its_position():
    with pytest.raises(RuleViolation) as refusal:
        domain.backflush(_bom(("SHEET", 1, "EA"), ("SHEET", 2, "KG")), 1)
    assert refusal.value.field == "bom.items[1].uom"


def test_only_the_routings_first_operation_consumes_components():
    assert domain.consumes_components(Step(10, None, S.RUNNING))
    assert not domain.consumes_components(Step(20, 10, S.RUNNING))
    assert not domain.consumes_components(Step(40, None, S.RUNNING, rework=True))


def test_open_quantity():
    assert domain.open_quantity(S.RUNNING, 10, counted_good=4, scrap=1) == 5
    assert domain.open_quantity(S.RUNNING, 10, counted_good=12, scrap=0) == 0
    assert domain.open_quantity(S.COMPLETED, 10, counted_good=0, scrap=0) == 0


def test_confirmation_content():
    run = RunTime(started_at=1_700_000_000_000, running_since=None, run_time_s=42.1234)
    view = domain.confirmation(
        order_id="PO-1",
        operation_no=10,
        station="press-01",
        good_quantity=9,
        scrap_quantity=1,
        run_time=run,
        completed_at=1_700_000_100_000,
        labour_time_s=None,
        materials=[],
        final=True,
    )
    assert view.document_id == "CONF-PO-1-10"
    assert (view.started_at, view.completed_at) == (1_700_000_000_000, 1_700_000_100_000)
    assert view.machine_time_s == view.labour_time_s == 42.123  # labour defaults to machine
    assert view.final
    erp = domain.production_confirmation(
        view, site="berlin", line="l1", issued_at=1_700_000_100_000
    )
    assert (erp.document_id, erp.good_quantity, erp.scrap_quantity, erp.final) == (
        "CONF-PO-1-10",
        9,
        1,
        True,
    )
    # ERP gets the actual times and the machine time too
    assert (erp.started_at, erp.finished_at) == (1_700_000_000_000, 1_700_000_100_000)
    assert erp.machine_time_s == 42.123
    with_labour = domain.confirmation(
        order_id="PO-1",
        operation_no=10,
        station="press-01",
        good_quantity=9,
        scrap_quantity=0,
        run_time=run,
        completed_at=1_700_000_100_000,
        labour_time_s=90,
        materials=[],
        final=False,
    )
    assert (with_labour.labour_time_s, with_labour.machine_time_s) == (90, 42.123)


def test_rework_follows_the_operation_at_fault_and_reopens_an_open_one():
    steps = [
        Step(10, None, S.COMPLETED, "press", "press-01", started_at=1),
        Step(20, 10, S.RUNNING, "camera_inspection", "vision-01", started_at=2),
        Step(30, 20, S.PENDING, "assembly"),
    ]
    at_fault = domain.operation_at_fault(steps, "vision-01")
    assert at_fault.operation_no == 20
    plan = domain.plan_rework(steps, at_fault, "camera_inspection")
    assert plan.reopen is None
    assert (plan.new.operation_no, plan.new.follows, plan.new.status, plan.new.rework) == (
        31,
        20,
        S.PENDING,  # 20 is still running
        True,
    )
    with_rework = [*steps, plan.new]
    assert domain.plan_rework(with_rework, at_fault, "camera_inspection").reopen == 31
    # after a completed operation the rework is READY at once
    done = domain.plan_rework(steps, steps[0], "press")
    assert (done.new.follows, done.new.status) == (10, S.READY)
    # a station that ran nothing of the order: the latest started operation
    assert domain.operation_at_fault(steps, "weld-01").operation_no == 20
    assert domain.operation_at_fault([Step(10, None, S.READY)], "x").operation_no == 10


def test_derived_ids_are_deterministic_and_fit():
    assert domain.derived_command_id("consume", "PO-1", "10") == "consume:PO-1:10"
    odd = domain.derived_command_id("consume", "PO 1/ä" * 20, "10")
    assert odd == domain.derived_command_id("consume", "PO 1/ä" * 20, "10")
    assert odd != domain.derived_command_id("consume", "PO 1/ä" * 20, "20")
    assert TypeAdapter(CommandId).validate_python(odd) == odd  # the pattern and length
    long_id = domain.document_id("CONF", "P" * 200, "10")
    assert len(long_id) == domain.DOCUMENT_ID_MAX
    assert long_id != domain.document_id("CONF", "P" * 200, "20")
