"""Hierarchical domain evolution: seed categories → LLM-proposed domains → tools per domain.

Every answer goes through ``ChatClient.complete_json`` into the pydantic models below, is
validated as a ToolSpec, deduplicated against the repository (exact and near), and kept
with provenance (generator model, prompt hash, category/domain). Quotas bound domains per
category and tools per domain; each call gets its own seed derived from the run seed and
its place, so a rerun with a response cache is identical. Progress is saved after every
domain (repository and a state file beside it), so an interrupted run resumes where it
stopped without duplicates. One failed call loses only its own domain, reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from llm import ChatClient, LLMError, Message
from llm.yamlconf import TextFile, YamlConfigError, checking_files, load_yaml_model
from tool_registry.dedup import drop_near_duplicates
from tool_registry.repository import ToolRepository
from tool_registry.spec import Provenance, ToolSpec

log = logging.getLogger(__name__)
SEEDS = Path(__file__).resolve().parent / "seeds.yaml"
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "prompts"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
)


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""


class EvolveConfig(BaseModel):
    """`python -m tool_registry evolve --config FILE`."""

    model_config = ConfigDict(extra="forbid")

    seeds: TextFile = SEEDS
    """YAML file with ``categories: [{name, description}]``."""
    categories: int | None = Field(default=None, ge=1)
    """Use only the first N categories (None: all)."""
    domains_per_category: int = Field(default=3, ge=1, le=50)
    tools_per_domain: int = Field(default=5, ge=1, le=50)
    temperature: float = Field(default=0.9, ge=0, le=2)
    seed: int = 0
    """Run seed; each call's seed is derived from it and the call's place."""
    near_duplicates: bool = True
    """Reject proposals that near-duplicate a tool already in the repository."""
    max_tokens: int = Field(default=2048, ge=64)
    concurrency: int = Field(default=4, ge=1)
    """Domains generated at once."""

    @field_validator("seeds")
    @classmethod
    def _seeds_load(cls, seeds: Path, info: ValidationInfo) -> Path:
        if checking_files(info):
            try:
                load_yaml_model(seeds, Seeds)
            except YamlConfigError as exc:  # names the seeds file, line and field
                raise ValueError("; ".join(exc.problems)) from None
        return seeds


class Seeds(BaseModel):
    """The seeds file."""

    model_config = ConfigDict(extra="forbid")
    categories: list[Category] = Field(min_length=1)


class DomainIdea(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=2, max_length=60)
    description: str = Field(max_length=300)


class Parameter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,40}$")
    type: Literal["string", "integer", "number", "boolean", "array", "object"]
    description: str = Field(max_length=200)
    required: bool


class ToolIdea(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64)
    description: str = Field(max_length=500)
    side_effect: Literal["read", "write"]
    returns: str = Field(max_length=200)
    parameters: list[Parameter] = Field(max_length=8)


def domain_list_model(count: int) -> type[BaseModel]:
    class DomainList(BaseModel):
        model_config = ConfigDict(extra="forbid")
        domains: list[DomainIdea] = Field(min_length=1, max_length=count)

    return DomainList


def tool_list_model(count: int) -> type[BaseModel]:
    class ToolList(BaseModel):
        model_config = ConfigDict(extra="forbid")
        tools: list[ToolIdea] = Field(min_length=1, max_length=count)

    return ToolList


class EvolveReport(BaseModel):
    calls: int = 0
    proposed: int = 0
    added: int = 0
    rejected: dict[str, int] = Field(default_factory=dict)
    failed_domains: list[str] = Field(default_factory=list)
    skipped_domains: int = 0
    """Domains already done by an earlier, interrupted run."""


def load_categories(config: EvolveConfig) -> list[Category]:
    """The seed categories (the first ``config.categories``); ``YamlConfigError`` names the
    seeds file, line and field of a problem."""
    categories = load_yaml_model(config.seeds, Seeds).categories
    return categories[: config.categories] if config.categories else categories


def call_seed(run_seed: int, *place: str) -> int:
    digest = hashlib.sha256(json.dumps([run_seed, *place]).encode()).hexdigest()
    return int(digest[:8], 16)


def to_spec(
    idea: ToolIdea, category: Category, domain: DomainIdea, model: str, prompt: str
) -> ToolSpec:
    properties = {p.name: {"type": p.type, "description": p.description} for p in idea.parameters}
    required = [p.name for p in idea.parameters if p.required]
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return ToolSpec(
        name=idea.name,
        description=idea.description,
        parameters=schema,
        returns=idea.returns,
        side_effect=idea.side_effect,
        category=category.name,
        domain=domain.name,
        tags=("synthetic",),
        provenance=Provenance(
            source="synthetic",
            origin=f"{category.name}/{domain.name}",
            generator_model=model,
            prompt_hash=hashlib.sha256(prompt.encode()).hexdigest()[:16],
        ),
    )


class Evolution:
    """One evolution run over a repository file; ``run()`` may be called again to resume."""

    def __init__(
        self,
        config: EvolveConfig,
        client: ChatClient,
        registry: Path,
        *,
        on_domain: Callable[[str], None] | None = None,
    ) -> None:
        self.config, self.client, self.registry = config, client, Path(registry)
        self.state_path = self.registry.with_name(self.registry.name + ".evolve-state.json")
        self.repo = ToolRepository.load(self.registry)
        self.state: dict[str, Any] = (
            json.loads(self.state_path.read_text())
            if self.state_path.exists()
            else {"domains": {}, "done": []}
        )
        self.report = EvolveReport()
        self.on_domain = on_domain
        self._lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(config.concurrency)

    async def run(self) -> EvolveReport:
        categories = load_categories(self.config)
        # Task groups: if anything fails (or the run is interrupted) the siblings are
        # cancelled rather than left writing behind the caller's back.
        async with asyncio.TaskGroup() as group:
            plans = [group.create_task(self._domains(c)) for c in categories]
        jobs = [(c, d) for c, plan in zip(categories, plans, strict=True) for d in plan.result()]
        async with asyncio.TaskGroup() as group:
            for category, domain in jobs:
                group.create_task(self._tools(category, domain))
        return self.report

    async def _domains(self, category: Category) -> list[DomainIdea]:
        cached = self.state["domains"].get(category.name)
        if cached is not None:
            return [DomainIdea.model_validate(d) for d in cached]
        count = self.config.domains_per_category
        prompt = _env.get_template("domains.jinja").render(
            category=category, count=count, existing=[]
        )
        try:
            async with self._slots:
                answer = await self._ask(prompt, domain_list_model(count), category.name)
        except LLMError as exc:
            self.report.failed_domains.append(f"{category.name}: {exc}")
            return []
        ideas = list({d.name.lower(): d for d in answer.domains}.values())[:count]
        async with self._lock:
            self.state["domains"][category.name] = [d.model_dump() for d in ideas]
            self._save_state()
        return ideas

    async def _tools(self, category: Category, domain: DomainIdea) -> None:
        key = f"{category.name}/{domain.name}"
        if key in self.state["done"]:
            self.report.skipped_domains += 1
            return
        existing = sorted(s.name for s in self.repo.query(domain=domain.name))
        count = self.config.tools_per_domain
        prompt = _env.get_template("tools.jinja").render(
            category=category, domain=domain, count=count, existing=existing
        )
        try:
            async with self._slots:
                answer = await self._ask(prompt, tool_list_model(count), key)
        except LLMError as exc:
            self.report.failed_domains.append(f"{key}: {exc}")
            return
        rejected: Counter[str] = Counter()
        specs = []
        for idea in answer.tools[:count]:
            try:
                specs.append(to_spec(idea, category, domain, self.client.endpoint.model, prompt))
            except ValidationError as exc:
                rejected[f"invalid: {exc.errors()[0]['loc'][0]}"] += 1
        async with self._lock:
            self.report.proposed += len(answer.tools[:count])
            if self.config.near_duplicates:
                kept, dropped = await asyncio.to_thread(
                    drop_near_duplicates, specs, list(self.repo)
                )
                rejected["near duplicate"] += len(dropped)
            else:
                kept = specs
            result = self.repo.add(kept)
            rejected["exact duplicate"] += len(result.duplicates)
            self.report.added += len(result.added)
            for reason, n in rejected.items():
                if n:
                    self.report.rejected[reason] = self.report.rejected.get(reason, 0) + n
            self.repo.save(self.registry)
            self.state["done"].append(key)
            self._save_state()
        if self.on_domain:
            self.on_domain(key)

    async def _ask(self, prompt: str, model: type[BaseModel], place: str) -> Any:
        self.report.calls += 1
        return await self.client.complete_json(
            [Message(role="user", content=prompt)],
            model,
            temperature=self.config.temperature,
            seed=call_seed(self.config.seed, place),
            max_tokens=self.config.max_tokens,
        )

    def _save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.state_path)
