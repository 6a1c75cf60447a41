"""KV caches of the embedded engine: the running batch's (:class:`SlotCache`) and the
shared prompt prefixes' (:class:`PrefixCache`).

:class:`SlotCache` holds the keys and values of every row being decoded in preallocated
buffers ``[max_batch, kv_heads, capacity, head_dim]`` per layer. The rows are aligned on
their last column: a decoding step writes every row's new token at one column ``end`` and
attends over the window ``[start, end]``, each row masked before its own first column.
A row joins by copying its prefilled keys into a free slot and leaves by moving the last
row into its slot, so neither rewrites the others; a step writes one column instead of
concatenating the whole cache (transformers' ``DynamicCache`` copies every layer's cache
each step, as much memory traffic as the model's weights at a few hundred tokens).

:class:`PrefixCache` keeps the keys and values of prompt prefixes in blocks of
``block_tokens`` tokens, each keyed by a digest of every token up to its end, so a block
is reused only after the same whole prefix. A prompt's blocks are kept when it is
prefilled, and its reply's when the row finishes (the next turn's prompt starts with
both). Least recently used blocks are evicted past a byte bound. Keys are computed with
the prefix's own positions (0, 1, ...), which any prompt that starts with it shares, so a
hit gives what recomputing would, up to float rounding for a reply's keys (computed a
token at a time in a batch, not in one prefill).
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

KV = list[tuple[torch.Tensor, torch.Tensor]]
"""One ``(keys, values)`` pair per layer, each ``[batch, kv_heads, tokens, head_dim]``."""


class _WindowLayer(CacheLayerMixin):
    """One layer's view of a :class:`SlotCache` for a decoding step: writes the new token's
    keys at the window's last column and returns the whole window."""

    is_sliding = False
    is_compileable = False

    def __init__(self, owner: SlotCache, index: int) -> None:
        super().__init__()
        self.owner, self.index = owner, index
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        pass

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        owner = self.owner
        keys, values = owner.keys[self.index], owner.values[self.index]
        rows, end = owner.rows, owner.end
        keys[:rows, :, end : end + 1] = key_states
        values[:rows, :, end : end + 1] = value_states
        return keys[:rows, :, owner.start : end + 1], values[:rows, :, owner.start : end + 1]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def get_seq_length(self) -> int:
        return self.owner.end - self.owner.start

    def get_max_length(self) -> int:
        return -1


class SlotCache:
    """The running batch's keys and values; see the module docstring for the layout."""

    def __init__(self, slots: int, capacity: int = 512) -> None:
        self.slots = slots
        self.capacity = self.initial_capacity = capacity
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.rows = 0
        self.start = 0
        self.end = 0
        self.first: list[int] = []
        """Each row's first column (its prompt's first token)."""
        self._cache: Cache | None = None

    def add(self, kv: KV) -> int:
        """Copy one row's prefilled keys (batch 1) into the next slot; returns the slot."""
        length = kv[0][0].shape[2]
        if not self.keys:
            self._allocate(kv, max(self.initial_capacity, _pow2(length + 1)))
        if self.rows == 0:
            self.start = self.end = 0
        if length > self.end:
            self._shift(length - self.end)
        if self.end + 1 > self.capacity:
            self._make_room()
        slot, first = self.rows, self.end - length
        for layer, (keys, values) in enumerate(kv):
            self.keys[layer][slot, :, first : self.end] = keys[0]
            self.values[layer][slot, :, first : self.end] = values[0]
        self.first.append(first)
        self.rows += 1
        self.start = min(self.start, first) if slot else first
        return slot

    def remove(self, slots: list[int]) -> list[int]:
        """Take rows out, moving the last rows into the freed slots; returns the new order
        as indices of the old rows (``order[i]`` is the old slot now at ``i``)."""
        order = list(range(self.rows))
        for slot in sorted(slots, reverse=True):
            last = len(order) - 1
            if slot != last:
                for buffer in (*self.keys, *self.values):
                    buffer[slot, :, self.start : self.end] = buffer[last, :, self.start : self.end]
                self.first[slot] = self.first[last]
                order[slot] = order[last]
            order.pop()
            self.first.pop()
        self.rows = len(order)
        self.start = min(self.first, default=self.end)
        if not self.rows and self.capacity > self.initial_capacity:
            # buffers grown for long prompts go with them (16 rows of 8,192 tokens: 6 GB)
            self.keys, self.values = [], []
            self.capacity = self.initial_capacity
        return order

    def row(self, slot: int) -> KV:
        """One row's keys and values (views: copy before the slot is reused)."""
        first = self.first[slot]
        return [
            (k[slot : slot + 1, :, first : self.end], v[slot : slot + 1, :, first : self.end])
            for k, v in zip(self.keys, self.values, strict=True)
        ]

    def step_mask(self) -> torch.Tensor:
        """The attention mask of one decoding step: row ``i`` sees ``[first[i], end]``."""
        columns = torch.arange(self.start, self.end + 1)
        first = torch.tensor(self.first, dtype=torch.long)
        return (columns[None, :] >= first[:, None]).long()

    def cache(self) -> Cache:
        """The transformers ``Cache`` a decoding step passes to the model; call :meth:`advance`
        after the step."""
        if self.end + 1 > self.capacity:
            self._make_room()
        if self._cache is None:
            self._cache = Cache(layers=[_WindowLayer(self, i) for i in range(len(self.keys))])
        return self._cache

    def advance(self) -> None:
        self.end += 1

    @property
    def width(self) -> int:
        return self.end - self.start

    # ------------------------------------------------------------------ room
    def _allocate(self, kv: KV, capacity: int) -> None:
        keys, values = kv[0]
        _, heads, _, dim = keys.shape
        self.capacity = capacity
        # zeros, not empty: masked columns are multiplied by 0 and must not hold NaN
        self.keys = [keys.new_zeros(self.slots, heads, capacity, dim) for _ in kv]
        self.values = [values.new_zeros(self.slots, heads, capacity, values.shape[3]) for _ in kv]

    def _shift(self, by: int) -> None:
        """Move the window ``by`` columns right (a prompt longer than the window joins)."""
        while self.end + by + 1 > self.capacity:
            self._grow()
        if self.rows:
            for buffer in (*self.keys, *self.values):
                window = buffer[: self.rows, :, self.start : self.end].clone()
                buffer[: self.rows, :, self.start + by : self.end + by] = window
        self.first = [f + by for f in self.first]
        self.start += by
        self.end += by

    def _make_room(self) -> None:
        """Before the window reaches the buffers' end: move it back to column 0 when a
        quarter of the buffers lies before it, else double them."""
        if self.start >= self.capacity // 4:
            by = self.start
            for buffer in (*self.keys, *self.values):
                window = buffer[: self.rows, :, self.start : self.end].clone()
                buffer[: self.rows, :, : self.end - by] = window
            self.first = [f - by for f in self.first]
            self.start, self.end = 0, self.end - by
        else:
            self._grow()

    def _grow(self) -> None:
        capacity = self.capacity * 2
        for buffers in (self.keys, self.values):
            for i, old in enumerate(buffers):
                new = old.new_zeros(old.shape[0], old.shape[1], capacity, old.shape[3])
                new[:, :, : self.capacity] = old
                buffers[i] = new
        self.capacity = capacity


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


