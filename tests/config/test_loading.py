"""The YAML loader's input limits and the ``--set`` parser: an alias bomb is refused in time and memory; random
structures and strings give a result or a ConfigError that names the file, the key path, what was expected and
what was given, never another exception (hypothesis)."""

from __future__ import annotations

import math
import time
import tracemalloc

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biocircuits.config.experiment import Experiment
from biocircuits.config.loading import apply_sets, load_with_includes, parse_set, parse_yaml_text, read_yaml
from biocircuits.errors import ConfigError, ConfigErrors, short_repr

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def bomb(levels: int = 9) -> str:
    """The YAML "billion laughs": 9 aliases per level, 9^levels strings once expanded."""
    names = [f"l{i}" for i in range(levels)]
    text = f"{names[0]}: &{names[0]} [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for prev, name in zip(names, names[1:], strict=False):
        text += f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n"
    return text


def test_alias_bomb_is_rejected_within_2_s_and_200_mb(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text("name: x\n" + bomb())
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ConfigError, match="aliases are expanded") as err:
            Experiment.from_yaml(path)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 2 and peak < 200e6, (elapsed, peak)
    assert str(path) in str(err.value) and len(str(err.value)) < 400


def test_limits_name_the_key_and_line():
    with pytest.raises(ConfigError, match=r"train.steps: duplicate key 'steps' at line 3"):
        parse_yaml_text("train:\n  steps: 1\n  steps: 2\n", file="f.yaml")
    with pytest.raises(ConfigError, match=r"optim.lr: not a finite number"):
        parse_yaml_text("optim: {lr: .inf}\n")
    with pytest.raises(ConfigError, match="recursive alias"):
        parse_yaml_text("a: &a [*a]\n")
    assert parse_yaml_text("base: &b {x: 1}\nother: {<<: *b, x: 2}\n")["other"] == {"x": 2}  # merge keys still work


def test_a_non_finite_value_names_the_file_and_the_key():
    with pytest.raises(ConfigError) as err:
        parse_yaml_text("optim: {betas: [0.9, .nan]}\n", file="f.yaml")
    assert str(err.value) == (
        "f.yaml: optim.betas[1]: not a finite number; expected a finite number, given nan "
        "(use a large finite value, or leave the key out for the default)"
    )


def test_includes_stay_in_the_spec_tree_or_the_presets(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "part.yaml").write_text("feedback: {rule: fa}\n")
    (tmp_path / "spec.yaml").write_text("include: [dale.yaml, sub/part.yaml]\n")
    data = load_with_includes(tmp_path / "spec.yaml")
    assert data["feedback"]["rule"] == "fa" and "dale" in data  # beside the spec, and a shipped preset
    (tmp_path / "sub" / "up.yaml").write_text("include: [../spec.yaml]\n")
    with pytest.raises(ConfigError, match=r"include\[0\]"):
        load_with_includes(tmp_path / "sub" / "up.yaml")


YAML_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(), st.text(max_size=20))
YAML_VALUE = st.recursive(
    YAML_LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=25,
)
KEYS = st.sampled_from(
    [
        "name",
        "data",
        "model",
        "optim",
        "schedule",
        "train",
        "constraints",
        "output",
        "include",
        "source",
        "description",
        "train.steps",
        "optim.lr",
        "data.shape",
        "model.kwargs",
    ]
)
UNREADABLE = object()


def values_at(data, key: str) -> list:
    """Every value of ``data`` whose key path, spelt as the errors spell it (``a.b``, ``a[0]``, ``b`` at the top),
    is ``key``; several when keys contain dots, none when the path is not in ``data``."""
    found, stack = [], [("", data)]
    while stack:
        path, value = stack.pop()
        if path == key:
            found.append(value)
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for k, v in children:
            sub = f"{path}[{k}]" if isinstance(value, list) else f"{path}.{k}" if path else str(k)
            if key.startswith(sub):
                stack.append((sub, v))
    return found


