"""Entry point: read the configuration, build the transport once, start the component.

    python -m quality_inspection --ipc --model-dir DIR            # on Greengrass
    python -m quality_inspection --config FILE --mqtt HOST:PORT  # a plain Linux gateway
        [--cert FILE --key FILE --ca FILE [--alpn NAMES]]        # mutual TLS (AWS IoT Core)

Exits 2 with a message naming the path when the model component is missing or unusable, and
when the configuration is invalid: never a silent idle. A broker (or nucleus) that is not
there yet is waited for, forever, with backoff: the component starts and catches up.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from greengrass_components.common.transport import Transport, TransportError
from quality_inspection.captures import CaptureStore
from quality_inspection.component import QualityInspection
from quality_inspection.config import ComponentConfig, ModelConfig, parse_config
from quality_inspection.models import LoadedModel, ModelUnavailable, load_model
from quality_inspection.uploader import Backoff, Uploader

log = logging.getLogger("quality_inspection")

COMPONENT_NAME = "com.acme.mes.QualityInspection"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass
class Running:
    component: QualityInspection
    uploader: Uploader | None

    def stop(self) -> None:
        self.component.stop()
        if self.uploader is not None:
            self.uploader.stop()
        self.component.triggers.close()


def default_s3_client() -> Any:
    import boto3

    return boto3.client("s3")


def start(
    config: ComponentConfig,
    transport: Transport,
    model: LoadedModel,
    *,
    default_model_dir: Path | None = None,
    s3_client: Callable[[], Any] = default_s3_client,
    rng: Callable[[], float] = random.random,
    upload_backoff: Backoff | None = None,
) -> Running:
    """Start inspecting with ``model`` (from ``load_model``) and uploading captures."""
    config.camera.inbox_dir.mkdir(parents=True, exist_ok=True)
    capture = config.capture
    store = CaptureStore(
        capture.dir,
        max_bytes=capture.max_bytes,
        max_files=capture.max_files,
        min_free_bytes=capture.min_free_bytes,
    )
    uploader = None
    if capture.upload_bucket:
        s = config.station
        uploader = Uploader(
            store,
            s3_client,
            bucket=capture.upload_bucket,
            prefix=capture.upload_prefix,
            site=s.site,
            line=s.line,
            station=s.station,
            backoff=upload_backoff,
        )
        uploader.start()
    component = QualityInspection(
        config, transport, model, store, default_model_dir=default_model_dir, rng=rng
    )
    component.start()
    log.info(
        "inspecting %s with %s %s; results on %s",
        config.camera.inbox_dir,
        model.model_id,
        model.model_version,
        config.publish_topic,
    )
    return Running(component, uploader)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m quality_inspection", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ipc", action="store_true", help="Greengrass: IPC config + transport")
    source.add_argument("--config", type=Path, help="JSON configuration file (SIGHUP reloads)")
    parser.add_argument("--mqtt", metavar="HOST:PORT", help="MQTT 5 broker (with --config)")
    parser.add_argument("--model-dir", type=Path, help="the model component's model folder")
    tls = parser.add_argument_group("mutual TLS (with --mqtt; AWS IoT Core: 8883, or 443)")
    tls.add_argument("--cert", type=Path, help="the device certificate (PEM)")
    tls.add_argument("--key", type=Path, help="its private key (PEM)")
    tls.add_argument("--ca", type=Path, help="CA file to trust for the broker (AmazonRootCA1.pem)")
    tls.add_argument(
        "--alpn", default="auto", help="ALPN names, comma-separated; auto: x-amzn-mqtt-ca on 443"
    )
    parser.add_argument("--client-id", help="MQTT client id (default quality-<station>)")
    parser.add_argument("--reconnect-min-ms", type=int, default=200, help=argparse.SUPPRESS)
    parser.add_argument("--reconnect-max-ms", type=int, default=10_000, help=argparse.SUPPRESS)
    return parser


def _ipc_config(client: Any) -> dict[str, Any]:
    return dict(client.get_configuration(component_name=COMPONENT_NAME, key_path=[]).value)


def model_from_component(
    model: ModelConfig, component_config: dict[str, Any], artifacts_path: Path | None
) -> ModelConfig:
    """Our model section, completed from the model component's configuration.

    The model pipeline publishes each model as a version of the model component whose
    configuration names ``modelId`` and ``modelVersion``. Greengrass keeps each version's
    artifacts in ``.../artifacts/<component>/<version>``, so the folder of a newly deployed
    version is the sibling of the one we started with. Settings in our own configuration win.
    """
    version = str(component_config.get("modelVersion") or "")
    update: dict[str, Any] = {}
    if component_config.get("modelId") and not model.model_id:
        update["model_id"] = str(component_config["modelId"])
    if version and not model.version:
        update["version"] = version
    if version and model.dir is None and artifacts_path is not None:
        update["dir"] = artifacts_path.parent / version
    return model.model_copy(update=update)


def _model_component_config(client: Any, name: str) -> dict[str, Any]:
    try:
        return dict(client.get_configuration(component_name=name, key_path=[]).value or {})
    except Exception as exc:  # an older model component without configuration
        log.warning("no configuration from model component %s: %s", name, exc)
        return {}


def ipc_configuration(client: Any, model_dir: Path | None) -> ComponentConfig:
    """Our configuration, its model section completed from the model component's."""
    config = parse_config(_ipc_config(client))
    name = config.model.component_name
    model = model_from_component(config.model, _model_component_config(client, name), model_dir)
    return config.model_copy(update={"model": model})


