"""The whole component against a real Mosquitto with the MQTT 5 transport: folder in, results
out; a slow writer; and the dataset upload surviving an outage (S3 under moto)."""

from __future__ import annotations

import json
import time

import pytest
from quality_inspection.main import start
from quality_inspection.models import load_model
from quality_inspection.uploader import Backoff

from greengrass_components.common.mqtt5_transport import Mqtt5Transport
from mes_domain.contracts import InspectionResult, Verdict
from tests.greengrass.broker import Broker, mosquitto_binary
from tests.greengrass.conftest import (
    QUALITY_TOPIC,
    TRIGGER_TOPIC,
    FlakyS3,
    make_config,
    wait_for,
    write_defect,
    write_good,
)
from tests.greengrass.tcp_proxy import TcpProxy

BUCKET = "acme-datasets"


class Listener:
    """A second client on the broker, collecting the results as the cloud would see them."""

    def __init__(self, port: int) -> None:
        self.transport = Mqtt5Transport("127.0.0.1", port, f"listener-{time.monotonic_ns()}")
        self.results: list[InspectionResult] = []
        self.transport.subscribe(QUALITY_TOPIC, self._on)

    def _on(self, topic: str, payload: bytes) -> None:
        self.results.append(InspectionResult.model_validate_json(payload))

    def wait(self, count: int, timeout_s: float = 20) -> list[InspectionResult]:
        assert wait_for(lambda: len(self.results) >= count, timeout_s), self.results
        time.sleep(0.3)  # anything extra (a duplicate) would arrive now
        return list(self.results)


@pytest.fixture
def running(tmp_path, model_dir, broker):
    """Start the component on the broker; yields a function that starts it with options."""
    started = []

    def run(config=None, **options):
        config = config or make_config(tmp_path, model_dir)
        transport = Mqtt5Transport("127.0.0.1", broker.port, f"qi-{time.monotonic_ns()}")
        handle = start(config, transport, load_model(config.model), **options)
        started.append((handle, transport))
        return handle

    yield run
    for handle, transport in started:
        handle.stop()
        transport.close()


def test_images_dropped_in_the_folder_give_results_in_order_none_missing(tmp_path, broker, running):
    # Given the component and a listener on the broker
    listener = Listener(broker.port)
    component = running().component
    inbox = component.config.camera.inbox_dir
    # When a camera drops good and defect images, some written in place, some renamed in
    expected = []
    for i in range(12):
        is_defect = i % 3 == 1
        name = f"part-{i:03d}"
        writer = write_defect if is_defect else write_good
        if i % 2:
            tmp = writer(inbox / f".{name}.png.tmp", i)
            tmp.rename(inbox / f"{name}.png")
        else:
            writer(inbox / f"{name}.png", i)
        expected.append((name, Verdict.DEFECT if is_defect else Verdict.GOOD))
        time.sleep(0.02)
    # Then each image gives one result with the right verdict, in the order they arrived
    got = listener.wait(len(expected))
    listener.transport.close()
    assert [(r.part_id, r.verdict) for r in got] == expected
    assert all(r.model_id == "com.acme.mes.models.SurfaceDefects" for r in got)
    assert wait_for(lambda: not any(inbox.iterdir()))


