"""One ECR repository per containerised MES service (``mes_domain.containers.SERVICES``)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_kms as kms
from constructs import Construct

from mes_domain.containers import ECR_REPOSITORY_NAME, SERVICES

# The pipeline pushes one image per commit (tag = the commit id, immutable): the last releases
# stay for a rollback; an untagged image is a failed push's leftover.
KEEP_IMAGES = 30
UNTAGGED_DAYS = 7


def repository_id(service_name: str) -> str:
    """The construct id of a service's repository: production-execution -> ProductionExecution."""
    return "".join(part.capitalize() for part in service_name.split("-"))


class ServiceImages(Construct):
    """``repositories``: service name -> its repository; scanned on push, tags immutable,
    encrypted with the data key, pruned by a lifecycle policy, kept when the stack goes."""

    def __init__(
        self, scope: Construct, construct_id: str, *, stack_prefix: str, data_key: kms.IKey
    ) -> None:
        super().__init__(scope, construct_id)
        self.repositories: dict[str, ecr.Repository] = {}
        for service in SERVICES:
            name = service.repository_name(stack_prefix)
            problem = ECR_REPOSITORY_NAME.problem(name)
            if problem:
                raise ValueError(f"ECR repository name {name!r} from the stack prefix: {problem}")
            self.repositories[service.name] = ecr.Repository(
                self,
                repository_id(service.name),
                repository_name=name,
                image_scan_on_push=True,
                image_tag_mutability=ecr.TagMutability.IMMUTABLE,
                encryption=ecr.RepositoryEncryption.KMS,
                encryption_key=data_key,
                # "The rule with a tagStatus value of any must have the highest value for
                # rulePriority" (ECR user guide, LifecyclePolicies.html); CDK orders them so.
                lifecycle_rules=[
                    ecr.LifecycleRule(
                        description=f"Expire untagged images after {UNTAGGED_DAYS} days",
                        tag_status=ecr.TagStatus.UNTAGGED,
                        max_image_age=Duration.days(UNTAGGED_DAYS),
                    ),
                    ecr.LifecycleRule(
                        description=f"Keep the last {KEEP_IMAGES} images",
                        tag_status=ecr.TagStatus.ANY,
                        max_image_count=KEEP_IMAGES,
                    ),
                ],
                # Images of running releases must outlive the stack.
                removal_policy=RemovalPolicy.RETAIN,
                empty_on_delete=False,
            )
