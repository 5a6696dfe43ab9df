"""`edgeface enroll` and `identify` as a user runs them, with names, photos and sizes that used to break them."""
import json
import sqlite3

import cv2
import pytest
from faces import astronaut_bgr, png_claiming, write_jpeg


def people(db):
    return sqlite3.connect(db).execute("SELECT name FROM people ORDER BY name").fetchall()


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    return write_jpeg(tmp_path_factory.mktemp("photos") / "eileen.jpg", astronaut_bgr())


@pytest.mark.parametrize("name, reason", [("", "empty"), ("  ", "empty"), ("eve\nroot", "control"),
                                          ("x" * 100_000, "at most 64")])
def test_a_bad_name_is_refused_before_any_photo_is_read(tmp_path, name, reason, cli):
    r = cli("enroll", name, tmp_path / "missing.jpg", "--gallery", tmp_path / "g.db")
    assert r.returncode == 2 and reason in r.stderr
    assert "missing.jpg" not in r.stderr  # the photos were never looked at
    assert not (tmp_path / "g.db").exists()


def test_a_bad_file_never_loses_the_good_ones(tmp_path, photo, cli):
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_claiming(40000, 40000))
    tall = tmp_path / "tall.png"
    cv2.imwrite(str(tall), cv2.resize(astronaut_bgr(), (100, 10000)))
    db = tmp_path / "g.db"
    r = cli("enroll", "eileen", huge, photo, tall, "--gallery", db)
    # the good one is in, and that is success (a folder of photos always has a few without a face)
    assert r.returncode == 0, r.stderr
    assert "1 new face(s) enrolled" in r.stdout and "2 file(s) skipped" in r.stdout
    assert any("huge.png" in line and "1600 megapixels" in line for line in r.stderr.splitlines()), r.stderr
    assert any("tall.png" in line and "no face" in line for line in r.stderr.splitlines()), r.stderr
    assert people(db) == [("eileen",)]
    r = cli("enroll", "eileen", huge, "--gallery", db, "--max-pixels", 0)  # no limit: cv2 fails, cleanly
    assert r.returncode == 1 and "huge.png" in r.stderr and "Traceback" not in r.stderr


def test_one_photo_cannot_be_two_people(tmp_path, photo, cli):
    db = tmp_path / "g.db"
    assert cli("enroll", "eileen", photo, "--gallery", db).returncode == 0
    r = cli("enroll", "mallory", photo, "--gallery", db)
    assert r.returncode == 1 and "already enrolled as 'eileen'" in r.stderr
    assert people(db) == [("eileen",)]


def test_identify_reports_boxes_in_original_pixels_for_a_photo_decoded_reduced(tmp_path, photo, cli):
    db = tmp_path / "g.db"
    assert cli("enroll", "eileen", photo, "--gallery", db).returncode == 0
    big = write_jpeg(tmp_path / "big.jpg", cv2.resize(astronaut_bgr(), (5120, 5120), interpolation=cv2.INTER_CUBIC))
    r = cli("identify", photo, big, "--gallery", db, "--json")
    assert r.returncode == 0, r.stderr
    small, large = (json.loads(line)["faces"] for line in r.stdout.splitlines())
    (a,), (b,) = ([f for f in faces if f["name"] == "eileen"] for faces in (small, large))
    # decoded at 2560 px, reported at 5120: ten times the 512 px photo's box
    for v_small, v_large in zip(a["box"], b["box"]):
        assert abs(v_large - 10 * v_small) <= 0.1 * 10 * a["box"][2], (a, b)
    r = cli("identify", big, "--gallery", db, "--max-pixels", 1_000_000)
    assert r.returncode == 1 and "26 megapixels, over the limit of 1" in r.stderr
