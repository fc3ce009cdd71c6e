"""URL values are clamped, never crashed on; chart selections map to rows."""
from genlab.pagestate import parse_choice, parse_float, parse_int, selected_rows


def test_parse_int_clamps_and_defaults():
    assert parse_int("7", 0, 10, 3) == 7
    assert parse_int("99", 0, 10, 3) == 10
    assert parse_int("-5", 0, 10, 3) == 0
    assert parse_int("2.6", 0, 10, 3) == 3
    for bad in (None, "", "abc", "nan", "inf", "1e999"):
        assert parse_int(bad, 0, 10, 3) == 3


def test_parse_float_snaps_to_the_slider_step():
    assert parse_float("1.23", -3, 3, 0, 0.1) == 1.2
    assert parse_float("7", -3, 3, 0, 0.1) == 3.0
    assert parse_float("-nan", -3, 3, 0.5, 0.1) == 0.5
    assert parse_float("0.0504", 0.001, 0.45, 0.05, 0.001) == 0.05


def test_parse_choice():
    assert parse_choice("lerp", ["lerp", "slerp"], "slerp") == "lerp"
    assert parse_choice("LERP", ["lerp", "slerp"], "slerp") == "slerp"
    assert parse_choice(None, ["lerp"], "lerp") == "lerp"


def test_selected_rows_reads_customdata():
    sel = {"points": [{"curve_number": 3, "point_index": 0, "customdata": [417]},
                      {"customdata": 12}, {"customdata": None}, {"x": 1.0}, {"customdata": ["a"]}]}
    assert selected_rows(sel) == [417, 12]
    assert selected_rows(None) == [] and selected_rows({}) == []
