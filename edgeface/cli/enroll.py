"""`edgeface enroll NAME PHOTO...`: add a person (or, with --not, mark faces as not them)."""
from __future__ import annotations

import argparse
import sys

from edgeface import exitcodes
from edgeface.cli.common import (
    add_config_option,
    add_gallery_option,
    add_max_pixels_option,
    add_model_options,
    config_from_args,
    err,
)


def cmd_enroll(args: argparse.Namespace) -> int:
    from edgeface.recognition.enroll import enroll
    from edgeface.recognition.pipeline import build_recognizer
    from edgeface.store.gallery import Gallery, GalleryError, check_name
    from edgeface.vision.images import expand

    if args.not_name is not None:  # enroll --not NAME PHOTO...: NAME came as --not's value
        args.images = [p for p in (args.name, *args.images) if p is not None]
        args.name = args.not_name
    if args.name is None or not (args.images or args.event):
        err("usage: edgeface enroll NAME IMAGE_OR_DIR... (or --not NAME ..., or --event ID instead of photos)")
        return exitcodes.USAGE
    try:
        name = check_name(args.name)  # before any photo is read
    except GalleryError as e:
        err(str(e))
        return exitcodes.USAGE
    cfg = config_from_args(args)
    files = expand(args.images) if args.images else []
    if args.images and not files:
        err("no images found in " + " ".join(args.images))
        return exitcodes.FAIL
    at: list[tuple[int, int, int, int] | None] | None = None  # per file: the face meant (None: the largest)
    if args.event:
        from edgeface.store.events import EventsError, EventStore, events_folder

        store = EventStore(events_folder(cfg.events, cfg.gallery))
        try:
            crops = [store.crop(event_id) for event_id in args.event]
        except EventsError as e:
            err(str(e))
            return exitcodes.FAIL
        at = [None] * len(files) + [event.face_in_crop() for _, event in crops]  # the face each event was about
        files += [path for path, _ in crops]
    negative = args.not_name is not None
    try:
        with Gallery(cfg.gallery, create=not negative) as gallery:
            report = enroll(gallery, build_recognizer(cfg), name, files, max_pixels=cfg.max_pixels, say=print,
                            warn=lambda line: print(line, file=sys.stderr), negative=negative,
                            at=at)
    except GalleryError as e:
        err(str(e))
        return exitcodes.FAIL
    if report.faces == 0:
        err(f"nothing {'marked' if negative else 'enrolled'} for {name}: none of {report.files} file(s) gave a face")
        return exitcodes.FAIL
    what = f"marked as not {name}" if negative else "enrolled"
    print(f"{name}: {report.added} new face(s) {what}, {report.already} already there, "
          f"{report.skipped} file(s) skipped")
    return exitcodes.OK  # skipped photos were reported one by one; the rest are enrolled


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("enroll", help="add a person to the gallery from a few photos",
                       description="Add NAME to the gallery from photos (the largest face of each). Folders are "
                       "read for their images. All faces land in one transaction; a photo already enrolled is "
                       "skipped, a photo already enrolled as someone else refused. A photo that cannot be used is "
                       "reported and skipped, and the others are still enrolled. Exits 1 when no photo gave a face, "
                       "2 for a name that cannot be used. With --not NAME, the photos' faces are marked as NOT "
                       "that person: a face closer to them than to NAME's own photos is never named NAME "
                       "(for a look-alike the camera keeps naming wrongly).")
    e.add_argument("name", metavar="NAME", nargs="?")
    e.add_argument("images", metavar="IMAGE_OR_DIR", nargs="*")
    e.add_argument("--not", dest="not_name", metavar="NAME", default=None,
                   help="mark the photos' faces as not NAME (NAME must be enrolled), instead of enrolling them")
    e.add_argument("--event", action="append", metavar="ID", default=[],
                   help="use the face the daemon kept for event ID (see `edgeface events`; needs events.keep_crops "
                   "in the config); may be given more than once, with or without photos")
    add_gallery_option(e)
    add_config_option(e)
    add_max_pixels_option(e)
    add_model_options(e)
    e.set_defaults(func=cmd_enroll)
