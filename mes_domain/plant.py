"""The ISA-95 plant hierarchy (enterprise -> site -> line -> station) and deployment options.

A plant configuration file is parsed into these frozen models once, in ``app.py``; every stack
is generated from them, so adding a line is a config change, not a code change.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
    FiniteFloat,
    ValidationError,
    field_validator,
    model_validator,
)

from mes_domain.collection import (
    Address,
    BooleanStateSource,
    CodeStateSource,
    CollectionSettings,
    CounterSource,
    addresses_of,
    check_addresses,
)
from mes_domain.containers import ContainersSettings, ServiceBus
from mes_domain.contracts import StrictModel
from mes_domain.ids import Identifier, require_unique, unique_by
from mes_domain.naming import name_problems
from mes_domain.sitewise import STATION_PROPERTY_NAMES

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY

# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545,
    731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

# A tag becomes a property of the station's SiteWise model beside these; names must not clash.
RESERVED_PROPERTY_NAMES = frozenset(name.casefold() for name in STATION_PROPERTY_NAMES)


class StationKind(StrEnum):
    PRESS = "press"
    CNC = "cnc"
    ASSEMBLY = "assembly"
    WELDING = "welding"
    PAINTING = "painting"
    CAMERA_INSPECTION = "camera_inspection"
    TEST = "test"
    PACKAGING = "packaging"


class TagDataType(StrEnum):
    DOUBLE = "double"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    STRING = "string"


class Weekday(StrEnum):
    MON = "Mon"
    TUE = "Tue"
    WED = "Wed"
    THU = "Thu"
    FRI = "Fri"
    SAT = "Sat"
    SUN = "Sun"

    @property
    def index(self) -> int:
        return list(Weekday).index(self)


class EdgeSite(StrEnum):
    """Where the MES services' edge instance runs (``deployment.edge_site``)."""

    NONE = "none"
    OUTPOSTS = "outposts"  # an EKS local cluster on an Outpost, declared in CDK
    EKS_ANYWHERE = "eks-anywhere"  # self-managed hardware: services/k8s/overlays/edge

    @classmethod
    def _missing_(cls, value: object) -> EdgeSite | None:
        return cls.EKS_ANYWHERE if value == "eks_anywhere" else None


class Tag(StrictModel):
    name: Identifier
    unit: Annotated[str, Field(max_length=32)] | None = None
    data_type: TagDataType = TagDataType.DOUBLE
    source: Address | None = None  # None: the machine publishes the tag itself

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name.casefold() in RESERVED_PROPERTY_NAMES:
            raise ValueError(f"tag name {name!r} is reserved for the station's own properties")
        return name


GREENGRASS_COMPONENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _component_name(value: str) -> str:
    if not GREENGRASS_COMPONENT_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a Greengrass component name")
    return value


class RegionOfInterest(StrictModel):
    """Where the part is in the camera frame (pixels, after the EXIF orientation): the model
    sees only this region, at its own aspect ratio."""

    left: Annotated[int, Field(ge=0)]
    top: Annotated[int, Field(ge=0)]
    width: Annotated[int, Field(ge=64)]
    height: Annotated[int, Field(ge=64)]

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.width, self.height


class CameraSpec(StrictModel):
    """What a camera inspection station runs: the model component and what it keeps."""

    model_component: Annotated[str, AfterValidator(_component_name)]
    good_sample_rate: Annotated[float, Field(ge=0, le=1)] = 0.02
    # None: the whole frame.
    roi: RegionOfInterest | None = None


class Station(StrictModel):
    id: Identifier
    name: Annotated[str, Field(max_length=128)] | None = None
    kind: StationKind
    ideal_cycle_time_s: Annotated[FiniteFloat, Field(gt=0)]
    tags: Annotated[list[Tag], unique_by("name", "tag name")] = []
    camera: CameraSpec | None = None
    # What the line's DataCollector derives StateChange and PartCount from (mes_domain.collection)
    state: CodeStateSource | BooleanStateSource | None = None
    counters: CounterSource | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Station:
        is_camera = self.kind is StationKind.CAMERA_INSPECTION
        if is_camera and self.camera is None:
            raise ValueError("a camera_inspection station needs a 'camera' section")
        if not is_camera and self.camera is not None:
            raise ValueError(
                f"only camera_inspection stations have a 'camera' section, not {self.kind}"
            )
        return self


