"""EdgeSiteStack as synthesized in the "full" app of tests/stacks/test_containers_cluster.py
(compliance gates on; cfn-lint runs there on its template): the EKS local cluster on the
Outpost, in a subnet on the Outpost inside the platform's VPC."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from mes_domain.plant import Plant
from stacks.constructs.outposts_cluster import check_subnet, edge_cluster_name
from stacks.edge_site_stack import EdgeSiteStack
from tests.stacks.plants import OUTPOST_ARN
from tests.stacks.test_containers_cluster import ADMIN, ENV, PLANTS, Dependencies, case


@pytest.fixture(scope="module")
def full(demo_plant):
    return case("full", demo_plant)


@pytest.fixture(scope="module")
def edge(full) -> Template:
    return Template.from_stack(full.edge)


def only(template: Template, kind: str) -> tuple[str, dict]:
    (found,) = template.find_resources(kind).items()
    return found


def test_the_subnet_is_on_the_outpost_in_its_zone_inside_the_platform_vpc(full, edge):
    outpost = full.plant.containers.outpost
    subnet_id, subnet = only(edge, "AWS::EC2::Subnet")
    properties = subnet["Properties"]
    assert properties["OutpostArn"] == outpost.outpost_arn == OUTPOST_ARN
    assert properties["AvailabilityZone"] == outpost.availability_zone == "eu-central-1a"
    assert properties["CidrBlock"] == outpost.subnet_cidr
    assert properties["MapPublicIpOnLaunch"] is False
    assert "RefVpc8378EB38" in properties["VpcId"]["Fn::GetStackOutput"]["OutputName"]
    # the private route table of the Outpost's parent zone: its NAT route and gateway endpoints
    _, association = only(edge, "AWS::EC2::SubnetRouteTableAssociation")
    assert association["Properties"]["SubnetId"] == {"Ref": subnet_id}
    table = association["Properties"]["RouteTableId"]["Fn::GetStackOutput"]["OutputName"]
    assert "VpcPrivateSubnet1RouteTable" in table  # Private subnet 1 is in eu-central-1a


def test_the_local_cluster_runs_on_the_outpost_with_a_private_endpoint_only(full, edge):
    outpost = full.plant.containers.outpost
    subnet_id, _ = only(edge, "AWS::EC2::Subnet")
    cluster_id, cluster = only(edge, "AWS::EKS::Cluster")
    properties = cluster["Properties"]
    assert properties["OutpostConfig"] == {
        "ControlPlaneInstanceType": outpost.control_plane_instance_type,
        "OutpostArns": [OUTPOST_ARN],
    }
    assert properties["Version"] == outpost.kubernetes_version == "1.32"
    assert properties["ResourcesVpcConfig"] == {
        "EndpointPrivateAccess": True,
        "EndpointPublicAccess": False,
        "SubnetIds": [{"Ref": subnet_id}],
    }
    assert properties["Name"] == "MesDemo-edge" == full.edge.edge.name
    assert full.edge.resolve(full.edge.cluster_name) == {"Ref": cluster_id}


def test_access_is_the_aws_auth_config_map_with_the_creator_as_admin_and_no_access_entry(
    full, edge
):
    # The only AccessConfig EKS accepts for a local cluster: "Local Amazon EKS cluster only
    # supports bootstrapClusterCreatorAdminPermissions=true and authenticationMode=CONFIG_MAP
    # for AccessConfig" (EKS's CreateCluster error, quoted in eksctl-io/eksctl#7552).
    _, cluster = only(edge, "AWS::EKS::Cluster")
    assert cluster["Properties"]["AccessConfig"] == {
        "AuthenticationMode": "CONFIG_MAP",
        "BootstrapClusterCreatorAdminPermissions": True,
    }
    # Access entries need mode API or API_AND_CONFIG_MAP: the plant's admins are mapped into
    # aws-auth after the deploy instead (README, "The edge site on AWS Outposts").
    assert full.plant.containers.cluster_admin_arns == [ADMIN]
    assert not edge.find_resources("AWS::EKS::AccessEntry")
    assert not hasattr(full.edge.edge, "grant_admin")


def test_every_log_type_goes_to_an_encrypted_log_group_and_no_secrets_encryption(full, edge):
    _, cluster = only(edge, "AWS::EKS::Cluster")
    logging = cluster["Properties"]["Logging"]["ClusterLogging"]["EnabledTypes"]
    assert [t["Type"] for t in logging] == [
        "api", "audit", "authenticator", "controllerManager", "scheduler",
    ]  # fmt: skip
    log_id, log_group = only(edge, "AWS::Logs::LogGroup")
    assert log_group["Properties"]["LogGroupName"] == "/aws/eks/MesDemo-edge/cluster"
    assert "LogsKey" in log_group["Properties"]["KmsKeyId"]["Fn::GetStackOutput"]["OutputName"]
    assert log_group["Properties"]["RetentionInDays"] == full.plant.retention.log_days
    assert log_id in cluster["DependsOn"]
    # Local clusters support no secrets envelope encryption (EKS user guide, "Deploy Amazon
    # EKS on-premises with AWS Outposts": comparing the deployment options); setting it fails.
    assert "EncryptionConfig" not in cluster["Properties"]


def test_the_cluster_role_is_the_local_cluster_role(edge):
    _, cluster = only(edge, "AWS::EKS::Cluster")
    role = edge.find_resources("AWS::IAM::Role")[cluster["Properties"]["RoleArn"]["Fn::GetAtt"][0]]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
        }
    ]
    (policy,) = role["Properties"]["ManagedPolicyArns"]
    assert policy["Fn::Join"][1][-1] == ":iam::aws:policy/AmazonEKSLocalOutpostClusterPolicy"
    assert not edge.find_resources("AWS::IAM::Policy")


def test_the_outpost_subnet_must_be_a_free_block_of_the_vpc():
    check_subnet("10.40.240.0/24", "10.40.0.0/16", ["10.40.0.0/20", "10.40.16.0/20"])
    with pytest.raises(ValueError, match="not within vpc_cidr"):
        check_subnet("10.41.0.0/24", "10.40.0.0/16", [])
    with pytest.raises(ValueError, match="overlaps the VPC's subnet 10.40.192.0/18"):
        check_subnet("10.40.240.0/24", "10.40.0.0/16", ["10.40.192.0/18"])


def test_the_longest_prefix_still_names_a_valid_cluster():
    assert len(edge_cluster_name("M" + "p" * 63)) <= 100


def _stack(plant: Plant, **options) -> EdgeSiteStack:
    app = cdk.App()
    deps = Dependencies(app, "Deps", msk_bus=False)
    return EdgeSiteStack(
        app,
        "EdgeSite",
        env=ENV,
        plant=plant,
        vpc=deps.vpc,
        data_key=deps.data_key,
        logs_key=deps.logs_key,
        **options,
    )


def test_the_outputs_name_the_cluster_and_the_role_to_map_into_aws_auth(demo_plant, edge):
    # Without the pipeline's role (the "full" app): the cluster's name only.
    assert set(edge.find_outputs("*")) == {"ClusterName"}
    deploy_role = f"arn:aws:iam::{ENV.account}:role/MesDemo-Containers-DeployEdgeRole"
    with_role = Template.from_stack(
        _stack(PLANTS["full"](demo_plant), edge_deploy_role_arn=deploy_role)
    )
    cluster_id, _ = only(with_role, "AWS::EKS::Cluster")
    outputs = with_role.find_outputs("*")
    assert set(outputs) == {"ClusterName", "EdgeDeployRoleArn"}
    assert outputs["ClusterName"]["Value"] == {"Ref": cluster_id}
    assert outputs["EdgeDeployRoleArn"]["Value"] == deploy_role


def test_versions_local_clusters_lack_and_plants_without_an_outpost_are_refused(demo_plant):
    document = PLANTS["full"](demo_plant).model_dump(mode="json")
    document["containers"]["outpost"]["kubernetes_version"] = "1.34"  # the cloud's, not local
    with pytest.raises(ValueError, match="1.34' is not offered for EKS local clusters"):
        _stack(Plant.model_validate(document))
    with pytest.raises(ValueError, match="is for deployment.edge_site outposts"):
        _stack(PLANTS["private"](demo_plant))
