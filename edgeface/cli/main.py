"""The `edgeface` command: enroll, identify, gallery, run, bench, demo."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import TYPE_CHECKING

from edgeface import __version__, exitcodes

if TYPE_CHECKING:
    from edgeface.config import Config
    from edgeface.recognition.pipeline import Face


def _err(msg: str) -> None:
    print(f"edgeface: {msg}", file=sys.stderr)


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (override the config's recognition section)")
    g.add_argument("--model", help="TFLite embedder with its .json sidecar beside it (default: the shipped int8 model)")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for the embedder (default: all cores)")
    g.add_argument("--delegate", default=None,
                   help="xnnpack (default CPU), cpu (reference kernels), edgetpu, or a delegate library path")
    g.add_argument("--strict", action="store_true",
                   help="fail instead of falling back to the CPU when the delegate (or OpenVINO device) cannot load")
    g.add_argument("--runtime", choices=("litert", "openvino"), default=None,
                   help="litert (default) or openvino (pip install \"edgeface[openvino]\")")
    g.add_argument("--device", default=None, type=str.upper, choices=("CPU", "GPU", "NPU", "AUTO"),
                   help="OpenVINO's device: CPU, GPU, NPU or AUTO (with --runtime openvino)")


def add_gallery_option(p: argparse.ArgumentParser) -> None:
    from edgeface.config import default_gallery_path

    p.add_argument("--gallery", metavar="DB", default=None,
                   help="gallery database (default: the config's gallery, else $EDGEFACE_GALLERY or "
                   f"{default_gallery_path()})")


def add_config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", default=None,
                   help="YAML config (as `edgeface run` reads it) whose gallery, model, detection and recognition "
                   "settings to use, so this command sees faces exactly as the daemon does "
                   "(default: built-in defaults)")


def add_max_pixels_option(p: argparse.ArgumentParser) -> None:
    from edgeface.vision.images import DEFAULT_MAX_PIXELS

    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse photos larger than N pixels, read from the file's header before decoding "
                   f"(default: the config's max_pixels, {DEFAULT_MAX_PIXELS}; 0: no limit). Photos over 4096 px "
                   "a side are decoded reduced.")


def config_from_args(args: argparse.Namespace) -> Config:
    """The config file named by --config (or the defaults), with the command line's overrides."""
    from edgeface.config import Config, load

    cfg = load(args.config) if getattr(args, "config", None) else Config()
    if getattr(args, "gallery", None):
        cfg.gallery = args.gallery
    if getattr(args, "model", None):
        cfg.model = args.model
    rec = cfg.recognition
    if getattr(args, "threshold", None) is not None:
        rec.threshold = args.threshold
    if getattr(args, "threads", None):
        rec.num_threads = args.threads
    if getattr(args, "delegate", None):
        rec.delegate, rec.strict = args.delegate, args.strict
    if getattr(args, "runtime", None) or getattr(args, "device", None):
        from edgeface.cli.runtime_options import apply_runtime_options

        apply_runtime_options(cfg, args)
    if getattr(args, "max_pixels", None) is not None:
        cfg.max_pixels = args.max_pixels
    return cfg


def cmd_enroll(args: argparse.Namespace) -> int:
    from edgeface.recognition.enroll import enroll
    from edgeface.recognition.pipeline import build_recognizer
    from edgeface.store.gallery import Gallery, GalleryError, check_name
    from edgeface.vision.images import expand

    if args.not_name is not None:  # enroll --not NAME PHOTO...: NAME came as --not's value
        args.images = [p for p in (args.name, *args.images) if p is not None]
        args.name = args.not_name
    if args.name is None or not (args.images or args.event):
        _err("usage: edgeface enroll NAME IMAGE_OR_DIR... (or --not NAME ..., or --event ID instead of photos)")
        return exitcodes.USAGE
    try:
        name = check_name(args.name)  # before any photo is read
    except GalleryError as e:
        _err(str(e))
        return exitcodes.USAGE
    cfg = config_from_args(args)
    files = expand(args.images) if args.images else []
    if args.images and not files:
        _err("no images found in " + " ".join(args.images))
        return exitcodes.FAIL
    at: list[tuple[int, int, int, int] | None] | None = None  # per file: the face meant (None: the largest)
    if args.event:
        from edgeface.store.events import EventsError, EventStore, events_folder

        store = EventStore(events_folder(cfg.events, cfg.gallery))
        try:
            crops = [store.crop(event_id) for event_id in args.event]
        except EventsError as e:
            _err(str(e))
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
        _err(str(e))
        return exitcodes.FAIL
    if report.faces == 0:
        _err(f"nothing {'marked' if negative else 'enrolled'} for {name}: none of {report.files} file(s) gave a face")
        return exitcodes.FAIL
    what = f"marked as not {name}" if negative else "enrolled"
    print(f"{name}: {report.added} new face(s) {what}, {report.already} already there, "
          f"{report.skipped} file(s) skipped")
    return exitcodes.OK  # skipped photos were reported one by one; the rest are enrolled


