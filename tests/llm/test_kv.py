"""The engine's KV caches on small made-up tensors: the running batch's slots keep every
row's keys where its mask says they are through joins, departures, shifts and growth;
the prefix cache reuses whole prefixes only, and evicts the least recently used blocks
past its bound."""

from __future__ import annotations

import torch

from llm.embedded.kv import KV, PrefixCache, SlotCache

LAYERS, HEADS, DIM = 2, 1, 2


def prompt_kv(row: int, length: int) -> KV:
    """Keys that say which row and column they belong to: value ``row * 1000 + column``."""
    column = torch.arange(length, dtype=torch.float32) + row * 1000
    keys = column.view(1, 1, length, 1).expand(1, HEADS, length, DIM).clone()
    return [(keys + layer, -(keys + layer)) for layer in range(LAYERS)]


def step(slots: SlotCache, rows: list[int], written: dict[int, list[float]]) -> None:
    """One decoding step: every row writes a token key of its own through the cache, as
    the model's attention layers do."""
    cache = slots.cache()
    new = torch.tensor([row * 1000 + 500 + len(written[row]) for row in rows], dtype=torch.float32)
    states = new.view(-1, 1, 1, 1).expand(len(rows), HEADS, 1, DIM)
    for layer in range(LAYERS):
        cache.layers[layer].update(states + layer, -(states + layer))
    slots.advance()
    for row, value in zip(rows, new.tolist(), strict=True):
        written[row].append(value)


def assert_rows_hold(slots: SlotCache, rows: list[int], lengths: dict[int, int], written) -> None:
    mask = slots.step_mask()[:, :-1].bool()  # without the next step's column
    assert mask.shape == (len(rows), slots.width)
    for i, row in enumerate(rows):
        expected = [row * 1000 + c for c in range(lengths[row])] + written[row]
        for layer in range(LAYERS):
            window = slots.keys[layer][i, 0, slots.start : slots.end, 0]
            assert (window[mask[i]] - layer).tolist() == expected, (row, layer)
            assert mask[i].sum() == len(expected)
            values = slots.values[layer][i, 0, slots.start : slots.end, 0]
            assert (-values[mask[i]] - layer).tolist() == expected


def test_rows_joining_leaving_and_outgrowing_the_buffers_keep_their_keys() -> None:
    slots = SlotCache(slots=4, capacity=8)
    lengths = {0: 3, 1: 6, 2: 2, 3: 9, 4: 4}
    written: dict[int, list[float]] = {r: [] for r in lengths}
    rows: list[int] = []
    for row in (0, 1):
        slots.add(prompt_kv(row, lengths[row]))
        rows.append(row)
    step(slots, rows, written)
    slots.add(prompt_kv(2, lengths[2]))  # a shorter prompt joins a wider window
    rows.append(2)
    for _ in range(3):
        step(slots, rows, written)
    assert_rows_hold(slots, rows, lengths, written)
    order = slots.remove([0])  # the first row leaves; the last takes its slot
    rows = [rows[i] for i in order]
    assert rows == [2, 1]
    assert_rows_hold(slots, rows, lengths, written)
    slots.add(prompt_kv(3, lengths[3]))  # a prompt longer than the window shifts it
    rows.append(3)
    assert_rows_hold(slots, rows, lengths, written)
    for _ in range(20):  # past the initial capacity: the buffers grow or the window moves
        step(slots, rows, written)
    assert slots.capacity > 8
    assert_rows_hold(slots, rows, lengths, written)
    order = slots.remove([0, 2])
    rows = [rows[i] for i in order]
    slots.add(prompt_kv(4, lengths[4]))
    rows.append(4)
    step(slots, rows, written)
    assert_rows_hold(slots, rows, lengths, written)
    assert slots.start == min(slots.first)


