"""The scripted endpoint's own knobs (its replies and faults are exercised through the
client in test_client.py)."""

from __future__ import annotations

import pytest

from llm.testing import Faults, ScriptedEndpoint


def test_latency_spread_draws_uneven_latencies_around_the_mean() -> None:
    server = ScriptedEndpoint(latency_s=1.0, latency_spread=0.5, faults=Faults(seed=3))
    draws = [server.draw_latency() for _ in range(2000)]
    assert all(0.5 <= d <= 1.5 for d in draws)
    assert max(draws) - min(draws) > 0.9  # spread, not one value
    assert sum(draws) / len(draws) == pytest.approx(1.0, abs=0.03)
    again = ScriptedEndpoint(latency_s=1.0, latency_spread=0.5, faults=Faults(seed=3))
    assert [again.draw_latency() for _ in range(20)] == draws[:20]  # seeded


def test_no_spread_is_the_fixed_latency_and_a_bad_spread_is_refused() -> None:
    assert ScriptedEndpoint(latency_s=0.2).draw_latency() == 0.2
    with pytest.raises(ValueError, match="latency_spread"):
        ScriptedEndpoint(latency_s=0.2, latency_spread=1.5)
