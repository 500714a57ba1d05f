import pytest

from mes_domain.topics import (
    MessageKind,
    StationTopic,
    TopicError,
    parse_topic,
    topic_filter,
)


def test_builds_the_station_topic():
    topic = StationTopic("berlin", "body-line-1", "press-01", MessageKind.TELEMETRY)
    assert str(topic) == "mes/v1/berlin/body-line-1/press-01/telemetry"


def test_builds_the_basic_ingest_form():
    topic = StationTopic("berlin", "line-1", "press-01", MessageKind.STATE)
    assert (
        topic.basic_ingest("mes_state")
        == "$aws/rules/mes_state/mes/v1/berlin/line-1/press-01/state"
    )


@pytest.mark.parametrize("kind", list(MessageKind))
def test_parse_inverts_build_for_every_kind(kind):
    topic = StationTopic("s1", "l1", "st1", kind)
    assert parse_topic(str(topic)).topic == topic
    parsed = parse_topic(topic.basic_ingest("rule_1"))
    assert (parsed.topic, parsed.rule_name) == (topic, "rule_1")


def test_direct_topic_has_no_rule_name():
    assert parse_topic("mes/v1/s/l/st/count").rule_name is None


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("mes/v1/s/l/st", "not of the form"),
        ("mes/v1/s/l/st/count/extra", "not of the form"),
        ("other/v1/s/l/st/count", "not of the form"),
        ("mes/v2/s/l/st/count", "version 'v2'"),
        ("mes/v1/s/l/st/vibration", "unknown message kind 'vibration'"),
        ("mes/v1/s/+/st/count", "MQTT single-level wildcard"),
        ("mes/v1/s/l/#/count", "MQTT multi-level wildcard"),
        ("mes/v1//l/st/count", "must be 1-64"),
        ("$aws/rules/bad-rule/mes/v1/s/l/st/count", "rule name 'bad-rule'"),
        ("mes/v1/s/l/" + "x" * 300 + "/count", "longer than 256 bytes"),
    ],
)
def test_rejects_malformed_topics_with_the_reason(topic, reason):
    with pytest.raises(TopicError, match=reason.replace("+", r"\+").replace("$", r"\$")):
        parse_topic(topic)


@pytest.mark.parametrize("bad_id", ["a+b", "a#", "a/b"])
def test_builder_rejects_ids_with_topic_wildcards(bad_id):
    with pytest.raises(TopicError, match="ids become MQTT topic levels"):
        StationTopic("site", bad_id, "st", MessageKind.COUNT)


def test_topic_filter_defaults_to_any_station():
    assert topic_filter("telemetry") == "mes/v1/+/+/+/telemetry"
    assert topic_filter(MessageKind.STATE, site="berlin", line="l1") == "mes/v1/berlin/l1/+/state"


def test_topic_filter_rejects_bad_kind_and_ids():
    with pytest.raises(TopicError):
        topic_filter("nope")
    with pytest.raises(ValueError, match="contains '#'"):
        topic_filter("count", site="#")


def test_command_topics_are_per_gateway_and_never_station_topics():
    from mes_domain.topics import command_topic_filter

    assert command_topic_filter("gw-berlin-1") == "mes/cmd/v1/gw-berlin-1/#"
    with pytest.raises(TopicError, match="not of the form"):
        parse_topic("mes/cmd/v1/gw-1/restart")
    with pytest.raises(TopicError, match="version 'cmd'"):
        parse_topic("mes/cmd/v1/gw-1/restart/now")
    with pytest.raises(ValueError, match="wildcard"):
        command_topic_filter("gw+")


def test_the_dataset_layout_is_one_for_edge_and_cloud():
    from mes_domain.quality import dataset_key, dataset_prefix

    assert dataset_prefix("berlin", "l1", "cam-01") == "datasets/berlin/l1/cam-01/"
    assert dataset_key("berlin", "l1", "cam-01", "defect", "p1.png", root="captures/") == (
        "captures/berlin/l1/cam-01/defect/p1.png"
    )
    with pytest.raises(ValueError, match="one of good, defect"):
        dataset_key("berlin", "l1", "cam-01", "error", "p1.png")
    with pytest.raises(ValueError, match="plain file name"):
        dataset_key("berlin", "l1", "cam-01", "good", "../p1.png")
    with pytest.raises(ValueError, match="MQTT topic levels"):
        dataset_prefix("berlin", "l1", "cam/01")
