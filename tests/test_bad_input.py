"""Bad input through every CLI: exit 2, one error line naming the file (and line and
field where there is one), and nothing started.

One test per class of bad input, each run across every command the class applies to.
The commands run in this process through typer's CliRunner, with what starts work (a
synthesis job, training, evaluation, the embedded model, Ray, Docker) replaced by
recorders: a test fails if any of them is reached. MCP servers are real processes.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from click.testing import Result
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
BAD_SERVERS = ROOT / "tests" / "tool_registry" / "fixtures" / "bad_servers.py"
STARTERS = (
    "synth.pipeline",
    "rl.trainer",
    "rl.evaluate",
    "rl.sft",
    "rl.rejection",
    "rl.recipe",
    "llm.embedded.server",
    "llm.embedded.servers",
    "llm.embedded.engine",
    "ray",
    "sandboxes.docker",
)
TOOL = {"type": "function", "function": {"name": "ok", "parameters": {"type": "object"}}}


class Run(NamedTuple):
    """One command line: which CLI, its arguments, its environment, and what its error
    line must name (default: the bad file; a config's file:line and field where the bad
    file is named inside a config)."""

    cli: str
    args: list[str]
    env: dict[str, str]
    names: tuple[str, ...] = ()


Command = Callable[[Path, Path], Run]  # (scratch folder, the bad file) -> Run


class _Recorder(types.ModuleType):
    """Stands in for a module that starts work; calling anything in it is recorded."""

    def __init__(self, name: str, started: list[str]) -> None:
        super().__init__(name)
        self._started = started

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)

        def start(*args: Any, **kwargs: Any) -> Any:
            self._started.append(f"{self.__name__}.{attr}")
            raise RuntimeError(f"{self.__name__}.{attr} started on bad input")

        return start


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    calls: list[str] = []
    for name in STARTERS:
        monkeypatch.setitem(sys.modules, name, _Recorder(name, calls))
    monkeypatch.delenv("SUMMIT_EMBEDDED_URL", raising=False)
    monkeypatch.delenv("SUMMIT_ENDPOINTS", raising=False)
    yield calls


def invoke(run: Run) -> Result:
    app = importlib.import_module(f"{run.cli}.__main__").app
    return CliRunner().invoke(app, run.args, env=run.env)


def assert_refused(run: Run, started: list[str], bad: Path, *words: str) -> None:
    """Exit 2, one line on stderr naming the file (and field) with ``words``, nothing run."""
    result = invoke(run)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert len(lines) == 1, result.stderr
    for word in (*(run.names or (str(bad),)), *words):
        assert word in lines[0], lines[0]
    assert started == []


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


RL = "name: t\noutput_dir: {tmp}/run\ngyms:\n  - gym: math\n    options: {{count: 4}}\n"


# ---------------------------------------------------------- commands that read one file
def synth_run(tmp: Path, bad: Path) -> Run:
    return Run("synth", ["run", str(bad), "--output-dir", str(tmp / "out")], {})


def rl_train(tmp: Path, bad: Path) -> Run:
    return Run("rl", ["train", str(bad)], {})


def rl_eval(tmp: Path, bad: Path) -> Run:
    return Run("rl", ["eval", str(bad), "--checkpoint", str(tmp)], {})


def rl_sft(tmp: Path, bad: Path) -> Run:
    return Run("rl", ["sft", str(bad)], {})


def rl_sample(tmp: Path, bad: Path) -> Run:
    return Run("rl", ["sample", str(bad)], {})


def rl_recipe(tmp: Path, bad: Path) -> Run:
    return Run("rl", ["recipe", str(bad)], {})


def evolve(tmp: Path, bad: Path) -> Run:
    return Run("tool_registry", ["evolve", "--config", str(bad), "--registry", str(tmp / "t")], {})


def rubrics_validate(tmp: Path, bad: Path) -> Run:
    return Run("rubrics", ["validate", str(bad)], {})


def rubrics_render(tmp: Path, bad: Path) -> Run:
    return Run("rubrics", ["render", "core", "--rubrics", str(bad)], {})


def rubrics_test(tmp: Path, bad: Path) -> Run:
    return Run("rubrics", ["test", str(bad)], {})


def llm_endpoints(tmp: Path, bad: Path) -> Run:
    return Run("llm", ["endpoints"], {"SUMMIT_ENDPOINTS": str(bad)})


def llm_demo_presets(tmp: Path, bad: Path) -> Run:
    return Run("llm", ["demo", "--endpoint", "vllm"], {"SUMMIT_ENDPOINTS": str(bad)})


def synth_presets(tmp: Path, bad: Path) -> Run:
    config = write(tmp, "synth.yaml", "name: t\n")
    return Run("synth", ["run", str(config)], {"SUMMIT_ENDPOINTS": str(bad)})


def rl_presets(tmp: Path, bad: Path) -> Run:
    config = write(tmp, "rl.yaml", RL.format(tmp=tmp) + "judge: {endpoint: vllm}\n")
    return Run("rl", ["train", str(config)], {"SUMMIT_ENDPOINTS": str(bad)})


def import_openai(tmp: Path, bad: Path) -> Run:
    return Run("tool_registry", ["import", "openai", str(bad), "--registry", str(tmp / "t")], {})


def import_docs(tmp: Path, bad: Path) -> Run:
    args = ["import", "function-docs", str(bad), "--registry", str(tmp / "t")]
    return Run("tool_registry", args, {})


def import_into(tmp: Path, bad: Path) -> Run:
    tools = write(tmp, "tools.json", json.dumps([TOOL]))
    return Run("tool_registry", ["import", "openai", str(tools), "--registry", str(bad)], {})


def stats(tmp: Path, bad: Path) -> Run:
    return Run("tool_registry", ["stats", "--registry", str(bad)], {})


def export(tmp: Path, bad: Path) -> Run:
    return Run("tool_registry", ["export", "--registry", str(bad)], {})


def evolve_into(tmp: Path, bad: Path) -> Run:
    return Run("tool_registry", ["evolve", "--registry", str(bad)], {})


def synth_report(tmp: Path, bad: Path) -> Run:
    run = tmp / "run"
    run.mkdir()
    manifest = bad.rename(run / "manifest.json")
    return Run("synth", ["report", str(run)], {}, (f"{manifest}",))


# ------------------------------------------------------ files named inside a config
def inner(cli: str, text: str, field: str, line: int) -> Command:
    """A command whose config names the bad file at ``field`` on ``line``."""

    def command(tmp: Path, bad: Path) -> Run:
        config = write(tmp, "config.yaml", text.format(bad=bad, tmp=tmp))
        args = {
            "synth": ["run", str(config)],
            "rl": ["train", str(config)],
            "tool_registry": ["evolve", "--config", str(config), "--registry", str(tmp / "t")],
        }[cli]
        return Run(cli, args, {}, (str(bad), f"{config}:{line}: {field}"))

    command.__name__ = f"{cli} {field}"
    return command


SYNTH_REPOSITORY = inner("synth", "name: t\ntools:\n  repository: {bad}\n", "tools.repository", 3)
SYNTH_SEEDS = inner("synth", "tools:\n  evolve:\n    seeds: {bad}\n", "tools.evolve.seeds", 3)
SYNTH_RUBRICS = inner("synth", "judge:\n  rubric_files: [{bad}]\n", "judge", 2)
SYNTH_MCP = inner(
    "synth",
    "environment_mix: {{mcp: 1}}\ntools:\n  mcp_servers:\n    - name: x\n      command: [{bad}]\n",
    "tools.mcp_servers[0].command",
    5,
)
RL_PTX = inner("rl", RL + "ptx:\n  path: {bad}\n", "ptx.path", 7)
RL_GYM = inner(
    "rl",
    "name: t\noutput_dir: {tmp}/r\ngyms:\n  - gym: math\n    options: {{path: {bad}}}\n",
    "gyms[0]",
    4,
)
RL_TOOL_USE = inner(
    "rl",
    "name: t\noutput_dir: {tmp}/r\ngyms:\n  - gym: tool_use\n    options: {{path: {bad}}}\n",
    "gyms[0]",
    4,
)
RL_RUBRICS = inner("rl", RL + "critic:\n  rubric_files: [{bad}]\n", "critic", 7)
RL_CRITIC = inner("rl", RL + "critic:\n  local_model: {bad}\n", "critic.local_model", 7)
EVOLVE_SEEDS = inner("tool_registry", "seeds: {bad}\n", "seeds", 1)

YAML_FILES = [
    synth_run,
    rl_train,
    rl_eval,
    rl_sft,
    rl_sample,
    rl_recipe,
    evolve,
    rubrics_validate,
    rubrics_render,
    rubrics_test,
    llm_endpoints,
    llm_demo_presets,
    synth_presets,
    rl_presets,
]
YAML_INSIDE = [SYNTH_SEEDS, SYNTH_RUBRICS, RL_RUBRICS, EVOLVE_SEEDS]
TEXT_INSIDE = [SYNTH_REPOSITORY, RL_PTX, RL_GYM, *YAML_INSIDE]
JSON_FILES = [import_openai, import_docs, import_into, stats, export, evolve_into, synth_report]


def ids(commands: list[Command]) -> list[str]:
    return [c.__name__.replace("_", " ") for c in commands]


def refused(commands: list[Command]) -> Any:
    return pytest.mark.parametrize("command", commands, ids=ids(commands))


# ----------------------------------------------------------------------------- tests
@refused(YAML_FILES + TEXT_INSIDE + JSON_FILES)
def test_a_binary_file_is_refused_with_its_line(
    tmp_path: Path, started: list[str], command: Command
) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"name: t\n\x89PNG\x00\x01\xff\xfe")
    assert_refused(command(tmp_path, bad), started, bad, ":2", "not a text file")


@refused(YAML_FILES + YAML_INSIDE)
@pytest.mark.parametrize(("text", "got"), [("- a\n- b\n", "a list"), ("just words\n", "a str")])
def test_a_yaml_whose_top_level_is_a_list_or_scalar_is_refused(
    tmp_path: Path, started: list[str], command: Command, text: str, got: str
) -> None:
    bad = write(tmp_path, "top.yaml", text)
    assert_refused(command(tmp_path, bad), started, bad, ":1: (top level)", got)


@refused(YAML_FILES + YAML_INSIDE)
@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_config_is_refused(
    tmp_path: Path, started: list[str], command: Command, text: str
) -> None:
    bad = write(tmp_path, "blank.yaml", text)
    assert_refused(command(tmp_path, bad), started, bad, "the file is empty")


# rubric files may be folders
FOLDERS_ALLOWED = (rubrics_validate, rubrics_render, rubrics_test, SYNTH_RUBRICS, RL_RUBRICS)


def export_to_folder(tmp: Path, bad: Path) -> Run:
    registry = write(tmp, "tools.jsonl", "")
    return Run("tool_registry", ["export", "--registry", str(registry), "--out", str(bad)], {})


def demo_to_folder(tmp: Path, bad: Path) -> Run:
    return Run("llm", ["demo", "--out", str(bad)], {})


def eval_to_folder(tmp: Path, bad: Path) -> Run:
    config = write(tmp, "rl.yaml", RL.format(tmp=tmp))
    args = ["eval", str(config), "--checkpoint", str(tmp), "--json", str(bad)]
    return Run("rl", args, {})


@refused(
    [c for c in YAML_FILES + JSON_FILES + TEXT_INSIDE if c not in FOLDERS_ALLOWED]
    + [RL_TOOL_USE, export_to_folder, demo_to_folder, eval_to_folder]
)
def test_a_directory_where_a_file_is_expected_is_refused(
    tmp_path: Path, started: list[str], command: Command
) -> None:
    bad = tmp_path / "folder.yaml"
    bad.mkdir()
    assert_refused(command(tmp_path, bad), started, bad, "is a directory")


DEEP_YAML = "a: " + "[" * 5000 + "]" * 5000 + "\n"
LOOP_YAML = "a: &loop\n  b: *loop\n"
DEEP_SCHEMA: dict[str, Any] = {"type": "string"}
for _ in range(200):
    DEEP_SCHEMA = {"type": "object", "properties": {"x": DEEP_SCHEMA}}
REF_LOOPS = [
    {"type": "object", "$ref": "#"},
    {
        "type": "object",
        "properties": {"x": {"$ref": "#/$defs/a"}},
        "$defs": {"a": {"anyOf": [{"$ref": "#/$defs/b"}]}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}},
    },
]


def tools_json(parameters: dict[str, Any]) -> str:
    return json.dumps([{"type": "function", "function": {"name": "t", "parameters": parameters}}])


@pytest.mark.parametrize(
    ("command", "text", "message"),
    [
        *((c, DEEP_YAML, "nested more than 100 levels") for c in YAML_FILES + YAML_INSIDE),
        *((c, LOOP_YAML, "alias *loop is inside the node it names") for c in YAML_FILES),
        (import_openai, "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (import_openai, tools_json(DEEP_SCHEMA), "nested more than 100 levels"),
        (import_docs, json.dumps({"name": "t", "parameters": DEEP_SCHEMA}), "nested more than"),
        (import_openai, tools_json(REF_LOOPS[0]), "$ref cycle # -> #"),
        (import_openai, tools_json(REF_LOOPS[1]), "$ref cycle"),
        (import_docs, "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=lambda v: v.__name__.replace("_", " ") if callable(v) else None,
)
def test_deeply_nested_or_recursive_input_is_refused_without_a_recursion_error(
    tmp_path: Path, started: list[str], command: Command, text: str, message: str
) -> None:
    bad = write(tmp_path, "deep.yaml", text)
    assert_refused(command(tmp_path, bad), started, bad, message)


@refused([*TEXT_INSIDE, RL_TOOL_USE, RL_CRITIC, SYNTH_MCP])
def test_a_missing_file_named_inside_a_config_is_refused_with_its_field(
    tmp_path: Path, started: list[str], command: Command
) -> None:
    bad = tmp_path / "nosuch" / "file.jsonl"
    assert_refused(command(tmp_path, bad), started, bad, "no such")


NAN = '{"name": "x", "parameters": {"type": "object", "default": NaN}}'
INFINITY = '{"name": "x", "parameters": {"type": "object", "maximum": -Infinity}}'
REF_LOOP = '{"name": "x", "parameters": {"type": "object", "$ref": "#"}}'


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (NAN, "#/default: NaN is not a JSON value"),
        (INFINITY, "#/maximum: -Infinity is not a JSON value"),
        (REF_LOOP, "$ref cycle"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"name": "x", "parameters": ', "invalid JSON"),
        ('{"name": "caf\xe9"}', "not UTF-8"),
    ],
    ids=["nan", "infinity", "ref-cycle", "deep", "truncated", "latin-1"],
)
def test_a_bad_repository_line_is_reported_and_non_json_never_enters(
    tmp_path: Path, started: list[str], line: str, reason: str
) -> None:
    registry = tmp_path / "tools.jsonl"
    good = json.dumps({"name": "good", "parameters": {"type": "object"}})
    registry.write_bytes(f"{good}\n{line}\n".encode("latin-1"))
    read = invoke(Run("tool_registry", ["stats", "--registry", str(registry), "--json"], {}))
    assert read.exit_code == 0 and json.loads(read.stdout)["tools"] == 1, read.output
    [skipped] = read.stderr.strip().splitlines()
    assert skipped.startswith(f"skipped: {registry}:2: ") and reason in skipped
    before = registry.read_bytes()
    assert_refused(import_into(tmp_path, registry), started, registry, ":2: ", reason)
    assert registry.read_bytes() == before  # writing it would have dropped the line
    if line in (NAN, INFINITY, REF_LOOP):  # the same tool offered to an import is refused
        tools = write(tmp_path, "in.jsonl", f"{json.dumps(TOOL)}\n{line}\n")
        imported = invoke(import_openai(tmp_path, tools))
        assert imported.exit_code == 0 and reason in imported.stderr, imported.output
        for saved in (tmp_path / "t").read_text().splitlines():
            json.loads(saved, parse_constant=lambda c: pytest.fail(f"{c} in the repository"))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("garbage", "wrote 50 lines that are not JSON-RPC, the first: 'this is not json-rpc'"),
        ("hang", "did not answer within 3s"),
        ("recursive", "loop: $ref cycle #/$defs/a -> #/$defs/a"),
    ],
)
def test_a_misbehaving_mcp_server_is_one_error_line(
    tmp_path: Path, mode: str, message: str
) -> None:
    command = [sys.executable, str(BAD_SERVERS), mode]
    registry = tmp_path / "tools.jsonl"
    args = ["import", "mcp", "--registry", str(registry), "--timeout", "3", "--", *command]
    result = subprocess.run(
        [sys.executable, "-m", "tool_registry", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert str(BAD_SERVERS) in lines[0] and message in lines[0], lines[0]
    assert not registry.exists()
