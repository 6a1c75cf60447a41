"""The tools stage: the repository (optionally evolved), tool sets, MCP servers, code.

Loads the configured repository, grows it by hierarchical domain evolution when
``tools.evolve`` is set (resumable: evolution keeps its own state file beside
``OUT/tools.jsonl``), lists the tools of each configured MCP server, and adds the
executable tool sets and the ``run_python`` tool. The result is saved as
``OUT/tools.jsonl`` so the run records exactly which tools its agents could use.
"""

from __future__ import annotations

import logging
from pathlib import Path

from llm import ChatClient
from sandboxes.executable import ToolSet
from sandboxes.mcp_env import list_server_tools
from sandboxes.toolsets import load_toolset
from synth.agents import ToolSource
from synth.config import SynthConfig
from synth.errors import TaskError
from tool_registry import ToolRepository, ToolSpec
from tool_registry.evolution import Evolution

log = logging.getLogger(__name__)


async def build_tools(config: SynthConfig, out: Path, generator: ChatClient | None) -> ToolSource:
    registry = out / "tools.jsonl"
    if not registry.exists():
        if config.tools.repository and not Path(config.tools.repository).exists():
            raise TaskError(f"tools.repository: no such file: {config.tools.repository}")
        base = ToolRepository.load(config.tools.repository) if config.tools.repository else None
        for problem in base.problems if base else []:
            log.warning("tools.repository: skipped %s", problem)
        (base or ToolRepository()).save(registry)
    if config.tools.evolve is not None:
        if generator is None:
            raise TaskError("tools.evolve needs the generator endpoint")
        report = await Evolution(config.tools.evolve, generator, registry).run()
        log.info("evolution: %s", report.model_dump())
    repository = ToolRepository.load(registry)
    mcp: dict[str, tuple[list[str], list[ToolSpec]]] = {}
    if config.environment_mix.mcp > 0:
        for server in config.tools.mcp_servers:
            try:
                specs = await list_server_tools(server)
            except Exception as exc:
                raise TaskError(f"MCP server {server.name!r} failed: {exc}") from exc
            mcp[server.name] = (server.command, specs)
    toolsets: dict[str, list[ToolSpec]] = {}
    if config.environment_mix.executable > 0:
        toolsets = {name: _specs(load_toolset(name), name) for name in config.tools.toolsets}
    code: list[ToolSpec] = []
    repository_tools: list[ToolSpec] = []
    if config.environment_mix.docker > 0:
        from sandboxes.code_env import RUN_PYTHON

        code = [RUN_PYTHON]
        if config.tasks.repositories.projects:
            from sandboxes.swe import SWE_TOOLS

            repository_tools = list(SWE_TOOLS)
    return ToolSource(
        repository=repository,
        toolsets=toolsets,
        mcp=mcp,
        code_tools=code,
        repository_tools=repository_tools,
    )


def _specs(cls: type[ToolSet], name: str) -> list[ToolSpec]:
    """The set's tools, in the domain of its name (a class named by import path: the
    class's name, ``mypkg.tools:Inventory`` → ``inventory``)."""
    domain = name.rpartition(":")[2].lower()
    return [s.model_copy(update={"category": "executable", "domain": domain}) for s in cls.specs()]
