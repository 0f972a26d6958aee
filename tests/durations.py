"""The slowest tests of a pytest run as a Markdown table, for ``tests/README.md``.

Reads the output of ``python -m pytest -q -n auto --durations=0`` (a file, or stdin) and prints
the ``count`` slowest tests (doctests too) with their share of the summed durations (setup,
call and teardown of every test pytest lists: it leaves out those under 5 ms), then the summed
durations and the run's wall time.

Usage::

    python -m pytest -q -n auto --durations=0 -p no:cacheprovider > /tmp/durations.log
    python tests/durations.py /tmp/durations.log

Examples:
    >>> print(table('''
    ... 3.00s call     tests/test_a.py::test_one
    ... 1.00s setup    tests/test_a.py::test_one
    ... 4.00s call     tests/test_b.py::test_two[x]
    ... 2 passed in 5.00s (0:00:05)
    ... ''', count=1))
    | # | test | seconds | share |
    |---|---|---|---|
    | 1 | `tests/test_a.py::test_one` | 4.0 | 50.0% |
    <BLANKLINE>
    2 tests listed, 8 s summed over the workers; wall time 5 s.
"""

import collections
import re
import sys

DURATION = re.compile(r"^([\d.]+)s (?:setup|call|teardown)\s+(\S+)$", re.MULTILINE)
WALL = re.compile(r" in ([\d.]+)s")


def table(output, count=30):
    """The Markdown table of the ``count`` slowest tests in pytest's ``output``."""
    seconds = collections.Counter()
    for duration, test in DURATION.findall(output):
        seconds[test] += float(duration)
    total = sum(seconds.values())
    lines = ["| # | test | seconds | share |", "|---|---|---|---|"]
    lines += [f"| {rank} | `{test}` | {spent:.1f} | {spent / total:.1%} |"
              for rank, (test, spent) in enumerate(seconds.most_common(count), 1)]
    wall = WALL.findall(output)
    lines += ["", f"{len(seconds)} tests listed, {total:,.0f} s summed over the workers"
                  + (f"; wall time {float(wall[-1]):,.0f} s." if wall else ".")]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()))