# A line's stations spread over as many nested stacks as CloudFormation's per-template quotas
# need (stacks/constructs/sitewise_assets.py); tests/stacks/test_assembly.py checks a
# line this long, each station its own model, against those quotas.
MAX_STATIONS_PER_LINE = 240


class Line(StrictModel):
    id: Identifier
    name: Annotated[str, Field(max_length=128)] | None = None
    stations: Annotated[
        list[Station],
        Field(min_length=1, max_length=MAX_STATIONS_PER_LINE),
        unique_by("id", "station id"),
    ]
    collection: CollectionSettings = CollectionSettings()

    @model_validator(mode="after")
    def _sources_connected(self) -> Line:
        for station in self.stations:
            where = f"line {self.id} station {station.id}"
            for tag in station.tags:
                if tag.source is not None:
                    check_addresses(self.collection, f"{where} tag {tag.name}", [tag.source])
            check_addresses(self.collection, f"{where} state", addresses_of(station.state))
            check_addresses(self.collection, f"{where} counters", addresses_of(station.counters))
        return self

    def collects(self) -> bool:
        """Whether the line's gateway runs a DataCollector (some station reads a machine)."""
        return any(
            station.state or station.counters or any(tag.source for tag in station.tags)
            for station in self.stations
        )


ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


def _minute_of_day(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(minute_of_week: int) -> str:
    day, minute = divmod(minute_of_week % MINUTES_PER_WEEK, MINUTES_PER_DAY)
    return f"{list(Weekday)[day].value} {minute // 60:02d}:{minute % 60:02d}"


class Shift(StrictModel):
    """A shift on the given weekdays; an end at or before the start runs past midnight."""

    name: Identifier
    start: ClockTime
    end: ClockTime
    days: Annotated[list[Weekday], Field(min_length=1)]

    @model_validator(mode="after")
    def _valid(self) -> Shift:
        if self.start == self.end:
            raise ValueError(f"shift {self.name!r} starts and ends at {self.start}")
        require_unique(self.days, "weekday")
        return self

    @property
    def duration_minutes(self) -> int:
        return (_minute_of_day(self.end) - _minute_of_day(self.start)) % MINUTES_PER_DAY

    def week_intervals(self) -> list[tuple[int, int]]:
        """Half-open [start, end) minute-of-week intervals, split where they wrap the week."""
        intervals = []
        for day in self.days:
            start = day.index * MINUTES_PER_DAY + _minute_of_day(self.start)
            end = start + self.duration_minutes
            if end <= MINUTES_PER_WEEK:
                intervals.append((start, end))
            else:
                intervals += [(start, MINUTES_PER_WEEK), (0, end - MINUTES_PER_WEEK)]
        return intervals


class ShiftCalendar(StrictModel):
    shifts: Annotated[list[Shift], Field(min_length=1)]

    @field_validator("shifts")
    @classmethod
    def _no_overlap(cls, shifts: list[Shift]) -> list[Shift]:
        require_unique((shift.name for shift in shifts), "shift name")
        spans = sorted(
            (start, end, shift.name) for shift in shifts for start, end in shift.week_intervals()
        )
        latest_end, latest_name = -1, ""
        for start, end, name in spans:
            if start < latest_end:
                raise ValueError(
                    f"shift {latest_name!r} overlaps shift {name!r} at {_clock(start)}"
                )
            if end > latest_end:
                latest_end, latest_name = end, name
        return shifts


def _timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
    return name


class Site(StrictModel):
    id: Identifier
    name: Annotated[str, Field(max_length=128)] | None = None
    timezone: Annotated[str, AfterValidator(_timezone)]
    shift_calendar: ShiftCalendar
    lines: Annotated[list[Line], Field(min_length=1), unique_by("id", "line id")]


def _log_retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"{days} is not a CloudWatch Logs retention; use one of {LOG_RETENTION_DAYS}"
        )
    return days


