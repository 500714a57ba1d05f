"""``python -m mes_gateway``: onboard gateways from the operator's machine.

    register --site S --line L [--station ST] --serial X [--out gateway.zip]
    bundle --serial X --out gateway.zip [--offline --nucleus-zip P --plugin-jar P]
    status [--json]
    revoke-claim | restore-claim

Exit codes: 0 done, 2 a request to change (the message says what), 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from mes_domain.fleet import NUCLEUS_VERSION, SERIAL_PATTERN
from mes_domain.plant import Plant
from mes_gateway.api import Fleet, GatewayHealth, Onboarding, OnboardingError
from mes_gateway.bundle import FOLDER, INSTALL_SCRIPT, OfflineFiles
from stacks.plant_config import DEFAULT_PLANT_CONFIG, PlantConfigError, load_plant

PROJECT_ROOT = Path(__file__).resolve().parent.parent
USAGE_ERROR = 2


def _aws_fleet(region: str | None, profile: str | None) -> Fleet:
    from mes_gateway.aws import NoRegion, connect  # boto3 only where AWS is called

    try:
        return connect(region, profile)
    except NoRegion as error:
        raise OnboardingError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mes_gateway", description="Onboard Greengrass gateways by claim."
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=PROJECT_ROOT / DEFAULT_PLANT_CONFIG,
        help="the plant config (default: %(default)s)",
    )
    parser.add_argument("--region", help="default: the plant's deployment.region, then AWS_REGION")
    parser.add_argument("--profile", help="an AWS CLI profile (default: the usual chain)")
    commands = parser.add_subparsers(dest="command", required=True)

    def bundle_options(command: argparse.ArgumentParser, required: bool) -> None:
        command.add_argument(
            "--out", type=Path, required=required, help="the bundle to write, e.g. gateway.zip"
        )
        command.add_argument(
            "--offline",
            action="store_true",
            help="carry the nucleus and the plugin, for a gateway without internet",
        )
        command.add_argument("--nucleus-zip", type=Path, help="greengrass-<version>.zip")
        command.add_argument("--plugin-jar", type=Path, help="the fleet provisioning plugin's jar")
        command.add_argument(
            "--nucleus-version",
            help=f"default: {NUCLEUS_VERSION}, the version every gateway deployment pins",
        )

    register = commands.add_parser("register", help="add a gateway to the allow-list")
    register.add_argument("--site", required=True)
    register.add_argument("--line", required=True)
    register.add_argument("--station", help="a camera station: the gateway serves it alone")
    register.add_argument("--serial", required=True, help=SERIAL_PATTERN)
    bundle_options(register, required=False)

    bundle = commands.add_parser("bundle", help="write a registered gateway's bundle")
    bundle.add_argument("--serial", required=True)
    bundle_options(bundle, required=True)

    status = commands.add_parser("status", help="the gateways' health and component versions")
    status.add_argument("--json", action="store_true", help="one JSON document")

    commands.add_parser("revoke-claim", help="disable the claim certificate")
    commands.add_parser("restore-claim", help="enable the claim certificate again")
    return parser


def _offline(args: argparse.Namespace) -> OfflineFiles | None:
    given = args.nucleus_zip is not None or args.plugin_jar is not None
    if not args.offline:
        if given:
            raise OnboardingError("--nucleus-zip and --plugin-jar go with --offline")
        return None
    if args.nucleus_zip is None or args.plugin_jar is None:
        raise OnboardingError("--offline needs --nucleus-zip and --plugin-jar")
    return OfflineFiles(args.nucleus_zip, args.plugin_jar)


def _status_table(rows: list[GatewayHealth]) -> str:
    if not rows:
        return "no gateways registered and no core devices"
    header = ("THING", "SITE/LINE", "REGISTRATION", "CORE STATUS", "SINCE", "COMPONENTS")
    lines = [header]
    for row in rows:
        place = "/".join(p for p in (row.site, row.line, row.station) if p) or "-"
        components = ", ".join(f"{n}={v}" for n, v in row.components.items()) or "-"
        lines.append(
            (
                row.thing_name,
                place,
                row.registration or "-",
                row.core_status,
                row.last_status_change or "-",
                components,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True))
        + "  "
        + line[-1]
        for line in lines
    )


def _write_bundle(onboarding: Onboarding, args: argparse.Namespace) -> None:
    report = onboarding.bundle(
        args.serial, args.out, offline=_offline(args), nucleus_version=args.nucleus_version
    )
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    kind = "offline bundle" if report.offline else "bundle"
    print(
        f"wrote {report.path}: the {kind} of {report.thing_name} (nucleus "
        f"{report.nucleus_version}, thing groups {', '.join(report.thing_groups)}).\n"
        "It holds the claim private key: copy it to the gateway only, then delete it.\n"
        f"On the gateway: unzip {Path(report.path).name} && sudo ./{FOLDER}/{INSTALL_SCRIPT}"
    )


def run(args: argparse.Namespace, make_fleet: Callable[[str | None, str | None], Fleet]) -> int:
    plant: Plant = load_plant(args.config)
    if args.command in ("register", "bundle"):
        _offline(args)  # refuse a bad option before anything is written
    fleet = make_fleet(args.region or plant.deployment.region, args.profile)
    onboarding = Onboarding(plant, fleet)
    if args.command == "register":
        gateway = onboarding.register(args.site, args.line, args.serial, station=args.station)
        place = "/".join(p for p in (gateway.site, gateway.line, gateway.station) if p)
        print(f"registered {gateway.serial} for {place} as {gateway.thing_name}")
        if args.out is not None:
            _write_bundle(onboarding, args)
    elif args.command == "bundle":
        _write_bundle(onboarding, args)
    elif args.command == "status":
        rows = onboarding.status()
        print(json.dumps([asdict(r) for r in rows], indent=2) if args.json else _status_table(rows))
    else:
        active = args.command == "restore-claim"
        certificate_id = onboarding.set_claim(active)
        state = "enabled: gateways can provision" if active else "disabled: none can provision"
        print(f"claim certificate {certificate_id} {state}")
    return 0


def main(
    argv: Sequence[str] | None = None,
    make_fleet: Callable[[str | None, str | None], Fleet] = _aws_fleet,
) -> int:
    args = _parser().parse_args(argv)
    try:
        return run(args, make_fleet)
    except (OnboardingError, PlantConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
