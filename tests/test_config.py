"""Every setting with a wrong type or an out-of-range value costs one line naming it and exit
status 2, before any work, never a traceback: table-driven over every field of every section."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
import pytest

from precompute.cli import main
from precompute.config import RunConfig
from tests.helpers import copy_tree, sample_paintings

NOT_A_NUMBER = "sixteen"


def _parts(hint: Any) -> tuple[Any, list[Any]]:
    """The type inside `hint` (Optional and Annotated taken off) and its constraints."""
    constraints: list[Any] = []
    while True:
        if typing.get_origin(hint) is Annotated:
            base, *extras = typing.get_args(hint)
            for extra in extras:
                constraints.extend(getattr(extra, "metadata", [extra]))
            hint = base
        elif typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        else:
            return hint, constraints


def wrong_type(hint: Any) -> Any:
    """A TOML value of the wrong type for `hint`."""
    base, _ = _parts(hint)
    origin = typing.get_origin(base)
    if base in (int, float):
        return NOT_A_NUMBER
    if base is bool:
        return "maybe"
    if base is str or origin is Literal:
        return 12345
    if origin is list:
        return "a string, not a list"
    return 7  # a table (dict or section) given as a number


def out_of_range(hint: Any) -> Any:
    """A value of the right type but outside what `hint` allows, or None where any value of the
    type is allowed."""
    base, constraints = _parts(hint)
    origin = typing.get_origin(base)
    for c in constraints:
        if isinstance(c, annotated_types.Ge):
            return c.ge - (1 if base is int else 0.5)
        if isinstance(c, annotated_types.Gt):
            return c.gt
        if isinstance(c, annotated_types.Le):
            return c.le + 1
        if isinstance(c, annotated_types.Lt):
            return c.lt
        if isinstance(c, annotated_types.MinLen):
            return [] if origin is list else ""
        if getattr(c, "pattern", None):
            return "no/such/value/here"
    if origin is Literal:
        return "nonsense"
    if origin is list:
        item = out_of_range(typing.get_args(base)[0])
        return None if item is None else [item]
    if origin is dict:
        key, _ = _parts(typing.get_args(base)[0])
        return {"nonsense": {}} if typing.get_origin(key) is Literal else None
    return None


def every_setting() -> list[tuple[str, str, Any]]:
    cases = []
    for section in dataclasses.fields(RunConfig):
        cls = section.default_factory  # type: ignore[misc]
        hints = typing.get_type_hints(cls, include_extras=True)
        for setting in dataclasses.fields(cls):
            cases.append((section.name, setting.name, wrong_type(hints[setting.name])))
            bad = out_of_range(hints[setting.name])
            if bad is not None:
                cases.append((section.name, setting.name, bad))
    return cases


# Refused later than the config's own checks, but before minutes of work.
CHECKED_UP_FRONT = [
    ("model", "backbone", "resnet5000"),
    ("model", "weights", "missing-weights.pth"),
    ("train", "target", "no_such_attribute"),
    ("analysis", "attributes", ["no_such_attribute"]),
    ("dataset", "filename_pattern", "(unclosed"),
    ("dataset", "root", "no-such-folder"),
    ("dataset", "manifest", "no-such-manifest.csv"),
    ("cluster", "k_max", 1),
]


def toml_value(value: Any) -> str:
    """`value` written as TOML (JSON's scalars and arrays are TOML; tables are inline)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_tree(sample_paintings(1), tmp_path_factory.mktemp("tiny"))


def run_with(tmp_path: Path, tree: Path, section: str, name: str, value: Any,
             capsys: pytest.CaptureFixture) -> tuple[int, list[str]]:
    settings = {"dataset": {"root": str(tree), "levels": ["style"]},
                "model": {"backbone": "efficientnet_lite0", "image_size": 64},
                "embed": {"layers": ["penultimate"]}}
    settings.setdefault(section, {})[name] = value
    config = tmp_path / "config.toml"
    config.write_text("\n".join(
        f"[{table}]\n" + "\n".join(f"{key} = {toml_value(v)}" for key, v in values.items())
        for table, values in settings.items()), encoding="utf-8")
    capsys.readouterr()
    status = main(["-q", "all", "--config", str(config), "--store", str(tmp_path / "store")])
    return status, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(("section", "name", "value"), every_setting() + CHECKED_UP_FRONT,
                         ids=lambda v: str(v)[:24])
def test_a_wrong_setting_is_one_line_naming_it_and_status_2(
    section, name, value, tiny_tree, tmp_path, capsys
):
    status, lines = run_with(tmp_path, tiny_tree, section, name, value, capsys)
    assert status == 2, lines
    errors = [line for line in lines if "error" in line.lower() or "Traceback" in line]
    assert errors == lines[-1:] and errors[0].startswith("precompute: error:"), lines
    assert name in errors[0], errors[0]
    assert not (tmp_path / "store" / "spaces").exists()  # refused before any embedding


def test_every_setting_is_covered():
    covered = {(section, name) for section, name, _ in every_setting()}
    sections = {s.name: s.default_factory for s in dataclasses.fields(RunConfig)}
    assert covered == {(section, f.name) for section, cls in sections.items()
                       for f in dataclasses.fields(cls)}
    assert len(every_setting()) > 120


def test_the_command_line_prints_no_traceback(tiny_tree, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[dataset]\nroot = "{tiny_tree}"\n[thumbnails]\nsize = 0\n',
                      encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "precompute.cli", "all", "--config", str(config),
         "--store", str(tmp_path / "store")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"precompute: error: {config} [thumbnails]: size = 0: input should be greater than "
        "or equal to 16"]


def test_a_setting_of_two_kinds_is_one_clause_naming_both(tiny_tree, tmp_path, capsys):
    status, lines = run_with(tmp_path, tiny_tree, "embed", "workers", "two", capsys)
    assert status == 2
    assert lines[-1].endswith(
        "[embed]: workers = 'two': input should be a valid integer, unable to parse string as "
        "an integer or input should be 'auto'"), lines


def test_a_wrong_setting_under_a_key_that_is_not_a_name_is_named_with_its_key(
        tiny_tree, tmp_path, capsys):
    status, lines = run_with(tmp_path, tiny_tree, "projection", "params", {'"pca-umap"': 3},
                             capsys)
    assert status == 2
    assert "params['pca-umap'] = 'pca-umap': input should be 'pca'" in lines[-1], lines
    assert "params['pca-umap'] = 3: input should be a valid dictionary" in lines[-1], lines
