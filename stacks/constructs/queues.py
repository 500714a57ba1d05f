"""Encrypted, TLS-only SQS queues, and the dead-letter queues that terminate a chain."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.compliance import acknowledge

RETENTION = Duration.days(14)  # the SQS maximum: time to notice, fix and replay
MAX_RECEIVES = 5


def encrypted_queue(
    scope: Construct,
    construct_id: str,
    *,
    encryption_key: kms.IKey,
    dead_letter_queue: sqs.IQueue | None = None,
) -> sqs.Queue:
    """A KMS queue; give ``dead_letter_queue`` unless this is a last-stop queue (see below)."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=encryption_key,
        enforce_ssl=True,
        retention_period=RETENTION,
        dead_letter_queue=(
            sqs.DeadLetterQueue(max_receive_count=MAX_RECEIVES, queue=dead_letter_queue)
            if dead_letter_queue is not None
            else None
        ),
    )


def dead_letter_queue(
    scope: Construct, construct_id: str, *, encryption_key: kms.IKey, holds: str
) -> sqs.Queue:
    """A last-stop queue for what ``holds`` names; it has no dead-letter queue of its own."""
    queue = encrypted_queue(scope, construct_id, encryption_key=encryption_key)
    reason = f"This queue is itself the last stop for {holds}; nothing drains into another."
    acknowledge(queue, "AwsSolutions-SQS3", reason)
    acknowledge(queue, "Serverless-SQSRedrivePolicy", reason)
    return queue
