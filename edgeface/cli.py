"""The `edgeface` command: enroll, identify, gallery, run, bench, demo."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from edgeface import __version__

log = logging.getLogger("edgeface")

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _err(msg: str) -> None:
    print(f"edgeface: {msg}", file=sys.stderr)


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="TFLite embedder with its .json sidecar beside it (default: the shipped int8 model)")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for the embedder (default: all cores)")
    g.add_argument("--delegate", default=None,
                   help="xnnpack (default CPU), cpu (reference kernels), edgetpu, or a delegate library path")
    g.add_argument("--strict", action="store_true", help="fail instead of falling back to the CPU when the delegate cannot load")


def add_gallery_option(p: argparse.ArgumentParser) -> None:
    from edgeface.gallery import default_gallery_path

    p.add_argument("--gallery", metavar="DB", default=None,
                   help=f"gallery database (default: $EDGEFACE_GALLERY or {default_gallery_path()})")


def add_max_pixels_option(p: argparse.ArgumentParser) -> None:
    from edgeface.images import DEFAULT_MAX_PIXELS

    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help="refuse photos larger than N pixels, read from the file's header before decoding "
                   "(default: %(default)s; 0: no limit). Photos over 4096 px a side are decoded reduced.")


def _gallery_path(args):
    from edgeface.gallery import default_gallery_path

    return args.gallery or default_gallery_path()


def _recognizer(args, with_matcher: bool, gallery=None):
    from edgeface.detect import HaarDetector
    from edgeface.embed import Embedder
    from edgeface.pipeline import Recognizer, load_matcher

    embedder = Embedder(args.model, num_threads=args.threads, delegate=args.delegate, strict=args.strict)
    matcher = load_matcher(gallery, embedder.spec, getattr(args, "threshold", None)) if with_matcher else None
    return Recognizer(HaarDetector(), embedder, matcher)


def cmd_enroll(args) -> int:
    import cv2

    from edgeface.detect import largest
    from edgeface.gallery import Enrolment, Gallery, GalleryError, check_name
    from edgeface.images import MAX_SIDE, ImageError, expand, read_photo

    try:
        name = check_name(args.name)  # before any photo is read
    except GalleryError as e:
        _err(str(e))
        return EXIT_USAGE
    files = expand(args.images)
    if not files:
        _err("no images found in " + " ".join(args.images))
        return EXIT_FAIL
    with Gallery(_gallery_path(args)) as gallery:
        recognizer = _recognizer(args, with_matcher=False)
        gallery.check_model(recognizer.embedder.spec.model_id)  # before minutes of work, not after
        enrolments, failed = [], 0
        for n, path in enumerate(files, 1):
            prefix = f"[{n}/{len(files)}] {path}"
            try:
                photo = read_photo(path, args.max_pixels or None, MAX_SIDE)
                first = gallery.owner(photo.sha256)
                if first is not None and first != name:
                    raise ImageError(f"{path}: this photo is already enrolled as {first!r}")
                detections = recognizer.detector.detect(photo.image)
                face = largest(detections)
                if face is None:
                    raise ImageError(f"{path}: no face found")
                vector = recognizer.embed(photo.image, [face])[0]
            except (ImageError, cv2.error, MemoryError, ValueError) as e:  # one bad photo never costs the rest
                print(f"{prefix}: skipped: {str(e).split(': ', 1)[-1]}", file=sys.stderr)
                failed += 1
                continue
            if len(detections) > 1:
                print(f"{prefix}: warning: {len(detections)} faces, using the largest", file=sys.stderr)
            enrolments.append(Enrolment(vector, photo.sha256, str(path)))
            box = [round(v / photo.scale) for v in face.box()]
            print(f"{prefix}: face at {box}, angle {face.angle:+.0f}")
        if not enrolments:
            _err(f"nothing enrolled for {name}: none of {len(files)} file(s) gave a face")
            return EXIT_FAIL
        added = gallery.add(name, enrolments, recognizer.embedder.spec.model_id)
    print(f"{name}: {added} new face(s) enrolled, {len(enrolments) - added} already there, {failed} file(s) skipped")
    return EXIT_FAIL if failed else EXIT_OK


def face_record(face, scale: float = 1.0) -> dict:
    """scale: of the decoded image to the original (boxes are reported in original pixels)."""
    box = [round(v / scale) for v in face.detection.box()]
    return {"name": face.name, "score": round(float(face.score), 4), "box": box,
            "angle": round(float(face.detection.angle), 1)}


def cmd_identify(args) -> int:
    from edgeface.gallery import Gallery
    from edgeface.images import MAX_SIDE, ImageError, read_photo

    with Gallery(_gallery_path(args), create=False) as gallery:
        recognizer = _recognizer(args, with_matcher=True, gallery=gallery)
    if len(recognizer.matcher) == 0:
        print("edgeface: warning: the gallery is empty; every face will be unknown", file=sys.stderr)
    failed = 0
    for path in args.images:
        try:
            photo = read_photo(path, args.max_pixels or None, MAX_SIDE)
        except ImageError as e:
            failed += 1
            _err(str(e))
            if args.json:
                print(json.dumps({"image": path, "faces": [], "error": str(e)}, allow_nan=False), flush=True)
            continue
        faces = [face_record(f, photo.scale) for f in recognizer.recognize(photo.image)]
        if args.json:
            print(json.dumps({"image": path, "faces": faces}, allow_nan=False), flush=True)
        else:
            described = ", ".join(
                f"{f['name'] or 'unknown'} ({f['score']:.2f}) at {f['box']} angle {f['angle']:+.0f}" for f in faces
            )
            print(f"{path}: {described or 'no face'}", flush=True)
    return EXIT_FAIL if failed else EXIT_OK


def cmd_gallery(args) -> int:
    from edgeface.gallery import Gallery, dump_export, shown_name

    if args.action == "list":
        with Gallery(_gallery_path(args), create=False) as gallery:
            people = gallery.people()
            if args.json:
                print(json.dumps([{"name": p.name, "embeddings": p.embeddings} for p in people], allow_nan=False))
            else:
                for p in people:
                    print(f"{shown_name(p.name)}\t{p.embeddings} face(s)")
                if not people:
                    print("(empty)", file=sys.stderr)
        return EXIT_OK
    if args.action == "remove":
        if not args.arg:
            _err("gallery remove needs a NAME")
            return EXIT_USAGE
        with Gallery(_gallery_path(args), create=False) as gallery:
            count = gallery.remove(args.arg)
        print(f"removed {args.arg} ({count} face(s))")
        return EXIT_OK
    if not args.arg:
        _err(f"gallery {args.action} needs a FILE")
        return EXIT_USAGE
    if args.action == "export":
        with Gallery(_gallery_path(args), create=False) as gallery:
            data = gallery.export()
        dump_export(data, args.arg)
        print(f"exported {len(data['embeddings'])} face(s) to {args.arg}")
        return EXIT_OK
    try:
        with open(args.arg) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        _err(f"cannot read {args.arg}: {e}")
        return EXIT_FAIL
    from edgeface.embed import default_model_path, load_spec

    spec = load_spec(default_model_path())
    with Gallery(_gallery_path(args)) as gallery:
        # The shipped model's size when the export is the shipped model's; else the gallery's own
        size = spec.embedding_size if isinstance(data, dict) and data.get("model_id") == spec.model_id else None
        added = gallery.import_(data, embedding_size=size)
    print(f"imported {added} new face(s) from {args.arg}")
    return EXIT_OK


def cmd_run(args) -> int:
    from edgeface.daemon import main_run

    return main_run(args.config)


def cmd_bench(args) -> int:
    from edgeface.bench import main_bench

    return main_bench(args)


def cmd_demo(args) -> int:
    from edgeface.demo import main_demo

    return main_demo(args)


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
                       "skipped, a photo already enrolled as someone else refused. Exits 1 when any photo was skipped "
                       "(the others are still enrolled) or none gave a face.")
    e.add_argument("name", metavar="NAME")
    e.add_argument("images", metavar="IMAGE_OR_DIR", nargs="+")
    add_gallery_option(e)
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
    add_max_pixels_option(i)
    add_model_options(i)
    i.set_defaults(func=cmd_identify)

    g = sub.add_parser("gallery", help="list, remove, export or import enrolled people",
                       description="list: people and face counts. remove NAME: delete a person. export FILE: "
                       "write the gallery as JSON. import FILE: merge such an export in.")
    g.add_argument("action", choices=["list", "remove", "export", "import"])
    g.add_argument("arg", nargs="?", metavar="NAME|FILE")
    g.add_argument("--json", action="store_true", help="list as JSON")
    add_gallery_option(g)
    g.set_defaults(func=cmd_gallery)

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
    b.add_argument("--config", default=None, help="YAML config whose detection/recognition/tracking sections to use")
    add_gallery_option(b)
    add_model_options(b)
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("demo", help="see it work: a generated clip, an in-process broker, the MQTT messages",
                       description="Make a short clip of a public-domain face turned from -60 to +60 degrees, enrol "
                       "it, run the real daemon path with an in-process MQTT broker, and print what a subscriber "
                       "receives. Needs nothing installed beyond edgeface.")
    try:
        from edgeface.demo import add_arguments
    except ImportError:
        pass
    else:
        add_arguments(d)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from edgeface.embed import ModelError
    from edgeface.gallery import GalleryError

    try:
        return args.func(args)
    except (ModelError, GalleryError) as e:
        _err(str(e))
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `edgeface identify ... | head`
        return EXIT_OK
