"""`edgeface visitors [--json]`, and the visitor side of `edgeface enroll NAME --visitor ID`.

The daemon groups unknown faces into visitors (edgeface.store.visitors); this lists them and
turns a visitor into the event crops that enrol them (or mark them as not someone) in one go.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from edgeface import exitcodes
from edgeface.cli.common import add_config_option, add_gallery_option, config_from_args, utc_text

if TYPE_CHECKING:  # the parser is built on every run; numpy, OpenCV and the stores load only for these commands
    from edgeface.config import Config
    from edgeface.store.visitors import VisitorBook


def book(cfg: Config) -> VisitorBook:
    from edgeface.store.visitors import VisitorBook, visitors_path

    return VisitorBook(visitors_path(cfg.gallery), cfg.events.max_age)


def kept_crops(cfg: Config, visitor_ids: list[str]) -> list[str]:
    """The event ids of the crops still kept for these visitors; VisitorsError naming the visitor
    that has none (events.keep_crops off, or every crop aged out)."""
    from edgeface.store.events import EventStore, events_folder
    from edgeface.store.visitors import VisitorsError

    store = EventStore(events_folder(cfg.events, cfg.gallery), cfg.events.max_count, cfg.events.max_age)
    kept = {e.id for e in store.events()}
    out = []
    for visitor_id in visitor_ids:
        visitor = book(cfg).get(visitor_id)
        crops = [c for c in visitor.crops if c in kept]
        if not crops:
            hint = "" if cfg.events.keep_crops else " (events.keep_crops is off in this config)"
            raise VisitorsError(f"visitor {visitor_id}: no face crop of theirs is kept in {store.folder}{hint}")
        out += crops
    return out


def forget(cfg: Config, visitor_ids: list[str]) -> None:
    """They are named now (or marked): they are no longer strangers."""
    for visitor_id in visitor_ids:
        book(cfg).forget(visitor_id)


def add_visitor_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--visitor", action="append", metavar="ID", default=[],
                   help="use every face crop the daemon kept of returning visitor ID (see `edgeface visitors`; needs "
                   "events.keep_crops); the visitor is then forgotten. May be given more than once")


def cmd_visitors(args: argparse.Namespace) -> int:
    from edgeface.store.visitors import visitors_path

    cfg = config_from_args(args)
    visitors = book(cfg).visitors()
    if args.json:
        for v in visitors:
            print(json.dumps(v.summary(), allow_nan=False))
        return exitcodes.OK
    if not visitors:
        print(f"no visitors in {visitors_path(cfg.gallery)}", file=sys.stderr)
        return exitcodes.OK
    print(f"{'visitor':<8}  {'first seen':<19}  {'last seen':<19}  {'seen':>4}  {'crops':>5}  cameras")
    for v in visitors:
        first, last = utc_text(v.first_seen), utc_text(v.last_seen)
        print(f"{v.id:<8}  {first:<19}  {last:<19}  {v.appearances:>4}  {len(v.crops):>5}  {', '.join(v.cameras)}")
    print("name one: edgeface enroll NAME --visitor ID; or mark them: edgeface enroll --not NAME --visitor ID",
          file=sys.stderr)
    return exitcodes.OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("visitors", help="list the returning strangers the daemon has grouped",
                       description="List the visitors: unknown faces the daemon grouped by likeness, most recently "
                       "seen first, with when they were first and last seen, how many times, on which cameras and how "
                       "many face crops are kept (events.keep_crops). Name one with `edgeface enroll NAME --visitor "
                       "ID`, or mark them with `edgeface enroll --not NAME --visitor ID`. With --json, one object "
                       "per line: {\"id\", \"first_seen\", \"last_seen\", \"appearances\", \"cameras\", \"crops\"}. "
                       "Visitors stay on the device and age out with events.max_age.")
    v.add_argument("--json", action="store_true", help="one JSON object per visitor per line")
    add_gallery_option(v)
    add_config_option(v)
    v.set_defaults(func=cmd_visitors)
