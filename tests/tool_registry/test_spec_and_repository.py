"""ToolSpec round trips, schema checks, and the repository's add/query/persist behaviour."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from pydantic import ValidationError

from tool_registry.repository import ToolRepository
from tool_registry.spec import Provenance, ToolSpec

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
            "required": ["city"],
        },
        "strict": True,
    },
}


def tool(name: str, domain: str = "weather", category: str = "travel", **params: str) -> ToolSpec:
    props = {k: {"type": v} for k, v in (params or {"q": "string"}).items()}
    return ToolSpec(
        name=name,
        description=f"{name} tool",
        domain=domain,
        category=category,
        parameters={"type": "object", "properties": props},
        provenance=Provenance(source="synthetic"),
    )


def test_openai_round_trip_is_lossless() -> None:
    spec = ToolSpec.from_openai(WEATHER)
    assert spec.to_openai() == WEATHER
    assert ToolSpec.from_openai(spec.to_openai()) == spec
    assert spec.id.startswith("t-") and len(spec.id) == 18


def test_same_tool_gets_the_same_id_and_a_change_a_new_one() -> None:
    assert (
        ToolSpec.from_openai(WEATHER).id == ToolSpec.from_openai(json.loads(json.dumps(WEATHER))).id
    )
    changed = json.loads(json.dumps(WEATHER))
    changed["function"]["description"] = "Weather."
    assert ToolSpec.from_openai(changed).id != ToolSpec.from_openai(WEATHER).id


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ({"name": "bad name!", "parameters": {"type": "object"}}, "String should match pattern"),
        (
            {
                "name": "f",
                "parameters": {"type": "object", "properties": {"x": {"type": "strnig"}}},
            },
            "not a valid JSON Schema at properties/x/type",
        ),
        ({"name": "f", "parameters": {"type": "string"}}, "must describe an object"),
    ],
)
def test_invalid_specs_are_rejected_with_the_reason(function: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ToolSpec.from_openai({"type": "function", "function": function})


def test_exact_duplicates_are_skipped_and_name_clashes_renamed_deterministically() -> None:
    repo = ToolRepository()
    first = repo.add([tool("search", q="string")])
    again = repo.add([tool("search", q="string"), tool("search", q="integer")])
    assert len(first.added) == 1 and len(again.duplicates) == 1
    ((original, renamed),) = again.renamed
    clash = tool("search", q="integer")
    assert original == "search" and renamed == f"search_{clash.id[2:8]}"
    assert repo.by_name(renamed) is not None and len(repo) == 2


def test_query_sample_and_stats() -> None:
    repo = ToolRepository(
        [tool(f"w{i}", "weather", "travel") for i in range(4)]
        + [tool(f"f{i}", "flights", "travel") for i in range(2)]
        + [
            tool(f"b{i}", "banking", "finance", a="number", b="string", c="string")
            for i in range(3)
        ]
    )
    assert len(repo.query(domain="weather")) == 4 and len(repo.query(text="b1")) == 1
    picked = repo.sample(5, random.Random(1), domain="flights")
    assert len(picked) == 5 and {s.category for s in picked} == {"travel"}
    assert repo.sample(3, random.Random(2)) == repo.sample(3, random.Random(2))
    stats = repo.stats()
    assert stats["tools"] == 9 and stats["by_domain"]["banking"] == 3
    assert stats["by_parameter_count"] == {"1-2": 6, "3-5": 3}


def test_save_load_and_datasets_can_read_it(tmp_path: Path) -> None:
    import datasets

    repo = ToolRepository([ToolSpec.from_openai(WEATHER), tool("x")])
    path = repo.save(tmp_path / "tools.jsonl")
    again = ToolRepository.load(path)
    assert {s.id for s in again} == {s.id for s in repo}
    loaded = datasets.load_dataset("json", data_files=str(path), split="train")
    assert sorted(loaded["name"]) == ["get_weather", "x"]


def test_saving_to_a_full_disk_keeps_the_old_file_and_leaves_no_temporary_file(
    small_disk: Path,
) -> None:
    from ..conftest import fill

    path = small_disk / "tools.jsonl"
    ToolRepository([ToolSpec(name="old_tool", description="kept")]).save(path)
    before = path.read_bytes()
    fill(small_disk)
    many = ToolRepository([ToolSpec(name=f"tool_{i}", description="x" * 2000) for i in range(50)])
    with pytest.raises(OSError, match=r"tools\.jsonl"):
        many.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "tools.jsonl"]
