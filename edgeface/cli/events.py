"""`edgeface events`: the recent events whose face crops the daemon kept."""
from __future__ import annotations

import argparse
import json
import sys

from edgeface import exitcodes
from edgeface.cli.common import add_config_option, add_gallery_option, config_from_args, utc_text


def cmd_events(args: argparse.Namespace) -> int:
    from edgeface.store.events import EventStore, events_folder, follow_gallery

    cfg = config_from_args(args)
    e = cfg.events
    store = EventStore(events_folder(e, cfg.gallery), e.max_count, e.max_age)
    follow_gallery(store, cfg.gallery)  # names as they are now; crops of people gone go
    events = store.events()
    if args.json:
        for event in events:
            print(json.dumps({k: v for k, v in event.as_json().items() if k not in ("crop_box", "person")},
                             allow_nan=False))
        return exitcodes.OK
    if not events:
        hint = "" if e.keep_crops else " (events.keep_crops is off in this config)"
        print(f"no events kept in {store.folder}{hint}", file=sys.stderr)
        return exitcodes.OK
    print(f"{'id':<23}  {'time (UTC)':<19}  {'camera':<12}  {'name':<20}  score")
    for event in events:
        when = utc_text(event.time)
        print(f"{event.id:<23}  {when:<19}  {event.camera:<12}  {event.name or '(unknown)':<20}  {event.score:.3f}")
    return exitcodes.OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("events", help="list the recent events whose face crops the daemon kept",
                       description="List the identity events the daemon kept face crops of (events.keep_crops in "
                       "its config), newest first: id, time, camera, name and score. Correct one with `edgeface "
                       "enroll NAME --event ID` (it is NAME) or `edgeface enroll --not NAME --event ID` (it is not "
                       "NAME). With --json, one object per line: {\"id\", \"name\", \"score\", \"camera\", "
                       "\"time\", \"box\"}. Crops stay on the device and age out (events.max_age, max_count).")
    v.add_argument("--json", action="store_true", help="one JSON object per event per line")
    add_gallery_option(v)
    add_config_option(v)
    v.set_defaults(func=cmd_events)
