"""Continuous batching and prefix caching on the embedded model, engine only (no HTTP).

Every comparison is of tokens at temperature 0; which requests run together is made
certain by the engine's own counters (a row joins after the first has decoded N steps),
never by timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llm.embedded.engine import BatchEngine, GenerationRequest

pytestmark = pytest.mark.integration

SYSTEM = (
    "You are a careful assistant for a travel agency. Answer in one short sentence, "
    "name the city you are asked about, and never invent prices or dates. " * 3
)
LONG = {"type": "array", "items": {"type": "integer"}, "minItems": 400}
"""Decoding is constrained to a long array: a row with it runs its whole token budget."""


@pytest.fixture(scope="module")
def model() -> tuple[Any, Any]:
    from llm.embedded.model import load_model

    return load_model()


@pytest.fixture
def engine(model) -> Iterator[Callable[..., BatchEngine]]:
    made: list[BatchEngine] = []

    def make(**kwargs: Any) -> BatchEngine:
        made.append(BatchEngine(*model, **kwargs))
        return made[-1]

    yield make
    for engine in made:
        engine.close()


def prompt(model, question: str, system: str = SYSTEM) -> list[int]:
    _, tokenizer = model
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": system}, {"role": "user", "content": question}],
        add_generation_prompt=True,
        tokenize=False,
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def request(ids: list[int], max_new_tokens: int, **extra: Any) -> GenerationRequest:
    return GenerationRequest(prompt_ids=ids, max_new_tokens=max_new_tokens, temperature=0, **extra)


def until(condition: Callable[[], bool], what: str, limit_s: float = 300) -> None:
    """Wait for ``condition``; ``limit_s`` only stops a hang, it is not a timing claim."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.005)


QUESTIONS = [("Where is Paris?", 24), ("Tell me about Oslo in winter.", 40), ("Lima?", 12)]


def test_rows_joining_at_different_steps_get_the_tokens_they_get_alone(model, engine) -> None:
    asks = [(prompt(model, q), n) for q, n in QUESTIONS]
    alone_engine = engine(max_batch=1, prefix_cache_mb=0)
    alone = [alone_engine.submit(request(ids, n)).result().text for ids, n in asks]

    together = engine(max_batch=4, prefix_cache_mb=0)
    futures = []
    for ids, n in asks:  # each joins once the rows before it have decoded a few tokens
        steps = together.stats.steps
        futures.append(together.submit(request(ids, n)))
        until(lambda s=steps: together.stats.steps >= s + 3, "decoding")
    assert [f.result().text for f in futures] == alone
    assert together.stats.peak_rows == 3, "the rows were never decoded together"
    assert together.stats.batches == 1, "a row waited for the others to finish"


def test_a_row_finishing_early_frees_its_slot_for_a_queued_request(model, engine) -> None:
    eng = engine(max_batch=2, prefix_cache_mb=0)
    long = eng.submit(request(prompt(model, "Numbers."), 60, json_schema=LONG))
    until(lambda: eng.running == 1, "the long row running")
    short = eng.submit(request(prompt(model, "Where is Rome?"), 3))
    queued = eng.submit(request(prompt(model, "Where is Lima?"), 3))
    assert queued.result().completion_tokens <= 3
    assert short.done() and not long.done(), "the queued request waited for the long row"
    assert long.result().completion_tokens == 60
    assert eng.stats.peak_rows == 2


def test_a_prefix_cache_hit_gives_the_tokens_a_miss_gives(model, engine) -> None:
    cached = engine(max_batch=2, prefix_cache_mb=64)
    cold = engine(max_batch=2, prefix_cache_mb=0)
    first, second = (prompt(model, q) for q in ("Where is Paris?", "Where is Oslo?"))
    cached.submit(request(first, 4)).result()
    hits = cached.prefix_cache.stats.hit_tokens
    warm = cached.submit(request(second, 30)).result().text
    shared = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    reused = cached.prefix_cache.stats.hit_tokens - hits
    assert 0 < reused <= shared, "the shared system prompt was recomputed"
    assert reused > shared - cached.prefix_cache.block_tokens
    assert warm == cold.submit(request(second, 30)).result().text
    assert cold.prefix_cache.stats.hit_tokens == 0