def test_a_slow_writer_is_never_read_half_way(tmp_path, broker, running, model_dir):
    # Given the component, with every read it makes recorded
    listener = Listener(broker.port)
    component = running().component
    inbox = component.config.camera.inbox_dir
    reads: list[int] = []
    inspector = component.model.inspector
    score = inspector.score_image

    def recording(source, *args, **kwargs):
        reads.append(len(source))
        return score(source, *args, **kwargs)

    inspector.score_image = recording
    # When a writer writes a defect image in ten chunks over about one second
    data = write_defect(tmp_path / "full.png", 5).read_bytes()
    chunk = -(-len(data) // 10)
    with (inbox / "slow-part.png").open("wb") as f:
        for i in range(0, len(data), chunk):
            f.write(data[i : i + chunk])
            f.flush()
            time.sleep(0.1)
    # Then it is read once, whole, and inspected as a DEFECT (half a PNG would be an ERROR)
    (result,) = listener.wait(1)
    listener.transport.close()
    assert reads == [len(data)]
    assert (result.part_id, result.verdict) == ("slow-part", Verdict.DEFECT)


def test_captures_upload_once_after_an_outage_and_not_again_after_restart(
    tmp_path, broker, running, model_dir, s3
):
    # Given the upload link is down
    flaky = FlakyS3(s3)
    flaky.down = True
    config = make_config(tmp_path, model_dir, uploadBucket=BUCKET, goodSampleRate=1.0)
    fast = Backoff(base_s=0.05, max_s=0.2)
    listener = Listener(broker.port)
    handle = running(config, s3_client=lambda: flaky, upload_backoff=fast)
    inbox = config.camera.inbox_dir
    # When defect and good images are inspected during the outage
    sent = {}
    for i in range(4):
        writer = write_defect if i % 2 else write_good
        sent[f"p{i}"] = writer(inbox / f"p{i}.png", i).read_bytes()
        time.sleep(0.02)
    results = listener.wait(4)
    listener.transport.close()
    # Then every result names where its image will be, and the captures wait on disk
    assert wait_for(lambda: flaky.failed_calls >= 2)
    store = handle.component.captures
    assert len(store.pending()) == 4 and s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    # When the link comes back
    flaky.down = False
    assert wait_for(lambda: not store.pending(), timeout_s=10)
    # Then each capture is in the bucket exactly once, where the training pipeline looks
    objects = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    keys = sorted(o["Key"] for o in objects)
    assert sorted(flaky.puts) == keys and set(flaky.puts.values()) == {1}
    by_part = {r.part_id: r for r in results}
    for part_id, data in sent.items():
        label = "defect" if by_part[part_id].verdict is Verdict.DEFECT else "good"
        key = by_part[part_id].image_key.removeprefix(f"s3://{BUCKET}/")
        assert key.startswith(f"datasets/berlin/body-line-1/vision-01/{label}/") and key in keys
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
    # When the component restarts on the same folders
    handle.stop()
    puts_before = dict(flaky.puts)
    restarted = running(config, s3_client=lambda: flaky, upload_backoff=fast)
    time.sleep(0.5)
    # Then nothing is uploaded again
    assert restarted.component.captures.pending() == []
    assert flaky.puts == puts_before


def test_result_is_published_while_s3_is_unreachable(tmp_path, broker, running, model_dir, s3):
    flaky = FlakyS3(s3)
    flaky.down = True
    config = make_config(tmp_path, model_dir, uploadBucket=BUCKET)
    listener = Listener(broker.port)
    running(config, s3_client=lambda: flaky, upload_backoff=Backoff(0.05, 0.1))
    write_defect(config.camera.inbox_dir / "d.png", 1)
    (result,) = listener.wait(1)
    listener.transport.close()
    assert result.verdict is Verdict.DEFECT and result.image_key.startswith(f"s3://{BUCKET}/")


def test_stop_is_prompt_and_ends_the_threads(tmp_path, broker, running, model_dir, s3):
    # Greengrass kills a component that does not stop within its shutdown timeout.
    config = make_config(tmp_path, model_dir, uploadBucket=BUCKET)
    handle = running(config, s3_client=lambda: s3)
    time.sleep(0.2)
    started = time.monotonic()
    handle.stop()
    assert time.monotonic() - started < 2
    assert not handle.component._thread.is_alive()
    assert not handle.uploader._thread.is_alive()


# -- the link: broker restarts, outages (a cut proxy), as the probes found them --------------

FAST = {"min_reconnect_delay_ms": 50, "max_reconnect_delay_ms": 500, "timeout_s": 2}


@pytest.fixture
def own_broker(tmp_path):
    (tmp_path / "broker").mkdir()
    with Broker(mosquitto_binary(), tmp_path / "broker") as broker:
        yield broker


def test_a_trigger_after_a_broker_restart_still_gets_its_result(tmp_path, model_dir, own_broker):
    # Given the component subscribed to its trigger topic, and a first trigger answered
    config = make_config(tmp_path, model_dir)
    transport = Mqtt5Transport("127.0.0.1", own_broker.port, "qi-restart", **FAST)
    handle = start(config, transport, load_model(config.model))
    camera = Mqtt5Transport("127.0.0.1", own_broker.port, "camera", **FAST)
    listener = Listener(own_broker.port)
    try:
        root = config.camera.trigger_root
        first, second = write_good(root / "t1.png", 1), write_defect(root / "t2.png", 2)
        camera.publish(TRIGGER_TOPIC, json.dumps({"image_path": str(first)}).encode())
        assert [r.part_id for r in listener.wait(1)] == ["t1"]
        # When the broker restarts (every session and subscription gone) between two triggers
        own_broker.restart(down_s=0.5)
        assert transport.wait_ready(10) and camera.wait_ready(10)
        assert listener.transport.wait_ready(10)
        camera.publish(TRIGGER_TOPIC, json.dumps({"image_path": str(second)}).encode())
        # Then the second trigger arrives and gets its result
        got = listener.wait(2)
        assert [(r.part_id, r.verdict) for r in got] == [
            ("t1", Verdict.GOOD),
            ("t2", Verdict.DEFECT),
        ]
        assert handle.component.triggers.count() == 0
    finally:
        handle.stop()
        for client in (transport, camera, listener.transport):
            client.close()


def test_an_outage_with_n_parts_gives_exactly_n_results(tmp_path, model_dir, own_broker):
    # Given the component behind a link the test can cut, and the cloud's listener
    proxy = TcpProxy(own_broker.port)
    config = make_config(tmp_path, model_dir, camera={"settleMs": 50})
    transport = Mqtt5Transport("127.0.0.1", proxy.port, "qi-outage", **FAST)
    handle = start(config, transport, load_model(config.model))
    handle.component._publish_backoff.max_s = 0.5
    listener = Listener(own_broker.port)
    try:
        # When the link is cut and 8 parts are inspected during the outage
        proxy.cut()
        assert wait_for(lambda: not transport.connected, 5)
        inbox = config.camera.inbox_dir
        for i in range(8):
            (write_defect if i % 3 == 0 else write_good)(inbox / f"part-{i}.png", i)
        assert wait_for(lambda: handle.component._publish_backoff.failures >= 4, 10)
        time.sleep(1)  # more failed attempts: each one must leave nothing behind
        # And the link comes back
        proxy.restore()
        # Then the cloud gets exactly 8 results, one per part, none twice
        got = listener.wait(8, timeout_s=20)
        time.sleep(1)
        got = list(listener.results)
        assert len(got) == 8
        assert sorted(r.part_id for r in got) == [f"part-{i}" for i in range(8)]
        assert wait_for(lambda: not any(p.is_file() for p in inbox.iterdir()))
    finally:
        handle.stop()
        transport.close()
        listener.transport.close()
        proxy.close()
