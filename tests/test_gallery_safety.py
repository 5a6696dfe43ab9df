"""Nothing a user, a file or another program does can poison the gallery (issue 10, items 3, 4 and 6)."""
import json
import logging
import math
import multiprocessing
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeface.config import MqttConfig
from edgeface.mqtt.publish import Publisher
from edgeface.recognition.match import Matcher
from edgeface.recognition.track import IdentityEvent
from edgeface.store.gallery import (
    APPLICATION_ID,
    NAME_MAX,
    Enrolment,
    Gallery,
    GalleryError,
    GalleryMissing,
    check_name,
    dump_export,
)

MODEL = "a" * 64
SIZE = 8
REPO = Path(__file__).resolve().parent.parent


def _enrol(i, size=SIZE, sha=None):
    v = np.zeros(size, np.float32)
    v[i % size] = 1
    return Enrolment(v, sha or f"{i:064x}", f"photo{i}.jpg")


def _export(records, model_id=MODEL):
    return {"format": "edgeface-gallery", "version": 1, "model_id": model_id, "embeddings": records}


def _record(name="ann", vector=None, i=0):
    vector = [0.0] * SIZE if vector is None else vector
    if vector == [0.0] * SIZE:
        vector[i % SIZE] = 1.0
    return {"name": name, "vector": vector, "source_sha256": f"{i:064x}", "source_name": f"p{i}.jpg", "created": 1.0}


# -- names (item 4) ------------------------------------------------------------------------
@pytest.mark.parametrize("raw, kept", [("  Ann Smith ", "Ann Smith"), ("Zoë", "Zoë"), ("e\u0301", "\u00e9"),
                                       ("a" * NAME_MAX, "a" * NAME_MAX), ("محمد\u200cرضا", "محمد\u200cرضا")])
def test_names_are_trimmed_and_normalised(raw, kept):
    assert check_name(raw) == kept


@pytest.mark.parametrize("raw, reason", [("", "empty"), ("   ", "empty"), ("a\nb", "control"), ("a\tb", "control"),
                                         ("a\x1b[31mb", "control"), ("a\u202eb", "control"), ("a\u2028b", "control"),
                                         ("a" * (NAME_MAX + 1), "at most"), ("x" * 100_000, "at most"),
                                         (None, "must be text")])
def test_bad_names_are_refused_with_the_reason(raw, reason):
    with pytest.raises(GalleryError, match=reason):
        check_name(raw)


