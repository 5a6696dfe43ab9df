"""Event crops are keyed by person (issue 26, finding 14): a rename takes them along, a removal by
any path (gallery remove, a padded name, the last photo, the fleet) takes them with the person."""
import json
import time

import numpy as np
from faces import FACE_BOX, astronaut_bgr
from galleries import MODEL, enrol
from running import edgeface

from edgeface.fleet.ledger import FleetLedger
from edgeface.store.events import EventStore
from edgeface.store.gallery import Gallery
from edgeface.store.gallery_sync import LedgerEntry


def crops(tmp_path, *names, each=3):
    """``each`` crops per name (None: an unknown face), as the daemon keeps them."""
    store = EventStore(tmp_path / "events")
    now = time.time()
    return store, [store.add("front", name, 0.9, FACE_BOX, now - k, astronaut_bgr())
                   for name in names for k in range(each)]


def listed(db):
    r = edgeface("events", "--json", "--gallery", db)
    assert r.returncode == 0, r.stderr
    return sorted(json.loads(line)["name"] or "" for line in r.stdout.splitlines())


def test_crops_follow_a_rename_and_go_with_the_removal(tmp_path):
    db = tmp_path / "gallery.db"
    enrol(db, "elton_john", photos=2)
    enrol(db, "ann")
    crops(tmp_path, "elton_john", each=6)
    crops(tmp_path, "ann", None, each=1)
    r = edgeface("gallery", "rename", "elton_john", "elton", "--gallery", db)
    assert r.returncode == 0, r.stderr
    assert listed(db) == ["", "ann"] + ["elton"] * 6
    r = edgeface("gallery", "remove", "elton", "--gallery", db)
    assert r.returncode == 0 and "6 event crop(s)" in r.stdout, r.stdout + r.stderr
    assert listed(db) == ["", "ann"]  # before: elton_john's 6 crops stayed, named elton_john
    assert len(list((tmp_path / "events").iterdir())) == 4


def test_removing_a_padded_name_takes_the_crops(tmp_path):
    db = tmp_path / "gallery.db"
    enrol(db, "elton_john")
    crops(tmp_path, "elton_john")
    r = edgeface("gallery", "remove", " elton_john", "--gallery", db)
    assert r.returncode == 0 and "3 event crop(s)" in r.stdout, r.stdout + r.stderr
    assert listed(db) == []


def test_a_merge_gives_the_crops_to_the_person_merged_into(tmp_path):
    db = tmp_path / "gallery.db"
    enrol(db, "a")
    enrol(db, "b")
    crops(tmp_path, "a", "b", each=2)
    r = edgeface("gallery", "rename", "a", "b", "--gallery", db)
    assert r.returncode == 0 and "merged" in r.stdout, r.stderr
    assert listed(db) == ["b"] * 4
    assert edgeface("gallery", "remove", "b", "--gallery", db).returncode == 0
    assert listed(db) == []


def test_removing_a_persons_last_photo_takes_their_crops(tmp_path):
    db = tmp_path / "gallery.db"
    enrol(db, "eileen", photos=2)
    crops(tmp_path, "eileen")
    with Gallery(db) as g:
        shas = sorted(g.identities().popitem()[1][1])
    r = edgeface("gallery", "remove", "eileen", "--photo", shas[0][:12], "--gallery", db)
    assert r.returncode == 0 and listed(db) == ["eileen"] * 3, r.stdout + r.stderr  # one photo left: kept
    r = edgeface("gallery", "remove", "eileen", "--photo", shas[1][:12], "--gallery", db)
    assert r.returncode == 0 and "no face left" in r.stdout, r.stdout + r.stderr
    assert listed(db) == []


def test_the_daemons_crops_follow_what_the_fleet_applies(tmp_path):
    """What the daemon does whenever the gallery changes (Daemon._use_matcher): store.follow()."""
    db = tmp_path / "gallery.db"
    enrol(db, "ann", photos=2)
    enrol(db, "bob")
    with Gallery(db) as g:
        store, _ = crops(tmp_path, None, each=1)
        store.follow(g.identities())  # the daemon follows the gallery from its start
        for name in ("ann", "bob"):
            for _ in range(2):
                store.add("front", name, 0.9, FACE_BOX, time.time(), astronaut_bgr())
        faces = FleetLedger(g).faces()
        ann = sorted(sha for sha, (name, _) in faces.items() if name == "ann")
        (bob,) = [sha for sha, (name, _) in faces.items() if name == "bob"]
        # another device renamed ann to anna: each photo's record moves her face to a new person row
        for sha in ann:
            g.apply_face(sha, LedgerEntry("anna", 2000, "dev-b", False),
                         np.frombuffer(faces[sha][1], np.float32), MODEL)
            store.follow(g.identities())
        assert sorted(e.name or "" for e in store.events()) == ["", "anna", "anna", "bob", "bob"]
        # ... and removed bob: a tombstone
        g.apply_face(bob, LedgerEntry("bob", 2000, "dev-b", True), None, MODEL)
        assert store.follow(g.identities()) == 2
        assert sorted(e.name or "" for e in store.events()) == ["", "anna", "anna"]
