"""The containers platform's VPC: two AZs of public, private (NAT egress) and isolated subnets,
flow logs to an encrypted log group, and VPC endpoints for the AWS APIs the cluster, its pods and
the deploy stage call, so that traffic stays off the NAT gateways."""

from __future__ import annotations

import ipaddress

from aws_cdk import Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.constructs.log_groups import retained_log_group

AVAILABILITY_ZONES = 2
# Subnet sizes relative to the VPC's prefix: each private subnet an eighth of the VPC (EKS Auto
# Mode gives pods VPC addresses: 8,190 in a /16), public and isolated subnets a 64th each. Together
# they take the lower half of the VPC; the upper half stays free, e.g. for an Outpost's subnet.
PRIVATE_SUBNET_BITS = 3
SMALL_SUBNET_BITS = 6
# "The allowed block size is between a /16 netmask and /28 netmask" (VPC user guide, "VPC CIDR
# blocks": docs.aws.amazon.com/vpc/latest/userguide/vpc-cidr-blocks.html).
SMALLEST_SUBNET_PREFIX = 28

PUBLIC = "Public"
PRIVATE = "Private"
ISOLATED = "Isolated"

# Gateway endpoints are free; the services' images layers come from S3 through ECR.
GATEWAY_ENDPOINTS = {
    "S3": ec2.GatewayVpcEndpointAwsService.S3,
    "DynamoDB": ec2.GatewayVpcEndpointAwsService.DYNAMODB,
}
# What nodes, pods and the deploy stage call: image pulls (ECR api + dkr), Pod Identity
# credentials (EKS Auth; "If you are using private subnets for your nodes, you must set up an
# AWS PrivateLink interface endpoint for the EKS Auth API", eks/latest/userguide/pod-id-agent-
# setup.html), STS, logs, the RDS master secret, the cluster API (update-kubeconfig), the event bus
# of the outbox and the KMS keys behind them.
INTERFACE_ENDPOINTS = {
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Eks": ec2.InterfaceVpcEndpointAwsService.EKS,
    "EksAuth": ec2.InterfaceVpcEndpointAwsService.EKS_AUTH,
    "Events": ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE,
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
}
HTTPS = 443
# Where EKS Auto Mode's load balancing puts load balancers: the subnets tagged for their scheme
# ("kubernetes.io/role/internal-elb" private, "kubernetes.io/role/elb" public: EKS user guide,
# "Tag subnets for EKS Auto Mode", tag-subnets-auto.html). The MES Ingress is internal.
LOAD_BALANCER_SUBNET_TAGS = {
    PUBLIC: "kubernetes.io/role/elb",
    PRIVATE: "kubernetes.io/role/internal-elb",
}


def subnet_masks(vpc_cidr: str) -> dict[str, int]:
    """The prefix length of each subnet group of a VPC with ``vpc_cidr``."""
    prefix = ipaddress.ip_network(vpc_cidr).prefixlen
    masks = {
        PUBLIC: prefix + SMALL_SUBNET_BITS,
        PRIVATE: prefix + PRIVATE_SUBNET_BITS,
        ISOLATED: prefix + SMALL_SUBNET_BITS,
    }
    if max(masks.values()) > SMALLEST_SUBNET_PREFIX:
        raise ValueError(
            f"containers.vpc_cidr {vpc_cidr} is too small for its subnets: use a /"
            f"{SMALLEST_SUBNET_PREFIX - SMALL_SUBNET_BITS} or larger block"
        )
    return masks


class ServiceNetwork(Construct):
    """``vpc``; ``private``/``isolated`` select its subnets; ``endpoint_security_group`` admits
    HTTPS from the VPC to the interface endpoints."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_cidr: str,
        nat_gateways: int,
        logs_key: kms.IKey,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        masks = subnet_masks(vpc_cidr)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(vpc_cidr),
            max_azs=AVAILABILITY_ZONES,
            # One NAT gateway per AZ at most (CDK places them in the public subnets): the
            # config's 3 means one in each of the 2 AZs.
            nat_gateways=min(nat_gateways, AVAILABILITY_ZONES),
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name=PUBLIC, subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=masks[PUBLIC]
                ),
                ec2.SubnetConfiguration(
                    name=PRIVATE,
                    subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS,
                    cidr_mask=masks[PRIVATE],
                ),
                ec2.SubnetConfiguration(
                    name=ISOLATED,
                    subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                    cidr_mask=masks[ISOLATED],
                ),
            ],
            # CDK would strip the default security group's rules with a custom-resource Lambda;
            # nothing here uses that group (every resource gets its own), so no Lambda for it.
            restrict_default_security_group=False,
        )
        for subnets, group in (
            (self.vpc.public_subnets, PUBLIC),
            (self.vpc.private_subnets, PRIVATE),
        ):
            for subnet in subnets:
                Tags.of(subnet).add(LOAD_BALANCER_SUBNET_TAGS[group], "1")
        self.private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.isolated = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)

        self.flow_log_group = retained_log_group(
            self, "FlowLogs", logs_key=logs_key, retention_days=log_retention_days
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

        for name, service in GATEWAY_ENDPOINTS.items():
            self.vpc.add_gateway_endpoint(name, service=service)
        # One group for every interface endpoint: HTTPS from inside the VPC only.
        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="Interface VPC endpoints: HTTPS from inside the VPC",
            allow_all_outbound=False,
        )
        # The configured block, not the VPC's CidrBlock attribute: the same value, known at synth.
        self.endpoint_security_group.add_ingress_rule(
            ec2.Peer.ipv4(vpc_cidr), ec2.Port.tcp(HTTPS), "HTTPS from the VPC"
        )
        for name, service in INTERFACE_ENDPOINTS.items():
            self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=self.private,
                security_groups=[self.endpoint_security_group],
                open=False,
                private_dns_enabled=True,
            )
