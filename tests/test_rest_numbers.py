"""``tfae.serving.rest._numbers``, the REST server's direct reading of a JSON array of numbers:
the same array as orjson and numpy make, or ``None`` (orjson's reading, and its errors, then)."""

import json

import numpy as np
import orjson
import pytest

from tfae.serving.rest import _numbers


@pytest.mark.parametrize("shape", [(3,), (2, 5), (4, 6, 6, 1), (2, 3, 3, 3), (1, 1, 1, 1)])
def test_an_array_of_numbers_is_read_as_orjson_and_numpy_read_it(shape):
    rng = np.random.default_rng(sum(shape))
    values = (rng.random(shape) * 10 - 5).round(4)
    values.flat[0] = 7  # a whole number among them
    for key in ("instances", "inputs"):
        for separators in ((",", ":"), (", ", ": ")):
            raw = json.dumps({"signature_name": "encode", key: values.tolist(), "z": [True, "x"]},
                             separators=separators).encode()
            body, array = _numbers(raw)
            np.testing.assert_array_equal(array, np.asarray(orjson.loads(raw)[key]))
            assert body["signature_name"] == "encode" and body["z"] == [True, "x"]
    body, array = _numbers(b'{"inputs": [[0.5,\n 1e-3], [ -2E+2 ,3]]}')
    assert array.tolist() == [[0.5, 0.001], [-200.0, 3.0]]


@pytest.mark.parametrize("raw", [
    b'{"instances": [[1, 2], [3]]}', b'{"instances": [[1, 2], [3], [4, 5, 6]]}',  # ragged
    b'{"instances": [[1], [2, 3]]}', b'{"instances": []}', b'{"instances": [[1], [ ]]}',
    b'{"instances": [1, , 2]}', b'{"instances": [1, 2, ]}', b'{"instances": [, 1]}',  # empty
    b'{"instances": [+1]}', b'{"instances": [.5]}', b'{"instances": [1.]}', b'{"instances": [1e]}',
    b'{"instances": [1.2.3]}', b'{"instances": [--1]}', b'{"instances": [1 2]}',  # not numbers
    b'{"instances": [NaN]}', b'{"instances": [true, 1]}', b'{"instances": [[1]]]}',
    b'{"instances": [1, 2]', b'[{"instances": [1]}]', b'{"instances": [[1, 2], [3, 4]], '
    b'"instances": [5]}', b'{"x": "\\"instances\\": [1]"}', b'{"inputs": {"images": [1]}}',
    b'{"instances": ' + b"[" * 40 + b"0" + b"]" * 40 + b"}",  # deeper than any model's input
])
def test_anything_else_is_left_to_orjson(raw):
    assert _numbers(raw) is None


def test_a_key_inside_a_string_is_not_the_bodys():
    body, array = _numbers(b'{"x": "\\"instances\\": [1,2]", "instances": [3]}')
    assert body["x"] == '"instances": [1,2]' and array.tolist() == [3.0]
