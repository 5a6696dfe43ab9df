"""gallery remove NAME --photo REF names exactly one photo or nothing (issue 26, finding 15): a
source shared by several photos ("fleet:dev-z", two files both called a.jpg) is refused instead of
removing them all, and names typed in another Unicode form (NFD) are found."""
import hashlib
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from edgeface.store.gallery import Enrolment, Gallery, GalleryError
from edgeface.store.photos import photos, remove_photos

REPO = Path(__file__).resolve().parent.parent
MODEL = "a" * 64


def face(k, source):
    rng = np.random.default_rng(k)
    return Enrolment(rng.normal(size=8).astype(np.float32), hashlib.sha256(f"photo {k}".encode()).hexdigest(), source)


def edgeface(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "edgeface", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_a_fleet_source_naming_several_photos_removes_none_of_them(tmp_path):
    db = tmp_path / "g.db"
    with Gallery(db) as g:
        g.add("zed", [face(k, "fleet:dev-z") for k in range(5)], MODEL)
        with pytest.raises(GalleryError, match="fleet:dev-z: 5 photos .*sha256"):
            remove_photos(g, "zed", ["fleet:dev-z"])
        assert len(photos(g, "zed")) == 5
    r = edgeface("gallery", "remove", "zed", "--photo", "fleet:dev-z", "--gallery", db)
    assert r.returncode == 1 and "5 photos" in r.stderr, r.stdout + r.stderr  # before: all 5 and zed went
    r = edgeface("gallery", "list", "--gallery", db)
    assert "zed\t5 face(s)" in r.stdout, r.stdout
    # as `gallery list zed` shows them, by their sha256 digits: one at a time
    with Gallery(db) as g:
        first = photos(g, "zed")[0].sha256
        assert remove_photos(g, "zed", [first[:12]]).faces == 1 and len(photos(g, "zed")) == 4


def test_two_photos_enrolled_under_one_file_name_are_told_apart(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        g.add("ann", [face(1, "a.jpg"), face(2, "/other/a.jpg"), face(3, "a.jpg")], MODEL)
        with pytest.raises(GalleryError, match="a.jpg: 2 photos"):
            remove_photos(g, "ann", ["a.jpg"])  # no such file here: only the name it was enrolled as
        assert len(photos(g, "ann")) == 3
        assert remove_photos(g, "ann", ["/other/a.jpg"]).faces == 1  # a path naming one photo still works
        (tmp_path / "a.jpg").write_bytes(b"photo 3")  # the file itself: its sha256 says which
        assert remove_photos(g, "ann", [str(tmp_path / "a.jpg")]).faces == 1
        assert [r.sha256 for r in photos(g, "ann")] == [face(1, "").source_sha256]


def test_a_name_typed_decomposed_is_found(tmp_path):
    db = tmp_path / "g.db"
    nfc, nfd = "Jos\u00e9", unicodedata.normalize("NFD", "Jos\u00e9")
    source = "Jos\u00e9e-door.jpg"
    with Gallery(db) as g:
        g.add(nfc, [face(1, source), face(2, "b.jpg")], MODEL)
        assert len(photos(g, nfd)) == 2  # before: no person named 'José'
        removed = remove_photos(g, nfd, [unicodedata.normalize("NFD", source)])
        assert removed.faces == 1 and [r.source_name for r in photos(g, nfc)] == ["b.jpg"]
    r = edgeface("gallery", "list", nfd, "--gallery", db)
    assert r.returncode == 0 and "b.jpg" in r.stdout, r.stderr
    r = edgeface("gallery", "remove", f" {nfd}", "--photo", "b.jpg", "--gallery", db)
    assert r.returncode == 0 and "no face left" in r.stdout, r.stderr
