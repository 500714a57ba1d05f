"""EdgeSiteStack (``deployment.edge_site: outposts``): the EKS local cluster on the Outpost the
MES services' edge instance runs on, in the platform's VPC, so the pipeline deploys to it and
the edge instance reaches the cloud's internal Ingress over the VPC.

The local cluster authenticates through the aws-auth ConfigMap only, so the stack cannot grant
the pipeline access: its outputs name the cluster and the role to map into aws-auth once after
the first deploy (README, "The edge site on AWS Outposts")."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from mes_domain.plant import EdgeSite, Plant
from stacks.constructs.outposts_cluster import OutpostsCluster


class EdgeSiteStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        vpc: ec2.IVpc,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        edge_deploy_role_arn: str | None = None,
        **kwargs: Any,
    ) -> None:
        """``data_key`` is unused: local clusters support no secrets envelope encryption
        (EKS user guide, "Deploy Amazon EKS on-premises with AWS Outposts"); it stays in the
        signature so the stacks are composed alike. ``edge_deploy_role_arn``: the pipeline's
        edge deploy role, output for the aws-auth mapping."""
        if plant.deployment.edge_site is not EdgeSite.OUTPOSTS:
            raise ValueError("EdgeSiteStack is for deployment.edge_site outposts")
        super().__init__(scope, construct_id, **kwargs)
        self.edge = OutpostsCluster(self, "Edge", plant=plant, vpc=vpc, logs_key=logs_key)
        self.cluster_name: str = self.edge.cluster.ref
        CfnOutput(
            self,
            "ClusterName",
            value=self.cluster_name,
            description="The edge site's local cluster: aws eks update-kubeconfig --name <this>",
        )
        if edge_deploy_role_arn is not None:
            CfnOutput(
                self,
                "EdgeDeployRoleArn",
                value=edge_deploy_role_arn,
                description="Map into the local cluster's aws-auth (services/k8s/aws_auth.py)",
            )
