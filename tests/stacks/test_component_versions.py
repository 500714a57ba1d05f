"""Our components are published with the URIs of their uploaded artifacts, never the source
recipes' GDK placeholders; an unbuilt artifact publishes nothing and synth says so. Stand-in
artifact zips in a small stack (the demo app's synth has none built), plus the demo app's
templates."""

from __future__ import annotations

import json
import re
import zipfile

import aws_cdk as cdk
import pytest
import yaml
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Annotations, Match, Template

from mes_domain import fleet
from stacks.constructs import edge_fleet
from stacks.constructs.component_versions import ComponentVersions, built_artifact
from tests.stacks.test_cfn_lint import lint

ENV = cdk.Environment(account="123456789012", region="eu-central-1")
# A file asset in the bootstrap bucket: the zip's SHA-256 is its key.
ASSET_URI = re.compile(r"s3://cdk-hnb659fds-assets-123456789012-eu-central-1/[0-9a-f]{64}\.zip")


def text(value) -> str:
    """A template value as text; references and pseudo parameters as ``${Name}``."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(text(part) for part in parts)
    if "Fn::Sub" in value:
        return value["Fn::Sub"]
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    raise AssertionError(f"unexpected intrinsic {value}")


def source_recipes() -> dict[str, dict]:
    return {
        name: yaml.safe_load(path.read_text(encoding="utf-8"))
        for name, path in edge_fleet.RECIPES.items()
    }


def synth(artifacts_root) -> tuple[cdk.Stack, ComponentVersions]:
    app = cdk.App()
    stack = cdk.Stack(app, "Components", env=ENV)
    reader = iam.Role(
        stack, "Gateway", assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com")
    )
    components = ComponentVersions(
        stack,
        "Components",
        recipes=edge_fleet.RECIPES,
        readers=[reader],
        artifacts_root=artifacts_root,
    )
    return stack, components


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts")
    for name, recipe in source_recipes().items():
        for file in fleet.gdk_artifact_files(recipe):
            path = root / name / str(recipe["ComponentVersion"]) / file
            path.parent.mkdir(parents=True)
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr("stand-in.txt", f"{name} {file}")
    stack, components = synth(root)
    return Template.from_stack(stack).to_json()["Resources"], components


def test_every_source_recipe_uses_the_gdk_artifact_template_so_its_uris_get_replaced():
    for name, recipe in source_recipes().items():
        assert fleet.gdk_artifact_files(recipe), f"{name} names no GDK artifact"


def test_each_component_is_published_with_its_uploaded_artifacts_and_no_placeholder(built):
    resources, components = built
    versions = [r for r in resources.values() if r["Type"] == "AWS::GreengrassV2::ComponentVersion"]
    assert len(versions) == len(edge_fleet.RECIPES) == len(components.published)
    sources = source_recipes()
    for resource in versions:
        inline = text(resource["Properties"]["InlineRecipe"])
        assert not [w for w in fleet.GDK_PLACEHOLDERS if w in inline]
        recipe = json.loads(inline)
        source = sources[recipe["ComponentName"]]
        uris = [a["Uri"] for m in recipe["Manifests"] for a in m.get("Artifacts", [])]
        assert uris and all(ASSET_URI.fullmatch(u) for u in uris), uris
        # Nothing else of the recipe changes.
        for manifest in (*recipe["Manifests"], *source["Manifests"]):
            for artifact in manifest.get("Artifacts", []):
                artifact.pop("Uri")
        assert recipe == json.loads(json.dumps(source))


def test_the_gateways_may_read_exactly_the_uploaded_artifacts(built):
    resources, _ = built
    (policy,) = [r for r in resources.values() if r["Type"] == "AWS::IAM::ManagedPolicy"]
    reads = [
        text(s["Resource"])
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "s3:GetObject"
    ]
    uris = [
        a["Uri"].removeprefix("s3://")
        for r in resources.values()
        if r["Type"] == "AWS::GreengrassV2::ComponentVersion"
        for m in json.loads(text(r["Properties"]["InlineRecipe"]))["Manifests"]
        for a in m.get("Artifacts", [])
    ]
    assert sorted(reads) == sorted(f"arn:${{AWS::Partition}}:s3:::{u}" for u in uris)
    assert len(policy["Properties"]["PolicyDocument"]["Statement"]) == len(uris)
    (role,) = policy["Properties"]["Roles"]
    assert role == {"Ref": next(k for k, r in resources.items() if r["Type"] == "AWS::IAM::Role")}


def test_an_unbuilt_artifact_publishes_nothing_and_synth_names_the_build(tmp_path):
    stack, components = synth(tmp_path)
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::GreengrassV2::ComponentVersion", 0)
    assert set(components.not_built) == set(edge_fleet.RECIPES)
    # nothing to read: no read policy (an empty one is refused)
    template.resource_count_is("AWS::IAM::ManagedPolicy", 0)
    assert components.read_policy is None
    warnings = Annotations.from_stack(stack).find_warning(
        "*", Match.string_like_regexp(r"is not published: .* --gdk")
    )
    assert len(warnings) == len(edge_fleet.RECIPES)


def test_the_build_scripts_gdk_layout_is_where_the_stack_looks(tmp_path):
    recipe = edge_fleet.RECIPES[edge_fleet.DATA_COLLECTOR]
    path = built_artifact(recipe, "com.acme.mes.DataCollector", "1.0.0", "data_collector.zip")
    assert path == (
        recipe.parent
        / "greengrass-build/artifacts/com.acme.mes.DataCollector/1.0.0/data_collector.zip"
    )


def test_a_placeholder_left_in_a_published_recipe_is_refused():
    recipe = {
        "ComponentName": "c",
        "Manifests": [
            {"Artifacts": [{"Uri": f"{fleet.GDK_ARTIFACT_URI_PREFIX}a.zip"}]},
            {"Artifacts": [{"Uri": "s3://BUCKET_NAME/c/1.0.0/b.zip"}]},
        ],
    }
    with pytest.raises(ValueError, match="placeholder"):
        fleet.published_recipe(recipe, {"a.zip": "s3://bucket/key.zip"})
    with pytest.raises(ValueError, match="no uploaded artifact"):
        fleet.published_recipe(recipe, {})
    recipe["Manifests"].pop()
    published = fleet.published_recipe(recipe, {"a.zip": "s3://bucket/key.zip"})
    assert published["Manifests"][0]["Artifacts"][0]["Uri"] == "s3://bucket/key.zip"
    assert recipe["Manifests"][0]["Artifacts"][0]["Uri"].startswith("s3://BUCKET_NAME/")


def test_no_component_the_demo_app_publishes_names_a_placeholder(synthesized):
    stacks, _ = synthesized
    resources = Template.from_stack(stacks.edge_fleet).to_json()["Resources"]
    for resource in resources.values():
        if resource["Type"] == "AWS::GreengrassV2::ComponentVersion":
            inline = text(resource["Properties"]["InlineRecipe"])
            assert not [w for w in fleet.GDK_PLACEHOLDERS if w in inline]
    published = set(stacks.edge_fleet.fleet.components.published)
    assert published | set(stacks.edge_fleet.fleet.components.not_built) == set(edge_fleet.RECIPES)


def test_the_published_versions_are_cfn_lint_clean(built, tmp_path):
    resources, _ = built
    path = tmp_path / "components.template.json"
    path.write_text(json.dumps({"Resources": resources}))
    result = lint([path])
    findings = [line for line in result.stdout.splitlines() if ":E" in line or ":W" in line]
    assert findings == [] and result.returncode in (0, 8), result.stdout + result.stderr
