"""``POST /documents/{source}/{type}``: the same router as files, for a JSON body of one document
or a list.

Responses (JSON): 200 with the report when every document was stored or was already stored
(duplicates); 400 with the errors (index, line, field, reason) when the body is empty, not
UTF-8, not base64 though marked so, not JSON, or any document is invalid, and then none is
stored (the first 100 errors are listed, ``errors_not_listed`` counts the rest); 413 for a body
over 6 MB; 404 for a source and type with no inbox; 409 with
the report when a newer revision is stored (``superseded_ids``), a revision is stored with
other content, or the same document is being stored by another request right now (retry). In a
409 the other documents of the request are stored.
"""

from __future__ import annotations

import json
import time
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)

from lambdas.erp_plm_router.adapters import DynamoStore, OrderEvents, table_names
from lambdas.erp_plm_router.documents import UnknownInbox, inbox, request_schema
from lambdas.erp_plm_router.json_format import parse_json
from lambdas.erp_plm_router.request_body import BadBody, body_text
from lambdas.erp_plm_router.routing import route_documents
from lambdas.erp_plm_router.settings import StoreSettings

__all__ = ["lambda_handler", "request_schema"]

logger = Logger(service="erp_plm_router")
app = APIGatewayRestResolver()


@cache
def settings() -> StoreSettings:
    return StoreSettings.from_environ()


@cache
def store() -> DynamoStore:
    return DynamoStore(
        table_names(settings()),
        settings().idempotency_table,
        OrderEvents(settings().event_bus_name),
    )


# A response carries the first errors only: the body may hold thousands of invalid documents,
# and a synchronous Lambda response is at most 6 MB (``request_body.MAX_BODY_BYTES``).
LISTED_ERRORS = 100


def _reply(status: int, body: dict[str, Any]) -> Response:
    return Response(status, content_types.APPLICATION_JSON, json.dumps(body))


@app.post("/documents/<source>/<doc_type>")
def post_documents(source: str, doc_type: str) -> Response:
    event = app.current_event
    try:
        inbox(source, doc_type)
        text = body_text(event.body, base64_encoded=event.is_base64_encoded)
        report = route_documents(
            source,
            doc_type,
            parse_json(text),
            store(),
            now_ms=int(time.time() * 1000),
            all_or_none=True,
            keep=LISTED_ERRORS,
        )
    except UnknownInbox as err:
        return _reply(404, {"message": str(err)})
    except BadBody as err:
        error = {"index": None, "line": None, "document_id": None, "field": "(body)"}
        return _reply(
            err.status, {"message": err.reason, "errors": [error | {"reason": err.reason}]}
        )
    except IdempotencyAlreadyInProgressError:
        return _reply(409, {"message": "a document of this request is being stored; retry"})
    summary = report.summary(LISTED_ERRORS)
    if report.invalid:
        status = 400
    elif report.conflicts or report.superseded:
        status = 409
    else:
        status = 200
    logger.info("documents routed", extra={"status": status, "received": report.received})
    return _reply(status, summary)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict:
    store().register(context)
    return app.resolve(event, context)
