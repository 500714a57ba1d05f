"""SQS queues read by a function: the queue hides a message for at least six times the
function's timeout plus the batching window (Lambda's guidance for SQS event sources), and
``MesFunction.consume`` refuses at synth a queue of this app that does not."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_kms as kms

from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.constructs.mes_function import MesFunction
from stacks.constructs.queues import (
    DEFAULT_VISIBILITY_S,
    MAX_VISIBILITY_S,
    consumer_visibility_timeout,
    encrypted_queue,
)


def test_the_visibility_a_consumer_needs_is_six_timeouts_plus_the_window():
    assert consumer_visibility_timeout(cdk.Duration.seconds(120)).to_seconds() == 720
    window = cdk.Duration.seconds(5)
    assert consumer_visibility_timeout(cdk.Duration.seconds(120), window).to_seconds() == 725
    with pytest.raises(ValueError, match="above SQS"):
        consumer_visibility_timeout(cdk.Duration.seconds(MAX_VISIBILITY_S // 6 + 1))


def _consumer(stack, timeout_seconds=120):
    return MesFunction(
        stack,
        "Consumer",
        handler="lambdas.quality_results.handler.lambda_handler",
        description="test consumer",
        packaging=LambdaPackaging(),
        logs_key=kms.Key(stack, "Logs"),
        log_retention_days=30,
        environment={},
        timeout_seconds=timeout_seconds,
    )


@pytest.mark.parametrize(
    "visibility, window, refused",
    [
        (None, None, True),  # SQS's default 30 s under a 120 s function
        (cdk.Duration.seconds(720), cdk.Duration.seconds(5), True),  # the window is forgotten
        (cdk.Duration.seconds(725), cdk.Duration.seconds(5), False),
        (cdk.Duration.seconds(720), None, False),
    ],
)
def test_consume_refuses_a_queue_that_would_show_a_message_during_its_batch(
    visibility, window, refused
):
    stack = cdk.Stack(cdk.App(), "Test")
    queue = encrypted_queue(
        stack, "Queue", encryption_key=kms.Key(stack, "Key"), visibility_timeout=visibility
    )
    consumer = _consumer(stack)
    if refused:
        with pytest.raises(ValueError, match="needs at least"):
            consumer.consume(queue, batch_size=10, batching_window=window)
    else:
        consumer.consume(queue, batch_size=10, batching_window=window)
        assert DEFAULT_VISIBILITY_S < visibility.to_seconds()


def test_a_queue_from_another_stack_is_checked_too():
    app = cdk.App()
    upstream = cdk.Stack(app, "Upstream")
    queue = encrypted_queue(upstream, "Queue", encryption_key=kms.Key(upstream, "Key"))
    consumer = _consumer(cdk.Stack(app, "Downstream"))
    with pytest.raises(ValueError, match="Upstream/Queue hides a message for 30 s"):
        consumer.consume(queue, batch_size=10)


def test_the_quality_results_queue_outlasts_its_consumer(iiot_template, quality_template):
    (function,) = [
        f["Properties"]
        for f in quality_template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "lambdas.quality_results.handler.lambda_handler"
    ]
    (mapping,) = quality_template.find_resources("AWS::Lambda::EventSourceMapping").values()
    window = mapping["Properties"].get("MaximumBatchingWindowInSeconds", 0)
    queues = iiot_template.find_resources("AWS::SQS::Queue")
    (queue,) = [q for key, q in queues.items() if key.startswith("QualityResults")
                and "DeadLetters" not in key]  # fmt: skip
    visibility = queue["Properties"].get("VisibilityTimeout", DEFAULT_VISIBILITY_S)
    assert visibility >= 6 * function["Timeout"] + window


def test_the_enterprise_arrivals_queue_outlasts_the_router(enterprise_template):
    functions = enterprise_template.find_resources("AWS::Lambda::Function")
    queues = enterprise_template.find_resources("AWS::SQS::Queue")
    mappings = enterprise_template.find_resources("AWS::Lambda::EventSourceMapping")
    assert mappings
    for mapping in mappings.values():
        properties = mapping["Properties"]
        function = functions[properties["FunctionName"]["Ref"]]["Properties"]
        queue = queues[properties["EventSourceArn"]["Fn::GetAtt"][0]]["Properties"]
        window = properties.get("MaximumBatchingWindowInSeconds", 0)
        visibility = queue.get("VisibilityTimeout", DEFAULT_VISIBILITY_S)
        assert visibility >= 6 * function["Timeout"] + window