@dataclass
class PrefixStats:
    lookups: int = 0
    prompt_tokens: int = 0
    hit_tokens: int = 0
    """Prompt tokens whose keys came from the cache instead of a forward pass."""
    evicted_blocks: int = 0

    @property
    def hit_rate(self) -> float:
        return self.hit_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


class PrefixCache:
    """Keys and values of prompt prefixes, in blocks, least recently used evicted first.

    ``max_bytes=0`` turns it off.
    """

    def __init__(self, max_bytes: int, block_tokens: int = 32) -> None:
        self.max_bytes = max_bytes
        self.block_tokens = block_tokens
        self.bytes = 0
        self.stats = PrefixStats()
        self._blocks: OrderedDict[bytes, KV] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def _digests(self, tokens: list[int]) -> list[bytes]:
        """One digest per whole block: of every token up to the block's end."""
        digests, running = [], hashlib.blake2b(digest_size=16)
        size = self.block_tokens
        for end in range(size, len(tokens) + 1, size):
            running.update(array("q", tokens[end - size : end]).tobytes())
            digests.append(running.copy().digest())
        return digests

    def lookup(self, tokens: list[int]) -> tuple[int, KV | None]:
        """The longest cached prefix of ``tokens`` that leaves at least one token to compute
        (the next token's logits need it): its length and keys, or ``(0, None)``."""
        self.stats.lookups += 1
        self.stats.prompt_tokens += len(tokens)
        if not self.max_bytes:
            return 0, None
        found: list[KV] = []
        for digest in self._digests(tokens[:-1]):
            block = self._blocks.get(digest)
            if block is None:
                break
            self._blocks.move_to_end(digest)
            found.append(block)
        if not found:
            return 0, None
        length = len(found) * self.block_tokens
        self.stats.hit_tokens += length
        kv = [
            (
                torch.cat([b[layer][0] for b in found], dim=2),
                torch.cat([b[layer][1] for b in found], dim=2),
            )
            for layer in range(len(found[0]))
        ]
        return length, kv

    def store(self, tokens: list[int], kv: KV, cached: int) -> None:
        """Keep the whole blocks of ``tokens`` (a prompt, or a prompt and its reply) from the
        ``cached``-th token on, those not held already."""
        if not self.max_bytes:
            return
        size = self.block_tokens
        for index, digest in enumerate(self._digests(tokens)):
            begin = index * size
            if begin < cached or digest in self._blocks:
                continue
            block = [
                (k[:, :, begin : begin + size].clone(), v[:, :, begin : begin + size].clone())
                for k, v in kv
            ]
            self._blocks[digest] = block
            self.bytes += _nbytes(block)
        while self.bytes > self.max_bytes and self._blocks:
            _, block = self._blocks.popitem(last=False)
            self.bytes -= _nbytes(block)
            self.stats.evicted_blocks += 1


def _nbytes(block: KV) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in block)
