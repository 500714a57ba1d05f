"""The decision on the Greengrass spooler: every gateway deployment puts the nucleus' IoT Core
spool on disk (aws.greengrass.DiskSpooler); QualityInspection also keeps its own work (inbox
files, the trigger queue) until a result is accepted, and the DataCollector spools itself."""

from __future__ import annotations

import json

import pytest

from mes_domain.contracts import InspectionResult, Verdict
from mes_domain.edge_deployment import (
    DATA_COLLECTOR,
    QUALITY_INSPECTION,
    apply_configuration_update,
    line_deployments,
)
from mes_domain.edge_spooler import (
    DISK_SPOOLER,
    IN_MEMORY_SPOOL_DEFAULT_BYTES,
    NUCLEUS,
    nucleus_spooler_configuration,
    spooler_components,
    with_disk_spooler,
)

VERSIONS = {DATA_COLLECTOR: "1.0.0", QUALITY_INSPECTION: "1.0.0"}


def test_the_nucleus_spool_goes_to_the_disk_spooler_plugin():
    spooler = nucleus_spooler_configuration()["mqtt"]["spooler"]
    assert (
        spooler["storageType"] == "Disk" and spooler["pluginName"] == "aws.greengrass.DiskSpooler"
    )
    assert spooler["maxSizeInBytes"] > 50 * IN_MEMORY_SPOOL_DEFAULT_BYTES
    assert spooler["keepQos0WhenOffline"] is False
    with pytest.raises(ValueError):
        nucleus_spooler_configuration(0)


def test_the_merge_turns_a_default_nucleus_into_a_disk_spooling_one():
    # A nucleus configured as the installer leaves it (in-memory spool, default size)
    nucleus = {"mqtt": {"port": 8883, "spooler": {"maxSizeInBytes": IN_MEMORY_SPOOL_DEFAULT_BYTES}}}
    update = spooler_components("2.14.3", "1.0.6")[NUCLEUS]["configurationUpdate"]
    merged = apply_configuration_update(nucleus, update)
    assert merged["mqtt"]["port"] == 8883  # the rest of the nucleus' settings stay
    assert merged["mqtt"]["spooler"] == nucleus_spooler_configuration()["mqtt"]["spooler"]


@pytest.mark.parametrize("version", ["2.10.3", "1.0.0", "2.11", "latest"])
def test_a_nucleus_without_the_plugin_interface_is_refused(version):
    with pytest.raises(ValueError, match="nucleus"):
        spooler_components(version, "1.0.6")


def test_every_gateway_deployment_of_the_demo_plant_spools_to_disk(demo_plant):
    lines = [(site.id, line.id) for site in demo_plant.sites for line in site.lines]
    documents = [line_deployments(demo_plant, s, ln, VERSIONS) for s, ln in lines]
    deployments = 0
    for document in documents:
        spooled = with_disk_spooler(document, "2.14.3", "1.0.6")
        assert len(spooled["deployments"]) == len(document["deployments"])
        for before, after in zip(document["deployments"], spooled["deployments"], strict=True):
            components = after["components"]
            assert components[DISK_SPOOLER] == {"componentVersion": "1.0.6"}
            merge = json.loads(components[NUCLEUS]["configurationUpdate"]["merge"])
            assert merge["mqtt"]["spooler"]["storageType"] == "Disk"
            assert {k: components[k] for k in before["components"]} == before["components"]
            deployments += 1
        with pytest.raises(ValueError, match="already deploys"):
            with_disk_spooler(spooled, "2.14.3", "1.0.6")
    assert deployments > 0


def test_the_in_memory_default_holds_only_thousands_of_results():
    # Why the default is not enough: an outage of a few hours at one part a second overflows it,
    # and the nucleus then drops the oldest results silently.
    result = InspectionResult(
        v=1, ts=1_796_000_000_000, part_id="P-000123456", verdict=Verdict.DEFECT, score=3.52,
        threshold=2.1, model_id="com.acme.mes.models.SurfaceDefects", model_version="1.0.100",
        latency_ms=41.3,
        image_key="s3://acme-datasets/datasets/berlin/body-line-1/vision-01/defect/x.png",
    )  # fmt: skip
    size = len(result.model_dump_json(exclude_none=True).encode())
    assert IN_MEMORY_SPOOL_DEFAULT_BYTES // size < 10_000 < 3 * 3600


def test_the_deployments_tool_adds_the_disk_spooler_when_given_its_versions(tmp_path, capsys):
    from greengrass_components.deployments import main
    from tests.conftest import DEMO_PLANT

    args = ["--config", str(DEMO_PLANT), "--component-version", f"{DATA_COLLECTOR}=1.0.0"]
    spooled = [
        *args,
        "--component-version", f"{NUCLEUS}=2.14.3",
        "--component-version", f"{DISK_SPOOLER}=1.0.6",
    ]  # fmt: skip
    assert main([*spooled, "--out", str(tmp_path / "disk")]) == 0
    files = sorted((tmp_path / "disk").glob("*.json"))
    assert files
    for path in files:
        for deployment in json.loads(path.read_text())["deployments"]:
            merge = json.loads(deployment["components"][NUCLEUS]["configurationUpdate"]["merge"])
            assert merge["mqtt"]["spooler"]["storageType"] == "Disk"
            assert deployment["components"][DISK_SPOOLER]["componentVersion"] == "1.0.6"
    # Without them the tool says the spool stays in memory
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "memory")]) == 0
    assert "in-memory spool" in capsys.readouterr().err
