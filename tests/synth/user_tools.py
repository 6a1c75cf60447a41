"""A user's own tool sets, named by import path in the blueprint tests
(``user_tools:Inventory``), and classes a config must refuse."""

from __future__ import annotations

import random
from typing import Any

from sandboxes.base import ToolFailure
from sandboxes.executable import ToolSet, tool


class Inventory(ToolSet):
    """A stock list: items by SKU with a quantity."""

    @classmethod
    def default_state(cls) -> dict[str, Any]:
        return {"items": {}}

    @classmethod
    def sample_state(cls, rng: random.Random) -> dict[str, Any]:
        skus = rng.sample(["A-100", "B-200", "C-300", "D-400"], 2)
        return {"items": {sku: {"quantity": rng.randint(1, 9)} for sku in skus}}

    @tool()
    def get_item(self, sku: str) -> dict[str, Any]:
        """One item's quantity.

        Args:
            sku: The item's SKU, e.g. A-100.
        """
        item = self.data["items"].get(sku)
        if item is None:
            raise ToolFailure(f"no item {sku!r}")
        return {"sku": sku, **item}

    @tool("write")
    def restock(self, sku: str, quantity: int) -> dict[str, Any]:
        """Add units of an item (a new SKU starts at zero).

        Args:
            sku: The item's SKU.
            quantity: Units to add, at least 1.
        """
        if quantity < 1:
            raise ToolFailure("quantity must be at least 1")
        item = self.data["items"].setdefault(sku, {"quantity": 0})
        item["quantity"] += quantity
        return {"sku": sku, **item}


class NotATool:
    """Not a ToolSet."""


class Untyped(ToolSet):
    @tool("write")
    def restock(self, sku, quantity: int) -> str:  # type: ignore[no-untyped-def]
        return f"{sku}: {quantity}"


class Toolless(ToolSet):
    def helper(self, sku: str) -> str:
        return sku