def _gallery_path(args: argparse.Namespace) -> str:
    """--gallery, else the --config file's gallery, else the default."""
    return str(config_from_args(args).gallery)


def face_record(face: Face, scale: float = 1.0, shape: tuple[int, ...] | None = None) -> dict:
    """scale: of the decoded image to the original (boxes are reported in original pixels).
    shape: the decoded image's; the box is clipped to the picture (a face in a tight crop can
    reach past its edges)."""
    x, y, w, h = face.detection.box()
    if shape is not None:
        x0, y0 = max(x, 0), max(y, 0)
        x, y, w, h = x0, y0, max(min(x + w, shape[1]) - x0, 0), max(min(y + h, shape[0]) - y0, 0)
    box = [round(v / scale) for v in (x, y, w, h)]
    return {"name": face.name, "score": round(float(face.score), 4), "box": box,
            "angle": round(float(face.detection.angle), 1)}


def cmd_identify(args: argparse.Namespace) -> int:
    from edgeface.recognition.pipeline import build_recognizer, describe_runtime
    from edgeface.store.gallery import Gallery
    from edgeface.vision.images import MAX_SIDE, ImageError, read_photo

    cfg = config_from_args(args)
    with Gallery(cfg.gallery, create=False) as gallery:
        recognizer = build_recognizer(cfg, gallery)
    print(f"edgeface: embedder: {describe_runtime(recognizer.embedder)}", file=sys.stderr)  # --json stays as it is
    if recognizer.matcher is None or len(recognizer.matcher) == 0:
        print("edgeface: warning: the gallery is empty; every face will be unknown", file=sys.stderr)
    failed = 0
    for path in args.images:
        try:
            photo = read_photo(path, cfg.max_pixels or None, MAX_SIDE)
        except ImageError as e:
            failed += 1
            _err(str(e))
            if args.json:
                print(json.dumps({"image": path, "faces": [], "error": str(e)}, allow_nan=False), flush=True)
            continue
        faces = [face_record(f, photo.scale, photo.image.shape) for f in recognizer.recognize(photo.image)]
        if args.json:
            print(json.dumps({"image": path, "faces": faces}, allow_nan=False), flush=True)
        else:
            described = ", ".join(
                f"{f['name'] or 'unknown'} ({f['score']:.2f}) at {f['box']} angle {f['angle']:+.0f}" for f in faces
            )
            print(f"{path}: {described or 'no face'}", flush=True)
    return exitcodes.FAIL if failed else exitcodes.OK


def cmd_events(args: argparse.Namespace) -> int:
    from edgeface.store.events import EventStore, events_folder

    cfg = config_from_args(args)
    e = cfg.events
    store = EventStore(events_folder(e, cfg.gallery), e.max_count, e.max_age)
    events = store.events()
    if args.json:
        for event in events:
            print(json.dumps({k: v for k, v in event.as_json().items() if k != "crop_box"}, allow_nan=False))
        return exitcodes.OK
    if not events:
        hint = "" if e.keep_crops else " (events.keep_crops is off in this config)"
        print(f"no events kept in {store.folder}{hint}", file=sys.stderr)
        return exitcodes.OK
    print(f"{'id':<23}  {'time (UTC)':<19}  {'camera':<12}  {'name':<20}  score")
    for event in events:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.time))
        print(f"{event.id:<23}  {when:<19}  {event.camera:<12}  {event.name or '(unknown)':<20}  {event.score:.3f}")
    return exitcodes.OK


