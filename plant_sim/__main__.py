"""``python -m plant_sim --config config/demo-plant.yaml [--seed N] [--speed X] [--duration S]``

Runs the plant's machines on their loopback ports in real time (times ``--speed``) and prints
what listens where. The plant MQTT broker of a line is not part of the simulator: if nothing
listens on its port and ``mosquitto`` is installed, a private one is started there (and stopped
at the end); otherwise the MQTT topics are not published and the user is told why.
Ctrl-C (or SIGTERM) stops everything cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mes_domain.collection import MqttConnection
from plant_sim.machine import SimulatorError
from plant_sim.simulator import PlantSimulator


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def _mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def _start_broker(host: str, port: int, folder: Path) -> subprocess.Popen:
    conf = folder / f"mosquitto-{port}.conf"
    conf.write_text(
        f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
        f"listener {port} {host}\nallow_anonymous true\npersistence false\n"
    )
    log = (folder / f"mosquitto-{port}.log").open("wb")
    process = subprocess.Popen([_mosquitto(), "-c", str(conf)], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while not _listening(host, port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SimulatorError(f"mosquitto did not start on {host}:{port}; see {log.name}")
        time.sleep(0.05)
    return process


def _brokers(plant, lines) -> set[tuple[str, int]]:
    chosen = {(s.id, line.id) for s in plant.sites for line in s.lines} if lines is None else lines
    return {
        (c.host, c.port)
        for s in plant.sites
        for line in s.lines
        if (s.id, line.id) in chosen and (lines is not None or line.collects())
        for c in line.collection.connections
        if isinstance(c, MqttConnection)
    }


async def _run(args, plant, lines, mqtt: bool) -> None:
    simulator = PlantSimulator(plant, seed=args.seed, lines=lines, mqtt=mqtt)
    await simulator.start()
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        for what in simulator.describe():
            print(f"  {what}", flush=True)
        machines = ", ".join("/".join(path) for path in simulator.machines)
        print(f"plant_sim: {len(simulator.machines)} machines ({machines})", flush=True)
        print(
            f"plant_sim: seed {args.seed}, speed {args.speed:g}x"
            + (f", for {args.duration:g} s" if args.duration else "; Ctrl-C stops"),
            flush=True,
        )
        await simulator.run_realtime(args.speed, duration_s=args.duration)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await simulator.stop()
        for path, machine in simulator.machines.items():
            print(
                f"  {'/'.join(path)}: {machine.state.value}, {machine.good} good, "
                f"{machine.bad} bad, {machine.failures} failures",
                flush=True,
            )
        print("plant_sim: stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plant_sim", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="config/demo-plant.yaml", help="the plant file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    parser.add_argument("--duration", type=float, default=None, help="wall seconds to run")
    parser.add_argument(
        "--line", action="append", default=None, metavar="SITE/LINE", help="only these lines"
    )
    args = parser.parse_args(argv)
    if args.speed <= 0 or (args.duration is not None and args.duration <= 0):
        parser.error("--speed and --duration are positive")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("asyncua", "pymodbus"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    from stacks.plant_config import PlantConfigError, load_plant

    try:
        plant = load_plant(args.config)
    except PlantConfigError as err:
        print(err, file=sys.stderr)
        return 2
    lines = None
    if args.line:
        lines = [tuple(item.split("/", 1)) for item in args.line]
        if any(len(pair) != 2 for pair in lines):
            parser.error("--line is SITE/LINE")

    brokers: list[subprocess.Popen] = []
    mqtt = True
    with tempfile.TemporaryDirectory(prefix="plant_sim-") as folder:
        try:
            for host, port in sorted(_brokers(plant, lines)):
                if _listening(host, port):
                    print(f"  MQTT broker {host}:{port}: already running, publishing to it")
                elif _mosquitto() is not None:
                    brokers.append(_start_broker(host, port, Path(folder)))
                    print(f"  MQTT broker {host}:{port}: mosquitto started by plant_sim")
                else:
                    mqtt = False
                    print(
                        f"  MQTT broker {host}:{port}: nothing listens there and mosquitto is not "
                        "installed (apt-get install mosquitto); MQTT topics are not published",
                        flush=True,
                    )
            asyncio.run(_run(args, plant, lines, mqtt))
        except SimulatorError as err:
            print(f"plant_sim: {err}", file=sys.stderr)
            return 2
        except (KeyboardInterrupt, asyncio.CancelledError):
            pass
        finally:
            for process in brokers:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
