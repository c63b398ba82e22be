"""Landing files: whole or not at all, never over something that is not a regular file."""

import os
from pathlib import Path

import pytest

from t2reg.errors import InvalidInputError
from t2reg.files import land_bytes, landing, landing_dir


def test_a_file_lands_whole_and_leaves_no_temp_file(tmp_path):
    out = land_bytes(tmp_path / "a.bin", b"hello")
    assert out.read_bytes() == b"hello" and os.listdir(tmp_path) == ["a.bin"]
    land_bytes(out, b"again")
    assert out.read_bytes() == b"again" and os.listdir(tmp_path) == ["a.bin"]


def test_a_failure_midway_leaves_the_old_file_and_no_temp_file(tmp_path):
    out = land_bytes(tmp_path / "a.bin", b"old")
    with pytest.raises(RuntimeError), landing(out) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("disk full")
    assert out.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.bin"]


def test_a_fifo_a_directory_or_an_empty_path_is_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match="not a regular file"):
        land_bytes(fifo, b"x")
    assert fifo.exists() and not fifo.is_file()
    with pytest.raises(InvalidInputError, match="not a regular file"):
        land_bytes(tmp_path, b"x")
    with pytest.raises(InvalidInputError, match="empty"):
        land_bytes("", b"x")
    with pytest.raises(InvalidInputError, match="not a directory"):
        land_bytes(tmp_path / "missing" / "a.bin", b"x")


def test_a_folder_lands_whole_and_a_failed_one_leaves_nothing(tmp_path):
    with landing_dir(tmp_path / "model") as staging:
        (staging / "config.json").write_text("{}")
    assert os.listdir(tmp_path / "model") == ["config.json"]
    with pytest.raises(RuntimeError), landing_dir(tmp_path / "other") as staging:
        (staging / "half").write_text("x")
        raise RuntimeError("killed")
    assert sorted(os.listdir(tmp_path)) == ["model"]
    with pytest.raises(InvalidInputError, match="not an empty folder"):
        with landing_dir(tmp_path / "model"):
            pass
    assert os.listdir(tmp_path / "model") == ["config.json"]  # never removed


def test_a_folder_is_never_landed_over_a_symlink_or_under_a_file(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    (tmp_path / "file").write_text("keep")
    for out, words in ((tmp_path / "link", "is a symlink"), (tmp_path / "file" / "x", "is not a folder")):
        with pytest.raises(InvalidInputError, match=words), landing_dir(out) as staging:
            (staging / "x").write_text("x")
    assert (tmp_path / "link").is_symlink() and os.listdir(tmp_path / "empty") == []
    assert (tmp_path / "file").read_text() == "keep" and sorted(os.listdir(tmp_path)) == ["empty", "file", "link"]


def test_a_path_ending_in_a_slash_names_a_folder(tmp_path):
    # One rule: a command writing a folder creates it (landing_dir), one writing a file refuses it.
    with pytest.raises(InvalidInputError, match="ends in '/'"):
        land_bytes(f"{tmp_path / 'dir'}/", b"x")
    with landing_dir(Path(f"{tmp_path / 'new' / 'dir'}/")) as staging:
        (staging / "a").write_text("a")
    assert sorted(os.listdir(tmp_path)) == ["new"] and os.listdir(tmp_path / "new" / "dir") == ["a"]
