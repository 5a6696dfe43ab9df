import struct

import cv2
import numpy as np
import pytest
from faces import astronaut_bgr, png_claiming, write_jpeg

from edgeface.vision.images import ImageError, expand, image_size, read_image, read_photo


def test_reads_a_jpeg_and_hashes_its_bytes(tmp_path):
    path = write_jpeg(tmp_path / "a.jpg", astronaut_bgr())
    image, sha = read_image(path)
    assert image.shape == (512, 512, 3) and len(sha) == 64


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"hello, this is text\n" * 20, "not an image"),
])
def test_bad_files_are_named_with_the_reason(tmp_path, content, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=rf"bad\.jpg: {reason}"):
        read_image(path)


def test_truncated_jpeg_is_refused(tmp_path):
    whole = (tmp_path / "whole.jpg")
    write_jpeg(whole, astronaut_bgr())
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    with pytest.raises(ImageError, match="cut.jpg: truncated"):
        read_image(cut)


def test_missing_file_and_folder_expansion(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "none.jpg")
    write_jpeg(tmp_path / "b.jpg", astronaut_bgr())
    write_jpeg(tmp_path / "a.jpg", astronaut_bgr())
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in expand([str(tmp_path)])] == ["a.jpg", "b.jpg"]


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp", ".tif", ".ppm", ".pgm", ".gif"])
def test_size_is_read_from_the_header_of_every_format_opencv_writes(ext):
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), np.uint8)
    ok, buf = cv2.imencode(ext, image[:, :, 0] if ext == ".pgm" else image)
    assert ok
    assert image_size(buf.tobytes()) == (53, 37)


def test_header_sizes_of_hand_made_headers():
    assert image_size(png_claiming(40000, 40000)) == (40000, 40000)
    bmp_top_down = b"BM" + bytes(12) + struct.pack("<Iii", 40, 300, -200) + bytes(40)
    assert image_size(bmp_top_down) == (300, 200)
    assert image_size(b"P6\n# a comment 9 9\n640 480\n255\n") == (640, 480)
    assert image_size(b"GIF89a" + struct.pack("<HH", 7, 9)) == (7, 9)
    assert image_size(b"hello") is None and image_size(b"\xff\xd8\xff\xe0\x00") is None


def test_a_huge_header_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_claiming(40000, 40000))
    with pytest.raises(ImageError, match=r"huge\.png: 40000x40000 is 1600 megapixels, over the limit of 50"):
        read_image(path)
    with pytest.raises(ImageError, match="not an image OpenCV can decode"):  # no limit: cv2 tries, and fails cleanly
        read_image(path, max_pixels=None)
    small = write_jpeg(tmp_path / "a.jpg", astronaut_bgr())
    with pytest.raises(ImageError, match="over the limit of 0.1"):
        read_image(small, max_pixels=100_000)


def test_big_photos_are_decoded_reduced_with_their_scale(tmp_path):
    big = cv2.resize(astronaut_bgr(), (6000, 4500), interpolation=cv2.INTER_LINEAR)
    path = write_jpeg(tmp_path / "big.jpg", big)
    photo = read_photo(path)  # 27 megapixels: allowed, decoded by libjpeg at 1/2
    assert photo.image.shape == (2250, 3000, 3) and photo.scale == 0.5 and (photo.width, photo.height) == (6000, 4500)
    assert read_image(path)[0].shape == (4500, 6000, 3)  # full size when no max_side is asked for
    assert read_photo(path, max_side=1000).image.shape == (563, 750, 3)  # 1/8: libjpeg scales by 2, 4 or 8 only


def test_tall_narrow_photos_are_scaled_by_their_longest_side(tmp_path):
    tall = np.full((10000, 100, 3), 128, np.uint8)
    path = tmp_path / "tall.png"
    assert cv2.imwrite(str(path), tall)
    photo = read_photo(path)
    assert photo.image.shape == (4096, 41, 3) and photo.scale == pytest.approx(0.4096)
