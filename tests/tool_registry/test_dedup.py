"""Near-duplicate detection with the offline MiniLM model: planted duplicates and look-alikes."""

from __future__ import annotations

import pytest

from tool_registry.dedup import action, drop_near_duplicates, find_near_duplicates, subject, words
from tool_registry.spec import Provenance, ToolSpec

pytestmark = pytest.mark.integration


def spec(name: str, description: str, **params: str) -> ToolSpec:
    return ToolSpec(
        name=name,
        description=description,
        parameters={"type": "object", "properties": {k: {"type": v} for k, v in params.items()}},
        provenance=Provenance(source="synthetic"),
    )


WEATHER = spec("get_weather", "Get the current weather for a city.", city="string")
WEATHER_TWIN = spec(
    "fetchWeatherInfo", "Returns today's weather conditions in a town.", location="string"
)
CREATE_EVENT = spec("create_event", "Create a calendar event.", title="string", start="string")
DELETE_EVENT = spec("delete_event", "Delete a calendar event.", title="string", start="string")
STOCK = spec("get_stock_price", "Get the latest price of a stock ticker.", ticker="string")


def pairs(found) -> set[frozenset[str]]:
    return {frozenset((p.a, p.b)) for p in found}


def test_a_renamed_paraphrase_is_found_and_look_alikes_are_not() -> None:
    found = pairs(find_near_duplicates([WEATHER, WEATHER_TWIN, CREATE_EVENT, DELETE_EVENT, STOCK]))
    assert found == {frozenset((WEATHER.id, WEATHER_TWIN.id))}


def test_without_gates_look_alikes_with_opposite_actions_are_found() -> None:
    found = pairs(find_near_duplicates([CREATE_EVENT, DELETE_EVENT], gates=False))
    assert found == {frozenset((CREATE_EVENT.id, DELETE_EVENT.id))}


def test_exact_duplicates_score_one() -> None:
    (pair,) = find_near_duplicates([STOCK, STOCK])
    assert pair.similarity == 1.0


def test_drop_keeps_the_first_and_protects_the_repository() -> None:
    kept, dropped = drop_near_duplicates([WEATHER_TWIN, STOCK, STOCK], against=[WEATHER])
    assert kept == [STOCK]
    assert {(d.name, of) for d, of in dropped} == {
        ("fetchWeatherInfo", WEATHER.id),
        ("get_stock_price", STOCK.id),
    }


def test_name_words_action_and_subject() -> None:
    assert words("fetchWeatherInfo_v2") == ["fetch", "weather", "info", "v", "2"]
    assert action(DELETE_EVENT) == "delete" and action(WEATHER_TWIN) == "read"
    assert subject(WEATHER_TWIN) == "weather info"