class Retention(StrictModel):
    timeseries_memory_hours: Annotated[int, Field(ge=1, le=8766)] = 24
    timeseries_magnetic_days: Annotated[int, Field(ge=1, le=73000)] = 365
    log_days: Annotated[int, AfterValidator(_log_retention)] = 90
    access_log_days: Annotated[int, Field(ge=1)] = 365
    datalake_raw_days: Annotated[int, Field(ge=1)] = 730


class Capabilities(StrictModel):
    """Optional parts of the platform, off unless the plant turns them on. ``eks``: the
    containers platform of the MES services (``containers:`` configures it)."""

    eks: bool = False

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: object) -> object:
        moved = {
            "msk": "containers.service_bus: msk",
            "edge_site": "deployment.edge_site",
        }
        if isinstance(data, dict):
            for old, new in moved.items():
                if old in data:
                    raise ValueError(f"capabilities.{old} has moved to {new}")
        return data


class TimeseriesBackend(StrEnum):
    # Timestream for LiveAnalytics is closed to new customers since June 2025; the sink sits
    # behind one construct so Timestream for InfluxDB can be added as another backend.
    TIMESTREAM = "timestream"


class IiotSettings(StrictModel):
    timeseries_store: TimeseriesBackend = TimeseriesBackend.TIMESTREAM
    telemetry_stream_shards: Annotated[int, Field(ge=1, le=500)] | None = None  # None: on-demand
    telemetry_stream_retention_hours: Annotated[int, Field(ge=24, le=8760)] = 168
    # A SiteWise Edge gateway per site reads the OPC UA sources (an alternative to the
    # DataCollector's OPC UA path); stacks/constructs/sitewise_edge.py.
    opcua_to_sitewise: bool = False


IAM_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(user|role)/[\w+=,.@/-]{1,512}$")


def _iam_principal(arn: str) -> str:
    if not IAM_PRINCIPAL_ARN.match(arn):
        raise ValueError(f"{arn!r} is not the ARN of an IAM user or role")
    return arn


IamPrincipalArn = Annotated[str, AfterValidator(_iam_principal)]


class SiteWiseMonitorSettings(StrictModel):
    """Opt-in SiteWise Monitor portal: AWS closed Monitor to new customers on 7 Nov 2025, so
    only accounts that already use it can turn it on."""

    enabled: bool = False
    contact_email: str | None = None
    # IAM users or roles: the portal uses IAM authentication (see the README for why).
    administrators: list[IamPrincipalArn] = []
    viewers: list[IamPrincipalArn] = []

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> SiteWiseMonitorSettings:
        if self.contact_email is not None and not EMAIL.match(self.contact_email):
            raise ValueError(f"contact_email {self.contact_email!r} is not an e-mail address")
        require_unique([*self.administrators, *self.viewers], "portal identity")
        if self.enabled and (self.contact_email is None or not self.administrators):
            raise ValueError(
                "an enabled portal needs a contact_email and at least one administrator"
            )
        return self


class KpiSettings(StrictModel):
    # The SiteWise metrics' tumbling window; SiteWise allows 1 minute to 1 week.
    window_minutes: Annotated[int, Field(ge=1, le=7 * MINUTES_PER_DAY)] = 15
    sitewise_monitor: SiteWiseMonitorSettings = SiteWiseMonitorSettings()

    @property
    def sitewise_interval(self) -> str:
        return f"{self.window_minutes}m"


HTTPS_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:\d{1,5})?(/[^\s]*)?$")


class OutboundEndpoint(StrictModel):
    """An enterprise system's HTTPS endpoint for MES events (an EventBridge API destination).
    Its API key lives in Secrets Manager, in a secret the stack creates for the operator."""

    url: Annotated[str, Field(max_length=2048)]
    api_key_header: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")] = "x-api-key"
    rate_per_second: Annotated[int, Field(ge=1, le=300)] = 10

    @field_validator("url")
    @classmethod
    def _https(cls, url: str) -> str:
        if not HTTPS_URL.match(url):
            raise ValueError(f"{url!r} is not an https:// URL")
        return url


class EnterpriseIntegration(StrictModel):
    """Where MES events go: ERP and PLM over HTTPS, and files for systems that take files."""

    erp: OutboundEndpoint | None = None
    plm: OutboundEndpoint | None = None
    export_files: bool = True


