"""What a 400 says about an invalid body: enough to fix it, never the body itself.

A response must stay under Lambda's 6 MB payload limit for synchronous invocations
(docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html), and API Gateway accepts bodies up to
10 MB, so an error that echoed its input could not be returned at all. Hence at most
``MAX_ERRORS`` errors, each with its input cut to ``MAX_INPUT_CHARS`` characters.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

MAX_ERRORS = 10
MAX_INPUT_CHARS = 120
MAX_MESSAGE_CHARS = 500


def excerpt(value: Any, limit: int = MAX_INPUT_CHARS) -> str:
    """``value``'s repr, cut to ``limit`` characters with the full length said."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def validation_details(err: ValidationError) -> dict[str, Any]:
    """The first ``MAX_ERRORS`` errors (where, what, and an excerpt of the input) and the total."""
    errors = err.errors(include_url=False, include_context=False)
    shown = [
        {
            "loc": [excerpt(part, 64) if isinstance(part, str) else part for part in e["loc"]],
            "msg": e["msg"][:MAX_MESSAGE_CHARS],
            "type": e["type"],
            "input": excerpt(e.get("input")),
        }
        for e in errors[:MAX_ERRORS]
    ]
    return {"errors": shown, "error_count": len(errors)}


def names_excerpt(names: list[str], limit: int = MAX_ERRORS) -> str:
    """Up to ``limit`` names, each cut, and how many more there are."""
    shown = ", ".join(excerpt(name, 64) for name in names[:limit])
    more = len(names) - limit
    return f"{shown} and {more} more" if more > 0 else shown