def test_prefix_cache_eviction_under_a_small_bound_keeps_answers_exact(model, engine) -> None:
    eng = engine(max_batch=1, prefix_cache_mb=5)  # three 32-token blocks of this model's keys
    cold = engine(max_batch=1, prefix_cache_mb=0)
    systems = [f"You answer questions about {city}. " * 8 for city in ("Oslo", "Rome", "Lima")]
    for system in systems:
        ids = prompt(model, "What is it known for?", system)
        for _ in range(2):  # a miss, then a hit unless evicted
            answer = eng.submit(request(ids, 8)).result().text
            assert answer == cold.submit(request(ids, 8)).result().text
    assert eng.prefix_cache.bytes <= eng.prefix_cache.max_bytes
    assert eng.prefix_cache.stats.evicted_blocks > 0
    assert eng.prefix_cache.stats.hit_tokens > 0


def test_per_row_settings_survive_continuous_batching(model, engine) -> None:
    eng = engine(max_batch=4)
    ids = prompt(model, "Write a list of three cities.")
    seeded = [
        GenerationRequest(prompt_ids=ids, max_new_tokens=20, temperature=1.0, top_p=0.9, seed=7)
        for _ in range(2)
    ]
    stopped = request(ids, 40, stop=["\n"])
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 12}},
        "required": ["city"],
        "additionalProperties": False,
    }
    constrained = request(prompt(model, "A city as JSON."), 40, json_schema=schema)
    futures = [eng.submit(r) for r in (*seeded, stopped, constrained)]
    a, b, stop, json_reply = (f.result() for f in futures)
    assert a.text == b.text, "one seed, one sample, whatever the batch"
    assert "\n" not in stop.text
    import json

    assert set(json.loads(json_reply.text)) == {"city"}


def test_a_cancelled_row_leaves_at_the_next_step_and_close_ends_the_thread(model, engine) -> None:
    eng = engine(max_batch=2, prefix_cache_mb=0)
    future = eng.submit(request(prompt(model, "Numbers."), 500, json_schema=LONG))
    until(lambda: eng.stats.steps > 3, "decoding")
    future.cancel()
    until(lambda: eng.running == 0, "the row left")
    assert eng.stats.rows_abandoned == 1 and eng.stats.tokens_abandoned > 3
    waiting = eng.submit(request(prompt(model, "Numbers."), 500, json_schema=LONG))
    until(lambda: eng.running == 1, "running again")
    eng.close()
    assert waiting.cancelled() and not eng.alive


def test_a_stop_string_spanning_tokens_cuts_the_text_where_it_begins(model) -> None:
    from llm.embedded.engine import stop_cut

    _, tokenizer = model
    text = "The flight to Oslo leaves at noon. Booking confirmed: ABC123. Anything else?"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    for stop, cut in (("ing conf", "The flight to Oslo leaves at noon. Book"), ("zzz", None)):
        found = None
        for end in range(1, len(ids) + 1):  # token by token, as decoding appends them
            found = stop_cut(tokenizer, ids[:end], [stop])
            if found is not None:
                break
        assert found == cut, stop


def test_the_next_turn_reuses_the_keys_of_the_last_prompt_and_its_reply(model, engine) -> None:
    _, tokenizer = model
    eng = engine(max_batch=1)
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Plan a weekend in Oslo."},
    ]
    first = prompt(model, "Plan a weekend in Oslo.")
    answer = eng.submit(request(first, 64)).result()
    messages += [
        {"role": "assistant", "content": answer.text},
        {"role": "user", "content": "Cheaper?"},
    ]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    second = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    hits = eng.prefix_cache.stats.hit_tokens
    eng.submit(request(second, 2)).result()
    reused = eng.prefix_cache.stats.hit_tokens - hits
    block = eng.prefix_cache.block_tokens
    assert answer.completion_tokens > block
    assert reused >= len(first) + answer.completion_tokens - 2 * block, "the reply was recomputed"