AWS_TAG_KEY = re.compile(r"^(?!aws:)[\w\s.:/=+\-@]{1,128}$")
AWS_TAG_VALUE = re.compile(r"^[\w\s.:/=+\-@]{0,256}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Deployment(StrictModel):
    stack_prefix: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$")]
    account: Annotated[str, Field(pattern=r"^\d{12}$")] | None = None
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] | None = None
    tags: dict[str, str] = {}
    termination_protection: bool = False
    alarm_emails: list[str] = []
    edge_site: EdgeSite = EdgeSite.NONE

    @field_validator("tags")
    @classmethod
    def _aws_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        for key, value in tags.items():
            if not AWS_TAG_KEY.match(key):
                raise ValueError(f"tag key {key!r} is not a valid AWS tag key")
            if not AWS_TAG_VALUE.match(value):
                raise ValueError(f"tag value {value!r} of {key!r} is not a valid AWS tag value")
        return tags

    @field_validator("alarm_emails")
    @classmethod
    def _emails(cls, emails: list[str]) -> list[str]:
        for email in emails:
            if not EMAIL.match(email):
                raise ValueError(f"{email!r} is not an e-mail address")
        require_unique(emails, "alarm e-mail")
        return emails


@dataclass(frozen=True, slots=True)
class StationRef:
    """A station with its place in the hierarchy."""

    site: Site
    line: Line
    station: Station

    @property
    def path(self) -> tuple[str, str, str]:
        return (self.site.id, self.line.id, self.station.id)


class Plant(StrictModel):
    enterprise: Identifier
    name: Annotated[str, Field(min_length=1, max_length=128)]
    deployment: Deployment
    retention: Retention = Retention()
    capabilities: Capabilities = Capabilities()
    containers: ContainersSettings = ContainersSettings()
    iiot: IiotSettings = IiotSettings()
    kpi: KpiSettings = KpiSettings()
    erp_plm: EnterpriseIntegration = EnterpriseIntegration()
    sites: Annotated[list[Site], Field(min_length=1), unique_by("id", "site id")]

    @model_validator(mode="after")
    def _edge_site_has_a_platform(self) -> Plant:
        edge_site = self.deployment.edge_site
        if edge_site is not EdgeSite.NONE and not self.capabilities.eks:
            raise ValueError(
                f"deployment.edge_site {edge_site.value} runs the MES services' edge instance, "
                "which syncs with the cloud's: turn on capabilities.eks"
            )
        outpost = self.containers.outpost
        if edge_site is EdgeSite.OUTPOSTS and outpost is None:
            raise ValueError("deployment.edge_site outposts needs containers.outpost")
        if edge_site is not EdgeSite.OUTPOSTS and outpost is not None:
            raise ValueError("containers.outpost applies only to deployment.edge_site outposts")
        if outpost is not None and outpost.site not in {site.id for site in self.sites}:
            raise ValueError(f"containers.outpost.site {outpost.site!r} is not a site of the plant")
        if (
            outpost is not None
            and self.containers.service_bus is ServiceBus.HTTPS
            and self.containers.domain is None
        ):
            raise ValueError(
                "an Outposts edge site syncs over https with the cloud's Ingress by its name: set "
                "containers.domain, or containers.service_bus: msk"
            )
        return self

    @model_validator(mode="after")
    def _names_fit(self) -> Plant:
        """Every resource name built from the config obeys AWS's rule for it, reported at the
        field that makes it too long (mes_domain.naming)."""
        errors = [
            {"type": "value_error", "loc": field, "input": value, "ctx": {"error": message}}
            for field, value, message in name_problems(self)
        ]
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def stations(self) -> Iterator[StationRef]:
        for site in self.sites:
            for line in site.lines:
                for station in line.stations:
                    yield StationRef(site, line, station)

    def station(self, site_id: str, line_id: str, station_id: str) -> StationRef:
        for ref in self.stations():
            if ref.path == (site_id, line_id, station_id):
                return ref
        raise KeyError(f"no station {site_id}/{line_id}/{station_id} in plant {self.name!r}")
