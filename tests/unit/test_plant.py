"""The plant hierarchy: valid configs parse, and each invalid one names the field and reason."""

import copy

import pytest
from pydantic import ValidationError

from mes_domain.plant import MAX_STATIONS_PER_LINE, Plant, Shift, ShiftCalendar, StationKind

BASE = {
    "enterprise": "acme",
    "name": "Test plant",
    "deployment": {"stack_prefix": "MesTest"},
    "sites": [
        {
            "id": "s1",
            "timezone": "Europe/Berlin",
            "shift_calendar": {
                "shifts": [{"name": "day", "start": "06:00", "end": "18:00", "days": ["Mon"]}]
            },
            "lines": [
                {
                    "id": "l1",
                    "stations": [
                        {"id": "press-01", "kind": "press", "ideal_cycle_time_s": 6},
                        {
                            "id": "cam-01",
                            "kind": "camera_inspection",
                            "ideal_cycle_time_s": 2,
                            "camera": {"model_component": "com.acme.Model"},
                        },
                    ],
                }
            ],
        }
    ],
}


def plant_with(mutate):
    document = copy.deepcopy(BASE)
    mutate(document)
    return document


def only_error(document):
    with pytest.raises(ValidationError) as info:
        Plant.model_validate(document)
    (error,) = info.value.errors()
    return error["loc"], error["msg"]


def test_base_plant_is_valid_and_navigable():
    plant = Plant.model_validate(BASE)
    assert [ref.path for ref in plant.stations()] == [
        ("s1", "l1", "press-01"),
        ("s1", "l1", "cam-01"),
    ]
    assert plant.station("s1", "l1", "cam-01").station.kind is StationKind.CAMERA_INSPECTION
    with pytest.raises(KeyError, match="s1/l1/nope"):
        plant.station("s1", "l1", "nope")


def test_defaults_for_retention_and_capabilities():
    plant = Plant.model_validate(BASE)
    assert plant.retention.log_days == 90
    assert plant.capabilities.eks is False


def test_plant_is_frozen():
    plant = Plant.model_validate(BASE)
    with pytest.raises(ValidationError):
        plant.name = "other"


def test_duplicate_station_id_is_named():
    def dup(d):
        d["sites"][0]["lines"][0]["stations"][1]["id"] = "press-01"
        d["sites"][0]["lines"][0]["stations"][1]["kind"] = "cnc"
        del d["sites"][0]["lines"][0]["stations"][1]["camera"]

    loc, msg = only_error(plant_with(dup))
    assert loc == ("sites", 0, "lines", 0, "stations")
    assert msg == "Value error, duplicate station id: 'press-01'"


def test_duplicate_line_and_site_ids_are_named():
    loc, msg = only_error(
        plant_with(lambda d: d["sites"][0]["lines"].append(d["sites"][0]["lines"][0]))
    )
    assert loc == ("sites", 0, "lines") and "duplicate line id: 'l1'" in msg
    loc, msg = only_error(plant_with(lambda d: d["sites"].append(copy.deepcopy(d["sites"][0]))))
    assert loc == ("sites",) and "duplicate site id: 's1'" in msg


def test_unknown_station_kind_is_named():
    loc, msg = only_error(
        plant_with(lambda d: d["sites"][0]["lines"][0]["stations"][0].update(kind="laser"))
    )
    assert loc == ("sites", 0, "lines", 0, "stations", 0, "kind")
    assert "'press'" in msg and "'camera_inspection'" in msg


@pytest.mark.parametrize("cycle", [-1, 0, float("nan"), float("inf")])
def test_non_positive_or_non_finite_cycle_time_is_named(cycle):
    with pytest.raises(ValidationError) as info:
        Plant.model_validate(
            plant_with(
                lambda d: d["sites"][0]["lines"][0]["stations"][0].update(ideal_cycle_time_s=cycle)
            )
        )
    locs = {e["loc"] for e in info.value.errors()}
    assert locs == {("sites", 0, "lines", 0, "stations", 0, "ideal_cycle_time_s")}


def test_camera_section_must_match_the_kind():
    def camera_missing(d):
        del d["sites"][0]["lines"][0]["stations"][1]["camera"]

    loc, msg = only_error(plant_with(camera_missing))
    assert loc == ("sites", 0, "lines", 0, "stations", 1) and "needs a 'camera' section" in msg

    def camera_on_press(d):
        d["sites"][0]["lines"][0]["stations"][0]["camera"] = {"model_component": "x.Y"}

    loc, msg = only_error(plant_with(camera_on_press))
    assert "only camera_inspection stations" in msg


