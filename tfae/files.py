"""Every file tfae writes, written one way: to a partial file beside it (``partial_path``:
``.<name>.<pid>.partial``, named after the writing process) renamed into place when whole, so a
crash or a kill never leaves half a file nor replaces what was there, and a partial file left by
a killed process is removed by the next writer of that output (``remove_stale``), never a file of
the user's. JSON and text (``write_json``, ``write_text``), ``.npz`` archives (``write_npz``),
and the outputs of ``tfae encode``, ``reconstruct``, ``score`` and ``sample``: tables
(``TableWriter``), ``.npz`` files written as they come (``NpzWriter``) and folders of PNG files
(``PngFolderWriter``), or arrays kept in memory (``ArrayCollector``). Nothing here imports
TensorFlow before it draws a PNG.

Examples:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.json"
    >>> write_json(path, {"epochs": 5})
    >>> read_json(path)
    {'epochs': 5}
"""

import collections
import contextlib
import json
import os
import pathlib
import shutil
import zipfile

import numpy as np

from tfae.errors import TfaeError

PARTIAL = ".partial"  # the mark of an output being written: .<name>.<pid>.partial[.raw]


def partial_path(path):
    """Where ``path`` is written before it is renamed into place: a hidden name of this
    process's own, so that processes writing one file at once never rename each other's.

    Examples:
        >>> partial_path(pathlib.Path("runs/codes.npz")).name.endswith(PARTIAL)
        True
    """
    path = pathlib.Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}{PARTIAL}")


def remove_stale(path):
    """Removes the partial files of ``path`` left by processes that are gone (killed while
    writing): only names ``partial_path`` gives, and only of a process not running.

    Examples:
        >>> remove_stale(pathlib.Path("/nonexistent/codes.npz"))
    """
    path = pathlib.Path(path)
    if not path.parent.is_dir():
        return
    for left in path.parent.glob(f".{path.name}.*{PARTIAL}*"):
        pid = left.name[len(path.name) + 2:].split(".")[0]
        if pid.isdigit() and not process_exists(int(pid)):
            if left.is_dir() and not left.is_symlink():
                shutil.rmtree(left, ignore_errors=True)
            else:
                left.unlink(missing_ok=True)


def as_path(value, name):
    """``value`` as a ``pathlib.Path``, if it is a path (a ``str`` or ``os.PathLike``).

    Raises:
        TfaeError: naming the argument ``name`` and what it got instead.

    Examples:
        >>> as_path("runs/deep", "path")
        PosixPath('runs/deep')
        >>> as_path(5, "path")
        Traceback (most recent call last):
        ...
        tfae.errors.TfaeError: path must be a path (a str or pathlib.Path), got int 5
    """
    if isinstance(value, (str, os.PathLike)) and os.fspath(value):
        return pathlib.Path(value)
    raise TfaeError("{%s} must be a path (a str or pathlib.Path), got %s %s" % (
        name, type(value).__name__, str(value)[:40] or "''"), options=[name])


def write_text(path, text):
    """Writes ``text`` to ``path`` through a temporary file beside it and a rename.

    Raises:
        TfaeError: naming ``path`` and why it cannot be written; the old file is left as it was.

    Examples:
        >>> write_text("docs/performance.md", "# Performance\\n")  # doctest: +SKIP
    """
    path = pathlib.Path(path)
    temporary = partial_path(path)
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except OSError as error:  # a full disk or a read-only folder: nothing half-written is left
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise TfaeError(f"cannot write {path}: {error.strerror or error}") from None


def write_npz(path, **arrays):
    """Writes ``arrays`` as an ``.npz`` archive to ``path``, atomically (``write_text``'s way: a
    temporary file beside it, named after this process, and a rename).

    Raises:
        TfaeError: naming ``path`` and why it cannot be written; the old file is left as it was.

    Examples:
        >>> write_npz("runs/deep/anomaly.npz", codes=np.zeros((2, 3)))  # doctest: +SKIP
    """
    path = pathlib.Path(path)
    temporary = partial_path(path)
    try:
        with open(temporary, "wb") as file:  # a file object: savez would add .npz to a name
            np.savez(file, **arrays)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise TfaeError(f"cannot write {path}: {error.strerror or error}") from None


