"""mes_domain.kpi against windows worked out by hand, and its invariants under hypothesis."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mes_domain.contracts import EquipmentState, InspectionResult, PartCount, StateChange
from mes_domain.kpi import (
    NO_PARTS,
    NO_PLANNED_TIME,
    NO_PRODUCTION_TIME,
    PERFORMANCE_ABOVE_1,
    UNKNOWN_INITIAL_STATE,
    columns_from_events,
    downtime_pareto,
    first_pass_yield,
    kpis_for_stations,
    kpis_from_events,
    mtbf_mttr,
    oee_from_totals,
    parts_by_shift,
    scrap_rate,
    shift_windows,
)

T0 = 1_795_132_800_000  # 2026-11-20 00:00 UTC
MIN = 60_000
HOUR = 60 * MIN


def st_(minute, state, reason=None):
    return StateChange(v=1, ts=T0 + minute * MIN, state=EquipmentState(state), reason_code=reason)


def pc(minute, good, bad=0):
    return PartCount(v=1, ts=T0 + minute * MIN, good=good, bad=bad)


def test_a_shift_with_breaks():
    # 8 h shift; two 15-min breaks and a 30-min lunch as planned stops; 20 min jam; 10 min setup
    states = [
        st_(0, "SETUP"), st_(10, "RUNNING"), st_(120, "PLANNED_STOP"), st_(135, "RUNNING"),
        st_(240, "PLANNED_STOP"), st_(270, "RUNNING"), st_(330, "UNPLANNED_STOP", "JAM"),
        st_(350, "RUNNING"), st_(400, "PLANNED_STOP"), st_(415, "RUNNING"),
    ]  # fmt: skip
    counts = [pc(100, 300, 10), pc(300, 400, 5), pc(470, 200, 5)]
    result = kpis_from_events(states, counts, T0, T0 + 8 * HOUR, 20.0)
    planned = (480 - 60) * 60  # breaks out
    running = (110 + 105 + 60 + 50 + 65) * 60
    assert result.planned_busy_time_s == planned
    assert result.actual_production_time_s == running
    assert result.planned_stop_time_s == 60 * 60
    assert result.downtime_by_state_s == {"SETUP": 600, "UNPLANNED_STOP": 1200}
    assert result.availability == pytest.approx(running / planned)
    assert result.performance == pytest.approx(20 * 920 / running)
    assert result.quality == pytest.approx(900 / 920)
    assert result.oee == pytest.approx(result.availability * result.performance * result.quality)
    assert result.flags == frozenset()


def test_a_window_cuts_a_state_interval_in_two():
    states = [st_(-30, "RUNNING"), st_(20, "IDLE"), st_(70, "RUNNING")]
    first = kpis_from_events(states, [], T0, T0 + HOUR, 10.0)
    second = kpis_from_events(states, [], T0 + HOUR, T0 + 2 * HOUR, 10.0)
    assert (first.actual_production_time_s, first.downtime_by_state_s) == (1200, {"IDLE": 2400})
    assert (second.actual_production_time_s, second.downtime_by_state_s) == (3000, {"IDLE": 600})


def test_duplicated_and_out_of_order_events_count_once():
    states = [st_(30, "IDLE"), st_(0, "RUNNING"), st_(30, "IDLE"), st_(0, "RUNNING")]
    counts = [pc(10, 5), pc(10, 5), pc(40, 1, 1)]
    result = kpis_from_events(states, counts, T0, T0 + HOUR, 60.0)
    assert result.actual_production_time_s == 1800
    assert (result.produced_quantity, result.good_quantity) == (7, 6)


def test_two_states_at_one_timestamp_resolve_the_same_whatever_the_order():
    a, b = st_(0, "RUNNING"), st_(0, "IDLE")
    one = kpis_from_events([a, b], [], T0, T0 + HOUR, 1.0)
    other = kpis_from_events([b, a], [], T0, T0 + HOUR, 1.0)
    assert one == other and one.actual_production_time_s == 3600  # RUNNING sorts after IDLE


def test_a_station_that_never_ran():
    result = kpis_from_events([st_(-5, "IDLE")], [], T0, T0 + HOUR, 10.0)
    assert result.availability == 0.0
    assert result.performance is None and result.quality is None and result.oee is None
    assert result.flags == {NO_PRODUCTION_TIME, NO_PARTS}


def test_no_known_state_and_zero_planned_time_are_flags_not_errors():
    result = kpis_from_events([], [pc(5, 3)], T0, T0 + HOUR, 10.0)
    assert result.availability is None and result.oee is None
    assert {NO_PLANNED_TIME, UNKNOWN_INITIAL_STATE} <= result.flags
    assert result.unknown_time_s == 3600 and result.quality == 1.0
    planned_only = kpis_from_events([st_(0, "PLANNED_STOP")], [], T0, T0 + HOUR, 10.0)
    assert NO_PLANNED_TIME in planned_only.flags and planned_only.planned_stop_time_s == 3600


def test_offline_counts_only_inside_the_shift_calendar():
    states = [st_(0, "OFFLINE"), st_(30, "RUNNING")]
    scheduled = [(T0 + 20 * MIN, T0 + 2 * HOUR)]
    result = kpis_from_events(states, [], T0, T0 + HOUR, 10.0, scheduled=scheduled)
    assert result.downtime_by_state_s == {"OFFLINE": 600}
    assert result.unscheduled_offline_time_s == 1200
    assert result.planned_busy_time_s == 600 + 1800


def test_performance_above_one_is_flagged_not_clamped():
    result = oee_from_totals(3600, 3600, 10.0, 720, 720)
    assert result.performance == 2.0 and PERFORMANCE_ABOVE_1 in result.flags
    assert result.oee == 2.0


@pytest.mark.parametrize(
    "args, message",
    [
        ((-1, 0, 1, 0, 0), "planned_busy_time_s"),
        ((10, 20, 1, 0, 0), "exceeds planned"),
        ((10, 5, 0, 1, 1), "ideal_cycle_time_s"),
        ((10, 5, 1, 1, 2), "good_quantity"),
        ((float("nan"), 5, 1, 1, 1), "planned_busy_time_s"),
    ],
)
def test_nonsense_totals_are_refused_with_the_argument_named(args, message):
    with pytest.raises(ValueError, match=message):
        oee_from_totals(*args)


def test_first_pass_yield_scrap_rate_mtbf_and_pareto():
    def inspection(minute, part, verdict):
        evidence = {"reason": "unreadable"} if verdict == "ERROR" else {"score": 0.1}
        return InspectionResult(
            v=1, ts=T0 + minute * MIN, part_id=part, verdict=verdict, threshold=0.5,
            model_id="m", model_version="1", latency_ms=5.0, **evidence,
        )  # fmt: skip

    inspections = [
        inspection(1, "p1", "GOOD"), inspection(2, "p2", "DEFECT"),
        inspection(3, "p2", "GOOD"), inspection(4, "p3", "GOOD"),
        # p3's earlier image was unreadable: no verdict, so p3 still passes first time.
        inspection(0, "p3", "ERROR"), inspection(5, "p4", "ERROR"),
    ]  # fmt: skip
    assert first_pass_yield(inspections) == pytest.approx(2 / 3)
    assert first_pass_yield([]) is None
    assert scrap_rate(200, 190) == 0.05 and scrap_rate(0, 0) is None

    states = [
        st_(0, "RUNNING"), st_(10, "UNPLANNED_STOP", "JAM"), st_(15, "UNPLANNED_STOP", "JAM"),
        st_(20, "RUNNING"), st_(40, "UNPLANNED_STOP", "MOTOR"), st_(50, "RUNNING"),
        st_(55, "IDLE"),
    ]  # fmt: skip
    reliability = mtbf_mttr(states, T0, T0 + HOUR)
    assert reliability.failures == 2
    assert reliability.mtbf_s == (10 + 20 + 5) * 60 / 2
    assert reliability.mttr_s == (10 + 10) * 60 / 2
    assert mtbf_mttr([st_(0, "RUNNING")], T0, T0 + HOUR).mtbf_s is None
    assert downtime_pareto(states, T0, T0 + HOUR) == [
        ("JAM", 600.0, 2), ("MOTOR", 600.0, 1), ("IDLE", 300.0, 1)
    ]  # fmt: skip


def test_shift_windows_cross_midnight_and_follow_daylight_saving(demo_plant):
    site = demo_plant.sites[0]
    # Thu 2026-03-26 to Mon 2026-03-30; Berlin changes to summer time on Sun 2026-03-29.
    start = 1_774_483_200_000  # 2026-03-26 00:00 UTC
    windows = shift_windows(site, start, start + 4 * 24 * HOUR)
    names = [w.name for w in windows]
    assert names[:4] == ["night", "early", "late", "night"]  # Wed night runs into Thursday
    thursday_night = windows[3]
    assert thursday_night.end_ms - thursday_night.start_ms == 8 * HOUR
    assert not any(w.start_ms >= start + 2 * 24 * HOUR for w in windows)  # no weekend shifts
    late = [w for w in windows if w.name == "late"]
    assert all(w.end_ms - w.start_ms == 8 * HOUR for w in late)
    counts = [PartCount(v=1, ts=late[0].start_ms + 1, good=4, bad=1)] * 2
    assert parts_by_shift(counts, late)[late[0]] == (4, 1)


STATES = st.sampled_from(list(EquipmentState))


@settings(max_examples=300, deadline=None)
@given(
    changes=st.lists(st.tuples(st.integers(-120, 120), STATES), max_size=30),
    counts=st.lists(
        st.tuples(st.integers(-10, 70), st.integers(0, 50), st.integers(0, 5)), max_size=20
    ),
    cycle=st.floats(0.5, 120),
    data=st.data(),
)
def test_invariants_for_any_events(changes, counts, cycle, data):
    states = [st_(minute, state) for minute, state in changes]
    parts = [pc(minute, good, bad) for minute, good, bad in counts]
    result = kpis_from_events(states, parts, T0, T0 + HOUR, cycle)
    total = (
        result.planned_busy_time_s + result.planned_stop_time_s
        + result.unscheduled_offline_time_s + result.unknown_time_s
    )  # fmt: skip
    assert total == pytest.approx(3600)
    if result.oee is not None:
        assert result.oee == pytest.approx(
            result.availability * result.performance * result.quality
        )
    for ratio in (result.availability, result.quality):
        assert ratio is None or 0 <= ratio <= 1
    shuffled = data.draw(st.permutations(states + states[: len(states) // 2]))
    again = kpis_from_events(shuffled, list(reversed(parts)) + parts, T0, T0 + HOUR, cycle)
    assert again == result


@settings(max_examples=200, deadline=None)
@given(
    stations=st.lists(
        st.tuples(
            st.lists(st.tuples(st.integers(-90, 90), STATES), max_size=15),
            st.lists(
                st.tuples(st.integers(-10, 70), st.integers(0, 20), st.integers(0, 3)), max_size=8
            ),
            st.floats(0.5, 60),
        ),
        min_size=1,
        max_size=6,
    ),
    calendar=st.booleans(),
)
def test_the_vectorised_path_equals_the_scalar_one(stations, calendar):
    scheduled = [(T0 + 10 * MIN, T0 + 40 * MIN)] if calendar else None
    events = [
        ([st_(m, s) for m, s in changes], [pc(m, g, b) for m, g, b in counts])
        for changes, counts, _ in stations
    ]
    cycles = [cycle for _, _, cycle in stations]
    vectorised = kpis_for_stations(
        columns_from_events(events), cycles, T0, T0 + HOUR, scheduled=scheduled
    )
    scalar = [
        kpis_from_events(states, counts, T0, T0 + HOUR, cycle, scheduled=scheduled)
        for (states, counts), cycle in zip(events, cycles, strict=True)
    ]
    assert vectorised == scalar
