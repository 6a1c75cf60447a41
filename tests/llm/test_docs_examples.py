"""The examples in docs/llm.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "llm.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)


async def test_scripted_endpoint_example_passes() -> None:
    (block,) = [b for b in python_blocks() if "async def test_" in b]
    namespace: dict[str, object] = {}
    exec(compile(block, str(DOC), "exec"), namespace)
    test = namespace["test_agent_survives_a_flaky_endpoint"]
    await test()  # type: ignore[operator]
