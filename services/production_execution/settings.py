"""Production execution's configuration (``MES_*``, validated at start) and the plant layout it
reads from the plant config: which stations each line has, and of which kind."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator

from mes_domain.ids import Identifier
from mes_domain.plant import Plant
from services.common.settings import ServiceSettings
from services.production_execution.domain import CLOUD


class PlantConfigError(ValueError):
    pass


def load_plant(path: Path) -> Plant:
    """The plant config (the YAML or JSON file the stacks are made from; ``stacks`` is CDK code,
    so this reads it without ``stacks.plant_config``)."""
    try:
        modified = Path(path).stat().st_mtime_ns
    except OSError as exc:
        raise PlantConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    return _parse_plant(str(path), modified)


@functools.lru_cache(maxsize=8)
def _parse_plant(path: str, _modified_ns: int) -> Plant:
    """Parsed once per file version: the settings' checks and the layout all read it."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlantConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise PlantConfigError(f"{path} is not valid YAML: {exc}") from None
    try:
        return Plant.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise PlantConfigError(
            f"{path} is not a valid plant config ({exc.error_count()} problems; first: "
            f"{where}: {first['msg']})"
        ) from None


@dataclass(frozen=True)
class PlantLayout:
    """The stations of each line and their kinds: a station starts only operations of its kind
    on its own line."""

    station_kinds: dict[tuple[str, str, str], str]
    line_kinds: dict[tuple[str, str], frozenset[str]]
    sites: frozenset[str]

    @classmethod
    def of(cls, plant: Plant) -> PlantLayout:
        station_kinds = {ref.path: ref.station.kind.value for ref in plant.stations()}
        line_kinds: dict[tuple[str, str], set[str]] = {}
        for (site, line, _station), kind in station_kinds.items():
            line_kinds.setdefault((site, line), set()).add(kind)
        return cls(
            station_kinds=station_kinds,
            line_kinds={key: frozenset(kinds) for key, kinds in line_kinds.items()},
            sites=frozenset(site.id for site in plant.sites),
        )

    def has_line(self, site: str, line: str) -> bool:
        return (site, line) in self.line_kinds

    def station_kind(self, site: str, line: str, station: str) -> str | None:
        return self.station_kinds.get((site, line, station))


def _comma_separated(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class ProductionSettings(ServiceSettings):
    """``MES_PLANT_CONFIG``: the plant config file; ``MES_EDGE_SITES`` (the cloud instance's):
    the sites whose orders their edge instance executes, comma-separated.

    Sync between the instances (``services.common.sync``): ``MES_SYNC_TRANSPORT`` https (the
    default: an edge instance pushes and pulls through the cloud's ``/sync`` API at
    ``MES_CLOUD_URL``, SigV4-signed when ``MES_AWS_REGION`` is set) or kafka (every instance,
    ``MES_KAFKA_BOOTSTRAP_SERVERS`` and ``MES_AWS_REGION`` for MSK's IAM authentication).
    The cloud's outbound relay: ``MES_EVENT_BUS_NAME`` for the bus, ``MES_INVENTORY_URL`` (the
    inventory service's base URL) for reservations and consumptions; either may be unset.
    ``MES_ORDERS_TABLE``, ``MES_PRODUCTS_TABLE`` and ``MES_PROCESS_PLANS_TABLE`` (the cloud's):
    the enterprise interface's tables, from which ``/orders/{id}/release-stored`` releases."""

    plant_config: Path
    edge_sites: Annotated[tuple[Identifier, ...], Field(max_length=100)] = ()
    sync_transport: Literal["https", "kafka"] = "https"
    cloud_url: Annotated[str | None, Field(validate_default=True)] = None
    kafka_bootstrap_servers: Annotated[str | None, Field(validate_default=True)] = None
    inventory_url: str | None = None
    # The enterprise interface's DynamoDB tables, for releasing stored orders (the cloud's;
    # all three or none): orders, products (BOMs) and process plans (routings).
    orders_table: str | None = None
    products_table: str | None = None
    process_plans_table: Annotated[str | None, Field(validate_default=True)] = None

    @field_validator("plant_config")
    @classmethod
    def _plant_loads(cls, path: Path, info: ValidationInfo) -> Path:
        plant = load_plant(path)
        instance = info.data.get("instance_id")
        sites = {site.id for site in plant.sites}
        if instance is not None and instance != CLOUD and instance not in sites:
            raise ValueError(
                f"MES_INSTANCE_ID {instance!r} is neither 'cloud' nor a site of {path} "
                f"({', '.join(sorted(sites))})"
            )
        return path

    @field_validator("edge_sites", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _comma_separated(value)

    @field_validator("edge_sites")
    @classmethod
    def _known_sites(cls, sites: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        path = info.data.get("plant_config")
        if path is None:
            return sites  # the plant config's own error says why
        known = {site.id for site in load_plant(path).sites}
        unknown = sorted(set(sites) - known)
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not a site of {path}")
        if len(set(sites)) != len(sites):
            raise ValueError("a site is listed twice")
        if sites and info.data.get("instance_id") != CLOUD:
            raise ValueError("only the cloud instance has edge sites")
        return sites

    @field_validator("cloud_url", "inventory_url")
    @classmethod
    def _http_url(cls, url: str | None, info: ValidationInfo) -> str | None:
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// base URL")
        if info.field_name == "cloud_url" and url is None:
            edge = info.data.get("instance_id", CLOUD) != CLOUD
            if edge and info.data.get("sync_transport") == "https":
                raise ValueError("an edge instance syncing over https needs the cloud's URL")
        return url

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _kafka_complete(cls, servers: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("sync_transport") != "kafka":
            return servers
        if not servers:
            raise ValueError("kafka sync needs the MSK cluster's bootstrap servers")
        if info.data.get("aws_region") is None:
            raise ValueError("kafka sync authenticates with IAM: set MES_AWS_REGION too")
        return servers

    @field_validator("process_plans_table")
    @classmethod
    def _store_complete(cls, table: str | None, info: ValidationInfo) -> str | None:
        given = [table, info.data.get("orders_table"), info.data.get("products_table")]
        if any(given) and not all(given):
            raise ValueError(
                "releasing stored orders needs all three: MES_ORDERS_TABLE, MES_PRODUCTS_TABLE "
                "and MES_PROCESS_PLANS_TABLE"
            )
        if any(given) and info.data.get("instance_id", CLOUD) != CLOUD:
            raise ValueError("the enterprise interface's store is read by the cloud instance")
        return table

    @property
    def peers(self) -> tuple[str, ...]:
        """The instances this one syncs with: the edge sites (cloud), or the cloud (edge)."""
        return self.edge_sites if self.instance_id == CLOUD else (CLOUD,)

    def layout(self) -> PlantLayout:
        return PlantLayout.of(load_plant(self.plant_config))


def executed_at(site: str, edge_sites: Iterable[str]) -> str:
    """The instance that runs an order of ``site``: its edge instance, if it has one."""
    return site if site in set(edge_sites) else CLOUD
