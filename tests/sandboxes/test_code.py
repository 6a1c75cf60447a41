"""Code extraction and the run_python environment against the real Docker sandbox."""

from __future__ import annotations

import json

import pytest

from llm import FunctionCall, ToolCall
from sandboxes.code import extract_code, program_with_tests, run_python_tests


def test_extract_code_prefers_the_longest_python_fence() -> None:
    text = (
        "Here:\n```bash\npip install x\n```\n"
        "```python\ndef f():\n    return 1\n```\nand ```py\nx=1\n```"
    )
    assert extract_code(text) == "def f():\n    return 1"


def test_extract_code_reads_an_unterminated_fence_and_plain_code() -> None:
    assert extract_code("```python\ndef g(): return 2\n") == "def g(): return 2"
    assert extract_code("def h():\n    return 3\n") == "def h():\n    return 3"
    assert extract_code("") == ""


def test_program_with_tests_calls_check_and_runs_unittest() -> None:
    assert program_with_tests("def f(): ...", "def check(c):\n    assert c()", "f").endswith(
        "check(f)\n"
    )
    program = program_with_tests("x = 1", "import unittest\nclass T(unittest.TestCase): pass")
    assert "unittest.main(exit=False)" in program


@pytest.mark.integration
@pytest.mark.parametrize(
    ("solution", "tests", "passes"),
    [
        ("def add(a, b):\n    return a + b", "assert add(2, 3) == 5", True),
        ("def add(a, b):\n    return a - b", "assert add(2, 3) == 5", False),
        (
            "def add(a, b):\n    return a + b",
            "def check(candidate):\n    assert candidate(1, 1) == 2",
            True,
        ),
        (
            "def add(a, b):\n    return a + b",
            "import unittest\nclass T(unittest.TestCase):\n"
            "    def test_add(self):\n        self.assertEqual(add(1, 2), 4)",
            False,
        ),
        (
            "def add(a, b):\n    return a + b",
            "import unittest\nclass Empty(unittest.TestCase):\n    pass",
            False,
        ),
    ],
)
def test_run_python_tests_passes_only_working_code(docker_sandbox, solution, tests, passes) -> None:
    assert run_python_tests(docker_sandbox, solution, tests, "add").ok is passes


@pytest.mark.integration
async def test_code_environment_runs_code_and_records_it(docker_sandbox) -> None:
    from sandboxes.code_env import CodeEnvironment

    env = CodeEnvironment(docker_sandbox)
    await env.reset({})
    call = ToolCall(
        id="c1",
        function=FunctionCall(name="run_python", arguments=json.dumps({"code": "print(6*7)"})),
    )
    reply = await env.call(call)
    assert json.loads(reply.content)["stdout"] == "42\n"
    assert (await env.state()) == {"runs": 1, "last_code": "print(6*7)"}
    bad = await env.call(
        ToolCall(id="c2", function=FunctionCall(name="run_python", arguments="{}"))
    )
    assert bad.content.startswith("error: invalid arguments")
