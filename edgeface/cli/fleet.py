"""`edgeface fleet status|republish`: the devices of this device's fleet, and putting this
device's records back on the broker (after its retained store was lost)."""
from __future__ import annotations

import argparse
import json
import sys
import time

from edgeface import exitcodes
from edgeface.cli.common import err, utc_text
from edgeface.config import load
from edgeface.fleet.records import FleetError
from edgeface.fleet.status import fleet_status
from edgeface.fleet.sync import FleetSync
from edgeface.store.gallery import Gallery

REPUBLISH_TIMEOUT_S = 300.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("fleet", help="the devices of this device's fleet (gallery sync over MQTT)",
                       description="status: list the devices of the fleet in the config (fleet: {name, key_file}) "
                       "from their retained status on the broker: model, people and faces, gallery fingerprint "
                       "(equal on devices that agree) and last contact; records not signed with the fleet's key "
                       "are flagged, never believed. republish: publish again every record this device made (its "
                       "enrolments and removals), for a broker that lost its retained messages; the daemon also "
                       "puts back whatever the broker lacks each time it connects.")
    f.add_argument("action", choices=["status", "republish"])
    f.add_argument("--config", default="/etc/edgeface/edgeface.yaml", help="YAML config (default: %(default)s)")
    f.add_argument("--json", action="store_true", help="status: one JSON list")
    f.add_argument("--wait", type=float, default=2.0, help="status: seconds to collect the devices' status (default 2)")
    f.set_defaults(func=cmd_fleet)


def cmd_fleet(args: argparse.Namespace) -> int:
    cfg = load(args.config)
    if not cfg.fleet.name:
        err(f"{args.config}: no fleet configured (fleet: {{name: ..., key_file: ...}})")
        return exitcodes.USAGE
    client_id = cfg.mqtt.client_id or "edgeface"
    try:
        if args.action == "republish":
            return _republish(cfg.gallery, cfg, client_id)
        devices = fleet_status(cfg.fleet, cfg.mqtt, client_id, wait_s=args.wait)
    except FleetError as e:
        err(str(e))
        return exitcodes.FAIL
    if args.json:
        print(json.dumps(devices, allow_nan=False))
        return exitcodes.OK
    if not devices:
        print(f"no device of fleet {cfg.fleet.name} seen on {cfg.mqtt.host}:{cfg.mqtt.port}", file=sys.stderr)
    for d in devices:  # every field checked by checked_status; unsigned ones carry only an escaped name
        if not d["verified"]:
            print(f"{d['device']}\tNOT BELIEVED: {d['problem']}")
            continue
        seen = utc_text(d["last_contact"])
        print(f"{d['device']}\tmodel {d['model'][:12]}\t{d['people']} people, {d['faces']} faces\t"
              f"gallery {d['gallery_version']}\tlast contact {seen} UTC")
    return exitcodes.OK


def _republish(path: str, cfg, client_id: str) -> int:
    with Gallery(path, create=False) as gallery:
        model_id = gallery.model_id()
        if model_id is None:
            print("the gallery is empty: nothing to republish", file=sys.stderr)
            return exitcodes.OK
        sync = FleetSync(cfg.fleet, cfg.mqtt, model_id, f"{client_id}-republish")
        try:
            end = time.monotonic() + REPUBLISH_TIMEOUT_S
            queued = None
            while time.monotonic() < end:
                sync.step(gallery)
                if queued is None and sync.caught_up():
                    queued = sync.republish_own(gallery)
                elif queued is not None and sync.idle():
                    print(f"republished {queued} record(s) of {sync.device}; the broker confirmed each")
                    return exitcodes.OK
                time.sleep(0.1)
        finally:
            sync.close()
    err(f"the broker at {cfg.mqtt.host}:{cfg.mqtt.port} did not confirm every record within "
         f"{REPUBLISH_TIMEOUT_S:.0f} s")
    return exitcodes.FAIL
