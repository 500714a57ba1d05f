import pytest

from mes_domain.contracts import EquipmentState, PartCount, StateChange

# Friday 2026-11-20 10:07 UTC = 11:07 in Berlin: the early shift (06:00-14:00) is running.
NOW_ISO = "2026-11-20T10:07:00Z"
NOW_MS = 1_795_169_220_000
WINDOW_MS = 15 * 60_000
PRESS = ("berlin", "body-line-1", "press-01")
WELD = ("berlin", "body-line-1", "weld-01")


def state(ts, value, reason=None):
    return StateChange(v=1, ts=ts, state=EquipmentState(value), reason_code=reason)


def count(ts, good, bad=0):
    return PartCount(v=1, ts=ts, good=good, bad=bad)


@pytest.fixture
def window():
    """The last closed 15-minute window before NOW: 09:45-10:00 UTC."""
    end = NOW_MS - NOW_MS % WINDOW_MS
    return end - WINDOW_MS, end
