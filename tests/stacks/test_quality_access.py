"""Who may do what in quality inspection, as synthesized: approvers groups per site, and
gateways scoped to their own line's camera stations."""

from __future__ import annotations


def test_each_site_with_camera_stations_has_an_approvers_group(quality_template, demo_plant):
    pools = quality_template.find_resources("AWS::Cognito::UserPool")
    (pool_id,) = pools
    groups = quality_template.find_resources("AWS::Cognito::UserPoolGroup").values()
    sites = {ref.site.id for ref in demo_plant.stations() if ref.station.camera}
    assert sites  # the demo plant inspects with cameras
    assert {g["Properties"]["GroupName"] for g in groups} == {f"approvers-{s}" for s in sites}
    assert all(g["Properties"]["UserPoolId"] == {"Ref": pool_id} for g in groups)
