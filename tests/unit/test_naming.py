"""Names mes_domain.naming gives that no stack test covers alone: a camera station's gateway
group and a site's approvers group, within AWS's limits for the longest ids a config allows."""

from __future__ import annotations

import pytest

from mes_domain import naming
from mes_domain.ids import check_identifier

LONGEST_ID = "i" * 64  # mes_domain.ids: ids are 1 to 64 characters


def test_a_camera_station_group_is_its_line_group_and_station():
    line_group = naming.thing_group_name("MesDemo", "berlin", "body-line-1")
    name = naming.station_thing_group_name("MesDemo", "berlin", "body-line-1", "vision-01")
    assert name == f"{line_group}:vision-01"
    assert naming.THING_GROUP_NAME.problem(name) is None


def test_no_id_has_the_colon_that_sets_station_groups_apart():
    # So no site or line group name (ids joined by "-") is ever a station group's name.
    assert check_identifier(LONGEST_ID) == LONGEST_ID
    with pytest.raises(ValueError, match="must be 1-64 letters"):
        check_identifier("line:station")


def test_the_approvers_group_of_the_longest_site_id_is_a_valid_cognito_group_name():
    # CreateGroup: GroupName is 1 to 128 characters
    # (docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateGroup.html).
    assert naming.COGNITO_GROUP_NAME.max_length == 128
    name = naming.approvers_group_name(LONGEST_ID)
    assert name == f"approvers-{LONGEST_ID}"
    assert naming.COGNITO_GROUP_NAME.problem(name) is None
    assert naming.COGNITO_GROUP_NAME.problem("approvers-" + "i" * 119) is not None