def test_a_window_that_drifts_right_moves_back_instead_of_growing_forever() -> None:
    slots = SlotCache(slots=2, capacity=16)
    lengths = {0: 2, 1: 2}
    written: dict[int, list[float]] = {0: [], 1: []}
    slots.add(prompt_kv(0, 2))
    rows = [0]
    for _ in range(200):  # rows come and go; the batch is never empty
        row = 1 - rows[0]
        lengths[row], written[row] = 2, []
        slots.add(prompt_kv(row, 2))
        rows.append(row)
        step(slots, rows, written)
        assert_rows_hold(slots, rows, lengths, written)
        rows = [rows[i] for i in slots.remove([0])]
        assert_rows_hold(slots, rows, lengths, written)
    assert slots.capacity == 16, "the buffers grew although the window never got wider"


def blocks(tokens: list[int]) -> KV:
    keys = torch.tensor(tokens, dtype=torch.float32).view(1, 1, -1, 1)
    return [(keys, keys * 2)]


def test_the_longest_cached_prefix_is_reused_and_never_the_last_token() -> None:
    cache = PrefixCache(max_bytes=10**6, block_tokens=4)
    prompt = list(range(10))
    assert cache.lookup(prompt) == (0, None)
    cache.store(prompt, blocks(prompt), cached=0)
    assert len(cache) == 2  # whole blocks only: tokens 0-3 and 4-7
    length, kv = cache.lookup([*range(8), 99, 98])
    assert length == 8 and kv is not None
    assert kv[0][0].flatten().tolist() == list(range(8))
    assert kv[0][1].flatten().tolist() == [2.0 * t for t in range(8)]
    # a prompt that is exactly the cached blocks keeps its last token to compute
    assert cache.lookup(list(range(8)))[0] == 4
    assert cache.stats.hit_tokens == 12


def test_a_block_is_reused_only_after_the_same_whole_prefix() -> None:
    cache = PrefixCache(max_bytes=10**6, block_tokens=4)
    cache.store([1, 2, 3, 4, 5, 6, 7, 8, 9], blocks([1, 2, 3, 4, 5, 6, 7, 8, 9]), cached=0)
    # the second block's tokens after a different first block: not the same keys
    assert cache.lookup([0, 2, 3, 4, 5, 6, 7, 8, 9])[0] == 0
    assert cache.lookup([1, 2, 3, 4, 0, 6, 7, 8, 9])[0] == 4


def test_least_recently_used_blocks_are_evicted_past_the_bound() -> None:
    one_block = 4 * 4 * 2  # 4 float32 keys + 4 values
    cache = PrefixCache(max_bytes=3 * one_block, block_tokens=4)
    a, b = [1] * 4 + [9], [2] * 4 + [9]
    cache.store(a, blocks(a), cached=0)
    cache.store(b, blocks(b), cached=0)
    assert cache.lookup(a)[0] == 4  # a is now the more recently used
    c = [3] * 8 + [9]
    cache.store(c, blocks(c), cached=0)  # two more blocks: one must go, the least recent
    assert cache.bytes <= cache.max_bytes and len(cache) == 3
    assert cache.stats.evicted_blocks == 1
    assert cache.lookup(b)[0] == 0
    assert cache.lookup(a)[0] == 4 and cache.lookup(c)[0] == 8


def test_a_zero_bound_turns_the_cache_off() -> None:
    cache = PrefixCache(max_bytes=0, block_tokens=4)
    prompt = list(range(9))
    cache.store(prompt, blocks(prompt), cached=0)
    assert len(cache) == 0 and cache.lookup(prompt) == (0, None)


def test_buffers_grown_for_long_prompts_are_freed_when_the_batch_empties() -> None:
    slots = SlotCache(slots=2, capacity=8)
    slots.add(prompt_kv(0, 40))
    assert slots.capacity >= 41
    slots.remove([0])
    assert slots.capacity == 8 and not slots.keys
    slots.add(prompt_kv(1, 3))  # and the next row gets fresh, small ones
    assert slots.capacity == 8 and slots.keys[0].shape[2] == 8
    assert_rows_hold(slots, [1], {1: 3}, {1: []})
