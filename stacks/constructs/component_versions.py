"""Our Greengrass components published as component versions whose recipes name their uploaded
artifacts (``mes_domain.fleet.published_recipe``): no GDK placeholder reaches the cloud.

An artifact is what the component's ``build.py --gdk`` wrote to
``greengrass-build/artifacts/<name>/<version>/<file>`` (its wheels need a download, so synth
never builds it). ``cdk deploy`` uploads it as a file asset before the stack's resources are
created, as Greengrass reads the artifact when the version is created
(greengrass/v2/APIReference/API_CloudComponentStatus.html: an artifact it cannot access fails
the version). A component whose artifact is not built is not published, and synth warns.
A version is immutable: rebuilt artifact bytes need a new ComponentVersion in the recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml
from aws_cdk import Annotations, Stack
from aws_cdk import aws_greengrassv2 as greengrass
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from mes_domain import fleet


def built_artifact(recipe_path: Path, name: str, version: str, file: str) -> Path:
    """Where ``build.py --gdk`` writes the artifact ``file`` of ``name`` at ``version``."""
    return recipe_path.parent / "greengrass-build" / "artifacts" / name / version / file


class ComponentVersions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        recipes: dict[str, Path],
        readers: Sequence[iam.IRole],
        artifacts_root: Path | None = None,
    ) -> None:
        """``recipes``: component name -> its source recipe; ``readers``: the gateways' token
        exchange roles, which get s3:GetObject on each uploaded artifact (``read_policy``, None
        when nothing is uploaded); ``artifacts_root``: instead of each component's
        ``greengrass-build/artifacts``, ``<root>/<name>/<version>/<file>``."""
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.published: dict[str, greengrass.CfnComponentVersion] = {}
        self.not_built: dict[str, list[Path]] = {}
        reads: list[iam.PolicyStatement] = []
        for name, recipe_path in recipes.items():
            recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
            version = str(recipe["ComponentVersion"])
            paths = {
                file: (
                    artifacts_root / name / version / file
                    if artifacts_root is not None
                    else built_artifact(recipe_path, name, version, file)
                )
                for file in fleet.gdk_artifact_files(recipe)
            }
            missing = [path for path in paths.values() if not path.is_file()]
            if missing:
                self.not_built[name] = missing
                Annotations.of(self).add_warning_v2(
                    f"mes:{name}:not-built",
                    f"{name} {version} is not published: {missing[0]} is not built "
                    f"(python3 {recipe_path.parent / 'build.py'} --gdk); the deployments "
                    "naming it fail on the gateways until it is.",
                )
                continue
            uris = {}
            for index, (file, path) in enumerate(sorted(paths.items())):
                asset = s3_assets.Asset(self, f"{name}-artifact{index}", path=str(path))
                uris[file] = asset.s3_object_url
                reads.append(
                    iam.PolicyStatement(
                        actions=["s3:GetObject"],
                        resources=[asset.bucket.arn_for_objects(asset.s3_object_key)],
                    )
                )
            self.published[name] = greengrass.CfnComponentVersion(
                self,
                name,
                inline_recipe=stack.to_json_string(fleet.published_recipe(recipe, uris)),
            )
        # The gateways download the artifacts with their token exchange role
        # (greengrass/v2/developerguide/device-service-role.html); a policy with no statement
        # is refused, so none exists while nothing is uploaded.
        self.read_policy = (
            iam.ManagedPolicy(
                self,
                "ArtifactsRead",
                description="Greengrass core devices download our components' artifacts",
                statements=reads,
                roles=list(readers),
            )
            if reads
            else None
        )
