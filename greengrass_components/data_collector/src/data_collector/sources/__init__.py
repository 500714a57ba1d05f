"""The line's machine connections as ``readings.Source``s: OPC UA, Modbus TCP and plant MQTT.

``make_source`` picks the implementation by the connection's protocol; each source is imported
only when a connection needs it (asyncua alone takes about a second to import).
"""

from __future__ import annotations

import asyncio
import logging

from data_collector.readings import Binding, Sink, Source, SourceError
from mes_domain.collection import Protocol

log = logging.getLogger(__name__)


def make_source(connection, bindings: list[Binding]) -> Source:
    """The source reading ``bindings`` over ``connection``; a binding of another connection or
    protocol is a ``SourceError`` naming its station and point."""
    for binding in bindings:
        address = binding.address
        if address.connection != connection.name or address.protocol != connection.protocol:
            raise SourceError(
                f"connection {connection.name}: station {binding.station}, point "
                f"{binding.point} is addressed to {address.protocol} connection "
                f"{address.connection}"
            )
    if connection.protocol == Protocol.OPCUA:
        from data_collector.sources.opcua import OpcUaSource

        return OpcUaSource(connection, bindings)
    if connection.protocol == Protocol.MODBUS:
        from data_collector.sources.modbus import ModbusSource

        return ModbusSource(connection, bindings)
    if connection.protocol == Protocol.MQTT:
        from data_collector.sources.mqtt import MqttSource

        return MqttSource(connection, bindings)
    raise SourceError(f"connection {connection.name}: unknown protocol {connection.protocol}")


async def run_source(source: Source, sink: Sink, restart_s: float = 5.0) -> None:
    """Run one source as its own task: a crash is logged with its connection and the source is
    started again after ``restart_s``; the other sources never notice. Ends when cancelled."""
    while True:
        try:
            await source.run(sink)
            log.error("source %s returned; starting it again", source.name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("source %s failed; starting it again in %g s", source.name, restart_s)
        await asyncio.sleep(restart_s)


__all__ = ["make_source", "run_source"]
