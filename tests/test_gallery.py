import json
import sqlite3

import numpy as np
import pytest

from edgeface.store.gallery import Enrolment, Gallery, GalleryError, dump_export

MODEL_A, MODEL_B = "a" * 64, "b" * 64


def _enrol(i, d=4):
    v = np.zeros(d, np.float32)
    v[i % d] = 1
    return Enrolment(v, f"{i:064x}", f"photo{i}.jpg")


def test_add_list_vectors_and_idempotent_reenrol(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        assert g.add("ann", [_enrol(0), _enrol(1)], MODEL_A) == 2
        assert g.add("ann", [_enrol(0)], MODEL_A) == 0  # same photo again: no-op
        assert g.add("bob", [_enrol(2)], MODEL_A) == 1
        assert [(p.name, p.embeddings) for p in g.people()] == [("ann", 2), ("bob", 1)]
        names, vectors = g.vectors()
        assert names == ["ann", "ann", "bob"] and vectors.shape == (3, 4) and vectors.dtype == np.float32


def test_refuses_to_mix_models_and_says_how_to_reenrol(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        g.add("ann", [_enrol(0)], MODEL_A)
        with pytest.raises(GalleryError, match="another model.*Re-enrol"):
            g.add("bob", [_enrol(1)], MODEL_B)
        assert [p.name for p in g.people()] == ["ann"]
        g.remove("ann")  # empty again: a new model may start afresh
        assert g.add("bob", [_enrol(1)], MODEL_B) == 1


def test_a_failing_enrolment_leaves_nothing_half_written(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        g.add("ann", [_enrol(0)], MODEL_A)
        bad = Enrolment(object(), "f" * 64, "bad.jpg")  # not a vector: refused before anything is written
        with pytest.raises(GalleryError, match="bad.jpg: the vector"):
            g.add("bob", [_enrol(1), bad], MODEL_A)
        assert [p.name for p in g.people()] == ["ann"]
        assert len(g.vectors()[0]) == 1


def test_version_changes_on_every_write_seen_from_another_connection(tmp_path):
    path = tmp_path / "g.db"
    with Gallery(path) as reader, Gallery(path) as writer:
        v0 = reader.version()
        writer.add("ann", [_enrol(0)], MODEL_A)
        v1 = reader.version()
        writer.remove("ann")
        assert v0 != v1 != reader.version()


def test_remove_unknown_and_missing_gallery(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        with pytest.raises(GalleryError, match="no person named 'zed'"):
            g.remove("zed")
    with pytest.raises(GalleryError, match="gallery not found"):
        Gallery(tmp_path / "none.db", create=False)


def test_not_a_database(tmp_path):
    bogus = tmp_path / "photo.db"
    bogus.write_bytes(b"\xff\xd8\xff" + b"jpeg" * 100)
    with pytest.raises(GalleryError, match="not an edgeface gallery"):
        Gallery(bogus)


def test_export_import_round_trip(tmp_path):
    with Gallery(tmp_path / "a.db") as a:
        a.add("ann", [_enrol(0), _enrol(1)], MODEL_A)
        dump_export(a.export(), tmp_path / "x.json")
    data = json.loads((tmp_path / "x.json").read_text())
    with Gallery(tmp_path / "b.db") as b:
        assert b.import_(data) == 2
        assert b.import_(data) == 0
        assert b.model_id() == MODEL_A
        np.testing.assert_array_equal(b.vectors()[1], Gallery(tmp_path / "a.db").vectors()[1])
        with pytest.raises(GalleryError, match="not an edgeface gallery export"):
            b.import_({"people": []})


def test_wal_mode(tmp_path):
    Gallery(tmp_path / "g.db").close()
    assert sqlite3.connect(tmp_path / "g.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_negatives_are_kept_per_person_exported_and_removed_with_them(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        g.add("ann", [_enrol(0)], MODEL_A)
        with pytest.raises(GalleryError, match="no person named 'bob'"):
            g.add_negatives("bob", [_enrol(1)], MODEL_A)
        with pytest.raises(GalleryError, match="cannot also be marked as not 'ann'"):
            g.add_negatives("ann", [_enrol(0)], MODEL_A)
        assert g.add_negatives("ann", [_enrol(1)], MODEL_A) == 1
        assert g.add_negatives("ann", [_enrol(1)], MODEL_A) == 0  # the same face again: no-op
        assert [(p.name, p.embeddings, p.negatives) for p in g.people()] == [("ann", 1, 1)]
        names, vectors = g.vectors(negatives=True)
        assert names == ["ann"] and vectors[0, 1] == 1
        data = g.export()
    assert [r["name"] for r in data["negatives"]] == ["ann"]
    with Gallery(tmp_path / "copy.db") as copy:
        assert copy.import_(data) == 1
        assert [(p.name, p.embeddings, p.negatives) for p in copy.people()] == [("ann", 1, 1)]
        orphan = dict(data, embeddings=[dict(data["embeddings"][0], name="cy", source_sha256="c" * 64)],
                      negatives=[dict(data["negatives"][0], name="dee")])
        with pytest.raises(GalleryError, match="negative for 'dee'"):
            copy.import_(orphan)
        assert [p.name for p in copy.people()] == ["ann"]  # nothing half-written
        copy.remove("ann")
        assert copy.vectors(negatives=True)[0] == []


def test_rename_and_merge_move_faces_and_negatives(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        g.add("ann", [_enrol(0), _enrol(1)], MODEL_A)
        g.add("bob", [_enrol(2)], MODEL_A)
        g.add_negatives("ann", [_enrol(3)], MODEL_A)
        g.add_negatives("bob", [_enrol(1)], MODEL_A)  # "not bob" is a photo of ann...
        assert g.rename("ann", "anne") == (2, False)
        assert [(p.name, p.embeddings, p.negatives) for p in g.people()] == [("anne", 2, 1), ("bob", 1, 1)]
        with pytest.raises(GalleryError, match="no person named 'ann'"):
            g.rename("ann", "bob")
        with pytest.raises(GalleryError, match="already called"):
            g.rename("bob", "bob")
        with pytest.raises(GalleryError):
            g.rename("bob", "")  # not a name: nothing changes
        # ...so when anne and bob turn out to be one person, that negative goes, the other stays
        assert g.rename("anne", "bob") == (2, True)
        assert [(p.name, p.embeddings, p.negatives) for p in g.people()] == [("bob", 3, 1)]
        assert g.owner(_enrol(0).source_sha256) == "bob"


def test_photos_are_listed_and_removed_one_at_a_time(tmp_path):
    import hashlib

    from edgeface.store.photos import photos, remove_photos

    photo = tmp_path / "kept.jpg"
    photo.write_bytes(b"a photo")
    as_file = Enrolment(np.eye(4, dtype=np.float32)[3], hashlib.sha256(b"a photo").hexdigest(), "/elsewhere/kept.jpg")
    with Gallery(tmp_path / "g.db") as g:
        g.add("ann", [_enrol(0), _enrol(1), as_file], MODEL_A)
        g.add("bob", [_enrol(2)], MODEL_A)
        g.add_negatives("ann", [_enrol(2)], MODEL_A)
        rows = photos(g, "ann")
        assert [(r.source_name, r.negative) for r in rows] == [
            ("photo0.jpg", False), ("photo1.jpg", False), ("/elsewhere/kept.jpg", False), ("photo2.jpg", True)]
        # a ref that names nothing, or too little: nothing is removed
        with pytest.raises(GalleryError, match="nope.jpg: not one of this person's photos"):
            remove_photos(g, "ann", ["photo0.jpg", "nope.jpg"])
        with pytest.raises(GalleryError, match="photos start with these digits"):
            remove_photos(g, "ann", ["00000000"])
        with pytest.raises(GalleryError, match="no person named 'cy'"):
            remove_photos(g, "cy", ["photo0.jpg"])
        assert len(photos(g, "ann")) == 4
        # by the path it was enrolled from, by the file itself, and a "not ann" mark by its sha256
        removed = remove_photos(g, "ann", ["photo0.jpg", str(photo), f"{2:064x}"])
        assert (removed.faces, removed.negatives, removed.person_gone) == (2, 1, False)
        assert [(p.name, p.embeddings, p.negatives) for p in g.people()] == [("ann", 1, 0), ("bob", 1, 0)]
        # the last face takes the person with it; bob keeps photo 2
        assert remove_photos(g, "ann", [f"{1:064x}"[:60]]).person_gone
        assert [(p.name, p.embeddings) for p in g.people()] == [("bob", 1)]
        assert remove_photos(g, "bob", ["photo2.jpg"]).person_gone
        assert g.people() == [] and g.model_id() is None  # empty: any model may enrol again