def cmd_gallery_check(args: argparse.Namespace) -> int:
    from edgeface.recognition.embed import default_model_path, load_spec
    from edgeface.recognition.gallery_check import check, format_report
    from edgeface.recognition.match import OpenSetRule
    from edgeface.store.gallery import Gallery

    cfg = config_from_args(args)
    spec = load_spec(cfg.model or default_model_path())
    rec = cfg.recognition
    rule = OpenSetRule(spec.threshold, margin=rec.margin) if rec.threshold is None \
        else OpenSetRule.fixed(rec.threshold, rec.margin)
    with Gallery(cfg.gallery, create=False) as gallery:
        gallery.check_model(spec.model_id)
        names, sources, vectors = gallery.records(spec.embedding_size)
        negatives = gallery.vectors(spec.embedding_size, negatives=True)
    report = check(names, sources, vectors, rule, negatives)
    if args.json:
        print(json.dumps(report.as_json(), allow_nan=False))
    else:
        print(format_report(report))
    return exitcodes.OK


def _has_fleet_records(gallery) -> bool:
    return gallery.db.execute("SELECT 1 FROM fleet_ledger LIMIT 1").fetchone() is not None


def cmd_fleet(args: argparse.Namespace) -> int:
    from edgeface.config import load
    from edgeface.fleet.sync import FleetError, fleet_status

    cfg = load(args.config)
    if not cfg.fleet.name:
        _err(f"{args.config}: no fleet configured (fleet: {{name: ..., key_file: ...}})")
        return exitcodes.USAGE
    try:
        devices = fleet_status(cfg.fleet, cfg.mqtt, cfg.mqtt.client_id or "edgeface", wait_s=args.wait)
    except FleetError as e:
        _err(str(e))
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


def cmd_gallery(args: argparse.Namespace) -> int:
    from edgeface.store.gallery import Gallery, dump_export, shown_name

    if args.new is not None and args.action != "rename":
        _err(f"gallery {args.action} takes one argument, not {args.arg!r} and {args.new!r}")
        return exitcodes.USAGE
    if args.photo and args.action != "remove":
        _err("--photo goes with gallery remove NAME")
        return exitcodes.USAGE
    if args.action == "check":
        return cmd_gallery_check(args)
    if args.action == "list" and args.arg:
        return _list_photos(args)
    if args.action == "list":
        from edgeface.fleet.sync import FleetLedger

        cfg = config_from_args(args)
        own = cfg.fleet.device or cfg.mqtt.client_id or ""
        with Gallery(cfg.gallery, create=False) as gallery:
            people = gallery.people()
            origins = FleetLedger(gallery).origins(own) if cfg.fleet.name or _has_fleet_records(gallery) else {}
        if args.json:
            print(json.dumps([{"name": p.name, "embeddings": p.embeddings,
                               **({"negatives": p.negatives} if p.negatives else {}),
                               **({"origin": origins[p.name]} if p.name in origins else {})} for p in people],
                             allow_nan=False))
        else:
            for p in people:
                marked = f", {p.negatives} marked not them" if p.negatives else ""
                origin = f"\tfrom {origins[p.name]}" if p.name in origins else ""
                print(f"{shown_name(p.name)}\t{p.embeddings} face(s){marked}{origin}")
            if not people:
                print("(empty)", file=sys.stderr)
        return exitcodes.OK
    if args.action == "remove":
        if not args.arg:
            _err("gallery remove needs a NAME")
            return exitcodes.USAGE
        from edgeface.store.events import EventStore, events_folder

        cfg = config_from_args(args)
        if args.photo:
            from edgeface.store.photos import remove_photos

            with Gallery(cfg.gallery, create=False) as gallery:
                removed = remove_photos(gallery, args.arg, args.photo)
            marks = f" and {removed.negatives} 'not them' mark(s)" if removed.negatives else ""
            print(f"removed {removed.faces} face(s){marks} of {args.arg}")
            if not removed.person_gone:
                return exitcodes.OK
            print(f"{args.arg} had no face left and is removed")
            count = 0
        else:
            with Gallery(cfg.gallery, create=False) as gallery:
                count = gallery.remove(args.arg)
        crops = EventStore(events_folder(cfg.events, cfg.gallery)).remove_person(args.arg)
        if not args.photo:
            print(f"removed {args.arg} ({count} face(s)" + (f", {crops} event crop(s))" if crops else ")"))
        elif crops:
            print(f"removed {crops} event crop(s) of {args.arg}")
        return exitcodes.OK
    if args.action == "rename":
        if not args.arg or not args.new:
            _err("gallery rename needs OLD and NEW names")
            return exitcodes.USAGE
        with Gallery(_gallery_path(args), create=False) as gallery:
            count, merged = gallery.rename(args.arg, args.new)
        print(f"merged {args.arg} into {args.new} ({count} face(s) moved)" if merged
              else f"renamed {args.arg} to {args.new} ({count} face(s))")
        return exitcodes.OK
    if not args.arg:
        _err(f"gallery {args.action} needs a FILE")
        return exitcodes.USAGE
    if args.action == "export":
        with Gallery(_gallery_path(args), create=False) as gallery:
            data = gallery.export()
        dump_export(data, args.arg)
        print(f"exported {len(data['embeddings'])} face(s) to {args.arg}")
        return exitcodes.OK
    try:
        with open(args.arg) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        _err(f"cannot read {args.arg}: {e}")
        return exitcodes.FAIL
    from edgeface.recognition.embed import default_model_path, load_spec

    spec = load_spec(default_model_path())
    with Gallery(_gallery_path(args)) as gallery:
        # The shipped model's size when the export is the shipped model's; else the gallery's own
        size = spec.embedding_size if isinstance(data, dict) and data.get("model_id") == spec.model_id else None
        added = gallery.import_(data, embedding_size=size)
    print(f"imported {added} new face(s) from {args.arg}")
    return exitcodes.OK


