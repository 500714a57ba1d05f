"""StateChange and PartCount derived from PLC state codes, bits and cumulative counters."""

from __future__ import annotations

import json

import pytest
from data_collector.derive import (
    COUNTER_RESET,
    UNKNOWN_STATE_CODE,
    StationDeriver,
    counter_delta,
)
from data_collector.readings import (
    COUNTER_BAD,
    COUNTER_GOOD,
    COUNTER_REJECT,
    COUNTER_TOTAL,
    STATE,
    STATE_FAULT,
    STATE_RUNNING,
    STATE_SETUP,
    Reading,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from mes_domain.collection import BooleanStateSource, CodeStateSource, CounterSource
from mes_domain.contracts import MachineEvent, PartCount, ReadingQuality, StateChange

T0 = 1_700_000_000_000
ADDR = {"protocol": "modbus", "connection": "plc", "address": 0}


def code_source(**extra) -> CodeStateSource:
    return CodeStateSource.model_validate(
        {"source": ADDR, "codes": {"6": "RUNNING", "5": "IDLE", "9": "UNPLANNED_STOP"}, **extra}
    )


def bool_source() -> BooleanStateSource:
    bit = {**ADDR, "table": "coil", "type": "bool"}
    return BooleanStateSource.model_validate({"running": bit, "fault": bit, "setup": bit})


def counters(bits: int = 16, pairing: str = "good_bad") -> CounterSource:
    names = ("good", "bad") if pairing == "good_bad" else ("total", "reject")
    return CounterSource.model_validate({**{n: ADDR for n in names}, "bits": bits})


def reading(point: str, value, ts: int = T0, quality=ReadingQuality.GOOD) -> Reading:
    return Reading("press-01", point, ts, value, quality)


def parts(events) -> tuple[int, int]:
    counts = [e for e in events if isinstance(e, PartCount)]
    return sum(c.good for c in counts), sum(c.bad for c in counts)


# -- counter_delta: the rule, case by case ---------------------------------------------------


@pytest.mark.parametrize(
    ("last", "value", "bits", "expected"),
    [
        (None, 500, 16, (0, "baseline")),
        (10, 15, 16, (5, "increase")),
        (10, 10, 16, (0, "increase")),
        (65_530, 4, 16, (10, "rollover")),  # 65530 -> 65535 -> 0 -> 4
        (2**32 - 1, 0, 32, (1, "rollover")),
        (30_000, 7, 16, (7, "reset")),  # a drop from the middle: the PLC restarted
        (2**32 - 100, 5, 32, (105, "rollover")),
        (1_000, 3, 64, (3, "reset")),  # a 64-bit counter never wraps in practice
        (100, -1, 16, (65_435, "increase")),  # int16 read of 65535 is -1: taken modulo 2**16
    ],
)
def test_counter_delta_rule(last, value, bits, expected):
    assert counter_delta(last, value, bits) == expected


def test_the_rollover_window_is_one_sixteenth_of_the_range():
    assert counter_delta(65_536 - 4096, 0, 16) == (4096, "rollover")
    assert counter_delta(65_536 - 4097, 0, 16) == (0, "reset")


# -- state ---------------------------------------------------------------------------------


def test_state_codes_map_and_emit_only_on_change():
    d = StationDeriver("press-01", state=code_source())
    out = d.feed(reading(STATE, 6))
    assert [(o.state, o.reason_code) for o in out] == [("RUNNING", "6")]
    assert d.feed(reading(STATE, 6.0, T0 + 1)) == []  # same state: nothing
    (idle,) = d.feed(reading(STATE, 5, T0 + 2))
    assert isinstance(idle, StateChange) and idle.state == "IDLE" and idle.ts == T0 + 2


def test_an_unmapped_code_is_the_unknown_state_and_is_reported():
    d = StationDeriver("press-01", state=code_source(unknown_state="PLANNED_STOP"))
    event, change = d.feed(reading(STATE, 42))
    assert isinstance(event, MachineEvent) and event.code == UNKNOWN_STATE_CODE
    assert "'42'" in event.message and "press-01" in event.message
    assert change.state == "PLANNED_STOP" and change.reason_code == "42"


def test_boolean_bits_priority_fault_setup_running_idle():
    d = StationDeriver("press-01", state=bool_source())
    assert d.feed(reading(STATE_RUNNING, True)) == []  # not every bit known yet
    assert d.feed(reading(STATE_FAULT, False)) == []
    (first,) = d.feed(reading(STATE_SETUP, False))
    assert first.state == "RUNNING"
    assert d.feed(reading(STATE_SETUP, True, T0 + 1))[0].state == "SETUP"
    assert d.feed(reading(STATE_FAULT, True, T0 + 2))[0].state == "UNPLANNED_STOP"
    assert d.feed(reading(STATE_SETUP, False, T0 + 3)) == []  # fault still wins
    assert d.feed(reading(STATE_FAULT, False, T0 + 4))[0].state == "RUNNING"
    assert d.feed(reading(STATE_RUNNING, False, T0 + 5))[0].state == "IDLE"


def test_bad_stale_and_pre_2000_readings_change_nothing():
    d = StationDeriver("press-01", state=code_source())
    d.feed(reading(STATE, 6, T0 + 10))
    assert d.feed(reading(STATE, 9, T0 + 11, ReadingQuality.BAD)) == []
    assert d.feed(reading(STATE, 9, T0 + 5)) == []  # older than the last
    assert d.feed(reading(STATE, 9, 1000)) == []
    assert d.memory["state"] == "RUNNING"


# -- counters -------------------------------------------------------------------------------


def test_good_and_bad_counters_give_deltas_through_rollover_and_reset():
    d = StationDeriver("press-01", counters=counters(bits=16))
    assert d.feed(reading(COUNTER_GOOD, 65_530)) == []  # baseline
    assert d.feed(reading(COUNTER_BAD, 7)) == []
    assert parts(d.feed(reading(COUNTER_GOOD, 65_535, T0 + 1))) == (5, 0)
    assert parts(d.feed(reading(COUNTER_GOOD, 3, T0 + 2))) == (4, 0)  # rollover
    assert parts(d.feed(reading(COUNTER_BAD, 9, T0 + 3))) == (0, 2)
    event, count = d.feed(reading(COUNTER_BAD, 1, T0 + 4))  # the PLC restarted
    assert event.code == COUNTER_RESET and (count.good, count.bad) == (0, 1)
    assert d.feed(reading(COUNTER_GOOD, 3, T0 + 5)) == []  # no change, no zero count


def test_bad_quality_counter_readings_are_ignored_and_lose_nothing():
    d = StationDeriver("press-01", counters=counters())
    d.feed(reading(COUNTER_GOOD, 100))
    assert d.feed(reading(COUNTER_GOOD, 0, T0 + 1, ReadingQuality.BAD)) == []
    assert d.feed(reading(COUNTER_GOOD, 0, T0 + 2, ReadingQuality.UNCERTAIN)) == []
    assert d.feed(reading(COUNTER_GOOD, "n/a", T0 + 3)) == []
    assert parts(d.feed(reading(COUNTER_GOOD, 104, T0 + 4))) == (4, 0)  # not a reset


def test_total_and_reject_never_give_a_negative_good():
    d = StationDeriver("press-01", counters=counters(pairing="total_reject"))
    d.feed(reading(COUNTER_TOTAL, 10))
    d.feed(reading(COUNTER_REJECT, 2))
    assert parts(d.feed(reading(COUNTER_TOTAL, 13, T0 + 1))) == (3, 0)
    # The reject of one of those three parts is read after them: a debt, not a negative good
    assert parts(d.feed(reading(COUNTER_REJECT, 3, T0 + 2))) == (0, 1)
    assert parts(d.feed(reading(COUNTER_TOTAL, 15, T0 + 3))) == (1, 0)  # 2 parts, 1 pays back
    # Reject read before its total: good stays exact
    assert parts(d.feed(reading(COUNTER_REJECT, 4, T0 + 4))) == (0, 1)
    assert parts(d.feed(reading(COUNTER_TOTAL, 17, T0 + 5))) == (1, 0)


def test_memory_round_trips_through_json_so_a_gateway_restart_counts_once():
    d = StationDeriver("press-01", state=code_source(), counters=counters(bits=32))
    d.feed(reading(STATE, 6))
    d.feed(reading(COUNTER_GOOD, 1000))
    d.feed(reading(COUNTER_GOOD, 1010, T0 + 1))
    restored = StationDeriver(
        "press-01",
        state=code_source(),
        counters=counters(bits=32),
        memory=json.loads(json.dumps(d.memory)),
    )
    assert restored.feed(reading(STATE, 6, T0 + 2)) == []  # not a change
    assert parts(restored.feed(reading(COUNTER_GOOD, 1013, T0 + 3))) == (3, 0)


# -- properties: the sum of deltas is the parts produced -----------------------------------

# A step of the PLC: make some good and bad parts, or restart (counters back to zero).
steps = st.lists(
    st.one_of(
        st.tuples(st.just("make"), st.integers(0, 3000), st.integers(0, 300)),
        st.tuples(st.just("restart"), st.integers(0, 50), st.integers(0, 5)),
    ),
    max_size=60,
)


def _run_plc(bits, start_good, start_bad, plan, deriver, points, restart_every=None):
    """Feed the deriver the PLC's counters after each step; return true (good, bad) made
    after the baseline and the derived sums."""
    modulus = 1 << bits
    good, bad = start_good, start_bad
    made_good = made_bad = 0
    events = []
    ts = T0
    events += deriver.feed(reading(points[0], good % modulus, ts))
    events += deriver.feed(reading(points[1], bad % modulus, ts))
    for i, (what, g, b) in enumerate(plan):
        ts += 1000
        if what == "restart":
            good, bad = g, b  # the PLC restarted and made g, b parts since
        else:
            good, bad = good + g, bad + b
        made_good += g
        made_bad += b
        events += deriver.feed(reading(points[0], good % modulus, ts))
        events += deriver.feed(reading(points[1], bad % modulus, ts))
        if restart_every and i % restart_every == 0:
            deriver = StationDeriver(
                deriver.station,
                counters=deriver.counters,
                memory=json.loads(json.dumps(deriver.memory)),
            )
    return (made_good, made_bad), parts(events)


@settings(max_examples=300, deadline=None)
@given(
    bits=st.sampled_from([16, 32]),
    start_good=st.integers(0, 2**16 - 1),
    start_bad=st.integers(0, 2**16 - 1),
    plan=steps,
    restart_every=st.one_of(st.none(), st.integers(1, 5)),
)
def test_sum_of_deltas_is_the_parts_made(bits, start_good, start_bad, plan, restart_every):
    """Rollovers (16-bit counters wrap within a plan), PLC restarts and gateway restarts
    (memory through JSON) together: every part counted once, none negative."""
    modulus = 1 << bits
    start_good, start_bad = start_good % modulus, start_bad % modulus
    deriver = StationDeriver("press-01", counters=counters(bits=bits))
    truth, derived = _run_plc(
        bits, start_good, start_bad, plan, deriver, (COUNTER_GOOD, COUNTER_BAD), restart_every
    )
    # Exact unless a restart was undetectable (documented): the counter passed its old value
    # before the next read, or dropped from the top 1/16 of the range like a rollover.
    assert derived == truth or _ambiguous(bits, start_good, start_bad, plan)


def _ambiguous(bits, good, bad, plan) -> bool:
    modulus = 1 << bits
    window = modulus // 16
    for what, g, b in plan:
        if what == "restart":
            for before, after in ((good % modulus, g), (bad % modulus, b)):
                if after >= before:  # no drop: the restart cannot be seen
                    return True
                if modulus - before + after <= window:  # a drop that reads as a rollover
                    return True
            good, bad = g, b
        else:
            good, bad = good + g, bad + b
    return False


@settings(max_examples=300, deadline=None)
@given(
    start_total=st.integers(0, 2**16 - 1),
    plan=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 2000)), max_size=60),
    reject_first=st.lists(st.booleans(), min_size=60, max_size=60),
)
def test_total_and_reject_sum_to_good_and_bad(start_total, plan, reject_first):
    """Per step some parts are made (good + rejected); total and reject are read in either
    order. No delta is negative and bad is exact. Good runs ahead of the parts made only by a
    debt: rejects read after their totals, paid back by the next good parts."""
    deriver = StationDeriver("press-01", counters=counters(bits=16, pairing="total_reject"))
    total, reject = start_total, 0
    ts = T0
    deriver.feed(reading(COUNTER_TOTAL, total % 65536, ts))
    deriver.feed(reading(COUNTER_REJECT, reject, ts))
    good_sum = bad_sum = made_good = made_bad = debt = 0
    for (good, bad), first in zip(plan, reject_first, strict=False):
        ts += 1000
        total += good + bad
        reject += bad
        order = [(COUNTER_REJECT, reject), (COUNTER_TOTAL, total)]
        for point, value in order if first else order[::-1]:
            for event in deriver.feed(reading(point, value % 65536, ts)):
                if isinstance(event, PartCount):
                    assert event.good >= 0 and event.bad >= 0
                    good_sum += event.good
                    bad_sum += event.bad
        made_good += good
        made_bad += bad
        # A total read first pays old debt with every part, then its rejects are a new debt
        expected = max(0, debt - good) if first else bad + max(0, debt - good - bad)
        debt = -deriver.memory["pending"]
        assert bad_sum == made_bad
        assert debt >= 0 and good_sum == made_good + debt
        assert debt == expected


def test_good_and_bad_counted_at_one_instant_get_distinct_timestamps():
    """Timestream keeps one record per (station, measure, time): two counts may not share it."""
    deriver = StationDeriver("press-01", counters=counters(16))
    for point, value in ((COUNTER_GOOD, 10), (COUNTER_BAD, 2)):
        deriver.feed(reading(point, value))
    ts = T0 + 1000
    found = [
        *deriver.feed(reading(COUNTER_GOOD, 11, ts)),
        *deriver.feed(reading(COUNTER_BAD, 3, ts)),
    ]
    assert [(c.ts, c.good, c.bad) for c in found] == [(ts, 1, 0), (ts + 1, 0, 1)]