def test_enrol_and_remove_apply_the_name_rule(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        with pytest.raises(GalleryError, match="control"):
            g.add("ann\nbob", [_enrol(0)], MODEL)
        with pytest.raises(GalleryError, match="at most"):
            g.add("x" * 100_000, [_enrol(0)], MODEL)
        assert g.people() == []
        g.add(" ann ", [_enrol(0)], MODEL)
        assert [p.name for p in g.people()] == ["ann"]
        assert g.remove("  ann") == 1
        with pytest.raises(GalleryError, match="control"):
            g.remove("a\nb")


def test_one_photo_cannot_name_two_people(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        g.add("ann", [_enrol(0)], MODEL)
        with pytest.raises(GalleryError, match="already enrolled as 'ann'"):
            g.add("bob", [_enrol(1), _enrol(2, sha=f"{0:064x}")], MODEL)
        assert [p.name for p in g.people()] == ["ann"]
        assert g.add("ann", [_enrol(0)], MODEL) == 0  # the same person again: a no-op, not an error
        assert g.owner(f"{0:064x}") == "ann" and g.owner("f" * 64) is None


def test_a_name_from_an_older_version_can_still_be_listed_and_removed(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        g.add("ann", [_enrol(0)], MODEL)
        g.db.execute("UPDATE people SET name = 'ann\nroot: ok'")  # as the old code let in
        g.db.commit()
        assert g.vectors()[0] == []  # never published
        assert g.remove("ann\nroot: ok") == 1


# -- import (item 3) -----------------------------------------------------------------------
@pytest.mark.parametrize("data, reason", [
    (_export("everyone"), "must be a list"),
    (_export({"name": "ann"}), "must be a list"),
    (_export(["ann"]), "must be a list of records"),
    ({"format": "edgeface-gallery", "embeddings": [_record()]}, "no \"model_id\""),
    (_export([_record()], model_id="x"), "64 hex digits"),
    (_export([_record(vector=[float("nan")] * SIZE)]), "not finite"),
    (_export([_record(vector=[1e39] * SIZE)]), "not finite"),  # overflows float32
    (_export([_record(vector=[1.0, 2.0, 3.0])]), "has 3 values"),
    (_export([_record(i=3)]), None),  # the control: a good record with the good one lands
    (_export([_record(vector="12345678")]), "not a list of numbers|flat list"),
    (_export([_record(vector=[[1.0] * SIZE])]), "flat list"),
    (_export([_record(name="a\nb")]), "record 2 of 2: .*control"),
    (_export([_record(name="x" * 1000)]), "at most"),
    (_export([{**_record(), "source_sha256": "../etc"}]), "64 hex digits"),
    (_export([{**_record(), "created": "yesterday"}]), "finite number"),
    (_export([_record("ann", i=0), _record("bob", i=0)]), "also in the export as 'ann'"),
    (_export([_record("ann", i=0), {**_record("bob", i=1), "model_id": "b" * 64}]), "several models"),
    ({"format": "edgeface-gallery", "version": 99, "embeddings": []}, "version 99"),
])
def test_a_bad_export_writes_nothing_and_says_why(tmp_path, data, reason):
    with Gallery(tmp_path / "g.db") as g:
        g.add("zed", [_enrol(5, sha="e" * 64)], MODEL)
        before = (g.version(), g.export())
        good = _record("cat", i=7)
        if "model_id" in data and isinstance(data["embeddings"], list) and data["embeddings"]:
            data = {**data, "embeddings": [good, *data["embeddings"]]}
        if reason is None:
            assert g.import_(data, embedding_size=SIZE) == 2
            return
        with pytest.raises(GalleryError, match=reason):
            g.import_(data, embedding_size=SIZE)
        assert (g.version(), g.export()) == before  # not even the good record landed


def test_import_refuses_a_photo_enrolled_as_someone_else_and_checks_size_against_the_gallery(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        g.add("ann", [_enrol(0)], MODEL)
        with pytest.raises(GalleryError, match="already enrolled as 'ann'"):
            g.import_(_export([_record("bob", i=0)]))
        # no size given: the gallery's own (8) is the rule
        with pytest.raises(GalleryError, match="has 3 values; this gallery's embeddings have 8"):
            g.import_(_export([{**_record("bob", i=1), "vector": [1.0, 2.0, 3.0]}]))
        assert [p.name for p in g.people()] == ["ann"]


def test_import_cli_knows_the_model_size(tmp_path, cli):
    from edgeface.recognition.embed import default_model_path, load_spec

    spec = load_spec(default_model_path())
    bad = _export([{**_record(), "vector": [1.0, 2.0, 3.0]}], model_id=spec.model_id)
    (tmp_path / "x.json").write_text(json.dumps(bad))
    r = cli("gallery", "import", tmp_path / "x.json", "--gallery", tmp_path / "g.db")
    assert r.returncode == 1 and f"has 3 values; this gallery's embeddings have {spec.embedding_size}" in r.stderr
    assert "Traceback" not in r.stderr
    (tmp_path / "y.json").write_text(json.dumps({"format": "edgeface-gallery", "embeddings": 5}))
    r = cli("gallery", "import", tmp_path / "y.json", "--gallery", tmp_path / "g.db")
    assert r.returncode == 1 and "must be a list" in r.stderr and "Traceback" not in r.stderr


def test_a_poisoned_gallery_still_matches_and_never_scores_nan(tmp_path, caplog):
    with Gallery(tmp_path / "g.db") as g:
        g.add("ann", [_enrol(0)], MODEL)
        g.add("bob", [_enrol(1)], MODEL)
        # as the old import let in: a NaN vector, a 3-number vector, an all-zero one
        pid = g.db.execute("SELECT id FROM people WHERE name = 'bob'").fetchone()[0]
        for i, vector in enumerate(([math.nan] * SIZE, [1.0, 2.0, 3.0], [0.0] * SIZE)):
            blob = np.asarray(vector, np.float32).tobytes()
            g.db.execute("INSERT INTO embeddings (person_id, vector, source_sha256, source_name, model_id, created) "
                         "VALUES (?, ?, ?, 'x', ?, 0)", (pid, blob, f"{9 + i}" * 64, MODEL))
        g.db.commit()
        with caplog.at_level(logging.WARNING, "edgeface.store.gallery"):
            names, vectors = g.vectors()
        assert names == ["ann", "bob"] and vectors.shape == (2, SIZE) and np.isfinite(vectors).all()
        assert "3 stored embedding(s) left out" in caplog.text
        query = np.zeros(SIZE, np.float32)
        query[0] = 1
        (m,) = Matcher(names, vectors, 0.5).match(query)
        assert m.name == "ann" and math.isfinite(m.score)


def test_nan_never_reaches_a_payload():
    publisher = Publisher(MqttConfig(), ["door"])  # not started: events are queued, never sent
    with pytest.raises(ValueError, match="Out of range float"):
        publisher.publish_identity("door", IdentityEvent("ann", math.nan, (0, 0, 10, 10), 0.0, 1, 0.0))
    assert publisher.queued() == 0


# -- the gallery file (item 6) -------------------------------------------------------------
def test_another_programs_database_is_left_byte_identical(tmp_path):
    other = tmp_path / "app.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    db.execute("INSERT INTO notes (text) VALUES ('keep me')")
    db.commit()
    db.close()
    before = other.read_bytes()
    with pytest.raises(GalleryError, match="not an edgeface gallery.*untouched"):
        Gallery(other)
    with pytest.raises(GalleryError, match="not an edgeface gallery"):
        Gallery(other, create=False)
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no -wal/-shm left either
    db = sqlite3.connect(other)
    db.execute("PRAGMA application_id = 1234")  # marked by another program, even with our table names
    db.executescript("DROP TABLE notes; CREATE TABLE meta (k); CREATE TABLE people (k); CREATE TABLE embeddings (k);")
    db.close()
    before = other.read_bytes()
    with pytest.raises(GalleryError, match="application_id 0x4d2"):
        Gallery(other)
    assert other.read_bytes() == before


def test_galleries_are_marked_and_older_ones_adopted(tmp_path):
    with Gallery(tmp_path / "new.db") as g:
        g.add("ann", [_enrol(0)], MODEL)
    assert sqlite3.connect(tmp_path / "new.db").execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    old = tmp_path / "old.db"  # what the previous version made: our tables, no mark
    with Gallery(old) as g:
        g.add("ann", [_enrol(0)], MODEL)
    db = sqlite3.connect(old)
    db.execute("PRAGMA application_id = 0")
    db.execute("DELETE FROM meta WHERE key = 'embedding_size'")
    db.commit()
    db.close()
    with Gallery(old, create=False) as g:
        assert [p.name for p in g.people()] == ["ann"] and g.embedding_size() == SIZE
    assert sqlite3.connect(old).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_new_galleries_and_exports_are_owner_only(tmp_path):
    path = tmp_path / "new" / "dir" / "g.db"
    with Gallery(path) as g:
        g.add("ann", [_enrol(0)], MODEL)
        for f in path.parent.iterdir():  # the -wal/-shm files too
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        (tmp_path / "x.json.tmp").write_text("left by a crash")
        os.chmod(tmp_path / "x.json.tmp", 0o644)
        dump_export(g.export(), tmp_path / "x.json")
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o600
    assert not (tmp_path / "x.json.tmp").exists()


def test_a_missing_gallery_is_not_created_unless_asked(tmp_path):
    with pytest.raises(GalleryMissing, match="gallery not found"):
        Gallery(tmp_path / "typo.db", create=False)
    assert not (tmp_path / "typo.db").exists()
    assert issubclass(GalleryMissing, GalleryError)


def test_disk_full_is_reported_as_such(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        g.add("ann", [_enrol(0)], MODEL)
        (pages,) = g.db.execute("PRAGMA page_count").fetchone()
        g.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL, as on a full disk
        many = [Enrolment(np.ones(SIZE, np.float32) * (i + 1), f"{i + 100:064x}", "x" * 2000) for i in range(50)]
        with pytest.raises(GalleryError, match="disk is full.*free space"):
            g.add("bob", many, MODEL)
        assert [p.name for p in g.people()] == ["ann"]


def _without_root_powers(code: str) -> subprocess.CompletedProcess:
    """Run code as this user, but with root's power to ignore file permissions dropped (tests often run as root)."""
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot be denied a permission")
        cmd = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=60)


@pytest.mark.parametrize("mode, folder_mode", [(0o400, 0o755), (0o600, 0o555), (0o000, 0o755)])
def test_permission_denied_is_reported_as_such(tmp_path, mode, folder_mode):
    folder = tmp_path / "state"
    with Gallery(folder / "g.db") as g:
        g.add("ann", [_enrol(0)], MODEL)
    os.chmod(folder / "g.db", mode)
    os.chmod(folder, folder_mode)
    try:
        r = _without_root_powers(f"from edgeface.store.gallery import Gallery; Gallery({str(folder / 'g.db')!r})")
    finally:
        os.chmod(folder, 0o755)
    assert "GalleryError" in r.stderr and "permission denied" in r.stderr, r.stderr
    assert "sudo -u edgeface" in r.stderr and "not an edgeface gallery" not in r.stderr


def _open_gallery(path):
    with Gallery(path):
        pass


def test_a_gallery_made_by_several_processes_at_once_is_theirs_in_every_one(tmp_path):
    """The daemon starting while `enroll` makes the gallery: each must see no tables or all of
    them. The tables used to be made one by one, and an opener in between took the half-made
    file for another program's database."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        for round_ in range(6):
            path = tmp_path / f"g{round_}.db"
            for result in [pool.apply_async(_open_gallery, (path,)) for _ in range(6)]:
                result.get(timeout=60)
            with Gallery(path, create=False) as g:
                assert g.people() == [] and g.version() >= 0
