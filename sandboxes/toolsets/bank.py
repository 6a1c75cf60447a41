"""A bank ledger: accounts with balances and daily transfer limits."""

from __future__ import annotations

import random
from typing import Any

from pydantic import Field

from sandboxes.base import ToolFailure
from sandboxes.executable import ToolSet, tool


class BankLedger(ToolSet):
    @classmethod
    def default_state(cls) -> dict[str, Any]:
        return {"accounts": {}, "transfers": []}

    @classmethod
    def sample_state(cls, rng: random.Random) -> dict[str, Any]:
        """Three of five accounts with random balances, nothing sent yet."""
        names = rng.sample(["checking-1", "savings-2", "rent-3", "travel-4", "joint-5"], 3)
        accounts = {
            name: {
                "balance": float(rng.randrange(100, 3000, 50)),
                "daily_limit": float(rng.choice([500, 1000, 2000])),
                "sent_today": 0.0,
            }
            for name in names
        }
        return {"accounts": accounts, "transfers": []}

    def _account(self, account: str) -> dict[str, Any]:
        found = self.data["accounts"].get(account)
        if found is None:
            raise ToolFailure(f"no account {account!r}")
        return found

    @tool()
    def get_balance(self, account: str) -> dict[str, Any]:
        """Balance, daily limit and what was sent today, for one account.

        Args:
            account: Account id, e.g. checking-1.
        """
        acc = self._account(account)
        return {
            "account": account,
            "balance": acc["balance"],
            "daily_limit": acc["daily_limit"],
            "sent_today": acc.get("sent_today", 0.0),
        }

    @tool("write")
    def transfer(
        self, source: str, destination: str, amount: float = Field(gt=0)
    ) -> dict[str, Any]:
        """Move money between accounts; fails on insufficient funds or over the daily limit.

        Args:
            source: Account to debit.
            destination: Account to credit.
            amount: Amount, more than zero.
        """
        if source == destination:
            raise ToolFailure("source and destination are the same account")
        src, dst = self._account(source), self._account(destination)
        if src["balance"] < amount:
            raise ToolFailure(f"insufficient funds: {source} has {src['balance']:.2f}")
        sent = src.get("sent_today", 0.0)
        if sent + amount > src["daily_limit"]:
            raise ToolFailure(
                f"daily limit {src['daily_limit']:.2f} would be exceeded (sent {sent:.2f})"
            )
        src["balance"] = round(src["balance"] - amount, 2)
        dst["balance"] = round(dst["balance"] + amount, 2)
        src["sent_today"] = round(sent + amount, 2)
        record = {
            "id": f"tx-{len(self.data['transfers']) + 1}",
            "source": source,
            "destination": destination,
            "amount": amount,
        }
        self.data["transfers"].append(record)
        return record

    @tool()
    def list_transfers(self, account: str) -> list[dict[str, Any]]:
        """Transfers from or to an account, oldest first.

        Args:
            account: Account id.
        """
        self._account(account)
        return [t for t in self.data["transfers"] if account in (t["source"], t["destination"])]
