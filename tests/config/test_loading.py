"""The YAML loader's input limits and the ``--set`` parser: an alias bomb is refused in time and memory; random
structures and strings give a result or a ConfigError, never another exception (hypothesis)."""

from __future__ import annotations

import time
import tracemalloc

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biocircuits.config.experiment import Experiment
from biocircuits.config.loading import apply_sets, load_with_includes, parse_set, parse_yaml_text, read_yaml
from biocircuits.errors import ConfigError

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


def test_includes_stay_in_the_spec_tree_or_the_presets(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "part.yaml").write_text("feedback: {rule: fa}\n")
    (tmp_path / "spec.yaml").write_text("include: [dale.yaml, sub/part.yaml]\n")
    data = load_with_includes(tmp_path / "spec.yaml")
    assert data["feedback"]["rule"] == "fa" and "dale" in data  # beside the spec, and a shipped preset
    (tmp_path / "sub" / "up.yaml").write_text("include: [../spec.yaml]\n")
    with pytest.raises(ConfigError, match=r"include\[0\]"):
        load_with_includes(tmp_path / "sub" / "up.yaml")


YAML_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(), st.text(max_size=20))
YAML_VALUE = st.recursive(YAML_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=25)
KEYS = st.sampled_from(["name", "data", "model", "optim", "schedule", "train", "constraints", "output", "include",
                        "source", "description", "train.steps", "optim.lr", "data.shape", "model.kwargs"])


@FUZZ
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                 YAML_VALUE.map(lambda v: yaml.safe_dump(v, allow_unicode=True))))
def test_yaml_loader_gives_a_result_or_a_config_error(text):
    try:
        parse_yaml_text(text, file="fuzz.yaml")
    except ConfigError:
        pass


@FUZZ
@given(st.dictionaries(KEYS, YAML_VALUE, max_size=6))
def test_random_experiment_files_give_an_experiment_or_a_config_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "exp.yaml"
    path.write_text(yaml.safe_dump({"name": "x", **data}, allow_unicode=True))
    try:
        read_yaml(path)
        Experiment.from_yaml(path)
    except ConfigError:
        pass


SET_KEY = st.one_of(KEYS, st.text(max_size=15), st.lists(st.sampled_from(["a", "train", "", " ", "steps", "0"]),
                                                           min_size=1, max_size=4).map(".".join))


@FUZZ
@given(st.lists(st.tuples(SET_KEY, st.one_of(st.text(max_size=40), YAML_VALUE.map(
    lambda v: yaml.safe_dump(v, default_flow_style=True).strip()))), max_size=4))
def test_set_parser_gives_overrides_or_a_config_error(pairs):
    items = [f"{k}={v}" for k, v in pairs]
    try:
        sets = parse_set(items)
        Experiment.from_dict(apply_sets({"name": "x"}, sets))
    except ConfigError:
        pass
