import numpy as np
import pytest
import torch

from lmcourse.validate import integer, non_negative_int, number, positive_int


@pytest.mark.parametrize("value", [1, 7, np.int64(5), np.int32(2), np.uint8(3),
                                   torch.tensor(4).item()])
def test_every_integer_type_is_accepted_as_plain_int(value):
    out = positive_int("steps", value)
    assert out == int(value) and type(out) is int


@pytest.mark.parametrize("value", [True, False, 1.0, 2.5, "3", None, np.float64(2), torch.tensor(3)])
def test_non_integers_are_a_type_error_naming_the_argument(value):
    with pytest.raises(TypeError, match=r"^steps must be an integer >= 1, got "):
        positive_int("steps", value)


def test_below_the_minimum_is_a_value_error():
    with pytest.raises(ValueError, match=r"^steps must be an integer >= 1, got 0$"):
        positive_int("steps", 0)
    assert non_negative_int("warmup", 0) == 0
    with pytest.raises(ValueError, match="warmup must be an integer >= 0, got -1"):
        non_negative_int("warmup", -1)
    assert integer("offset", -5, minimum=None) == -5
    with pytest.raises(ValueError, match="order must be an integer >= 2"):
        integer("order", 1, minimum=2)


def test_number_ranges():
    assert number("lr", 3e-4, low=0, low_open=True) == 3e-4
    assert number("p", np.float32(0.5), low=0, high=1) == 0.5
    assert number("p", 1, low=0, high=1) == 1.0
    for bad in [0.0, -1.0, float("nan"), float("inf")]:
        with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, inf\]"):
            number("lr", bad, low=0, low_open=True)
    with pytest.raises(ValueError, match=r"dropout must be a finite number in \[0, 1\)"):
        number("dropout", 1.0, low=0, high=1, high_open=True)
    with pytest.raises(TypeError, match="lr must be a number"):
        number("lr", "0.1")
    with pytest.raises(TypeError, match="lr must be a number"):
        number("lr", True)