@pytest.mark.parametrize("reserved", ["Good_Count", "oee", "Is_Running", "IDEAL_CYCLE_TIME"])
def test_tag_names_of_the_stations_own_properties_are_rejected_in_any_case(reserved):
    station = ("sites", 0, "lines", 0, "stations", 0)
    loc, msg = only_error(
        plant_with(
            lambda d: d["sites"][0]["lines"][0]["stations"][0].update(tags=[{"name": reserved}])
        )
    )
    assert loc == (*station, "tags", 0, "name") and "reserved" in msg


def test_duplicate_tag_names_are_rejected():
    station = ("sites", 0, "lines", 0, "stations", 0)
    loc, msg = only_error(
        plant_with(
            lambda d: d["sites"][0]["lines"][0]["stations"][0].update(
                tags=[{"name": "t"}, {"name": "t"}]
            )
        )
    )
    assert loc == (*station, "tags") and "duplicate tag name: 't'" in msg


def test_ids_with_wildcards_are_rejected_in_the_plant():
    loc, msg = only_error(plant_with(lambda d: d["sites"][0]["lines"][0].update(id="l/1")))
    assert loc == ("sites", 0, "lines", 0, "id") and "topic level separator" in msg


def test_unknown_timezone_and_log_retention_are_rejected():
    loc, msg = only_error(plant_with(lambda d: d["sites"][0].update(timezone="Mars/Olympus")))
    assert loc == ("sites", 0, "timezone") and "unknown IANA time zone" in msg
    loc, msg = only_error(plant_with(lambda d: d.update(retention={"log_days": 10})))
    assert loc == ("retention", "log_days") and "CloudWatch Logs retention" in msg


def test_bad_deployment_settings_are_rejected():
    loc, _ = only_error(plant_with(lambda d: d["deployment"].update(stack_prefix="1-bad")))
    assert loc == ("deployment", "stack_prefix")
    loc, msg = only_error(plant_with(lambda d: d["deployment"].update(tags={"aws:x": "y"})))
    assert loc == ("deployment", "tags") and "tag key" in msg
    loc, msg = only_error(plant_with(lambda d: d["deployment"].update(alarm_emails=["nobody"])))
    assert "not an e-mail address" in msg


def shift(name, start, end, days):
    return {"name": name, "start": start, "end": end, "days": days}


@pytest.mark.parametrize(
    ("shifts", "message"),
    [
        (
            [shift("early", "06:00", "14:00", ["Mon"]), shift("late", "13:00", "22:00", ["Mon"])],
            "shift 'early' overlaps shift 'late' at Mon 13:00",
        ),
        (
            # a night shift crossing midnight into the next day's early shift
            [shift("night", "22:00", "06:30", ["Mon"]), shift("early", "06:00", "14:00", ["Tue"])],
            "shift 'night' overlaps shift 'early' at Tue 06:00",
        ),
        (
            # Sunday night wraps into Monday morning
            [shift("early", "05:00", "13:00", ["Mon"]), shift("night", "22:00", "06:00", ["Sun"])],
            "shift 'night' overlaps shift 'early' at Mon 05:00",
        ),
        (
            # one long shift containing two short ones
            [
                shift("long", "06:00", "18:00", ["Wed"]),
                shift("a", "07:00", "08:00", ["Wed"]),
                shift("b", "09:00", "10:00", ["Wed"]),
            ],
            "shift 'long' overlaps shift 'a' at Wed 07:00",
        ),
    ],
)
def test_overlapping_shifts_are_rejected(shifts, message):
    with pytest.raises(ValidationError) as info:
        ShiftCalendar.model_validate({"shifts": shifts})
    (error,) = info.value.errors()
    assert error["loc"] == ("shifts",) and message in error["msg"]


def test_back_to_back_shifts_and_a_full_week_are_accepted():
    every_day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    calendar = ShiftCalendar.model_validate(
        {
            "shifts": [
                shift("early", "06:00", "14:00", every_day),
                shift("late", "14:00", "22:00", every_day),
                shift("night", "22:00", "06:00", every_day),
            ]
        }
    )
    minutes = sum(end - start for s in calendar.shifts for start, end in s.week_intervals())
    assert minutes == 7 * 24 * 60


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [
        ("06:00", "06:00", "starts and ends at 06:00"),
        ("24:00", "06:00", "pattern"),
        ("6:00", "14:00", "pattern"),
    ],
)
def test_malformed_shift_times_are_rejected(start, end, reason):
    with pytest.raises(ValidationError, match=reason):
        Shift.model_validate(shift("x", start, end, ["Mon"]))


