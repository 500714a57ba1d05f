"""Pre-provisioning hook: IoT calls it on each RegisterThing with the provisioning template.

Allows only a serial on the allow-list, once (marked PROVISIONED atomically, so two devices
with one serial cannot both pass); answers ``{"allowProvisioning": false}`` to anything else.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger

from lambdas.provisioning_hook.adapters import AllowList
from lambdas.provisioning_hook.contract import EnvVar
from lambdas.provisioning_hook.decision import DENY, Refusal, decide, parse

logger = Logger(service="provisioning_hook")


def handle(event: Any, allow_list: AllowList, prefix: str) -> dict[str, Any]:
    request = parse(event)
    if isinstance(request, Refusal):
        logger.warning("provisioning refused", extra={"reason": request.value})
        return DENY
    outcome = decide(request, allow_list.get(request.serial), prefix)
    if isinstance(outcome, Refusal):
        logger.warning(
            "provisioning refused", extra={"reason": outcome.value, "serial": request.serial}
        )
        return DENY
    if not allow_list.claim(request.serial, request.certificate_id, outcome.thing_name):
        logger.warning(
            "provisioning refused",
            extra={"reason": Refusal.USED.value, "serial": request.serial},
        )
        return DENY
    logger.info(
        "provisioning allowed",
        extra={"serial": request.serial, "thing": outcome.thing_name, "retry": outcome.retry},
    )
    return outcome.response()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    allow_list = AllowList(os.environ[EnvVar.ALLOW_LIST_TABLE.value])
    return handle(event, allow_list, os.environ[EnvVar.STACK_PREFIX.value])
