"""``python -m services.inventory [serve|migrate]``: the settings come from the environment
(``MES_DATABASE_URL`` ...) and are checked first; a bad one exits 2 naming the variable.
``serve`` also relays the outbox to the event bus when ``MES_EVENT_BUS_NAME`` names one."""

from __future__ import annotations

import argparse
import sys
import threading

from services.common.db import engine_for
from services.common.logs import configure_logging
from services.common.migrations import upgrade_to_head
from services.common.settings import ServiceSettings, SettingsError
from services.inventory.app import MIGRATIONS_DIR, SERVICE, build_app, bus_relay

EXIT_CONFIGURATION = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.inventory", description=__doc__)
    parser.add_argument(
        "action",
        nargs="?",
        choices=["serve", "migrate"],
        default="serve",
        help="serve the API (default), or upgrade the database to the newest schema",
    )
    action = parser.parse_args(argv).action
    try:
        settings = ServiceSettings.from_environ()
    except SettingsError as bad:
        print(f"{SERVICE}: {bad}", file=sys.stderr)
        return EXIT_CONFIGURATION
    configure_logging(SERVICE, settings.log_level)
    if action == "migrate":
        engine = engine_for(settings)
        try:
            upgrade_to_head(MIGRATIONS_DIR, engine)
        finally:
            engine.dispose()
        return 0
    import uvicorn

    app = build_app(settings)
    stop = threading.Event()
    relay = bus_relay(settings, app.state.service.sessions)
    if relay is not None:
        threading.Thread(
            target=relay.run,
            args=(stop, settings.outbox_interval_s),
            name="outbox-relay",
            daemon=True,
        ).start()
    try:
        # log_config None: uvicorn keeps the JSON handler configure_logging installed.
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,  # the app logs each request itself, with its route and latency
        )
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
