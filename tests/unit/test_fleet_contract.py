"""The edge fleet's names (mes_domain.fleet): within AWS's rules for the longest config values,
and never one group for two writers."""

from __future__ import annotations

import pytest

from mes_domain import fleet, naming

LONGEST_PREFIX = "M" + "p" * 63  # the plant config allows 64 characters


def test_provisioning_template_name_fits_36_characters_for_the_longest_prefix():
    name = fleet.provisioning_template_name(LONGEST_PREFIX)
    assert fleet.PROVISIONING_TEMPLATE_NAME.problem(name) is None
    assert len(name) == 36


def test_a_short_prefix_keeps_a_readable_template_name():
    assert fleet.provisioning_template_name("MesDemo") == "MesDemo-gateways"


def test_two_long_prefixes_with_one_beginning_get_two_template_names():
    first = fleet.provisioning_template_name("A" * 40)
    second = fleet.provisioning_template_name("A" * 41)
    assert first != second


def test_the_36_character_limit_is_the_documented_one():
    assert fleet.PROVISIONING_TEMPLATE_NAME.problem("a" * 36) is None
    assert fleet.PROVISIONING_TEMPLATE_NAME.problem("a" * 37) is not None
    assert fleet.PROVISIONING_TEMPLATE_NAME.problem("a.b") is not None


def test_every_prefix_derived_name_is_valid_for_the_longest_prefix():
    assert fleet.name_problems(LONGEST_PREFIX) == []


@pytest.mark.parametrize("serial", ["SN-0001", "a", "x" * 48, "GW_12-ab"])
def test_valid_serials_give_thing_names_iot_accepts(serial):
    name = fleet.gateway_thing_name(LONGEST_PREFIX, serial)
    assert fleet.THING_NAME.problem(name) is None and name.endswith(serial)


@pytest.mark.parametrize("serial", ["", "x" * 49, "a b", "a/b", "a:b", None, 12])
def test_malformed_serials_are_refused(serial):
    assert not fleet.is_valid_serial(serial)
    with pytest.raises(ValueError):
        fleet.gateway_thing_name("MesDemo", serial)


def test_line_gateway_groups_are_its_line_and_site_groups():
    groups = fleet.gateway_thing_groups("MesDemo", "berlin", "body-line-1")
    assert groups == ("MesDemo-berlin-body-line-1", "MesDemo-berlin")


def test_camera_gateway_groups_are_its_station_group_and_that_station_model_group():
    deploy_group, model_group = fleet.gateway_thing_groups(
        "MesDemo", "berlin", "body-line-1", "vision-01"
    )
    assert deploy_group == naming.station_thing_group_name(
        "MesDemo", "berlin", "body-line-1", "vision-01"
    )
    assert model_group == deploy_group + ":models"


def test_no_model_group_is_a_station_line_or_site_group():
    """The model pipeline's group never names a group the stack deploys to, even for a station
    whose id is "models"."""
    model = fleet.model_thing_group_name("P", "s", "l", "models")
    station_models = naming.station_thing_group_name("P", "s", "l", "models")
    assert model != station_models and model.count(":") == 2
    assert station_models.count(":") == 1


def test_role_alias_is_the_one_the_gateway_policy_allows():
    assert fleet.role_alias_name("P", "s", "l") == naming.gateway_role_alias("P", "s", "l")


def test_ssm_parameters_are_under_the_prefix_and_valid():
    for key in fleet.Parameter:
        name = fleet.ssm_parameter_name("MesDemo", key)
        assert name.startswith("/MesDemo/edge-fleet/")
        assert fleet.SSM_PARAMETER_NAME.problem(name) is None
    with pytest.raises(ValueError):
        fleet.ssm_parameter_name("MesDemo", "no-such-key")


def test_the_stack_is_named_like_the_others():
    assert fleet.edge_fleet_stack_name("MesDemo") == naming.stack_name("MesDemo", "EdgeFleet")
