"""Shared fixtures: the embedded endpoint is started once per session (it loads a model)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[object]:
    from llm.embedded import EmbeddedServer

    with EmbeddedServer(max_batch=8) as server:
        yield server
