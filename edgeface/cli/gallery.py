"""`edgeface gallery ACTION`: one sub-command per action on the enrolled people.

list [NAME], remove NAME [--photo ...], rename OLD NEW, export FILE, import FILE, check.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from edgeface import exitcodes
from edgeface.cli.common import add_config_option, add_gallery_option, config_from_args, err, gallery_path


def cmd_list(args: argparse.Namespace) -> int:
    if args.name:
        return _list_photos(args)
    from edgeface.fleet.ledger import FleetLedger
    from edgeface.store.gallery import Gallery, shown_name

    cfg = config_from_args(args)
    own = cfg.fleet.device or cfg.mqtt.client_id or ""
    with Gallery(cfg.gallery, create=False) as gallery:
        people = gallery.people()
        origins = FleetLedger(gallery).origins(own) if cfg.fleet.name or gallery.has_ledger() else {}
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


def _list_photos(args: argparse.Namespace) -> int:
    """gallery list NAME: the photos a person was enrolled from, and those marked not them."""
    from edgeface.store.gallery import Gallery
    from edgeface.store.photos import photos

    with Gallery(gallery_path(args), create=False) as gallery:
        rows = photos(gallery, args.name)
    if args.json:
        print(json.dumps([{"sha256": r.sha256, "source": r.source_name, "not_them": r.negative,
                           "created": round(r.created, 3)} for r in rows], allow_nan=False))
        return exitcodes.OK
    for r in rows:
        when = time.strftime("%Y-%m-%d", time.gmtime(r.created))
        print(f"{r.sha256[:12]}\t{'not them' if r.negative else 'face'}\t{when}\t{r.source_name}")
    return exitcodes.OK


def cmd_remove(args: argparse.Namespace) -> int:
    from edgeface.store.events import EventStore, events_folder
    from edgeface.store.gallery import Gallery

    cfg = config_from_args(args)
    store = EventStore(events_folder(cfg.events, cfg.gallery))
    with Gallery(cfg.gallery, create=False) as gallery:
        store.follow(gallery.identities())  # event crops are keyed by person: they go with whoever goes
        if args.photo:
            from edgeface.store.photos import remove_photos

            removed = remove_photos(gallery, args.name, args.photo)
        else:
            count = gallery.remove(args.name)
        crops = store.follow(gallery.identities())
    if args.photo:
        marks = f" and {removed.negatives} 'not them' mark(s)" if removed.negatives else ""
        print(f"removed {removed.faces} face(s){marks} of {args.name}")
        if removed.person_gone:
            print(f"{args.name} had no face left and is removed" + (f" ({crops} event crop(s))" if crops else ""))
    else:
        print(f"removed {args.name} ({count} face(s)" + (f", {crops} event crop(s))" if crops else ")"))
    if store.undeletable:
        err(f"cannot delete {len(store.undeletable)} event file(s) in {store.folder} (see the warning above)")
    return exitcodes.OK


def cmd_rename(args: argparse.Namespace) -> int:
    from edgeface.store.events import EventStore, events_folder
    from edgeface.store.gallery import Gallery

    cfg = config_from_args(args)
    store = EventStore(events_folder(cfg.events, cfg.gallery))
    with Gallery(cfg.gallery, create=False) as gallery:
        store.follow(gallery.identities())
        count, merged = gallery.rename(args.old, args.new)
        store.follow(gallery.identities())  # their event crops take the new name (or the merged person's)
    print(f"merged {args.old} into {args.new} ({count} face(s) moved)" if merged
          else f"renamed {args.old} to {args.new} ({count} face(s))")
    return exitcodes.OK


def cmd_export(args: argparse.Namespace) -> int:
    from edgeface.store.gallery import Gallery, dump_export

    with Gallery(gallery_path(args), create=False) as gallery:
        data = gallery.export()
    dump_export(data, args.file)
    print(f"exported {len(data['embeddings'])} face(s) to {args.file}")
    return exitcodes.OK


def cmd_import(args: argparse.Namespace) -> int:
    from edgeface.recognition.embed import default_model_path, load_spec
    from edgeface.store.gallery import Gallery

    try:
        with open(args.file) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        err(f"cannot read {args.file}: {e}")
        return exitcodes.FAIL
    spec = load_spec(default_model_path())
    with Gallery(gallery_path(args)) as gallery:
        # The shipped model's size when the export is the shipped model's; else the gallery's own
        size = spec.embedding_size if isinstance(data, dict) and data.get("model_id") == spec.model_id else None
        added = gallery.import_(data, embedding_size=size)
    print(f"imported {added} new face(s) from {args.file}")
    return exitcodes.OK


def cmd_check(args: argparse.Namespace) -> int:
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


def add_parser(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("gallery", help="list, check, remove, rename, export or import enrolled people",
                       description="The enrolled people: one sub-command per action; "
                       "`edgeface gallery ACTION --help` explains each.")
    actions = g.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help: str, description: str, func) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=help, description=description)
        a.set_defaults(func=func)
        return a

    a = action("list", "people and face counts, or one person's photos",
               "People and their face counts (with a fleet, the device each came from). "
               "list NAME: the photos NAME was enrolled from (and those marked not NAME).", cmd_list)
    a.add_argument("name", nargs="?", metavar="NAME", help="show this person's photos")
    a.add_argument("--json", action="store_true", help="as JSON")

    a = action("remove", "delete a person, or some of their photos",
               "Delete NAME and their faces (and the event crops kept of them); with --photo, only those "
               "photos (or 'not them' marks). With a fleet, the removal reaches every device.", cmd_remove)
    a.add_argument("name", metavar="NAME")
    a.add_argument("--photo", action="append", metavar="FILE|SHA", default=[],
                   help="one of the person's photos, as the file, the path it was enrolled from, "
                   "or 8+ leading hex digits of its sha256 (gallery list NAME); may repeat. A photo marked "
                   "'not NAME' is unmarked the same way")

    a = action("rename", "give a person another name (or merge two)",
               "Give OLD the name NEW; if NEW is already enrolled, the two become one person (a merge). "
               "With a fleet, both reach every device.", cmd_rename)
    a.add_argument("old", metavar="OLD")
    a.add_argument("new", metavar="NEW")

    a = action("export", "write the gallery as JSON", "Write the gallery as JSON to FILE.", cmd_export)
    a.add_argument("file", metavar="FILE")

    a = action("import", "merge an export in", "Merge a gallery export (FILE, as `gallery export` writes "
               "it) into the gallery.", cmd_import)
    a.add_argument("file", metavar="FILE")

    a = action("check", "a leave-one-out self-test of the gallery",
               "A leave-one-out self-test: per person, how often their own photos are recognised from the "
               "others; photos that look like someone else; the estimated share of strangers that would be "
               "named; and what to do about each.", cmd_check)
    a.add_argument("--json", action="store_true", help="the report as JSON")

    for a in actions.choices.values():
        add_gallery_option(a)
        add_config_option(a)