def same(a, b) -> bool:
    """``a == b`` with NaN equal to itself."""
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def assert_says_where_and_what(err: ConfigError, file: str | None, data) -> None:
    """Each line of ``err`` names ``file`` and a key path found in ``data`` (the input as read), and shows what was
    expected and what was given; a given value is the one at that key (an unknown key's name is its last part and
    not among the keys it expected)."""
    lines = err.errors if isinstance(err, ConfigErrors) else [err]
    for line in lines:
        text = line.render()
        assert text in str(err) and line.file == file, (text, file)
        if line.key is None:
            assert line.message.startswith("... and "), text  # only the count of errors left out names no key
            continue
        assert text.startswith(f"{file}: {line.key}: " if file else f"{line.key}: "), text
        if line.expected is not None:
            assert f"; expected {line.expected}" in text, text
        if line.has_given:
            assert f", given {short_repr(line.given)}" in text, text
        here = values_at(data, line.key)
        if line.message == "unknown key":
            assert here and (line.key == line.given or line.key.endswith(f".{line.given}")), text
            assert line.given not in line.expected.removeprefix("one of ").split(", "), text
        elif line.message == "included file not found":
            assert any(same(v, line.given) for v in here), text
        else:
            assert here, text
            if line.has_given and "synthetic data too large" not in line.message:  # (given: the element count)
                assert any(same(v, line.given) for v in here), (text, here)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
        YAML_VALUE.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
    )
)
def test_yaml_loader_gives_a_result_or_a_config_error(text):
    """The result is what PyYAML reads; an error names the file, and the key path of what it refuses."""
    try:
        want = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):
        want = UNREADABLE
    try:
        got = parse_yaml_text(text, file="fuzz.yaml")
    except ConfigError as err:
        assert err.file == "fuzz.yaml" and str(err).startswith("fuzz.yaml: "), str(err)
        if want is UNREADABLE:
            assert err.key is None and err.message.startswith(("YAML syntax error", "unreadable YAML value")), err
        elif err.message == "not a finite number":
            assert err.expected == "a finite number" and not math.isfinite(err.given), err
            assert any(same(v, err.given) for v in values_at(want, err.key or "")), err
        return
    assert want is not UNREADABLE and got == want


@FUZZ
@given(st.dictionaries(KEYS, YAML_VALUE, max_size=6))
def test_random_experiment_files_give_an_experiment_or_a_config_error(tmp_path_factory, data):
    """Every line of the error names the file and a key path of the file as read, with the value given there."""
    path = tmp_path_factory.mktemp("fuzz") / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "x", **data}, allow_unicode=True))
    try:
        written = read_yaml(path)
    except ConfigError as err:  # only a non-finite float stops the reader here
        assert err.message == "not a finite number", err
        assert_says_where_and_what(err, str(path), yaml.safe_load(path.read_text()))
        return
    try:
        Experiment.from_yaml(path)
    except ConfigError as err:
        assert_says_where_and_what(err, str(path), written)


SET_KEY = st.one_of(
    KEYS,
    st.text(max_size=15),
    st.lists(st.sampled_from(["a", "train", "", " ", "steps", "0"]), min_size=1, max_size=4).map(".".join),
)


@FUZZ
@given(
    st.lists(
        st.tuples(
            SET_KEY,
            st.one_of(
                st.text(max_size=40), YAML_VALUE.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip())
            ),
        ),
        max_size=4,
    )
)
def test_set_parser_gives_overrides_or_a_config_error(pairs):
    """Each stage's error names what it was given: ``--set`` and the item, ``--set KEY`` for a value, the dotted
    key inside a non-mapping, or the key path of the merged experiment."""
    items = [f"{k}={v}" for k, v in pairs]
    try:
        sets = parse_set(items)
    except ConfigError as err:
        keys = [item.split("=", 1)[0].strip() for item in items if "=" in item]
        assert (err.key == "--set" and err.given in items) or err.key.removeprefix("--set ") in keys, err
        return
    try:
        merged = apply_sets({"name": "x"}, sets)
    except ConfigError as err:
        assert err.message.startswith("--set goes inside") and any(k.startswith(f"{err.key}.") for k in sets), err
        assert err.has_given and not isinstance(err.given, dict), err  # the value in the way, shown
        return
    try:
        Experiment.from_dict(merged)
    except ConfigError as err:
        assert_says_where_and_what(err, None, merged)
