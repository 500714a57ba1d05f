"""The component core with the in-memory transport: sources, verdicts, errors, hot swap."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest
from quality_inspection.captures import CaptureStore
from quality_inspection.component import QualityInspection
from quality_inspection.main import COMPONENT_NAME, _watch_ipc_config, ipc_configuration, main
from quality_inspection.models import load_model

from greengrass_components.common.transport import InMemoryTransport
from mes_domain.contracts import InspectionResult, Verdict
from mes_vision import Inspector
from tests.greengrass.conftest import (
    COMPONENT_DIR,
    QUALITY_TOPIC,
    TRIGGER_TOPIC,
    make_config,
    wait_for,
    write_defect,
    write_good,
)


def build(tmp_path, model_dir, *, rng=lambda: 1.0, camera=None, **capture):
    config = make_config(tmp_path, model_dir, camera, **capture)
    config.camera.inbox_dir.mkdir(parents=True, exist_ok=True)
    transport = InMemoryTransport()
    store = CaptureStore(config.capture.dir, max_bytes=10**9, max_files=1000)
    component = QualityInspection(config, transport, load_model(config.model), store, rng=rng)
    return component, transport


def results(transport) -> list[InspectionResult]:
    return [InspectionResult.model_validate_json(p) for p in transport.on(QUALITY_TOPIC)]


def settle(component, polls: int = 2) -> int:
    """Polls 'settle_ms' apart: a file must look the same on two of them to be taken."""
    done = 0
    for _ in range(polls):
        time.sleep(component.config.camera.settle_ms / 1000 + 0.02)
        done += component.run_once()
    return done


def test_folder_images_give_results_with_the_models_verdicts(tmp_path, model_dir):
    # Given good and defect images in the inbox
    component, transport = build(tmp_path, model_dir)
    inbox = component.config.camera.inbox_dir
    truth, data = {}, {}
    for i in range(3):
        for writer, verdict, name in (
            (write_good, "GOOD", f"G{i}"),
            (write_defect, "DEFECT", f"D{i}"),
        ):
            data[name] = writer(inbox / f"{name}.png", i).read_bytes()
            truth[name] = verdict
    # When the component polls
    assert settle(component) == 6
    # Then one valid InspectionResult per image, scored as the bare model scores it
    reference = Inspector.load(model_dir)
    got = {r.part_id: r for r in results(transport)}
    assert {p: r.verdict.value for p, r in got.items()} == truth
    for part_id, result in got.items():
        assert result.score == pytest.approx(reference.score_image(data[part_id]).score, rel=1e-5)
        assert result.threshold == pytest.approx(reference.threshold)
        assert (result.model_id, result.model_version) == (
            "com.acme.mes.models.SurfaceDefects",
            "1.0.0",
        )
        assert result.latency_ms > 0
    # And the inbox is empty: defects moved to the capture store, goods (sampled 0 %) deleted
    assert list(inbox.iterdir()) == []
    kept = component.captures.captures()
    assert sorted(c.name.split("_", 1)[1] for c in kept) == ["D0.png", "D1.png", "D2.png"]
    assert {c.label for c in kept} == {"defect"}
    assert all(c.path.read_bytes() == data[c.path.stem.split("_", 1)[1]] for c in kept)


def test_results_follow_arrival_order(tmp_path, model_dir):
    component, transport = build(tmp_path, model_dir)
    inbox = component.config.camera.inbox_dir
    names = ["p-c", "p-a", "p-b", "p-d"]  # arrival order differs from name order
    for i, name in enumerate(names):
        write_good(inbox / f"{name}.png", i)
        time.sleep(0.01)
    settle(component)
    assert [r.part_id for r in results(transport)] == names


def test_good_sample_rate_keeps_a_sample_of_good_images(tmp_path, model_dir):
    draws = iter([0.5, 0.01, 0.9, 0.019])  # rate 0.02: the 2nd and 4th are kept
    component, _ = build(tmp_path, model_dir, rng=lambda: next(draws), goodSampleRate=0.02)
    inbox = component.config.camera.inbox_dir
    for i in range(4):
        write_good(inbox / f"g{i}.png", i)
        time.sleep(0.01)
    settle(component)
    kept = component.captures.captures()
    assert [c.label for c in kept] == ["good", "good"]
    assert sorted(c.name.split("_", 1)[1] for c in kept) == ["g1.png", "g3.png"]


def test_corrupt_image_gives_error_result_and_the_component_carries_on(tmp_path, model_dir):
    # Given a truncated PNG between two good images
    component, transport = build(tmp_path, model_dir)
    inbox = component.config.camera.inbox_dir
    write_good(inbox / "before.png", 1)
    time.sleep(0.01)
    good = write_good(tmp_path / "full.png", 2).read_bytes()
    (inbox / "broken.png").write_bytes(good[: len(good) // 3])
    time.sleep(0.01)
    write_good(inbox / "after.png", 3)
    # When the component polls
    settle(component)
    # Then the broken one is an ERROR with a reason and no score, and both others are GOOD
    got = results(transport)
    assert [r.part_id for r in got] == ["before", "broken", "after"]
    broken = got[1]
    assert broken.verdict is Verdict.ERROR and broken.score is None and broken.threshold is None
    assert "broken.png" in broken.reason or "decode" in broken.reason
    assert [got[0].verdict, got[2].verdict] == [Verdict.GOOD, Verdict.GOOD]
    # And the bad file is kept for diagnosis under error/, never for upload
    assert [c.label for c in component.captures.captures()] == ["error"]
    assert component.captures.pending() == []


def test_trigger_message_names_an_image_and_gives_a_result(tmp_path, model_dir):
    # Given a component subscribed to its trigger topic, and an image the camera wrote
    component, transport = build(tmp_path, model_dir)
    component.subscribe_triggers()
    image = write_defect(tmp_path / "triggered" / "cam-0001.png", 4)
    # When the camera software sends a trigger with the path and the part id
    payload = json.dumps({"image_path": str(image), "part_id": "PART-77"}).encode()
    transport.publish(TRIGGER_TOPIC, payload)
    component.run_once()
    # Then the result carries the trigger's part id; the camera's file is copied, not taken
    (result,) = results(transport)
    assert (result.part_id, result.verdict) == ("PART-77", Verdict.DEFECT)
    assert image.exists()
    (capture,) = component.captures.captures()
    assert capture.path.read_bytes() == image.read_bytes()


def test_bad_triggers_are_logged_and_dropped_without_breaking_the_subscription(
    tmp_path, model_dir, caplog
):
    component, transport = build(tmp_path, model_dir)
    component.subscribe_triggers()
    secret = tmp_path / "secret.png"
    write_good(secret, 1)
    for payload in (b"not json", b'{"part_id": "x"}', json.dumps({"image_path": str(secret)})):
        transport.publish(TRIGGER_TOPIC, payload.encode() if isinstance(payload, str) else payload)
    assert component.run_once() == 0
    assert "outside" in caplog.text and "not JSON" in caplog.text
    # The subscription still works after them
    good = write_good(tmp_path / "triggered" / "ok.png", 2)
    transport.publish(TRIGGER_TOPIC, json.dumps({"image_path": str(good)}).encode())
    assert component.run_once() == 1
    assert [r.part_id for r in results(transport)] == ["ok"]


def test_unpublished_result_leaves_the_file_for_a_retry(tmp_path, model_dir):
    # Given the broker is unreachable
    component, transport = build(tmp_path, model_dir)
    component._publish_backoff.base_s = component._publish_backoff.max_s = 0.01
    inbox = component.config.camera.inbox_dir
    write_defect(inbox / "d.png", 1)
    transport.fail_publishes = True
    settle(component)
    # Then nothing was lost: the image waits in the inbox
    assert (inbox / "d.png").exists() and results(transport) == []
    # When the broker is back, the same image is inspected and published once
    transport.fail_publishes = False
    settle(component, polls=1)
    assert [r.part_id for r in results(transport)] == ["d"]
    assert not (inbox / "d.png").exists()


def test_hot_swap_switches_models_between_images_without_dropping_one(
    tmp_path, model_dir, other_model_dir
):
    # Given the component running on the 'cast' model and a stream of good cast parts
    component, transport = build(tmp_path, model_dir, camera={"settleMs": 0})
    inbox = component.config.camera.inbox_dir
    component.start()
    stop_writing = threading.Event()
    written: list[str] = []

    def camera():
        i = 0
        while not stop_writing.is_set():
            tmp = inbox / f".P{i:04d}.png.tmp"
            write_good(tmp, i)
            tmp.rename(inbox / f"P{i:04d}.png")  # the rename rule: complete when it appears
            written.append(f"P{i:04d}")
            i += 1
            time.sleep(0.01)

    writer = threading.Thread(target=camera)
    writer.start()
    try:
        assert wait_for(lambda: len(transport.on(QUALITY_TOPIC)) >= 5)
        # When a configuration update names another model (the 'machined' one)
        new_model = component.config.model.model_copy(
            update={"dir": other_model_dir, "version": "2.0.0"}
        )
        assert component.apply_config(component.config.model_copy(update={"model": new_model}))
        assert wait_for(lambda: any(r.model_version == "2.0.0" for r in results(transport)[-3:]))
    finally:
        stop_writing.set()
        writer.join()
    assert wait_for(lambda: not any(inbox.iterdir()))
    component.stop()
    # Then every image has exactly one result, in order, and the switch happened once, between
    # images: the old model calls good cast parts GOOD, the new one calls them DEFECT
    got = results(transport)
    assert [r.part_id for r in got] == written
    versions = [r.model_version for r in got]
    switch = versions.index("2.0.0")
    assert versions == ["1.0.0"] * switch + ["2.0.0"] * (len(got) - switch)
    assert {r.verdict for r in got[:switch]} == {Verdict.GOOD}
    assert {r.verdict for r in got[switch:]} == {Verdict.DEFECT}


def test_failed_model_load_keeps_the_old_model(tmp_path, model_dir, caplog):
    component, transport = build(tmp_path, model_dir)
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.json").write_text("{not json")
    new_model = component.config.model.model_copy(update={"dir": broken, "version": "9.9.9"})
    assert not component.apply_config(component.config.model_copy(update={"model": new_model}))
    assert "model update rejected" in caplog.text and str(broken) in caplog.text
    write_good(component.config.camera.inbox_dir / "x.png", 1)
    settle(component)
    (result,) = results(transport)
    assert (result.model_version, result.verdict) == ("1.0.0", Verdict.GOOD)


@pytest.mark.parametrize("missing", ["folder", "model.onnx"])
def test_missing_model_is_a_clear_startup_failure(tmp_path, model_dir, missing, capsys):
    # Given a model component whose folder, or whose ONNX file, is missing
    target = tmp_path / "model"
    if missing == "model.onnx":
        target.mkdir()
        (target / "model.json").write_bytes((model_dir / "model.json").read_bytes())
    config = make_config(tmp_path, target)
    config_file = tmp_path / "config.json"
    config_file.write_text(config.model_dump_json(by_alias=True, exclude={"access_control"}))
    # When the component starts (the transport is never reached: the model is checked first)
    code = main(["--config", str(config_file), "--mqtt", "127.0.0.1:1"])
    # Then it exits non-zero with a message naming the path
    assert code == 2
    err = capsys.readouterr().err
    assert str(target) in err and "com.acme.mes.models.SurfaceDefects" in err


def test_missing_model_exits_the_process_non_zero(tmp_path):
    config = make_config(tmp_path, tmp_path / "nowhere")
    config_file = tmp_path / "config.json"
    config_file.write_text(config.model_dump_json(by_alias=True, exclude={"access_control"}))
    src = COMPONENT_DIR / "src"
    proc = subprocess.run(
        [sys.executable, "-m", "quality_inspection", "--config", str(config_file), "--mqtt", "x:1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PYTHONPATH": f"{src}:{COMPONENT_DIR.parent.parent}", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    assert str(tmp_path / "nowhere") in proc.stderr


class FakeConfigClient:
    """GetConfiguration and SubscribeToConfigurationUpdate of GreengrassCoreIPCClientV2."""

    def __init__(self, configs) -> None:
        self.configs = configs
        self.handlers = {}

    def get_configuration(self, *, component_name, key_path):
        return SimpleNamespace(value=json.loads(json.dumps(self.configs[component_name])))

    def subscribe_to_configuration_update(self, *, component_name, key_path, on_stream_event):
        self.handlers[component_name] = on_stream_event


def test_a_new_model_component_version_is_hot_swapped_from_its_sibling_folder(
    tmp_path, model_dir, other_model_dir
):
    # Given Greengrass's layout: .../artifacts/<model component>/<version>/model.{onnx,json}
    artifacts = tmp_path / "packages" / "artifacts" / "com.acme.mes.models.SurfaceDefects"
    shutil.copytree(model_dir, artifacts / "1.0.100")
    ours = json.loads(make_config(tmp_path).model_dump_json(by_alias=True))
    ours["model"].update(dir="", version="", modelId="")
    model_component = {"modelId": "vision-01-surface", "modelVersion": "1.0.100"}
    client = FakeConfigClient(
        {COMPONENT_NAME: ours, "com.acme.mes.models.SurfaceDefects": model_component}
    )
    # When the component starts on the dependency's folder from the command line
    config = ipc_configuration(client, artifacts / "1.0.100")
    assert config.model.dir == artifacts / "1.0.100"
    component, transport = build(tmp_path, config.model.dir)
    component.config = config
    component.model = load_model(config.model)
    running = SimpleNamespace(component=component)
    _watch_ipc_config(client, running, config, artifacts / "1.0.100")
    write_good(config.camera.inbox_dir / "a.png", 1)
    settle(component)
    # And the pipeline deploys version 1.0.200 of the model component
    shutil.copytree(other_model_dir, artifacts / "1.0.200")
    model_component["modelVersion"] = "1.0.200"
    client.handlers["com.acme.mes.models.SurfaceDefects"](object())
    write_good(config.camera.inbox_dir / "b.png", 2)
    settle(component)
    # Then results name the model from the model component, and the new version took over
    got = results(transport)
    assert [(r.part_id, r.model_id, r.model_version) for r in got] == [
        ("a", "vision-01-surface", "1.0.100"),
        ("b", "vision-01-surface", "1.0.200"),
    ]
    assert component.model.model_dir == artifacts / "1.0.200"
    # And an update of our own configuration keeps the model component's version
    client.handlers[COMPONENT_NAME](object())
    assert component.model.model_dir == artifacts / "1.0.200"


def test_config_update_applies_capture_bounds_now_and_topology_at_restart(tmp_path, model_dir):
    component, _ = build(tmp_path, model_dir)
    old = component.config
    capture = old.capture.model_copy(
        update={"max_files": 7, "good_sample_rate": 0.5, "upload_bucket": "other-bucket"}
    )
    station = old.station.model_copy(update={"station": "vision-02"})
    assert component.apply_config(old.model_copy(update={"capture": capture, "station": station}))
    assert component.captures.max_files == 7
    assert component.config.capture.good_sample_rate == 0.5
    assert component.config.capture.upload_bucket == old.capture.upload_bucket
    assert component.config.station == old.station


def test_an_empty_file_and_a_symlink_get_an_error_result_and_move_aside(tmp_path, model_dir):
    # Given an empty image file, a link to a good image and a link to nothing in the inbox
    component, transport = build(tmp_path, model_dir)
    inbox = component.config.camera.inbox_dir
    (inbox / "empty.png").write_bytes(b"")
    target = write_good(tmp_path / "elsewhere" / "good.png", 1)
    (inbox / "linked.png").symlink_to(target)
    (inbox / "dangling.png").symlink_to(tmp_path / "missing.png")
    # When the component polls
    assert settle(component) == 3
    # Then each gets one ERROR result saying why, nothing is read through a link
    got = {r.part_id: r for r in results(transport)}
    assert {p: r.verdict for p, r in got.items()} == {
        "empty": Verdict.ERROR,
        "linked": Verdict.ERROR,
        "dangling": Verdict.ERROR,
    }
    assert "empty file" in got["empty"].reason
    assert "symbolic link" in got["linked"].reason and "symbolic link" in got["dangling"].reason
    # And each is moved aside to inbox/rejected/, never taken again, never captured
    assert sorted(p.name for p in (inbox / "rejected").iterdir()) == [
        "dangling.png",
        "empty.png",
        "linked.png",
    ]
    assert [p.name for p in inbox.iterdir()] == ["rejected"]
    assert target.read_bytes() and component.captures.captures() == []
    assert settle(component) == 0 and len(results(transport)) == 3


def test_queued_triggers_outlive_the_component_until_their_result_is_published(tmp_path, model_dir):
    # Given triggers received while results cannot be published
    component, transport = build(tmp_path, model_dir)
    component._publish_backoff.base_s = component._publish_backoff.max_s = 0.01
    component.subscribe_triggers()
    root = component.config.camera.trigger_root
    for i in range(3):
        image = write_good(root / f"cam-{i}.png", i)
        transport.publish(TRIGGER_TOPIC, json.dumps({"image_path": str(image)}).encode())
    transport.fail_publishes = True
    component.run_once()
    assert component.triggers.count() == 3 and results(transport) == []
    # When the component goes away and a new one starts on the same work folder
    component.triggers.close()
    again, transport2 = build(tmp_path, model_dir)
    # Then every trigger gets its result, once, in the order they came
    assert again.run_once() == 3
    assert [r.part_id for r in results(transport2)] == ["cam-0", "cam-1", "cam-2"]
    assert again.triggers.count() == 0 and again.run_once() == 0


def test_the_greengrass_ipc_connection_is_retried_until_the_nucleus_answers(monkeypatch, caplog):
    import awsiot.greengrasscoreipc.clientv2 as clientv2
    from quality_inspection.main import _ipc_client
    from quality_inspection.uploader import Backoff

    attempts = []

    class Nucleus:
        def __init__(self) -> None:
            attempts.append(1)
            if len(attempts) < 3:
                raise ConnectionRefusedError("ipc.socket not there yet")

    monkeypatch.setattr(clientv2, "GreengrassCoreIPCClientV2", Nucleus)
    client = _ipc_client(threading.Event(), Backoff(base_s=0.01, max_s=0.02))
    assert isinstance(client, Nucleus) and len(attempts) == 3
    assert caplog.text.count("Greengrass IPC not available") == 2
