"""Image folders larger than memory: prepared once into shards of decoded images, then streamed.

``prepare`` decodes and shapes every image of a folder once and writes each split (the same
train, validation and test images as the in-memory path, ``tfae.data.splits.split_rows``) into
TFRecord shards of about ``SHARD_BYTES`` in a folder of its own, with a manifest
(``tfae-prepared.json``). The shards hold raw uint8 pixels, not the files' JPEG or PNG bytes: an
epoch then reads and reshapes, and never decodes or resizes again (docs/performance.md measures
the choice). ``load`` makes ``Splits`` whose splits are ``Shards``, which ``tfae.data.pipeline``
streams: shards interleaved in a seeded order every epoch, a shuffle buffer across them, one batch
in memory at a time.

Preparing is safe to interrupt and to run twice at once: a shard is written under a temporary name
and renamed when whole, so a run killed at any point keeps its finished shards and the next one
writes only the rest; a second process waits for the first (a kernel lock); a folder whose files
changed since (names, sizes, modification times) is prepared again. A process that has loaded a
prepared folder holds a shared lock on it until it exits: preparing it again with other settings
waits for the readers (a fit streaming it) instead of pulling its shards from under them.
``tfae prepare`` checks every shard against the SHA-256 digest kept in the manifest and writes
again the ones that differ (a shard damaged in place, its size unchanged); loading checks sizes
only, and a record that fails its own checksum while streaming stops the run with one line.

``tfae prepare FOLDER`` does it explicitly; ``tfae fit`` and the other commands do it on first use
of a folder whose decoded images pass the memory budget (``--memory-budget``), into
``$TFAE_CACHE_DIR/prepared`` (by default ``~/.cache/tfae/prepared``) unless told otherwise
(``--prepared-dir``). A prepared folder is itself
a data set: ``--dataset`` takes it.

Examples:
    >>> folder = prepare("photos/", image_size=(96, 96), channels=3, out="photos-96")  # doctest: +SKIP
    >>> splits = load(folder)  # doctest: +SKIP
    >>> splits.train.count, splits.image_shape  # doctest: +SKIP
    (90000, (96, 96, 3))
"""

import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import os
import pathlib
import re

import numpy as np
import tensorflow as tf

from tfae.data.image_files import decoded_files, folder_fingerprint, listed, quiet
from tfae.data.image_files import records as folder_records
from tfae.data.splits import Splits, Streamed, fingerprint, split_rows
from tfae.errors import TfaeError
from tfae.files import cache_folder, read_json, write_json

LOG = logging.getLogger("tfae")
MANIFEST = "tfae-prepared.json"
PLAN = "plan.json"  # what is being written; the manifest appears when all of it is
LOCK = ".lock"
# In a folder tfae made for shards: only such a folder is written into, and only the files
# ``_ours`` names are ever removed from it.
MARK = ".tfae-shards"
FORMAT = 1
SHARD_BYTES = 128 << 20  # TensorFlow's guide: shards of 100 MB and more read fastest
# Images read from this many shards at once, and a buffer of this many, shuffle a split whose
# shards each hold a part of the folder in order (class folders sort together).
INTERLEAVED_SHARDS = 16
SHUFFLE_IMAGES = 10_000
SPLIT_NAMES = ("train", "validation", "test")
_FEATURES = {"image": tf.io.FixedLenFeature([], tf.string),
             "label": tf.io.FixedLenFeature([], tf.int64)}


