"""Progress a person can read: each stage of a long job named, with its count and elapsed time.

On a terminal a stage is a live line (tqdm's, already installed with tfds), redrawn twice a second
so that a step without ticks still shows its clock. Elsewhere (a log file, a pipe, a test) a stage
is one line when it begins and one with its time when it ends, which reads well in a log.
``Progress(enabled=False)`` is silent, for ``--quiet`` and ``--json``. Whatever the mode, the
seconds each stage took are kept in ``seconds``, for benchmarks.

Examples:
    >>> import io
    >>> stream = io.StringIO()
    >>> progress = Progress(stream=stream)
    >>> with progress.stage("kNN probe", total=3, unit="chunk") as tick:
    ...     for _ in range(3):
    ...         tick()
    >>> stream.getvalue().splitlines()[0]
    'kNN probe ...'
    >>> stream.getvalue().splitlines()[1].startswith("kNN probe: 3 chunks in ")
    True
"""

import contextlib
import sys
import threading
import time

REDRAW_SECONDS = 0.5


class Progress:
    """Named stages on ``stream`` (standard error by default).

    Args:
        enabled: ``False`` shows nothing.
        stream: where stages are written.

    Attributes:
        seconds: each finished stage's name -> its elapsed seconds (a repeated name adds up).

    Examples:
        >>> progress = Progress(enabled=False)
        >>> with progress.stage("fitting"):
        ...     pass
        >>> list(progress.seconds)
        ['fitting']
    """

    def __init__(self, enabled=True, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.seconds = {}
        self._open = 0

    @contextlib.contextmanager
    def stage(self, name, total=None, unit=None):
        """A stage named ``name``; yields ``tick(count=1)``, to call as ``count`` more of its
        ``total`` units (``unit`` names one) are done. Without a ``unit`` the stage shows only
        its clock. A stage begun inside another shows below it while it runs, and then only in
        ``seconds``."""
        start = time.perf_counter()
        self._open += 1
        try:
            if not self.enabled:
                yield lambda count=1: None
            elif getattr(self.stream, "isatty", lambda: False)():
                with self._live(name, total, unit) as tick:
                    yield tick
            else:
                with self._logged(name, unit) as tick:
                    yield tick
        finally:
            self._open -= 1
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    @contextlib.contextmanager
    def _live(self, name, total, unit):
        import tqdm

        formats = {None: "{desc}: {elapsed}", True: "{desc}: {n_fmt} {unit}, {elapsed}"}
        inner = self._open - 1  # stages open around this one
        bar = tqdm.tqdm(total=total, desc=name, unit=plural(unit) if unit else "", file=self.stream,
                        position=inner, leave=not inner, dynamic_ncols=True,
                        bar_format=None if total and unit else formats[bool(unit) or None])
        stopped = threading.Event()

        def redraw():
            while not stopped.wait(REDRAW_SECONDS):
                bar.refresh()

        redrawing = threading.Thread(target=redraw, daemon=True)
        redrawing.start()
        try:
            yield bar.update
        finally:
            stopped.set()
            redrawing.join()
            bar.close()

    @contextlib.contextmanager
    def _logged(self, name, unit):
        start, done = time.perf_counter(), [0]
        print(f"{name} ...", file=self.stream, flush=True)

        def tick(count=1):
            done[0] += count

        yield tick
        counted = f"{done[0]:,} {unit if done[0] == 1 else plural(unit)} " if unit else ""
        print(f"{name}: {counted}in {time.perf_counter() - start:.1f} s", file=self.stream,
              flush=True)


def plural(unit):
    """The plural of a unit's name.

    Examples:
        >>> plural("batch"), plural("iteration")
        ('batches', 'iterations')
    """
    return unit + ("es" if unit.endswith(("ch", "s", "sh", "x")) else "s")