def _list_photos(args: argparse.Namespace) -> int:
    """gallery list NAME: the photos a person was enrolled from, and those marked not them."""
    from edgeface.store.gallery import Gallery
    from edgeface.store.photos import photos

    with Gallery(_gallery_path(args), create=False) as gallery:
        rows = photos(gallery, args.arg)
    if args.json:
        print(json.dumps([{"sha256": r.sha256, "source": r.source_name, "not_them": r.negative,
                           "created": round(r.created, 3)} for r in rows], allow_nan=False))
        return exitcodes.OK
    for r in rows:
        when = time.strftime("%Y-%m-%d", time.gmtime(r.created))
        print(f"{r.sha256[:12]}\t{'not them' if r.negative else 'face'}\t{when}\t{r.source_name}")
    return exitcodes.OK


def cmd_run(args: argparse.Namespace) -> int:
    from edgeface.service.daemon import main_run

    return main_run(args.config)


def cmd_bench(args: argparse.Namespace) -> int:
    from edgeface.cli.bench import main_bench

    return main_bench(config_from_args(args), args.source, args.frames, args.json)


def cmd_demo(args: argparse.Namespace) -> int:
    from edgeface.cli.demo import run_demo

    return run_demo(frames=args.frames, keep=args.keep, model=args.model, broker=args.broker, verbose=args.verbose)


