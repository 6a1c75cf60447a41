"""Shared fixtures: the embedded endpoint is started once per session (it loads a model)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[object]:
    from llm.embedded import EmbeddedServer

    with EmbeddedServer(max_batch=8) as server:
        yield server


@pytest.fixture(scope="session")
def sandbox_image() -> str:
    """The sandbox image, built on first use (~1 min); skipped with the reason where no
    Docker engine runs, failing instead when CI=true (CI must exercise it)."""
    import os

    from sandboxes.base import SandboxError

    try:
        from sandboxes.docker import ensure_image

        image = ensure_image()
    except SandboxError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Docker sandbox unavailable in CI: {exc}")
        pytest.skip(f"no Docker sandbox here: {exc}")
    return image


@pytest.fixture(scope="session")
def docker_sandbox(sandbox_image: str) -> Iterator[object]:
    """A small warm pool of the hardened sandbox, shared by the session."""
    from sandboxes.docker import DockerSandbox, Limits

    with DockerSandbox(sandbox_image, pool_size=2, limits=Limits(timeout_s=5.0)) as box:
        yield box
