"""The text of a documents-API body, or the 4xx that says why there is none.

API Gateway hands the body as a string, base64-encoded when it treats it as binary
(``isBase64Encoded``). Whatever arrives, the answer is the text or a ``BadBody`` with its
status and reason, never an exception that becomes a 502.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

# A synchronous Lambda invocation carries at most 6 MB of request payload
# (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
MAX_BODY_BYTES = 6 * 1024 * 1024


@dataclass(frozen=True)
class BadBody(Exception):
    status: int
    reason: str

    def __str__(self) -> str:
        return self.reason


def body_text(body: str | None, *, base64_encoded: bool) -> str:
    """The body as text: UTF-8, not empty, within ``MAX_BODY_BYTES``."""
    if not body or not body.strip():
        raise BadBody(400, "the body is empty: send one document or a list of documents")
    if base64_encoded:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadBody(400, "the body is marked base64-encoded but is not base64") from None
    else:
        try:
            raw = body.encode("utf-8")
        except UnicodeEncodeError as err:  # lone surrogates, e.g. from a "\udc80" escape
            raise BadBody(400, f"the body is not UTF-8 text: {err.reason}") from None
    if len(raw) > MAX_BODY_BYTES:
        raise BadBody(413, f"the body has {len(raw)} bytes; at most {MAX_BODY_BYTES} are taken")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadBody(
            400, f"the body is not UTF-8 text: {err.reason} at byte {err.start}"
        ) from None
    if not text.strip():
        raise BadBody(400, "the body is empty: send one document or a list of documents")
    return text
