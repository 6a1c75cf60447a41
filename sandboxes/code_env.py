"""An environment whose tools run Python or a shell command in the Docker sandbox: for
coding tasks.

The agent calls ``run_python(code)`` to try its code, or ``run_shell(command)`` (``sh -c``)
to look around; each call runs in a fresh work directory of a warm container (nothing
persists between calls but the code the agent sends again). A program that runs past the
limits is the agent's business (its result says ``timed_out``); a container that gives no
answer at all raises :class:`~sandboxes.base.SandboxError`: the episode failed, not the
agent. The state records the last code run, so the final answer can be checked
against the task's tests with :func:`sandboxes.code.run_python_tests`. The sandbox is
shared (it is a pool) and owned by the caller; ``close`` does not stop it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sandboxes.base import Environment, SandboxError, ToolFailure
from sandboxes.docker import DockerSandbox
from tool_registry import Provenance, ToolSpec

RUN_PYTHON = ToolSpec(
    name="run_python",
    description="Run a Python 3 program in an isolated sandbox (no network) and return its "
    "exit code, stdout and stderr.",
    parameters={
        "type": "object",
        "properties": {"code": {"type": "string", "description": "The whole program."}},
        "required": ["code"],
    },
    side_effect="write",
    category="code",
    domain="python",
    provenance=Provenance(source="python", origin="sandboxes.code_env"),
)
RUN_SHELL = ToolSpec(
    name="run_shell",
    description="Run a shell command (sh -c) in the same kind of isolated sandbox (no "
    "network, a fresh empty work directory) and return its exit code, stdout and stderr.",
    parameters={
        "type": "object",
        "properties": {"command": {"type": "string", "description": "The command line."}},
        "required": ["command"],
    },
    side_effect="write",
    category="code",
    domain="shell",
    provenance=Provenance(source="python", origin="sandboxes.code_env"),
)
NO_ANSWER = "sandbox: the container's agent gave no answer"
"""How :class:`~sandboxes.docker.DockerSandbox` starts the stderr of a run it lost."""


class CodeEnvironment(Environment):
    def __init__(self, box: DockerSandbox) -> None:
        super().__init__([RUN_PYTHON, RUN_SHELL])
        self.box = box
        self._state: dict[str, Any] = {"runs": 0, "last_code": None}

    async def _reset(self, task: dict[str, Any]) -> str:
        self._state = {"runs": 0, "last_code": None}
        return "run_python and run_shell are ready (Python 3, no network)"

    async def _invoke(self, name: str, arguments: dict[str, Any]) -> str:
        if name == "run_shell":
            command = str(arguments["command"])
            if not command.strip():
                raise ToolFailure("command is empty")
            result = await asyncio.to_thread(self.box.run, {}, command)
        else:
            code = str(arguments["code"])
            if not code.strip():
                raise ToolFailure("code is empty")
            result = await asyncio.to_thread(
                self.box.run, {"main.py": code}, ["python3", "main.py"]
            )
            self._state = {"runs": self._state["runs"] + 1, "last_code": code}
        if result.stderr.startswith(NO_ANSWER):
            raise SandboxError(f"the sandbox gave no answer to {name} ({result.duration_s:.0f}s)")
        return json.dumps(
            {
                "exit_code": result.exit_code,
                "stdout": result.stdout,
                "stderr": result.stderr,
                "timed_out": result.timed_out,
            }
        )

    async def _snapshot(self) -> dict[str, Any]:
        return dict(self._state)