@dataclasses.dataclass(frozen=True)
class Shards(Streamed):
    """One prepared split: its shard files, read in order as an unbatched ``tf.data.Dataset`` of
    ``(uint8 image, int64 label)``, or shuffled by ``dataset(shuffle=True)``; a ``Streamed``
    split.

    Attributes:
        files: the shard files, in order.
        counts: the images in each shard.
        image_shape: ``(height, width, channels)``.
        count: the images used: the ``count`` after the first ``skip`` in order (a ``limit``,
            a worker's ``part``), or with ``any_of`` any ``count`` of the files' images.
        skip: the images of ``files[0]`` before the first one used.
        any_of: read every image of the files and keep ``count`` of them, a different few left
            out every shuffled epoch.

    Examples:
        >>> shards = Shards(("train-00000.tfrecord",), (500,), (28, 28, 1), 100)  # doctest: +SKIP
        >>> int(shards.cardinality()), shards.take(2)  # doctest: +SKIP
        (100, <_TakeDataset ...>)
    """

    files: tuple
    counts: tuple
    image_shape: tuple
    count: int
    skip: int = 0
    any_of: bool = False

    def dataset(self, shuffle=False, seed=0):
        """The images in order, or with ``shuffle`` in a new seeded order every epoch: shards
        in a shuffled order, ``INTERLEAVED_SHARDS`` read at once, through a buffer of
        ``SHUFFLE_IMAGES``."""
        return self._records(shuffle, seed).map(self._parsed,
                                                num_parallel_calls=tf.data.AUTOTUNE)

    def batches(self, batch_size, shuffle=False, seed=0):
        """``dataset(shuffle, seed)`` in batches of ``(images, labels)``, parsed a batch at a
        time: 39,000-44,000 96x96 colour images/s here, against 12,600-17,900 an image at a time."""
        return self._records(shuffle, seed).batch(batch_size).map(
            self._parsed_batch, num_parallel_calls=tf.data.AUTOTUNE)

    def limited(self, limit):
        """These shards' first ``limit`` images (all for ``None``)."""
        return dataclasses.replace(self, count=min(self.count, limit or self.count))

    def part(self, workers, index):
        """The images worker ``index`` of ``workers`` reads, every worker as many, from shards
        of its own.

        When the split is whole and its shards divide among the workers, each worker takes as
        many whole shards (which the plan makes equal to an image): the shards of the workers
        are disjoint, and a worker with an image more than the others leaves a different one
        out every shuffled epoch. Otherwise each worker takes the next ``count // workers``
        images in order: a shard at the border of two workers' images is read by both, each
        its own images of it.

        Examples:
            >>> split = Shards(("a", "b", "c", "d"), (5, 5, 4, 4), (8, 8, 1), 18)
            >>> [(part.files, part.count) for part in (split.part(2, 0), split.part(2, 1))]
            [(('a', 'b'), 8), (('c', 'd'), 8)]
            >>> split.part(3, 1)
            Shards(files=('b', 'c'), counts=(5, 4), image_shape=(8, 8, 1), count=6, skip=1, any_of=False)
        """
        each = self.count // workers
        if not each:
            raise TfaeError(f"a split of {self.count} image(s) cannot be shared by {workers} "
                            "workers")
        if not self.skip and self.count == sum(self.counts) and len(self.files) % workers == 0:
            per_worker = len(self.files) // workers
            mine = slice(index * per_worker, (index + 1) * per_worker)
            each = min(sum(self.counts[worker * per_worker:(worker + 1) * per_worker])
                       for worker in range(workers))
            return dataclasses.replace(self, files=self.files[mine], counts=self.counts[mine],
                                       count=each, any_of=True)
        start = self.skip + index * each
        ends = np.cumsum(self.counts)
        first = int(np.searchsorted(ends, start, side="right"))
        last = int(np.searchsorted(ends, start + each, side="left")) + 1
        return dataclasses.replace(
            self, files=self.files[first:last], counts=self.counts[first:last],
            skip=start - (int(ends[first - 1]) if first else 0), count=each, any_of=False)

    def _segments(self):
        """``(file, skip, take)`` of each shard read."""
        segments, skip, left = [], self.skip, self.count
        for file, count in zip(self.files, self.counts):
            take = count - skip if self.any_of else min(count - skip, left)
            if take <= 0:
                break
            segments.append((file, skip, take))
            skip, left = 0, left - take
        return segments

    def _records(self, shuffle, seed):
        segments = self._segments()
        if not segments:
            return tf.data.Dataset.from_tensor_slices(tf.constant([], tf.string))
        files, skips, takes = (list(column) for column in zip(*segments))
        parts = tf.data.Dataset.from_tensor_slices(
            (files, tf.constant(skips, tf.int64), tf.constant(takes, tf.int64)))
        if shuffle:
            parts = parts.shuffle(len(segments), seed=seed, reshuffle_each_iteration=True)
        records = parts.interleave(
            lambda file, skip, take: tf.data.TFRecordDataset(file).skip(skip).take(take),
            cycle_length=min(len(segments), INTERLEAVED_SHARDS) if shuffle else 1,
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if shuffle:
            records = records.shuffle(min(self.count, SHUFFLE_IMAGES), seed=seed,
                                      reshuffle_each_iteration=True)
        if self.any_of:
            records = records.take(self.count)
        # Known, so that Keras knows an epoch's steps (a split cut short by a limit ended
        # validation early, with a warning, where the size was unknown).
        return records.apply(tf.data.experimental.assert_cardinality(self.count))

    def _parsed(self, record):
        example = tf.io.parse_single_example(record, _FEATURES)
        image = tf.reshape(tf.io.decode_raw(example["image"], tf.uint8), self.image_shape)
        return image, example["label"]

    def _parsed_batch(self, records):
        examples = tf.io.parse_example(records, _FEATURES)
        pixels = tf.io.decode_raw(examples["image"], tf.uint8)
        return tf.reshape(pixels, [-1, *self.image_shape]), examples["label"]


def claims(dataset):
    """Whether ``dataset`` is a prepared folder (one holding a manifest).

    Examples:
        >>> claims("mnist")
        False
    """
    return (pathlib.Path(dataset).expanduser() / MANIFEST).is_file()


def budget_bytes(memory_budget=None):
    """The decoded size, in bytes, above which a folder is prepared and streamed:
    ``memory_budget`` GB, or a quarter of this machine's memory.

    Examples:
        >>> budget_bytes(2)
        2000000000
    """
    if memory_budget is not None:
        return int(memory_budget * 1e9)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4


def prepared_folder(root, prepared_dir=None, **settings):
    """Where ``prepare`` keeps the folder ``root`` shaped by ``settings`` when not told: one
    folder of ``prepared_dir`` (default ``tfae.files.cache_folder("prepared")``:
    ``$TFAE_CACHE_DIR/prepared``, or ``~/.cache/tfae/prepared``) per folder and settings.

    Examples:
        >>> prepared_folder("/data/photos", "/cache", image_size=(96, 96)).parent
        PosixPath('/cache')
    """
    root = pathlib.Path(root).expanduser().resolve()
    key = fingerprint(json.dumps([str(root), settings], sort_keys=True, default=list).encode())
    folder = pathlib.Path(prepared_dir).expanduser() if prepared_dir else cache_folder("prepared")
    return folder / f"{root.name}-{key[:12]}"


def prepare(dataset, out=None, *, image_size=None, channels=None, resize="stretch",
            test_fraction=0.1, prepared_dir=None, shard_bytes=SHARD_BYTES, progress=None,
            verify=False, **_):
    """Prepares the image folder ``dataset`` into shards in ``out`` (default
    ``prepared_folder``), unless that is done already for the folder as it is now.

    Args:
        dataset: an image folder (``tfae.data.folder``'s layout).
        out: the prepared folder (default: ``prepared_folder`` in ``prepared_dir``); anything
            of an earlier preparation that no longer matches the folder or the settings is
            replaced.
        image_size, channels, resize, test_fraction: as in ``tfae.config.DataConfig``.
        shard_bytes: about how many bytes of pixels make one shard.
        progress: a ``tfae.progress.Progress`` showing images done (default: none).
        verify: read every shard of a folder prepared already and write again those whose
            SHA-256 digest is not the one written (``tfae prepare`` does; otherwise only their
            sizes are checked).

    Returns:
        The prepared folder, a ``pathlib.Path``.

    Raises:
        TfaeError: for what ``tfae.data.folder`` refuses (no images, a file that does not
            decode, sizes that differ), or a folder that cannot be written.

    Examples:
        >>> prepare("photos/", image_size=(96, 96), out="photos-96")  # doctest: +SKIP
        PosixPath('photos-96')
    """
    from tfae.progress import Progress
    from tfae.startup import native_stderr_hidden

    root = pathlib.Path(dataset).expanduser()
    settings = {"image_size": list(image_size) if image_size else None, "channels": channels,
                "resize": resize, "test_fraction": test_fraction}
    out = pathlib.Path(out) if out else prepared_folder(root, prepared_dir, **settings)
    listings, class_names = listed(root)
    listing_key = _listing_key(root, listings)
    _make_folder(out)
    with _locked(out, root, shared=True):
        manifest = _manifest(out)
        if manifest and (manifest["listing"], manifest["settings"]) == (listing_key, settings) \
                and not _damaged_shard(out, manifest) \
                and not (verify and _altered_shards(out, manifest)):
            return out
    _stop_reading(out)
    with _locked(out, root):
        manifest = _manifest(out)
        paths = [path for listing in listings.values() for path, _ in listing]
        if manifest and (manifest["listing"], manifest["settings"]) == (listing_key, settings):
            _keep_intact_shards(out, manifest, root, listings, class_names, shard_bytes,
                                verify)
        plan = _plan(out, root, listings, listing_key, settings, shard_bytes)
        if plan is None:
            shape = next(decoded_files(paths[:1], image_size, channels, resize))[1].shape
            plan = _new_plan(out, root, listings, class_names, listing_key, settings, shape,
                             shard_bytes)
        progress = progress or Progress(enabled=not quiet())
        left = [(listings[split["listing"]], shard) for split in plan["splits"].values()
                for shard in split["shards"] if not (out / shard["file"]).is_file()]
        if left:
            LOG.info(f"preparing {root} into {out}: {len(paths):,} images, "
                     f"{len(left)} shard(s) to write")
        with progress.stage(f"preparing {root.name}", total=sum(len(shard["rows"])
                                                               for _, shard in left),
                            unit="image") as tick, native_stderr_hidden(quiet()):
            for listing, shard in left:
                _write_shard(out, shard, plan, listing, paths[0], tick)
        manifest = {**plan, "source": {"kind": "folder", "dataset": str(root.resolve()),
                                       "images": len(paths),
                                       "fingerprint": _content_fingerprint(out, plan, root,
                                                                           listings)}}
        for split in manifest["splits"].values():
            split["shards"] = [{"file": shard["file"], "images": len(shard["rows"]),
                                "bytes": (out / shard["file"]).stat().st_size,
                                "sha256": _file_digest(out / shard["file"])}
                               for shard in split["shards"]]
        write_json(out / MANIFEST, manifest)
        (out / PLAN).unlink()
    return out


def load(dataset, limit=None, image_size=None, channels=None, resize=None, **_):
    """The ``Splits`` of the prepared folder ``dataset``, each split ``Shards``.

    Raises:
        TfaeError: for settings other than those it was prepared with, or a shard missing or
            of another size than was written.

    Examples:
        >>> load("photos-96", limit=1000).train.count  # doctest: +SKIP
        1000
    """
    folder = pathlib.Path(dataset).expanduser()
    _start_reading(folder)
    manifest = read_json(folder / MANIFEST)
    if manifest.get("format") != FORMAT:
        raise TfaeError(f"{folder} was prepared by another version of tfae; prepare it again")
    shape = tuple(manifest["image_shape"])
    given = {"image_size": image_size and tuple(image_size) != shape[:2],
             "channels": channels and channels != shape[2]}
    if any(given.values()):
        option = next(name for name, differs in given.items() if differs)
        raise TfaeError(f"{folder} holds images prepared at {shape[0]}x{shape[1]} (HxW), "
                        f"{shape[2]} channel(s); prepare its folder again with {{{option}}} "
                        "instead", options=[option])
    damaged = _damaged_shard(folder, manifest)
    if damaged:
        raise TfaeError(f"{damaged} is missing or not the file that was written (a shard deleted "
                        "or cut short since); prepare its folder again")
    splits = {name: Shards(tuple(str(folder / shard["file"]) for shard in split["shards"]),
                           tuple(shard["images"] for shard in split["shards"]), shape,
                           split["images"]).limited(limit)
              for name, split in manifest["splits"].items()}
    return Splits(manifest["name"], shape, len(manifest["class_names"]),
                  source={**manifest["source"], "prepared": str(folder.resolve()),
                          "prepared_with": manifest["settings"]},
                  class_names=tuple(manifest["class_names"]), **splits)


def records(dataset, **settings):
    """The records of the folder a prepared folder was made from (``tfae.data.folder``), with
    the settings it was prepared with.

    Examples:
        >>> records("photos-96").ids[:1]  # doctest: +SKIP
        ('cat/1.jpg',)
    """
    manifest = read_json(pathlib.Path(dataset).expanduser() / MANIFEST)
    source = manifest["source"]["dataset"]
    if not pathlib.Path(source).is_dir():
        raise TfaeError(f"{dataset} was prepared from {source}, which is gone: its shards hold "
                        "pixels without file names")
    shaped = {**manifest["settings"], "image_size": manifest["image_shape"][:2],
              "channels": manifest["image_shape"][2]}
    return folder_records(source, **{**settings, **shaped})


def _damaged_shard(folder, manifest):
    """The first shard of ``manifest`` missing from ``folder`` or of another size than was
    written, or ``None``."""
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            path = folder / shard["file"]
            if not path.is_file() or path.stat().st_size != shard["bytes"]:
                return path
    return None


def _altered_shards(folder, manifest):
    """The shards of ``manifest`` whose bytes are not those written (their SHA-256 digest); a
    manifest of an earlier tfae, without digests, has none."""
    return [folder / shard["file"] for split in manifest["splits"].values()
            for shard in split["shards"]
            if "sha256" in shard and _file_digest(folder / shard["file"]) != shard["sha256"]]


def _file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _keep_intact_shards(out, manifest, root, listings, class_names, shard_bytes, verify):
    """Turns a prepared folder some of whose shards are missing or damaged back into the plan
    that made it (the plan is a function of the folder and the settings), without the damaged
    shards: ``prepare`` then writes only those again."""
    damaged = {out / shard["file"] for split in manifest["splits"].values()
                for shard in split["shards"] if not (out / shard["file"]).is_file()
                or (out / shard["file"]).stat().st_size != shard["bytes"]}
    if verify:
        damaged |= set(_altered_shards(out, manifest))
    for path in damaged:
        LOG.info(f"{path.name} is not the shard that was written; writing it again")
        path.unlink(missing_ok=True)
    _new_plan(out, root, listings, class_names, manifest["listing"], manifest["settings"],
              tuple(manifest["image_shape"]), shard_bytes)
    (out / MANIFEST).unlink()


def _listing_key(root, listings):
    """A fingerprint of every file's split, path, size and modification time: cheap to take on
    a million files, and it changes when one is added, removed or rewritten."""
    entries = []
    for split, listing in listings.items():
        for path, _ in listing:
            stat = path.stat()
            entries.append((split, path.relative_to(root).as_posix(), stat.st_size,
                            stat.st_mtime_ns))
    return fingerprint(json.dumps(entries).encode())


def _make_folder(out):
    """Makes ``out`` tfae's folder of shards: a new or empty one is marked as tfae's own
    (``MARK``); one tfae prepared before (its mark, or an earlier tfae's manifest or plan) is
    taken; any other is refused, so that nothing of the user's is ever removed."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        entries = {path.name for path in out.iterdir()}
        if not entries - {LOCK}:
            (out / MARK).write_text(f"prepared by tfae {FORMAT}\n")
        elif not entries & {MARK, MANIFEST, PLAN}:
            raise TfaeError(f"{out} is not empty and was not made by tfae prepare; choose a new "
                            "or empty folder for the shards")
    except OSError as error:
        raise TfaeError(f"cannot write {out}: {error.strerror or error}") from None


# The files tfae writes into a folder of shards, and their partial files (tfae.files).
_OWN_FILE = re.compile(r"^\.?(?:(?:train|validation|test)-\d{5}-of-\d{5}\.tfrecord(?:\.sha256)?"
                       r"|%s|%s)(?:\.\d+\.partial)?$" % (re.escape(PLAN), re.escape(MANIFEST)))


def _ours(name):
    """Whether ``name`` is one tfae writes into a folder of shards (a shard, its digests, the
    plan, the manifest, or one of these half-written).

    Examples:
        >>> _ours("train-00000-of-00004.tfrecord"), _ours(".plan.json.812.partial")
        (True, True)
        >>> _ours("holiday.tfrecord"), _ours("notes.partial")
        (False, False)
    """
    return bool(_OWN_FILE.match(name))


class _locked:
    """Holds ``out``'s kernel lock, waiting (and saying so) while another process prepares, or
    for ``shared=False`` while any other process prepares or reads it."""

    def __init__(self, out, root, shared=False):
        self.path, self.root, self.shared = out / LOCK, root, shared

    def __enter__(self):
        self.file = _lock_file(self.path, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX,
                               f"preparing {self.root} into {self.path.parent}" if self.shared
                               else f"preparing or reading {self.path.parent}")

    def __exit__(self, *_):
        self.file.close()


# The prepared folders this process has loaded, each with the shared lock held on it (released
# when the process exits, or when it prepares that folder again itself).
_READING = {}


def _start_reading(folder):
    key = folder.resolve()
    if key not in _READING and (folder / LOCK).is_file():
        # Opened for reading: a prepared folder may be read-only to its readers.
        _READING[key] = _lock_file(folder / LOCK, fcntl.LOCK_SH, f"preparing {folder}", "r")


def _stop_reading(folder):
    held = _READING.pop(folder.resolve(), None)
    if held:
        held.close()


def _lock_file(path, kind, waited_for, mode="a+"):
    """``path`` opened (``mode``) with the ``flock`` ``kind`` held, once the other processes
    holding a conflicting one (said: "waiting for another process ``waited_for``") let go."""
    file = open(path, mode)
    try:
        fcntl.flock(file, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        LOG.info(f"waiting for another process {waited_for}")
        fcntl.flock(file, kind)
    return file


def _manifest(out):
    path = out / MANIFEST
    return read_json(path) if path.is_file() else None


def _plan(out, root, listings, listing_key, settings, shard_bytes):
    """The plan an interrupted preparation left, when it was of this folder as it is now and
    these settings; otherwise ``None``, and every shard is removed."""
    path = out / PLAN
    plan = read_json(path) if path.is_file() else None
    keep = plan and (plan["listing"], plan["settings"], plan["shard_bytes"]) == (
        listing_key, settings, shard_bytes)
    for stale in out.iterdir():
        # Under the lock no other writer is alive: a partial file is a killed one's. Only
        # tfae's own files go: anything else in the folder is the user's.
        if _ours(stale.name) and not (keep and not stale.name.endswith(".partial")):
            stale.unlink()
    return plan if keep else None


def _new_plan(out, root, listings, class_names, listing_key, settings, shape, shard_bytes):
    """Which rows of which listing go into which shard, written to ``out/plan.json``."""
    test_count = len(listings["test"]) if "test" in listings else None
    training = listings.get("train", listings.get("all"))
    rows = split_rows(len(training), test_count, settings["test_fraction"], root.name)
    per_shard = max(1, shard_bytes // int(np.prod(shape)))
    splits = {}
    for name in SPLIT_NAMES:
        listing = "test" if name == "test" and test_count is not None else (
            "train" if test_count is not None else "all")
        taken = [int(row) for row in rows[name]]
        count = max(1, math.ceil(len(taken) / per_shard))
        # Shards of a split equal to an image, so that workers given as many shards read as
        # many images (Shards.part).
        splits[name] = {"listing": listing, "images": len(taken), "shards": [
            {"file": f"{name}-{number:05d}-of-{count:05d}.tfrecord", "rows": chunk.tolist()}
            for number, chunk in enumerate(np.array_split(np.array(taken, int), count))]}
    plan = {"format": FORMAT, "name": root.name, "listing": listing_key, "settings": settings,
            "shard_bytes": shard_bytes, "image_shape": list(shape),
            "class_names": list(class_names), "splits": splits}
    write_json(out / PLAN, plan)
    return plan


def _write_shard(out, shard, plan, listing, first, tick):
    """Writes one shard of the rows of ``listing`` under a temporary name, with its files'
    digests beside it, and renames it: a shard that exists is whole. ``first`` is the folder's
    first file, named when an image's shape differs."""
    index = {name: number for number, name in enumerate(plan["class_names"])}
    chosen = [listing[row] for row in shard["rows"]]
    settings = plan["settings"]
    partial = out / f".{shard['file']}.{os.getpid()}.partial"
    digests = []
    try:
        with tf.io.TFRecordWriter(str(partial)) as writer:
            for (digest, image), (_, label) in zip(decoded_files(
                    [path for path, _ in chosen], settings["image_size"], settings["channels"],
                    settings["resize"], shape=tuple(plan["image_shape"]), first=first),
                    chosen):
                writer.write(tf.train.Example(features=tf.train.Features(feature={
                    "image": tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[image.tobytes()])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(
                        value=[index.get(label, -1)]))})).SerializeToString())
                digests.append(digest)
                tick()
        (out / (shard["file"] + ".sha256")).write_bytes(b"".join(digests))
        os.replace(partial, out / shard["file"])
    except (OSError, tf.errors.OpError) as error:
        raise TfaeError(f"cannot write {out / shard['file']}: "
                        f"{getattr(error, 'strerror', None) or getattr(error, 'message', error)}"
                        ) from None
    finally:
        partial.unlink(missing_ok=True)


def _content_fingerprint(out, plan, root, listings):
    """The folder's fingerprint as the in-memory path takes it (``tfae.data.folder.load``), from
    the digests kept beside the shards: the same folder has one fingerprint either way."""
    digests = {name: [None] * len(listing) for name, listing in listings.items()}
    for split in plan["splits"].values():
        for shard in split["shards"]:
            kept = (out / (shard["file"] + ".sha256")).read_bytes()
            for number, row in enumerate(shard["rows"]):
                digests[split["listing"]][row] = kept[32 * number:32 * (number + 1)]
    return folder_fingerprint(root, listings, digests)
