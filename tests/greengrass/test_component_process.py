"""The component as Greengrass or a gateway's service manager runs it: a process, with the
broker coming late, and killed with SIGKILL while triggers wait for their results."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from greengrass_components.common.mqtt5_transport import Mqtt5Transport
from mes_domain.contracts import InspectionResult, Verdict
from tests.conftest import PROJECT_ROOT
from tests.greengrass.broker import Broker, mosquitto_binary
from tests.greengrass.conftest import (
    COMPONENT_DIR,
    QUALITY_TOPIC,
    TRIGGER_TOPIC,
    make_config,
    wait_for,
    write_defect,
    write_good,
)

READY = "subscriptions in place"


class Component:
    """``python -m quality_inspection --config ... --mqtt 127.0.0.1:PORT`` in a work folder."""

    def __init__(self, tmp_path: Path, model_dir: Path, port: int) -> None:
        self.config = make_config(tmp_path, model_dir)
        self.file = tmp_path / "config.json"
        self.file.write_text(self.config.model_dump_json(by_alias=True, exclude={"access_control"}))
        self.port = port
        self.log = tmp_path / "component.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        src = COMPONENT_DIR / "src"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "quality_inspection",
                    "--config",
                    str(self.file),
                    "--mqtt",
                    f"127.0.0.1:{self.port}",
                    "--reconnect-min-ms",
                    "100",
                    "--reconnect-max-ms",
                    "500",
                ],  # fmt: skip
                cwd=self.file.parent,
                env={"PYTHONPATH": f"{src}:{PROJECT_ROOT}", "PATH": "/usr/bin:/bin"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, count: int = 1, timeout_s: float = 30) -> None:
        assert wait_for(lambda: self.text().count(needle) >= count, timeout_s), self.text()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Results:
    def __init__(self, port: int) -> None:
        self.got: list[InspectionResult] = []
        self.transport = Mqtt5Transport("127.0.0.1", port, f"cloud-{time.monotonic_ns()}")
        self.transport.subscribe(
            QUALITY_TOPIC, lambda t, p: self.got.append(InspectionResult.model_validate_json(p))
        )

    def wait(self, count: int, timeout_s: float = 30) -> list[InspectionResult]:
        assert wait_for(lambda: len(self.got) >= count, timeout_s), self.got
        time.sleep(0.5)  # a duplicate would arrive now
        return list(self.got)


@pytest.fixture
def cleanup():
    items = []
    yield items
    for item in reversed(items):
        item.stop() if hasattr(item, "stop") else item.close()


def test_the_component_waits_for_a_broker_that_comes_late(tmp_path, model_dir, cleanup):
    # Given no broker yet where the component is told to connect
    (tmp_path / "broker").mkdir()
    broker = Broker(mosquitto_binary(), tmp_path / "broker")
    component = Component(tmp_path, model_dir, broker.port)
    cleanup += [broker, component]
    component.start()
    # When the broker comes 15 s later (the old component gave up after about 12 s)
    time.sleep(15)
    assert component.process.poll() is None, component.text()
    assert "unreachable" in component.text() and READY not in component.text()
    broker.start()
    results = Results(broker.port)
    cleanup.append(results.transport)
    # Then the component connects and results flow
    component.wait_log(READY)
    write_defect(component.config.camera.inbox_dir / "late-part.png", 3)
    (result,) = results.wait(1)
    assert (result.part_id, result.verdict) == ("late-part", Verdict.DEFECT)


def test_triggers_queued_before_a_kill_9_get_their_results_after_the_restart(
    tmp_path, model_dir, cleanup
):
    # Given a broker that takes triggers but refuses results (the cloud link is down)
    (tmp_path / "broker").mkdir()
    acl = tmp_path / "broker" / "acl"
    acl.write_text("pattern readwrite mes/local/#\npattern read mes/v1/#\n")
    broker = Broker(mosquitto_binary(), tmp_path / "broker", extra=[f"acl_file {acl}"])
    broker.start()
    component = Component(tmp_path, model_dir, broker.port)
    cleanup += [broker, component]
    component.start()
    component.wait_log(READY)
    camera = Mqtt5Transport("127.0.0.1", broker.port, "camera")
    cleanup.append(camera)
    # When five triggers arrive, their results fail, and the component is killed with SIGKILL
    root = component.config.camera.trigger_root
    for i in range(5):
        image = (write_defect if i == 2 else write_good)(root / f"cam-{i}.png", i)
        camera.publish(TRIGGER_TOPIC, json.dumps({"image_path": str(image)}).encode())
    component.wait_log("not published, will retry")
    queue = component.config.camera.trigger_queue

    def queued() -> int:
        with sqlite3.connect(queue) as db:
            return db.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    assert wait_for(lambda: queued() == 5, 10)
    component.process.send_signal(signal.SIGKILL)
    component.process.wait(10)
    # And it starts again once the link to the cloud is back
    broker.reconfigure([])
    broker.restart()
    results = Results(broker.port)
    cleanup.append(results.transport)
    component.start()
    # Then every trigger gets exactly one result, in the order they came
    got = results.wait(5)
    assert [r.part_id for r in got] == [f"cam-{i}" for i in range(5)]
    assert [r.verdict for r in got].count(Verdict.DEFECT) == 1
    assert wait_for(lambda: queued() == 0, 10)
