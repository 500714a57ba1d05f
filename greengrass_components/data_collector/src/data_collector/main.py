"""Entry point: read the configuration, build the transport once, run the collector.

    python -m data_collector --ipc --spool DIR                        # on Greengrass
    python -m data_collector --config FILE --mqtt-host H --mqtt-port P --spool DIR
        [--tls-cert C --tls-key K --tls-ca CA [--alpn x-amzn-mqtt-ca]]   # AWS IoT Core

The configuration is ``mes_domain.collection.CollectorConfig`` (what
``collector_configuration`` renders per line): the component configuration's ``collector`` key
through Greengrass IPC, or a JSON file holding it (or a document with a ``collector`` key).
SIGTERM and SIGINT stop it cleanly; a restart resumes from the spool. A configuration update
(IPC) or SIGHUP (file) restarts the collector in-process on the same spool. Exits 2 on an
invalid configuration, naming what is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from data_collector.collector import Collector
from greengrass_components.common.transport import Transport, TransportError
from mes_domain.collection import CollectorConfig

log = logging.getLogger("data_collector")

COMPONENT_NAME = "com.acme.mes.DataCollector"
CONFIG_KEY = "collector"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def parse_config(document: dict[str, Any]) -> CollectorConfig:
    """``document`` is the collector's configuration, or a component configuration holding
    it under ``collector``."""
    if CONFIG_KEY in document and "site" not in document:
        document = document[CONFIG_KEY]
    return CollectorConfig.model_validate(document)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m data_collector", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ipc", action="store_true", help="Greengrass: IPC config + transport")
    source.add_argument("--config", type=Path, help="JSON configuration file (SIGHUP reloads)")
    parser.add_argument("--spool", type=Path, required=True, help="folder of the spool")
    parser.add_argument("--mqtt-host", help="MQTT 5 broker (with --config)")
    parser.add_argument("--mqtt-port", type=int, default=8883)
    parser.add_argument("--client-id", help="MQTT client id (default: collector-SITE-LINE)")
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--tls-ca", type=Path)
    parser.add_argument("--alpn", help="ALPN names, comma-separated (default: IoT Core's on 443)")
    parser.add_argument(
        "--publishes-per-s",
        type=float,
        help="override the configured publish budget (a broker other than AWS IoT Core)",
    )
    parser.add_argument("--publish-bytes-per-s", type=float, help="as --publishes-per-s")
    return parser


def _ipc_config(client: Any) -> CollectorConfig:
    response = client.get_configuration(component_name=COMPONENT_NAME, key_path=[CONFIG_KEY])
    return parse_config(dict(response.value or {}))


def _transport(args: argparse.Namespace, config: CollectorConfig, ipc_client: Any) -> Transport:
    if ipc_client is not None:
        from greengrass_components.common.ipc_transport import IpcTransport

        return IpcTransport(ipc_client)
    from greengrass_components.common.mqtt5_transport import Mqtt5Transport, TlsFiles, parse_alpn

    tls = None
    if args.tls_cert or args.tls_key:
        tls = TlsFiles(args.tls_cert, args.tls_key, args.tls_ca, parse_alpn(args.alpn))
    client_id = args.client_id or f"collector-{config.site}-{config.line}"
    # connect_timeout_s=None: the spool keeps everything while the broker is unreachable, and
    # the client keeps trying; start-up never gives up.
    return Mqtt5Transport(
        args.mqtt_host, args.mqtt_port, client_id, tls=tls, connect_timeout_s=None
    )


async def _serve(args: argparse.Namespace, config: CollectorConfig, transport, reload) -> int:
    loop = asyncio.get_running_loop()
    while True:
        collector = Collector(
            config,
            transport,
            args.spool,
            publishes_per_s=args.publishes_per_s,
            bytes_per_s=args.publish_bytes_per_s,
        )
        stopping = {"reload": False}

        def on_reload(collector=collector, stopping=stopping) -> None:
            stopping["reload"] = True
            collector.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, collector.stop)
        reload.subscribe(loop, on_reload)
        await collector.run()
        if not stopping["reload"]:
            return 0
        try:
            config = reload.load()
        except (OSError, ValueError) as exc:  # ValidationError is a ValueError
            log.error("configuration reload rejected, keeping the current one: %s", exc)
        else:
            log.info("configuration reloaded; restarting the collector on the same spool")


class _FileReload:
    def __init__(self, path: Path) -> None:
        self.path = path

    def subscribe(self, loop: asyncio.AbstractEventLoop, callback) -> None:
        loop.add_signal_handler(signal.SIGHUP, callback)

    def load(self) -> CollectorConfig:
        return parse_config(json.loads(self.path.read_text()))


class _IpcReload:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.callback = None
        self.subscribed = False

    def subscribe(self, loop: asyncio.AbstractEventLoop, callback) -> None:
        self.callback = lambda: loop.call_soon_threadsafe(callback)
        if not self.subscribed:
            self.subscribed = True
            self.client.subscribe_to_configuration_update(
                component_name=COMPONENT_NAME,
                key_path=[CONFIG_KEY],
                on_stream_event=lambda _event: self.callback and self.callback(),
            )

    def load(self) -> CollectorConfig:
        return _ipc_config(self.client)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # asyncua and pymodbus log every notification and request at INFO: a flood on a gateway.
    for library in ("asyncua", "pymodbus"):
        logging.getLogger(library).setLevel(logging.WARNING)
    ipc_client = None
    try:
        if args.ipc:
            from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

            ipc_client = GreengrassCoreIPCClientV2()
            config = _ipc_config(ipc_client)
            reload: Any = _IpcReload(ipc_client)
        else:
            if not args.mqtt_host:
                raise ValueError("--mqtt-host is required with --config")
            config = parse_config(json.loads(args.config.read_text()))
            reload = _FileReload(args.config)
    except (OSError, ValueError, ValidationError) as exc:
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
        return 2
    try:
        transport = _transport(args, config, ipc_client)
    except TransportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_serve(args, config, transport, reload))
    finally:
        transport.close()
