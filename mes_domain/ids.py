"""Identifiers that become MQTT topic levels, thing names and asset names."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator

# Thing-group and IoT names allow [A-Za-z0-9_-:]; topics forbid the wildcards. The safe subset:
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

_TOPIC_RESERVED = {
    "+": "the MQTT single-level wildcard",
    "#": "the MQTT multi-level wildcard",
    "/": "the MQTT topic level separator",
}


def check_identifier(value: str) -> str:
    """Return ``value`` if it is a valid id, else raise ``ValueError`` saying why."""
    for char, meaning in _TOPIC_RESERVED.items():
        if char in value:
            raise ValueError(
                f"id {value!r} contains {char!r} ({meaning}); ids become MQTT topic levels"
            )
    if not IDENTIFIER_PATTERN.fullmatch(value):
        raise ValueError(
            f"id {value!r} must be 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return value


Identifier = Annotated[str, AfterValidator(check_identifier)]


def duplicates(values: Iterable[object]) -> list[object]:
    """The values that occur more than once, in first-seen order."""
    counts = Counter(values)
    return [value for value, count in counts.items() if count > 1]


def require_unique(values: Iterable[object], what: str) -> None:
    """Raise ``ValueError`` naming every duplicated ``what`` (for model validators)."""
    repeated = duplicates(values)
    if repeated:
        names = ", ".join(repr(value) for value in repeated)
        raise ValueError(f"duplicate {what}: {names}")


def unique_by(attribute: str, what: str) -> AfterValidator:
    """A list validator that rejects items sharing ``attribute``, e.g. two stations with one id."""

    def check(items: Sequence[Any]) -> Sequence[Any]:
        require_unique((getattr(item, attribute) for item in items), what)
        return items

    return AfterValidator(check)
