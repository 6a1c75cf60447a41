"""Rubric YAML loading: the library is valid, and every kind of mistake names file:line: field."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from rubrics.loader import LIBRARY, RubricError, RubricSet, library
from rubrics.schema import Rubric

GOOD = """\
id: mine
kind: task
description: A task rubric.
criteria:
  - id: done
    description: The task is done.
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(*paths: Path) -> list[str]:
    with pytest.raises(RubricError) as info:
        RubricSet.load(list(paths))
    return info.value.problems


def test_library_loads_with_golden_tests_on_every_rubric() -> None:
    lib = library()
    assert set(lib.rubrics) == {
        "core",
        "prescriptive",
        "calibration",
        "trajectory",
        "safety",
        "faithfulness",
    }
    for rubric in lib:
        assert rubric.tests, f"{rubric.id} has no golden tests"


def test_bad_weight_is_reported_with_file_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "w.yaml",
        GOOD + "  - id: b\n    description: x\n  - id: c\n    description: y\n    weight: 0\n",
    )
    assert problems_of(path) == [f"{path}:11: criteria[2].weight: Input should be greater than 0"]


def test_unknown_key_is_caught(tmp_path: Path) -> None:
    path = write(tmp_path, "u.yaml", GOOD + "    wieght: 2\n")
    assert problems_of(path) == [f"{path}:7: criteria[0].wieght: unknown field"]


def test_missing_and_mistyped_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "m.yaml", "id: Bad Id\nkind: vibes\ncriteria: []\n")
    found = "\n".join(problems_of(path))
    assert f"{path}:1: id: String should match pattern" in found
    assert f"{path}:2: kind: Input should be" in found
    assert f"{path}:1: description: Field required" in found


def test_duplicate_criterion_ids_point_at_the_second(tmp_path: Path) -> None:
    path = write(tmp_path, "d.yaml", GOOD + "  - id: done\n    description: again\n")
    assert problems_of(path) == [
        f"{path}:7: criteria[1].id: duplicate criterion id 'done' (first at criteria[0])"
    ]


def test_duplicate_rubric_ids_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", GOOD)
    second = write(tmp_path, "b.yaml", GOOD)
    assert problems_of(first, second) == [
        f"{second}:1: id: duplicate rubric id 'mine' (first in {first}:1)"
    ]


def test_broken_extends_and_cycles(tmp_path: Path) -> None:
    broken = write(tmp_path, "x.yaml", GOOD + "extends: [core, nosuch]\n")
    found = problems_of(LIBRARY, broken)
    assert found == [f"{broken}:7: extends[1]: unknown rubric 'nosuch'"]
    a = write(tmp_path, "ca.yaml", GOOD.replace("mine", "ca") + "extends: [cb]\n")
    b = write(tmp_path, "cb.yaml", GOOD.replace("mine", "cb") + "extends: [ca]\n")
    cycle = problems_of(a, b)
    assert f"{a}:7: extends: cycle ca -> cb -> ca" in cycle
    assert f"{b}:7: extends: cycle cb -> ca -> cb" in cycle


def test_invalid_yaml_and_non_mapping(tmp_path: Path) -> None:
    bad = write(tmp_path, "y.yaml", "id: x\ncriteria: [\n")
    listed = write(tmp_path, "l.yaml", "- just\n- a list\n")
    found = problems_of(bad, listed)
    assert any(p.startswith(f"{bad}:") and "invalid YAML" in p for p in found)
    expected = "got a list; expected a mapping of rubric fields (id, kind, criteria)"
    assert f"{listed}:1: (top level): {expected}" in found


def test_extends_merges_and_overrides_by_id(tmp_path: Path) -> None:
    child = write(
        tmp_path,
        "c.yaml",
        "id: child\nkind: task\ndescription: d\nextends: [core]\ncriteria:\n"
        "  - id: clarity_relevance\n    description: overridden\n    weight: 5\n"
        "  - id: extra\n    description: mine\n",
    )
    rubric_set = RubricSet.load([LIBRARY, child])
    ids = [c.id for c in rubric_set.criteria("child")]
    assert ids == ["clarity_relevance", "fluency_engagement", "objective_grounded", "extra"]
    assert rubric_set.get("child").criteria[0].weight == 5


def test_committed_editor_schema_matches_the_models_and_accepts_the_library() -> None:
    from rubrics.__main__ import rubric_json_schema

    committed = json.loads((LIBRARY.parent / "rubric.schema.json").read_text())
    assert committed == rubric_json_schema()
    for path in sorted(LIBRARY.glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), committed)
    assert Rubric.model_json_schema()["properties"]["criteria"]


def test_library_adds_a_users_files_once_and_reloads_them_when_they_change(
    tmp_path: Path,
) -> None:
    mine = write(tmp_path, "mine.yaml", GOOD)
    rubrics = library(tmp_path, mine, str(mine), LIBRARY, LIBRARY / "core.yaml")
    assert "mine" in rubrics and "core" in rubrics
    assert rubrics is library(tmp_path)  # the same files: the cached set
    mine.write_text(GOOD.replace("The task is done.", "The task is finished."))
    assert library(tmp_path).criteria("mine")[0].description == "The task is finished."
    write(tmp_path, "clash.yaml", GOOD.replace("id: mine", "id: core"))
    with pytest.raises(RubricError, match=r"clash.yaml:1: id: duplicate rubric id 'core'"):
        library(tmp_path)


def test_require_names_unknown_ids_and_broken_files(tmp_path: Path) -> None:
    from rubrics.loader import require

    assert "mine" in require(["core", "mine"], [write(tmp_path, "mine.yaml", GOOD)])
    with pytest.raises(ValueError, match=r"unknown rubric ids \['theirs'\]; known: .*mine"):
        require(["theirs"], [tmp_path])
    write(tmp_path, "mine.yaml", GOOD + "    weight: 0\n")
    with pytest.raises(ValueError, match=r"rubric files: .*mine.yaml:7: criteria\[0\].weight"):
        require(["mine"], [tmp_path])
