"""A platform Lambda function: packaged code and pinned layer, its own role and encrypted logs.

Every function of the platform is built here, so runtime, architecture, tracing, log
encryption and retention, and the acknowledgements they need are decided once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, Token
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.compliance import acknowledge
from stacks.constructs.lambda_packaging import (
    ARCHITECTURE,
    RUNTIME,
    VISION_RUNTIME,
    LambdaPackaging,
)
from stacks.constructs.log_groups import retained_log_group
from stacks.constructs.queues import DEFAULT_VISIBILITY_S, consumer_visibility_timeout

RUNTIME_REASON = (
    "Pinned to the Python its layer's compiled wheels are built for (3.11; 3.12 for model "
    "training, whose onnxruntime needs Amazon Linux 2023); a runtime change rebuilds the layer."
)

# Active tracing adds xray:PutTraceSegments and friends, which take no resource ARN.
TRACING_REASON = "The X-Ray trace writes of active tracing support no resource-level permissions."


class MesFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        description: str,
        packaging: LambdaPackaging,
        logs_key: kms.IKey,
        log_retention_days: int,
        environment: Mapping[str, str],
        memory_size: int = 512,
        timeout_seconds: int = 120,
        extra_layers: Sequence[lambda_.ILayerVersion] = (),
        dead_letter_queue: sqs.IQueue | None = None,
        vision: bool = False,
    ) -> None:
        """``vision``: the function trains or runs quality models, so it gets ``mes_vision`` and
        the Python 3.12 runtime with the vision layer instead of the common one."""
        super().__init__(scope, construct_id)
        log_group = retained_log_group(
            self, "Logs", logs_key=logs_key, retention_days=log_retention_days
        )
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        log_group.grant_write(self.role)

        self.timeout = Duration.seconds(timeout_seconds)
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=VISION_RUNTIME if vision else RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler,
            code=packaging.code("mes_vision") if vision else packaging.code(),
            layers=[
                packaging.vision_layer(self) if vision else packaging.dependencies_layer(self),
                *extra_layers,
            ],
            role=self.role,
            memory_size=memory_size,
            timeout=self.timeout,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            dead_letter_queue=dead_letter_queue,
            environment=dict(environment),
        )
        function = self.function.node.default_child
        # CDK adds DependsOn the role it also references with GetAtt: harmless, say so once.
        function.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
        acknowledge(function, "AwsSolutions-L1", RUNTIME_REASON)
        acknowledge(function, "Serverless-LambdaLatestVersion", RUNTIME_REASON)

    def consume(
        self,
        queue: sqs.IQueue,
        *,
        batch_size: int,
        batching_window: Duration | None = None,
    ) -> None:
        """Read ``queue`` with partial batch failures. A message that fails its receives moves
        to the queue's own dead-letter queue, so the function needs neither a DLQ nor an
        on-failure destination (SQS mappings take none).

        Raises ``ValueError`` if the queue is one of this app's and hides a message for less
        than ``consumer_visibility_timeout`` of this function (Lambda refuses a mapping whose
        function outlives the visibility timeout)."""
        self._check_visibility(queue, batching_window)
        source = sources.SqsEventSource(
            queue,
            batch_size=batch_size,
            max_batching_window=batching_window,
            report_batch_item_failures=True,
        )
        self.function.add_event_source(source)
        (mapping,) = [
            child.node.default_child
            for child in self.function.node.children
            if isinstance(child, lambda_.EventSourceMapping)
        ]
        reason = (
            "Queue-invoked, never async: a message that fails its receives moves to the "
            "queue's own dead-letter queue, which is alarmed."
        )
        acknowledge(mapping, "Serverless-LambdaEventSourceMappingDestination", reason)
        acknowledge(self.function.node.default_child, "Serverless-LambdaDLQ", reason)

    def _check_visibility(self, queue: sqs.IQueue, batching_window: Duration | None) -> None:
        if not isinstance(queue, sqs.Queue):
            return  # imported by ARN: its settings are not ours to see
        declared = queue.node.default_child.visibility_timeout
        if declared is not None and Token.is_unresolved(declared):
            return
        seconds = DEFAULT_VISIBILITY_S if declared is None else int(declared)
        needed = consumer_visibility_timeout(self.timeout, batching_window).to_seconds()
        if seconds < needed:
            raise ValueError(
                f"queue {queue.node.path} hides a message for {seconds} s, but its consumer "
                f"{self.node.path} ({self.timeout.to_seconds()} s timeout) needs at least "
                f"{needed} s: six times the timeout plus the batching window"
            )

    def acknowledge_policy(self, reasons: Mapping[str, str]) -> None:
        """Acknowledge findings on the role's policy, one rule and reason each."""
        policy = self.role.node.find_child("DefaultPolicy")
        for rule, reason in reasons.items():
            acknowledge(policy, rule, reason)
