"""Encrypted, TLS-only SQS queues, and the dead-letter queues that terminate a chain."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.compliance import acknowledge

RETENTION = Duration.days(14)  # the SQS maximum: time to notice, fix and replay
MAX_RECEIVES = 5
DEFAULT_VISIBILITY_S = 30  # what SQS uses when a queue sets none
MAX_VISIBILITY_S = 12 * 60 * 60  # SQS's maximum visibility timeout
# Lambda's SQS guidance: visibility at least six times the function timeout, plus the batching
# window, so a throttled batch can be retried before the message reappears
# (docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html).
CONSUMER_TIMEOUT_FACTOR = 6


def consumer_visibility_timeout(
    function_timeout: Duration, batching_window: Duration | None = None
) -> Duration:
    """The least visibility timeout a queue read by a function of ``function_timeout`` needs."""
    window = batching_window.to_seconds() if batching_window is not None else 0
    seconds = CONSUMER_TIMEOUT_FACTOR * function_timeout.to_seconds() + window
    if seconds > MAX_VISIBILITY_S:
        raise ValueError(
            f"a consumer of {function_timeout.to_seconds()} s needs a visibility timeout of "
            f"{seconds} s, above SQS's {MAX_VISIBILITY_S} s"
        )
    return Duration.seconds(seconds)


def encrypted_queue(
    scope: Construct,
    construct_id: str,
    *,
    encryption_key: kms.IKey,
    dead_letter_queue: sqs.IQueue | None = None,
    visibility_timeout: Duration | None = None,
) -> sqs.Queue:
    """A KMS queue; give ``dead_letter_queue`` unless this is a last-stop queue (see below), and
    ``visibility_timeout`` (``consumer_visibility_timeout``) if a function reads it."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=encryption_key,
        enforce_ssl=True,
        retention_period=RETENTION,
        visibility_timeout=visibility_timeout,
        dead_letter_queue=(
            sqs.DeadLetterQueue(max_receive_count=MAX_RECEIVES, queue=dead_letter_queue)
            if dead_letter_queue is not None
            else None
        ),
    )


def dead_letter_queue(
    scope: Construct,
    construct_id: str,
    *,
    encryption_key: kms.IKey,
    holds: str,
    of_queue_or_function: bool = False,
) -> sqs.Queue:
    """A last-stop queue for what ``holds`` names; it has no dead-letter queue of its own.

    ``of_queue_or_function``: a queue's redrive policy or a function's dead-letter config in
    this stack names it. cdk-nag's SQS3 then knows it is a dead-letter queue and reports
    nothing to acknowledge; it does not see an event source mapping's or a rule target's."""
    queue = encrypted_queue(scope, construct_id, encryption_key=encryption_key)
    reason = f"This queue is itself the last stop for {holds}; nothing drains into another."
    if not of_queue_or_function:
        acknowledge(queue, "AwsSolutions-SQS3", reason)
    acknowledge(queue, "Serverless-SQSRedrivePolicy", reason)
    return queue
