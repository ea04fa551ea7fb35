"""The YAML reader: values as PyYAML's safe loader reads them, plus lines, plus limits."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.sync import yaml_loader as yaml_source
from catalog.sync.yaml_loader import LineDict, LineList, YamlLimits, YamlLoadError, parse_yaml

LIMITS = YamlLimits()


def load(text: str | bytes, limits: YamlLimits = LIMITS) -> Any:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parse_yaml(data, "test.yaml", limits).document


def load_error(text: str | bytes, limits: YamlLimits = LIMITS) -> YamlLoadError:
    with pytest.raises(YamlLoadError) as raised:
        load(text, limits)
    return raised.value


def test_entries_and_keys_remember_their_lines() -> None:
    document = load(
        "# a comment\nmodels:\n  - name: a/b\n    tags: [X, Y]\n\n  - name: c/d\n    access: open\n"
    )
    assert isinstance(document, LineDict)
    assert document.key_lines == {"models": 2}
    models = document["models"]
    assert isinstance(models, LineList)
    assert [m.line for m in models] == [3, 6]
    assert models[0].key_lines == {"name": 3, "tags": 4}
    assert models[1].key_lines == {"name": 6, "access": 7}


def test_scalars_are_typed_like_the_safe_loader() -> None:
    document = load(
        "a: 12\nb: '12'\nc: true\nd: ~\ne: 2024-01-15\nf: 1.5\ng: 2024-01-15 10:30:00\n"
        "h: 'true# comment'\ni: true# glued\nj: 0x10\n"
    )
    assert document == {
        "a": 12,
        "b": "12",
        "c": True,
        "d": None,
        "e": dt.date(2024, 1, 15),
        "f": 1.5,
        "g": dt.datetime(2024, 1, 15, 10, 30),
        "h": "true# comment",
        "i": "true# glued",
        "j": 16,
    }


def test_anchors_and_merge_keys() -> None:
    document = load(
        "base: &base\n  class_name: X\n  args: {k: 1}\nmodel:\n  <<: *base\n  class_name: Y\n"
    )
    assert document["model"] == {"class_name": "Y", "args": {"k": 1}}


def test_duplicate_key_is_a_warning_and_the_later_value_wins() -> None:
    loaded = parse_yaml(b"name: a/b\ndisplay_name: One\ndisplay_name: Two\n", "f.yaml", LIMITS)
    assert loaded.document["display_name"] == "Two"
    [warning] = loaded.warnings
    assert (warning.code, warning.file, warning.line) == ("duplicate-key", "f.yaml", 3)
    assert "line 2" in warning.message


def test_byte_order_mark_is_accepted_with_a_warning() -> None:
    loaded = parse_yaml(b"\xef\xbb\xbfa: 1\n", "f.yaml", LIMITS)
    assert loaded.document == {"a": 1}
    assert [w.code for w in loaded.warnings] == ["byte-order-mark"]


def test_not_utf8_gives_line_and_column() -> None:
    error = load_error(b"a: 1\nb: caf\xe9\n").diagnostic
    assert (error.code, error.line, error.column) == ("not-utf8", 2, 7)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("a: 1\nb: x: y\n", 2, 5),
        ("a:\n  - 1\n - 2\n", 3, 2),
        ("a: [1, 2\nb: 3\n", 2, 2),
        ("a: 1\nb: \x07\n", 2, 4),
    ],
)
def test_syntax_errors_give_line_and_column(text: str, line: int, column: int) -> None:
    error = load_error(text).diagnostic
    assert (error.code, error.file, error.line, error.column) == (
        "yaml-syntax",
        "test.yaml",
        line,
        column,
    )
    assert str(error).startswith(f"test.yaml:{line}:{column}: error: YAML syntax error")


def test_unsupported_tags_are_refused() -> None:
    error = load_error("a: !!python/object:os.system {}\n").diagnostic
    assert error.code == "yaml-tag"
    error = load_error("a: 1\nb: !!binary aGVsbG8=\n").diagnostic
    assert (error.code, error.line) == ("yaml-tag", 2)


def test_invalid_typed_value_is_an_error_with_its_line() -> None:
    error = load_error("a: 1\nb: !!int twelve\n").diagnostic
    assert (error.code, error.line) == ("yaml-value", 2)


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    deep = "a: " + "[" * 30 + "]" * 30 + "\n"
    assert load(deep, YamlLimits(max_depth=64)) is not None
    error = load_error(deep, YamlLimits(max_depth=10)).diagnostic
    assert (error.code, error.line) == ("yaml-too-deep", 1)


def test_alias_expansion_beyond_the_node_limit_is_refused() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, 12):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 10)}]")
    error = load_error("\n".join(lines) + "\n", YamlLimits(max_nodes=100_000)).diagnostic
    assert error.code == "yaml-too-many-nodes"
    assert "--max-yaml-nodes" in error.message


def test_reading_keeps_no_state_between_files() -> None:
    for _ in range(3):
        load("a: 1\nb: 2024-01-01\nc: [true, 1.5, ~]\n")
    assert yaml_source._constructor.constructed_objects == {}


def test_empty_document_is_none() -> None:
    assert load("") is None
    assert load("# only a comment\n") is None


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.dates(min_value=dt.date(1900, 1, 1)),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(value=json_like, flow=st.booleans())
def test_reads_what_pyyaml_reads(value: Any, flow: bool) -> None:
    text = yaml.safe_dump({"value": value}, default_flow_style=flow, allow_unicode=True)
    expected = yaml.load(text, Loader=yaml.CSafeLoader)
    assert load(text) == expected
