"""``bench/one_class.py``'s table: what a results file of several runs, some stopped, becomes."""

import argparse
import pathlib
import sys

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import one_class  # noqa: E402  (a script beside the others, not a package)


def _arguments():
    return argparse.Namespace(dataset="mnist", manual_dir=None, models="deep,geometric",
                              seeds="0,1,2", epochs=None, published=None)


def _result(aurocs, seconds):
    return {"aurocs": aurocs, "seconds": seconds}


def test_a_row_counts_only_the_seeds_every_class_has_and_says_so():
    results = {
        # seed 0: both models and the seeded baseline, measured once
        "0/0": _result({"`deep`, combined": 0.90, "`geometric`, combined": 0.96,
                        "*5-NN distance, raw pixels*": 0.80}, {"deep": 30, "geometric": 70}),
        "0/1": _result({"`deep`, combined": 0.80, "`geometric`, combined": 0.94,
                        "*5-NN distance, raw pixels*": 0.70}, {"deep": 31, "geometric": 71}),
        # seeds 1 and 2: geometric whole; deep at seed 1 only, and only on class 0 at seed 2
        "1/0": _result({"`deep`, combined": 0.92, "`geometric`, combined": 0.98},
                       {"deep": 32, "geometric": 72}),
        "1/1": _result({"`deep`, combined": 0.82, "`geometric`, combined": 0.92},
                       {"deep": 33, "geometric": 73}),
        "2/0": _result({"`deep`, combined": 0.10, "`geometric`, combined": 0.97},
                       {"deep": 34, "geometric": 74}),
        "2/1": _result({"`geometric`, combined": 0.93}, {"geometric": 75}),
    }
    lines = one_class.table(_arguments(), results, [0, 1, 2], ["0", "1"]).splitlines()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| `")
            or line.startswith("| *")}
    # deep: seeds 0 and 1 (seed 2's lone class 0 left out): class 0 91.0, class 1 81.0, mean 86.0
    assert rows["`deep`, combined"] == \
        "| `deep`, combined | 91.0 | 81.0 | **86.0** ± 1.4 (2 of the 3 seeds) | this run |"
    assert rows["`geometric`, combined"].endswith(
        "| 97.0 | 93.0 | **95.0** ± 0.0 | this run |")
    # the baselines are seeded: one run stands for every seed, and says nothing of seeds
    assert rows["*5-NN distance, raw pixels*"] == \
        "| *5-NN distance, raw pixels* | 80.0 | 70.0 | **75.0** | this run |"
    # every fit's time, the stopped seed's too
    assert "`deep` 30-34 s (median 32 s, 5 runs); `geometric` 70-75 s (median 72 s, 6 runs)" \
        in "\n".join(lines)
