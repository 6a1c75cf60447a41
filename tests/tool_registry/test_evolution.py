"""Domain evolution against the scripted endpoint (deterministic) and the embedded one."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from llm import ChatClient
from llm.testing import ScriptedEndpoint
from tool_registry.evolution import Evolution, EvolveConfig
from tool_registry.repository import ToolRepository


def seeds(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.yaml"
    path.write_text(
        "categories:\n  - {name: travel, description: trips}\n"
        "  - {name: banking, description: money}\n"
    )
    return path


def planner(request: dict[str, Any]) -> str:
    """A scripted generator: two domains per category, three tools per domain (one invalid)."""
    prompt = request["messages"][-1]["content"]
    category = re.search(r"Category: (\w+)", prompt).group(1)
    if "application\ndomains" in prompt or "application domains" in prompt.split("\n")[1]:
        return json.dumps(
            {
                "domains": [
                    {"name": f"{category} alpha", "description": "first"},
                    {"name": f"{category} beta", "description": "second"},
                ]
            }
        )
    domain = re.search(r"Domain: (\w+ \w+)", prompt).group(1).replace(" ", "_")
    tool = lambda name, side: {  # noqa: E731
        "name": name,
        "description": f"{name} in {domain}",
        "side_effect": side,
        "returns": "ok",
        "parameters": [
            {"name": "item_id", "type": "string", "description": "id", "required": True}
        ],
    }
    return json.dumps(
        {
            "tools": [
                tool(f"get_{domain}", "read"),
                tool(f"cancel_{domain}", "write"),
                tool("bad name!", "read"),
            ]
        }
    )


def config(tmp_path: Path, **extra: Any) -> EvolveConfig:
    return EvolveConfig(
        seeds=seeds(tmp_path),
        domains_per_category=2,
        tools_per_domain=3,
        near_duplicates=False,
        **extra,
    )


async def test_evolution_adds_valid_tools_with_provenance(tmp_path: Path) -> None:
    registry = tmp_path / "tools.jsonl"
    async with ScriptedEndpoint(planner, model="gen-1") as server:
        async with ChatClient(server.endpoint()) as client:
            report = await Evolution(config(tmp_path), client, registry).run()
    repo = ToolRepository.load(registry)
    assert report.calls == 6 and report.proposed == 12 and report.added == 8
    assert report.rejected == {"invalid: name": 4}
    tool = repo.by_name("get_travel_alpha")
    assert tool is not None and tool.category == "travel" and tool.domain == "travel alpha"
    assert tool.provenance.generator_model == "gen-1" and tool.provenance.prompt_hash
    assert repo.by_name("cancel_banking_beta").side_effect == "write"
    seeds_used = {r["seed"] for r in server.requests}
    assert len(seeds_used) == 6  # one seed per call, derived from its place


async def test_an_interrupted_run_resumes_without_duplicates_or_losses(tmp_path: Path) -> None:
    registry = tmp_path / "tools.jsonl"

    class Stop(Exception):
        pass

    def stop_after_first(domain: str) -> None:
        raise Stop(domain)

    async with ScriptedEndpoint(planner) as server:
        async with ChatClient(server.endpoint()) as client:
            with pytest.raises(ExceptionGroup) as stopped:
                await Evolution(
                    config(tmp_path, concurrency=1), client, registry, on_domain=stop_after_first
                ).run()
            assert stopped.group_contains(Stop)
            done_before = len(ToolRepository.load(registry))
            report = await Evolution(config(tmp_path), client, registry).run()
    repo = ToolRepository.load(registry)
    assert done_before == 2 and len(repo) == 8
    assert report.skipped_domains >= 1
    # Domains are remembered and done domains are not asked again.
    assert report.calls == 4 - report.skipped_domains
    assert len({s.name for s in repo}) == len(repo) == 8


def test_the_shipped_seeds_have_at_least_30_categories() -> None:
    from tool_registry.evolution import load_categories

    categories = load_categories(EvolveConfig())
    assert len(categories) >= 30 and all(c.description for c in categories)


async def test_a_failing_call_loses_only_its_domain(tmp_path: Path) -> None:
    def flaky(request: dict[str, Any]) -> str:
        return (
            "not json" if "banking beta" in request["messages"][-1]["content"] else planner(request)
        )

    async with ScriptedEndpoint(flaky) as server:
        async with ChatClient(server.endpoint(max_retries=0)) as client:
            report = await Evolution(config(tmp_path), client, tmp_path / "t.jsonl").run()
    assert report.added == 6 and len(report.failed_domains) == 1
    assert report.failed_domains[0].startswith("banking/banking beta")


@pytest.mark.integration
@pytest.mark.slow
async def test_a_short_run_on_the_embedded_endpoint(tmp_path: Path, embedded_server) -> None:
    cfg = EvolveConfig(categories=1, domains_per_category=1, tools_per_domain=2, max_tokens=600)
    async with ChatClient(embedded_server.endpoint()) as client:
        report = await asyncio.wait_for(Evolution(cfg, client, tmp_path / "t.jsonl").run(), 600)
    assert report.calls == 2 and not report.failed_domains
    assert report.added + sum(report.rejected.values()) == report.proposed >= 1
