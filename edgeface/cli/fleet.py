"""`edgeface fleet status`: the devices of this device's fleet, from their retained status."""
from __future__ import annotations

import argparse
import json
import sys
import time

from edgeface import exitcodes
from edgeface.cli.common import err
from edgeface.config import load


def cmd_fleet(args: argparse.Namespace) -> int:
    from edgeface.fleet.sync import FleetError, fleet_status

    cfg = load(args.config)
    if not cfg.fleet.name:
        err(f"{args.config}: no fleet configured (fleet: {{name: ..., key_file: ...}})")
        return exitcodes.USAGE
    try:
        devices = fleet_status(cfg.fleet, cfg.mqtt, cfg.mqtt.client_id or "edgeface", wait_s=args.wait)
    except FleetError as e:
        err(str(e))
        return exitcodes.FAIL
    if args.json:
        print(json.dumps(devices, allow_nan=False))
        return exitcodes.OK
    if not devices:
        print(f"no device of fleet {cfg.fleet.name} seen on {cfg.mqtt.host}:{cfg.mqtt.port}", file=sys.stderr)
    for d in devices:
        seen = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.get("last_contact", 0)))
        warn = "" if d.get("verified") else "  NOT SIGNED WITH THIS FLEET'S KEY"
        print(f"{d.get('device')}\tmodel {str(d.get('model'))[:12]}\t{d.get('people')} people, {d.get('faces')} "
              f"faces\tgallery {d.get('gallery_version')}\tlast contact {seen} UTC{warn}")
    return exitcodes.OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("fleet", help="the devices of this device's fleet (gallery sync over MQTT)",
                       description="status: list the devices of the fleet in the config (fleet: {name, key_file}) "
                       "from their retained status on the broker: model, people and faces, gallery fingerprint "
                       "(equal on devices that agree) and last contact.")
    f.add_argument("action", choices=["status"])
    f.add_argument("--config", default="/etc/edgeface/edgeface.yaml", help="YAML config (default: %(default)s)")
    f.add_argument("--json", action="store_true", help="one JSON list")
    f.add_argument("--wait", type=float, default=2.0, help="seconds to collect the devices' status (default 2)")
    f.set_defaults(func=cmd_fleet)