def _watch_ipc_config(client: Any, running: Running, config: ComponentConfig, model_dir) -> None:
    """Re-read both configurations when ours or the model component's changes (a new model
    version deployed by the pipeline); ``apply_config`` swaps the model if it changed."""

    def on_update(_event: Any) -> None:
        try:
            running.component.apply_config(ipc_configuration(client, model_dir))
        except ValidationError as exc:
            log.error("configuration update rejected: %s", exc)
        except Exception:
            log.exception("configuration update failed; keeping the current configuration")

    for name in (COMPONENT_NAME, config.model.component_name):
        client.subscribe_to_configuration_update(
            component_name=name, key_path=[], on_stream_event=on_update
        )


def _watch_config_file(path: Path, running: Running) -> None:
    def on_hup(_sig: int, _frame: Any) -> None:
        try:
            running.component.apply_config(parse_config(json.loads(path.read_text())))
        except (OSError, ValueError) as exc:
            log.error("configuration reload from %s rejected: %s", path, exc)

    signal.signal(signal.SIGHUP, on_hup)


def _transport(args: argparse.Namespace, config: ComponentConfig, ipc_client: Any) -> Transport:
    if ipc_client is not None:
        from greengrass_components.common.ipc_transport import IpcTransport

        return IpcTransport(ipc_client)
    from greengrass_components.common.mqtt5_transport import Mqtt5Transport, TlsFiles, parse_alpn

    host, _, port = args.mqtt.rpartition(":")
    tls = None
    if args.cert or args.key:
        if not (args.cert and args.key):
            raise TransportError("mutual TLS needs both --cert and --key")
        tls = TlsFiles(args.cert, args.key, args.ca, parse_alpn(args.alpn))
    # No connect timeout: the client retries with backoff until the broker is there, while
    # the component already inspects (results wait in the inbox, triggers in their queue).
    transport = Mqtt5Transport(
        host,
        int(port),
        args.client_id or f"quality-{config.station.station}",
        tls=tls,
        connect_timeout_s=None,
        min_reconnect_delay_ms=args.reconnect_min_ms,
        max_reconnect_delay_ms=args.reconnect_max_ms,
    )
    return transport


def _log_when_ready(transport: Transport, where: str) -> None:
    waited = 0
    while not transport.wait_ready(60):
        waited += 60
        log.warning("still waiting for the MQTT broker %s after %d s", where, waited)
    log.info("connected to the MQTT broker %s; subscriptions in place", where)


def _stop_on_signals(stop: threading.Event) -> None:
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())


def _ipc_client(stop: threading.Event, backoff: Backoff | None = None) -> Any:
    """The nucleus' IPC client, retried with backoff while the nucleus does not answer."""
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    backoff = backoff or Backoff(base_s=1.0, max_s=30.0)
    while True:
        try:
            return GreengrassCoreIPCClientV2()
        except Exception as exc:
            delay = backoff.next_delay()
            log.warning("Greengrass IPC not available, retrying in %.1f s: %s", delay, exc)
            if stop.wait(delay):
                raise


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    stop = threading.Event()
    ipc_client = None
    try:
        if args.ipc:
            _stop_on_signals(stop)
            ipc_client = _ipc_client(stop)
            config = ipc_configuration(ipc_client, args.model_dir)
        else:
            if not args.mqtt:
                raise ValueError("--mqtt HOST:PORT is required with --config")
            config = parse_config(json.loads(args.config.read_text()))
    except (OSError, ValueError) as exc:  # ValidationError is a ValueError
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
        return 2
    # The model first: a missing model component fails here, loudly, before anything starts.
    try:
        model = load_model(config.model, args.model_dir)
    except ModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        transport = _transport(args, config, ipc_client)
    except TransportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    running = start(config, transport, model, default_model_dir=args.model_dir)
    if args.mqtt:  # after start: the component's subscriptions count
        threading.Thread(target=_log_when_ready, args=(transport, args.mqtt), daemon=True).start()
    if ipc_client is not None:
        _watch_ipc_config(ipc_client, running, config, args.model_dir)
    else:
        _watch_config_file(args.config, running)
    _stop_on_signals(stop)
    stop.wait()
    running.stop()
    transport.close()
    return 0
