"""Folder entries named as images that are not image files: a FIFO, links to a device and to
nothing, a sparse file far larger than any photograph, a name that is not UTF-8. Each is skipped
with one line saying why, by every reader of folders (fit's in-memory and prepared paths,
encode's records), and nothing hangs or reads gigabytes."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_images

from tfae.data.image_files import MAX_FILE_BYTES

READERS = {
    "fit, in memory": "from tfae.data import load; print(int(load(FOLDER).train.cardinality()"
                      " + load(FOLDER).validation.cardinality() + load(FOLDER).test.cardinality()))",
    "fit, prepared": "from tfae.data import load; splits = load(FOLDER, memory_budget=1e-9, "
                     "prepared_dir=FOLDER + '-prepared'); print(splits.source['images'])",
    "encode": "from tfae.data import load_records; print(len(load_records(FOLDER)))",
}


# Entries every reader skips with a line, and the words of that line; the hanging ones (a FIFO,
# a link to /dev/zero) would hang the reader should it regress, so only a process of its own,
# with a timeout, reads them.
UNREADABLE = (("dangling.png", "a link to nothing"), ("sparse.png", "over the limit"),
              ("bad?name.png", "its name is not UTF-8"))
HANGING = (("fifo.png", "not a regular file"), ("zero.png", "not a regular file"))


def write_hostile_folder(root, images, hanging):
    """``images`` PNG files in ``root/a`` beside the ``UNREADABLE`` entries (and the
    ``HANGING`` ones if ``hanging``) and three files of formats tfae does not decode."""
    folder = root / "a"
    write_images(folder, images)
    if hanging:
        os.mkfifo(folder / "fifo.png")
        os.symlink("/dev/zero", folder / "zero.png")
    os.symlink(folder / "gone.png", folder / "dangling.png")
    with open(folder / "sparse.png", "wb") as sparse:
        sparse.truncate(MAX_FILE_BYTES + 1)
    with open(os.fsencode(folder) + b"/bad\xffname.png", "wb") as badly_named:
        badly_named.write((folder / "000.png").read_bytes())
    for name in ("scan.tif", "scan2.TIFF", "photo.webp"):  # formats tfae does not decode
        (folder / name).write_bytes(b"not decoded")
    return root


def assert_skipped_with_a_line_each(stderr, entries):
    warnings = [line for line in stderr.splitlines() if line.startswith("warning: ")]
    for name, why in entries:
        assert any(name in line and why in line for line in warnings), (name, warnings)
    formats = [line for line in warnings if "of image formats tfae does not decode" in line]
    assert formats and all(line.startswith("warning: skipped 3 file(s)") and all(
        f"{suffix} 1" in line for suffix in (".tif", ".tiff", ".webp")) for line in formats)
    return warnings


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return write_hostile_folder(tmp_path_factory.mktemp("hostile") / "photos", 12, hanging=True)


def test_entries_that_cannot_hang_a_reader_are_skipped_with_a_line_each_in_process(tmp_path,
                                                                                   capfd):
    """The fast tier's part of the test below: the ``UNREADABLE`` entries and formats tfae does
    not decode, read in this process (the ``HANGING`` ones are the test below's)."""
    from tfae.data import load_records

    root = write_hostile_folder(tmp_path / "photos", 5, hanging=False)
    assert len(load_records(str(root))) == 5
    assert_skipped_with_a_line_each(capfd.readouterr().err, UNREADABLE)


@pytest.mark.slow  # a fresh interpreter per reader, so a FIFO that hangs one fails on a timeout: the full tier
@pytest.mark.parametrize("reader", sorted(READERS))
def test_entries_that_are_not_image_files_are_skipped_with_a_line_each(hostile, reader):
    code = f"FOLDER = {str(hostile)!r}\n" + READERS[reader]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) == 12
    warnings = assert_skipped_with_a_line_each(result.stderr, HANGING + UNREADABLE)
    assert "Traceback" not in result.stderr
    assert np.all([len(line) < 300 for line in warnings])


@pytest.mark.parametrize("command", ["prepare", "fit"])
def test_an_image_size_past_the_pixel_limit_is_one_line_before_any_image_is_read(hostile,
                                                                                 command):
    from click.testing import CliRunner

    from tfae_cli.main import tfae

    arguments = {"prepare": ["prepare", str(hostile)],
                 "fit": ["fit", "--model", "deep", "--dataset", str(hostile)]}[command]
    result = CliRunner().invoke(tfae, arguments + ["--image-size", "100000,100000", "--out",
                                                   str(hostile.parent / f"{command}-out"),
                                                   "--quiet"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: --image-size 100000x100000 is 10,000,000,000 pixels an image, over the limit "
        "of 40,000,000")


@pytest.mark.parametrize("command", ["prepare", "fit"])
def test_a_corrupt_jpeg_refused_under_quiet_is_one_line_without_libjpeg_s(tmp_path, capfd,
                                                                         command):
    from click.testing import CliRunner

    from tfae_cli.main import tfae

    folder = tmp_path / "photos"
    write_images(folder / "a", 4, suffix=".jpg")
    whole = (folder / "a" / "000.jpg").read_bytes()
    (folder / "a" / "cut.jpg").write_bytes(whole[:200] + b"\x00" * 100)  # libjpeg complains
    arguments = {"prepare": ["prepare", str(folder)],
                 "fit": ["fit", "--model", "deep", "--dataset", str(folder), "--epochs", "1",
                         "--no-export"]}[command]
    result = CliRunner().invoke(tfae, arguments + ["--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {folder / 'a' / 'cut.jpg'}: not a readable image, corrupt or truncated "
        "(jpeg::Uncompress failed. Invalid JPEG data or crop window.)"]
    assert "JPEG" not in capfd.readouterr().err
