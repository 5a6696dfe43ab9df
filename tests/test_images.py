import pytest

from edgeface.images import ImageError, expand, read_image
from faces import astronaut_bgr, write_jpeg


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