def cache_folder(part):
    """The folder where tfae keeps ``part`` of what it can always measure again:
    ``$TFAE_CACHE_DIR/part``, by default ``~/.cache/tfae/part``.

    Examples:
        >>> cache_folder("baselines").name
        'baselines'
    """
    return pathlib.Path(os.environ.get("TFAE_CACHE_DIR") or "~/.cache/tfae").expanduser() / part


def file_identity(path):
    """Which file ``path`` is now, ``None`` if none: its inode, size and modification time, which
    change when it is replaced or rewritten.

    Examples:
        >>> file_identity("/nonexistent/file") is None
        True
    """
    try:
        stat = pathlib.Path(path).stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def write_json(path, value):
    """Writes ``value`` as indented JSON to ``path``, atomically (``write_text``).

    Examples:
        >>> write_json("runs/deep/notes.json", {"epochs": 5})  # doctest: +SKIP
    """
    write_text(path, json.dumps(value, indent=2, default=str) + "\n")


def read_json(path):
    """Reads a JSON file, or raises a ``TfaeError`` naming it.

    Examples:
        >>> read_json("runs/deep/config.json")["model"]  # doctest: +SKIP
        'deep'
    """
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TfaeError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None


def process_exists(pid):
    """Whether process ``pid`` is running (another user's counts): a temporary file named after
    a process that does not is a leftover of a killed writer.

    Examples:
        >>> process_exists(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def output_writer(out, name, ids, class_names):
    """The writer of ``out`` by its kind: an ``.npz`` file (outputs under ``name``), a ``.csv``
    or ``.parquet`` table, a folder of PNG files for the images ``ids``, or ``None`` for arrays
    kept in memory (``ArrayCollector``).

    Examples:
        >>> type(output_writer(None, "codes", (), ())).__name__
        'ArrayCollector'
    """
    if out is None:
        return ArrayCollector(name)
    out = pathlib.Path(out)
    if out.suffix.lower() == ".npz":
        return NpzWriter(out, name, class_names)
    if out.suffix.lower() in (".csv", ".parquet"):
        return TableWriter(out, class_names)
    return PngFolderWriter(out, ids)


@contextlib.contextmanager
def written(writer):
    """Commits ``writer``'s partial output when the block ends well, else removes it; a full
    disk or a read-only folder is one error naming the output.

    Examples:
        >>> collector = ArrayCollector("codes")
        >>> with written(collector):
        ...     collector.add(["a"], ["test"], np.array([-1]), np.zeros((1, 2)))
        >>> collector.arrays()["codes"].shape
        (1, 2)
    """
    if writer.path is not None:
        remove_stale(writer.path)
    try:
        yield
        writer.commit()
    except BaseException as error:
        writer.discard()
        if isinstance(error, OSError):
            raise TfaeError(f"cannot write {writer.path}: {error.strerror or error}") from None
        raise


class ArrayCollector:
    """Keeps the outputs in memory, for a Python caller that wants arrays, not a file.

    ``arrays()`` gives ``name`` (the outputs, float32, or a dict's columns each by its name),
    ``ids``, ``splits`` and ``labels``.

    Examples:
        >>> collector = ArrayCollector("scores")
        >>> collector.add(["a", "b"], ["test", "test"], np.array([-1, -1]),
        ...               {"score": np.array([0.5, 2.0])})
        >>> collector.arrays()["score"].tolist(), collector.arrays()["ids"].tolist()
        ([0.5, 2.0], ['a', 'b'])
    """

    path = None

    def __init__(self, name):
        self.name, self.ids, self.shape = name, [], None
        self._parts = collections.defaultdict(list)

    def add(self, ids, splits, labels, outputs):
        columns = outputs if isinstance(outputs, dict) else {self.name: outputs}
        for column, values in columns.items():
            self._parts[column].append(np.asarray(values))
        self._parts["splits"].append(np.asarray(splits, str))
        self._parts["labels"].append(np.asarray(labels, np.int64))
        self.shape = (len(columns),) if isinstance(outputs, dict) else np.shape(outputs)[1:]
        self.ids += ids

    def arrays(self):
        arrays = {column: np.concatenate(parts) for column, parts in self._parts.items()}
        if self.name in arrays and arrays[self.name].dtype.kind == "f":
            arrays[self.name] = arrays[self.name].astype(np.float32, copy=False)
        return {**arrays, "ids": np.array(self.ids, str)}

    def commit(self):
        pass

    def discard(self):
        self._parts.clear()


class NpzWriter:
    """An ``.npz`` file of ``name`` (the outputs), ``ids``, ``splits``, ``labels`` and
    ``class_names``; the
    outputs go to a raw file as they come and into the archive at the end, so that memory holds
    none of them.

    Examples:
        >>> import tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "codes.npz"
        >>> writer = NpzWriter(path, "codes", ())
        >>> with written(writer):
        ...     writer.add(["x/0"], ["train"], np.array([-1]), np.ones((1, 3)))
        >>> np.load(path)["codes"].shape, np.load(path)["splits"].tolist()
        ((1, 3), ['train'])
    """

    def __init__(self, path, name, class_names):
        self.path, self.name, self.class_names = path, name, class_names
        self.temporary = partial_path(path)
        self.raw = self.temporary.with_suffix(PARTIAL + ".raw")
        self.ids, self.splits, self.labels, self.shape = [], [], [], None
        self.file = None

    def add(self, ids, splits, labels, outputs):
        if self.file is None:
            self.file, self.shape = self.raw.open("wb"), outputs.shape[1:]
        self.file.write(np.ascontiguousarray(outputs, np.float32).tobytes())
        self.ids += ids
        self.splits += splits
        self.labels.append(labels)

    def commit(self):
        self.file.close()
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                  "fortran_order": False, "shape": (len(self.ids), *self.shape)}
        with zipfile.ZipFile(self.temporary, "w", allowZip64=True) as archive:
            with archive.open(f"{self.name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_2_0(member, header)
                with self.raw.open("rb") as raw:
                    shutil.copyfileobj(raw, member, 1 << 24)
            for name, array in (("ids", np.array(self.ids, str)),
                                ("splits", np.array(self.splits, str)),
                                ("labels", np.concatenate(self.labels)),
                                ("class_names", np.array(self.class_names, str))):
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)
        self.raw.unlink()
        os.replace(self.temporary, self.path)

    def discard(self):
        if self.file is not None:
            self.file.close()
        for path in (self.raw, self.temporary):
            path.unlink(missing_ok=True)


class TableWriter:
    """A ``.csv`` or ``.parquet`` table (columns ``id``, ``split``, then ``label`` and ``class``
    for labelled data, then the outputs), written a batch at a time by pyarrow (tfds' own
    dependency) in C++: a CSV of 70,000 codes of 256 numbers formats in seconds, not minutes.

    Examples:
        >>> import tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "codes.csv"
        >>> writer = TableWriter(path, ("cat", "dog"))
        >>> with written(writer):
        ...     writer.add(["dog/1.png"], ["test"], np.array([1]), np.zeros((1, 2)))
        >>> path.read_text().splitlines()[1]
        '"dog/1.png","test",1,"dog",0,0'
    """

    def __init__(self, path, class_names):
        self.path, self.class_names = path, class_names
        self.temporary = partial_path(path)
        self.ids, self.shape, self.file = [], None, None

    def add(self, ids, splits, labels, outputs):
        import pyarrow as pa

        columns = {"id": pa.array(ids, pa.string()), "split": pa.array(splits, pa.string())}
        if self.class_names:
            names = np.array(self.class_names, object)
            columns["label"] = pa.array(labels, pa.int64())
            columns["class"] = pa.array(np.where(labels >= 0, names[np.maximum(labels, 0)], None),
                                        pa.string())
        if isinstance(outputs, dict):  # named columns, such as scores
            columns.update({name: pa.array(values) for name, values in outputs.items()})
            shape = (len(outputs),)
        else:
            outputs = np.asarray(outputs, np.float32)
            columns.update({f"code_{index}": pa.array(outputs[:, index])
                            for index in range(outputs.shape[1])})
            shape = outputs.shape[1:]
        table = pa.table(columns)
        if self.file is None:
            self.file, self.shape = self._open(table.schema), shape
        self.file.write_table(table)
        self.ids += ids

    def _open(self, schema):
        if self.path.suffix.lower() == ".csv":
            import pyarrow.csv

            return pyarrow.csv.CSVWriter(str(self.temporary), schema)
        import pyarrow.parquet

        return pyarrow.parquet.ParquetWriter(str(self.temporary), schema)

    def commit(self):
        self.file.close()
        os.replace(self.temporary, self.path)

    def discard(self):
        if self.file is not None:
            with contextlib.suppress(Exception):
                self.file.close()
        self.temporary.unlink(missing_ok=True)


def png_names(ids):
    """A PNG file name for each image id, all different: the id with the suffix ``.png``, the
    whole id and ``.png`` where two would share a name, and a number before ``.png`` where even
    that is taken (``a.png``, ``a.jpg`` and ``a.png.png`` in one folder).

    Examples:
        >>> png_names(["a.png", "a.jpg", "a.png.png", "b/c.bmp"])
        {'a.png': 'a.png.png', 'a.jpg': 'a.jpg.png', 'a.png.png': 'a.png.png.2.png', 'b/c.bmp': 'b/c.png'}
    """
    plain = [str(pathlib.PurePosixPath(image_id).with_suffix(".png")) for image_id in ids]
    shared = {name for name, count in collections.Counter(plain).items() if count > 1}
    names, taken = {}, set()
    for image_id, name in zip(ids, plain):
        name = image_id + ".png" if name in shared else name
        number = 1
        while name.lower() in taken:  # case too: a folder may not tell A.png from a.png
            number += 1
            name = f"{image_id}.{number}.png"
        names[image_id] = name
        taken.add(name.lower())
    return names


class PngFolderWriter:
    """A folder of 8-bit PNG files, one per image, named as the image's id with the suffix
    ``.png`` (``cat/1.jpg`` -> ``cat/1.png``; ``test/0042`` -> ``test/0042.png``); ids that
    would share a name (``1.jpg`` and ``1.png``) keep their whole id (``1.jpg.png``, ``1.png.png``).

    Examples:
        >>> import tempfile
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "out"
        >>> writer = PngFolderWriter(out, ["cat/1.jpg", "cat/1.png"])
        >>> with written(writer):
        ...     writer.add(["cat/1.jpg", "cat/1.png"], ["all"] * 2, np.array([0, 0]),
        ...                np.zeros((2, 4, 4, 1), np.float32))
        >>> sorted(path.name for path in (out / "cat").iterdir())
        ['1.jpg.png', '1.png.png']
    """

    def __init__(self, path, ids):
        self.path = path
        self.temporary = partial_path(path)
        # None: the ids are file names already, none alike (samples), named as they come.
        self.names = None if ids is None else png_names(ids)
        self.ids, self.shape = [], None

    def add(self, ids, splits, labels, outputs):
        import tensorflow as tf

        if self.shape is None:
            self.temporary.mkdir()
            self.shape = outputs.shape[1:]
        pixels = tf.cast(tf.round(tf.clip_by_value(outputs, 0.0, 1.0) * 255.0), tf.uint8)
        for image_id, image in zip(ids, pixels):
            file = self.temporary / (image_id + ".png" if self.names is None
                                     else self.names[image_id])
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(tf.io.encode_png(image).numpy())
        self.ids += ids

    def commit(self):
        if self.path.is_dir():
            self.path.rmdir()  # empty, as reconstruct() checked
        os.replace(self.temporary, self.path)

    def discard(self):
        shutil.rmtree(self.temporary, ignore_errors=True)
