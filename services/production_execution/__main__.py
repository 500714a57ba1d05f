"""``python -m services.production_execution [serve|migrate]``: the settings come from the
environment (``MES_*``) and are checked first; a bad one exits 2 naming the variable. ``serve``
also runs the sync with the peer instances and the cloud's outbound relay in threads."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Mapping, Sequence

from services.common.db import engine_for
from services.common.logs import configure_logging
from services.common.migrations import upgrade_to_head
from services.common.settings import SettingsError
from services.production_execution.settings import ProductionSettings

EXIT_BAD_SETTINGS = 2


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.production_execution",
        description="The MES production execution service (settings: MES_* variables).",
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "migrate"],
        help="serve the API (default), or migrate the database to the head revision",
    )
    args = parser.parse_args(argv)
    try:
        settings = ProductionSettings.from_environ(environ)
    except SettingsError as exc:
        print(f"production-execution: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    configure_logging("production-execution", settings.log_level)

    from services.production_execution.app import MIGRATIONS_DIR, background_workers, build_app

    if args.command == "migrate":
        engine = engine_for(settings)
        try:
            upgrade_to_head(MIGRATIONS_DIR, engine)
        finally:
            engine.dispose()
        return 0
    import uvicorn

    app = build_app(settings)
    stop = threading.Event()
    for worker in background_workers(settings, app):
        threading.Thread(target=worker.run, args=(stop,), name=worker.name, daemon=True).start()
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,  # the JSON logs configured above
            access_log=False,  # create_app logs each request
        )
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