def test_night_shift_duration_crosses_midnight():
    assert Shift.model_validate(shift("night", "22:00", "06:00", ["Mon"])).duration_minutes == 480


@pytest.mark.parametrize("minutes", [0, 7 * 24 * 60 + 1])
def test_kpi_window_outside_what_sitewise_allows_is_rejected(minutes):
    loc, _ = only_error(plant_with(lambda d: d.update(kpi={"window_minutes": minutes})))
    assert loc == ("kpi", "window_minutes")


def test_kpi_window_becomes_the_sitewise_interval():
    plant = Plant.model_validate(plant_with(lambda d: d.update(kpi={"window_minutes": 60})))
    assert plant.kpi.sitewise_interval == "60m"


def test_a_line_beyond_one_nested_stack_is_rejected():
    def crowded(d):
        station = d["sites"][0]["lines"][0]["stations"][0]
        d["sites"][0]["lines"][0]["stations"] = [
            {**station, "id": f"s{i}"} for i in range(MAX_STATIONS_PER_LINE + 1)
        ]

    loc, msg = only_error(plant_with(crowded))
    assert loc == ("sites", 0, "lines", 0, "stations") and "at most 240" in msg


MONITOR = {
    "enabled": True,
    "contact_email": "plant-it@example.com",
    "administrators": ["arn:aws:iam::123456789012:role/PlantEngineer"],
}


def test_sitewise_monitor_is_off_by_default_and_complete_when_on():
    assert Plant.model_validate(BASE).kpi.sitewise_monitor.enabled is False
    plant = Plant.model_validate(plant_with(lambda d: d.update(kpi={"sitewise_monitor": MONITOR})))
    assert plant.kpi.sitewise_monitor.administrators == MONITOR["administrators"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"contact_email": None}, "needs a contact_email"),
        ({"administrators": []}, "at least one administrator"),
        ({"contact_email": "plant-it"}, "not an e-mail address"),
        ({"administrators": ["arn:aws:iam::123456789012:group/Engineers"]}, "IAM user or role"),
        ({"viewers": ["PlantEngineer"]}, "IAM user or role"),
        ({"viewers": MONITOR["administrators"]}, "duplicate portal identity"),
    ],
)
def test_an_incomplete_or_invalid_sitewise_monitor_is_rejected(change, message):
    monitor = {**MONITOR, **change}
    loc, msg = only_error(plant_with(lambda d: d.update(kpi={"sitewise_monitor": monitor})))
    assert loc[:2] == ("kpi", "sitewise_monitor") and message in msg


@pytest.mark.parametrize(
    "endpoint, message",
    [
        ({"url": "http://erp.example.com/events"}, "not an https:// URL"),
        ({"url": "https://erp.example.com", "rate_per_second": 0}, "greater than or equal to 1"),
        ({"url": "https://erp.example.com", "api_key_header": "x key"}, "should match pattern"),
    ],
)
def test_an_outbound_endpoint_must_be_https_with_a_sane_rate_and_header(endpoint, message):
    loc, msg = only_error(plant_with(lambda d: d.update(erp_plm={"erp": endpoint})))
    assert loc[:2] == ("erp_plm", "erp") and message in msg


def test_outbound_endpoints_are_optional_and_files_are_exported_by_default():
    plant = Plant.model_validate(BASE)
    assert plant.erp_plm.erp is None and plant.erp_plm.export_files is True


def test_a_cameras_region_of_interest_is_whole_pixels_at_least_64_across():
    from mes_domain.plant import CameraSpec

    spec = CameraSpec(
        model_component="com.acme.Models",
        roi={"left": 0, "top": 10, "width": 640, "height": 480},
    )
    assert spec.roi.as_tuple() == (0, 10, 640, 480)
    for bad in ({"left": -1}, {"width": 32}, {"height": 1.5}, {"depth": 3}):
        roi = {"left": 0, "top": 0, "width": 640, "height": 480} | bad
        with pytest.raises(ValidationError):
            CameraSpec(model_component="com.acme.Models", roi=roi)
