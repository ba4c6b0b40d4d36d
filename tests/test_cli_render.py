"""`render.print_json`: its fast path for flat records prints json.dumps(indent=2)'s bytes."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duckpond.cli import render

scalars = st.one_of(st.text(), st.integers(), st.booleans(), st.none())
records = st.lists(st.dictionaries(st.text(), scalars, min_size=1), min_size=1)


# Generation is slow when the machine is loaded; that is not what this test checks.
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(records)
def test_flat_records_render_as_json_dumps_does(value: list[dict[str, object]]) -> None:
    text = render._records_json(value)
    assert text is not None
    assert text == json.dumps(value, indent=2, default=str)


@pytest.mark.parametrize(
    "value",
    [[], {}, [{}], [{"a": 1.5}], [{"a": [1]}], [{1: "x"}], ["x"], [{"a": 1}, 2]],
)
def test_other_shapes_take_json_dumps(value: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert render._records_json(value) is None
    render.print_json(value)
    assert capsys.readouterr().out == json.dumps(value, indent=2, default=str) + "\n"