def cmd_convert(args) -> int:
    # TensorFlow and dlib (the `convert` extra) load only now, inside the converter's steps.
    from edgeface.convert.cli import main as convert_main

    return convert_main(args.convert_args, prog="edgeface convert")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeface",
        description="Real-time face recognition for small devices: finds faces at any roll from -60 to +60 "
        "degrees, names them from a local gallery, and publishes identities over MQTT.",
        epilog="Start with `edgeface demo`. Enrol people with `edgeface enroll`, then run the daemon with "
        "`edgeface run --config /etc/edgeface/edgeface.yaml`.",
    )
    p.add_argument("--version", action="version", version=f"edgeface {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

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

    i = sub.add_parser("identify", help="name the faces in photos",
                       description="Find and name every face in each photo. With --json, one line per photo: "
                       '{"image": path, "faces": [{"name": str|null, "score": float, "box": [x,y,w,h], '
                       '"angle": float}]}; box is the axis-aligned bound in original pixels, angle the roll in '
                       "degrees, name null for someone not in the gallery. Exits 1 if any photo could not be read.")
    i.add_argument("images", metavar="IMAGE", nargs="+")
    i.add_argument("--json", action="store_true", help="one JSON object per image per line")
    i.add_argument("--threshold", type=float, default=None,
                   help="cosine similarity needed to name a face (default: the model's calibrated threshold)")
    add_gallery_option(i)
    add_config_option(i)
    add_max_pixels_option(i)
    add_model_options(i)
    i.set_defaults(func=cmd_identify)

    g = sub.add_parser("gallery", help="list, check, remove, rename, export or import enrolled people",
                       description="list: people and face counts. check: a leave-one-out self-test: per person, "
                       "how often their own photos are recognised from the others; photos that look like someone "
                       "else; the estimated share of strangers that would be named; and what to do about each. "
                       "list NAME: the photos NAME was enrolled from (and those marked not NAME). "
                       "remove NAME: delete a person; with --photo, only those photos (or 'not them' marks). "
                       "rename OLD NEW: give a person another name; if NEW is already "
                       "enrolled, the two become one person (a merge). With a fleet, both reach every device. "
                       "export FILE: write the gallery as JSON. import FILE: merge "
                       "such an export in.")
    g.add_argument("action", choices=["list", "check", "remove", "rename", "export", "import"])
    g.add_argument("arg", nargs="?", metavar="NAME|FILE")
    g.add_argument("new", nargs="?", metavar="NEW", help="rename only: the new name")
    g.add_argument("--json", action="store_true", help="list or check as JSON")
    g.add_argument("--photo", action="append", metavar="FILE|SHA", default=[],
                   help="remove only: one of the person's photos, as the file, the path it was enrolled from, "
                   "or 8+ leading hex digits of its sha256 (gallery list NAME); may repeat. A photo marked "
                   "'not NAME' is unmarked the same way")
    add_gallery_option(g)
    add_config_option(g)
    g.set_defaults(func=cmd_gallery)

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

    f = sub.add_parser("fleet", help="the devices of this device's fleet (gallery sync over MQTT)",
                       description="status: list the devices of the fleet in the config (fleet: {name, key_file}) "
                       "from their retained status on the broker: model, people and faces, gallery fingerprint "
                       "(equal on devices that agree) and last contact.")
    f.add_argument("action", choices=["status"])
    f.add_argument("--config", default="/etc/edgeface/edgeface.yaml", help="YAML config (default: %(default)s)")
    f.add_argument("--json", action="store_true", help="one JSON list")
    f.add_argument("--wait", type=float, default=2.0, help="seconds to collect the devices' status (default 2)")
    f.set_defaults(func=cmd_fleet)

    r = sub.add_parser("run", help="run the recognition daemon (cameras in, MQTT out)",
                       description="Run the daemon: read the cameras in the config, recognise faces, publish "
                       "identities over MQTT. SIGTERM/SIGINT stop it cleanly; SIGHUP reloads config and gallery.")
    r.add_argument("--config", default="/etc/edgeface/edgeface.yaml", help="YAML config (default: %(default)s)")
    r.set_defaults(func=cmd_run)

    b = sub.add_parser("bench", help="measure the daemon's pipeline on a video file or folder of frames",
                       description="Run the daemon's own pipeline (same code, same tracking) over SOURCE as fast as "
                       "it can and report frames/s, latency p50/p95 and time per stage.")
    b.add_argument("source", metavar="SOURCE", help="video file, or folder of images used as frames in name order")
    b.add_argument("--frames", type=int, default=None, help="stop after N frames")
    b.add_argument("--json", action="store_true", help="print one JSON object with the figures and names per frame")
    b.add_argument("--threshold", type=float, default=None, help="override the model's threshold")
    add_gallery_option(b)
    add_config_option(b)
    add_model_options(b)
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("demo", help="see it work: a generated clip, an in-process broker, the MQTT messages",
                       description="Make a short clip of a public-domain face turned from -60 to +60 degrees, enrol "
                       "it, run the real daemon path with an in-process MQTT broker, and print what a subscriber "
                       "receives. Needs nothing installed beyond edgeface.")
    d.add_argument("--frames", type=int, default=30, help="frames per sweep of -60..+60 degrees (default %(default)s)")
    d.add_argument("--keep", metavar="DIR", default=None,
                   help="write the clip and gallery into DIR and keep them (default: a temporary folder)")
    d.add_argument("--model", default=None, help="embedding model (default: the shipped int8 model)")
    d.add_argument("--broker", choices=["auto", "amqtt", "mosquitto"], default="auto",
                   help="in-process amqtt, or a mosquitto executable on PATH (default: amqtt if installed)")
    d.set_defaults(func=cmd_demo)

    # Every argument after `convert`, --help included, goes to the converter's own parser: with
    # "+" as its only prefix, this subparser takes "--dat x" as plain words.
    c = sub.add_parser("convert", help="convert dlib's ResNet (or a Keras embedder) into a verified int8 TFLite model",
                       add_help=False, prefix_chars="+")
    c.add_argument("convert_args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="the converter's options; `edgeface convert --help` lists them")
    c.set_defaults(func=cmd_convert)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from edgeface.config import ConfigError
    from edgeface.recognition.embed import ModelError
    from edgeface.store.gallery import GalleryError

    try:
        return int(args.func(args))
    except ConfigError as e:
        _err(str(e))
        return exitcodes.USAGE
    except (ModelError, GalleryError) as e:
        _err(str(e))
        return exitcodes.FAIL
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED
    except BrokenPipeError:  # `edgeface identify ... | head`
        return exitcodes.OK
