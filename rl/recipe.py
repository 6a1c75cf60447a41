"""``python -m rl recipe``: K2's post-training recipe as one resumable run.

Stages, in order, each one command of its own run in a child process (one script per
stage, as a user would run it by hand; a crash or a stray thread in one stage cannot
take the recipe down, and each stage's memory is returned when it ends)::

    synth             python -m synth run        tasks, and the teacher's trajectories
    eval-base         python -m rl eval          the base policy on held-out tasks
    sft               python -m rl sft           the SFT config's own data (demonstrations) and
                                                 the synthesis' accepted train-split rows
    eval-sft
    rs<N>-sample      python -m rl sample        the current policy plays the train tasks k times
    rs<N>-sft         python -m rl sft           on the trials that passed
    eval-rs<N>
    grpo              python -m rl train         the tool-use gym on the train-split tasks
    eval-grpo

Everything lives under ``run_dir``: ``stages/<id>/config.yaml`` (the stage's resolved
config), ``stages/<id>/log.txt`` (its output) and ``stages/<id>/done.json`` (its marker:
outputs, the policy it left, how long it took). A rerun skips every stage with a marker
and reruns the first without one, which resumes on its own (the synthesis and the
samplers by ids, SFT and GRPO from their newest checkpoint). A stage with nothing to do
(SFT when no trajectory passed) is marked skipped with its reason and the policy carries
on unchanged. After the last stage ``summary.json``, ``summary.md`` and ``summary.png``
hold every metric after every stage.

Held-out tasks (``rl.task_sources.split_of``) are evaluated and never trained on: the SFT
data, the sampled tasks and GRPO's tasks are the train split only.

Not here: what each stage does (its own module), scheduling stages on several machines.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from llm.files import atomic_write
from rl.recipe_config import RecipeConfig

log = logging.getLogger(__name__)


class StageFailed(Exception):
    """A stage's command failed; ``str()`` names the stage, the command and its log."""


@dataclass(frozen=True)
class Skip:
    """A stage with nothing to do, why, and what it leaves all the same."""

    reason: str
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    """A stage's command line and what it leaves when it succeeds."""

    argv: list[str]
    outputs: dict[str, Any]


Plan = Callable[[Path], "Command | Skip"]
"""Given the stage's directory, write its config there and say what to run (or skip)."""


class Recipe:
    """Runs the stages of one :class:`RecipeConfig`; ``run()`` returns the summary."""

    def __init__(self, config: RecipeConfig, console: Console | None = None) -> None:
        self.config = config
        self.console = console or Console(stderr=True)
        self.run_dir = Path(config.run_dir)
        self.policy = base_policy(config.policy)
        """The policy the next stage starts from (a model directory)."""
        self.evaluations: dict[str, dict[str, Any]] = {}
        """Per evaluation point (``base``, ``sft``, ``rs1``, ``grpo``): its results."""
        self.evaluated: dict[str, tuple[str, str]] = {}
        """Policy -> (the evaluation stage that measured it, its results file)."""

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, Any]:
        config = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(
            self.run_dir / "recipe.yaml", (yaml.safe_dump(config.model_dump(mode="json"))).encode()
        )
        self.stage("synth", self._synth)
        self.evaluate("base")
        if config.sft is not None:
            self.stage("sft", self._first_sft)
            self.evaluate("sft")
        rejection = config.rejection
        for n in range(1, (rejection.rounds if rejection else 0) + 1):
            assert rejection is not None
            sampled = Path(self.stage(f"rs{n}-sample", self._sample)["output_dir"])
            self.stage(f"rs{n}-sft", self._round_sft(sampled, rejection.sft_set))
            self.evaluate(f"rs{n}", point="rejection")
        if config.grpo is not None:
            self.stage("grpo", self._grpo)
            self.evaluate("grpo")
        return self.summary()

    def stage(self, stage_id: str, plan: Plan) -> dict[str, Any]:
        """Run one stage unless its marker says it is done; its outputs."""
        directory = self.run_dir / "stages" / stage_id
        marker = directory / "done.json"
        if marker.exists():
            done = json.loads(marker.read_text())
            self._carry(done)
            self.console.print(f"[green]✓[/] {stage_id}: {done['status']} earlier (skipped)")
            return dict(done.get("outputs", {}))
        directory.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        step = plan(directory)
        if isinstance(step, Skip):
            done = {"status": "skipped", "reason": step.reason, "outputs": step.outputs}
            self.console.print(f"[yellow]–[/] {stage_id}: skipped: {step.reason}")
        else:
            self.console.print(f"[bold]▶ {stage_id}[/]: {' '.join(step.argv[1:])}")
            run_command(step.argv, directory / "log.txt", stage_id, self.console)
            done = {"status": "done", "outputs": step.outputs}
        done["seconds"] = round(time.monotonic() - started, 1)
        done["policy"] = done["outputs"].get("policy", self.policy)
        atomic_write(marker, (json.dumps(done, indent=2)).encode())
        self._carry(done)
        return dict(done["outputs"])

    def _carry(self, done: dict[str, Any]) -> None:
        self.policy = str(done.get("policy") or self.policy)

    # ----------------------------------------------------------------- stages
    def _synth(self, directory: Path) -> Command:
        data = self.config.synth.data()
        data["output_dir"] = str(self.run_dir / "synth")
        config = _write(directory, data)
        argv = [sys.executable, "-m", "synth", "run", str(config)]
        return Command(argv, {"run": data["output_dir"]})

    def _synth_train_rows(self, directory: Path) -> Path:
        """The synthesis' accepted trajectories of train-split tasks, as one parquet file."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from rl.task_sources import split_of

        shards = sorted((self.run_dir / "synth" / "data" / "accepted").glob("*.parquet"))
        tables = [pq.read_table(p) for p in shards]
        table = pa.concat_tables(tables) if tables else None
        path = directory / "train.parquet"
        if table is None or table.num_rows == 0:
            return path
        fraction = self.config.heldout_fraction
        keep = [split_of(str(i), fraction) == "train" for i in table.column("id").to_pylist()]
        pq.write_table(table.filter(pa.array(keep)), path)
        return path

    def _first_sft(self, directory: Path) -> Command | Skip:
        """The ``sft`` stage: its config's own data plus the synthesis' train-split rows."""
        return self.sft_stage(directory, [self._synth_train_rows(directory)], [], own=True)

    def _round_sft(self, sampled: Path, extra: list[str]) -> Plan:
        """A rejection round's SFT: the trials that passed, on top of the ``sft`` config."""
        return lambda directory: self.sft_stage(directory, [sampled], extra)

    def sft_stage(
        self, directory: Path, sources: list[Path], extra: list[str], *, own: bool = False
    ) -> Command | Skip:
        """SFT of the current policy on ``sources`` (and, with ``own``, on the data the
        SFT config names itself, such as curated demonstrations)."""
        from llm.yamlconf import apply_overrides

        assert self.config.sft is not None
        data = apply_overrides(self.config.sft.data(), extra)
        given = list(data.get("data") or []) if own else []
        counts = {p: _rows(p) for p in sources}
        rows = sum(counts.values())
        if rows == 0 and not given:
            where = ", ".join(str(p) for p in sources)
            return Skip(f"no accepted train-split trajectory to train on ({where})")
        data["output_dir"] = str(directory / "out")
        data["model"] = self.policy
        data["data"] = given + [{"path": str(p)} for p, n in counts.items() if n]
        config = _write(directory, data)
        argv = [sys.executable, "-m", "rl", "sft", str(config)]
        if any((directory / "out").glob("checkpoint-*")):
            argv += ["--resume", "latest"]
        final = str(directory / "out" / "final")
        return Command(argv, {"policy": final, "rows": rows, "own_data": given})

    def _sample(self, directory: Path) -> Command:
        assert self.config.rejection is not None
        data = self.config.rejection.data()
        data["output_dir"] = str(directory / "out")
        data["policy"] = {"checkpoint": self.policy}
        data["tasks"] = [{"run": str(self.run_dir / "synth")}]
        data["split"] = "train"
        data["heldout_fraction"] = self.config.heldout_fraction
        config = _write(directory, data)
        argv = [sys.executable, "-m", "rl", "sample", str(config)]
        return Command(argv, {"output_dir": data["output_dir"]})

    def _grpo(self, directory: Path) -> Command | Skip:
        assert self.config.grpo is not None
        tasks = directory / "tasks.jsonl"
        count = write_train_tasks(self.run_dir / "synth", self.config.heldout_fraction, tasks)
        if count == 0:
            return Skip("no train-split task to play")
        data = self.config.grpo.data()
        data.pop("agentic_eval", None)  # the evaluations' block: training does not read it
        data["output_dir"] = str(directory / "out")
        data.setdefault("policy", {})["model"] = self.policy
        gyms = [g for g in data.get("gyms", []) if g.get("gym") == "tool_use"]
        if not gyms:
            return Skip("the grpo config has no tool_use gym to play the tasks")
        for gym in gyms:
            gym.setdefault("options", {})["path"] = str(tasks)
        config = _write(directory, data)
        argv = [sys.executable, "-m", "rl", "train", str(config)]
        if any((directory / "out").glob("checkpoint-*")):
            argv += ["--resume", "latest"]
        return Command(argv, {"policy": str(directory / "out" / "final"), "tasks": count})

    def evaluate(self, name: str, point: str | None = None) -> None:
        """The evaluation stage ``eval-<name>`` of the current policy, when the config
        evaluates at ``point`` (default ``name``); an unchanged policy reuses its results."""
        if (point or name) not in self.config.evaluation.after:
            return
        stage_id = f"eval-{name}"
        outputs = self.stage(stage_id, self._eval_plan)
        if outputs.get("results") and Path(outputs["results"]).exists():
            self.evaluations[name] = json.loads(Path(outputs["results"]).read_text())
            self.evaluated.setdefault(self.policy, (stage_id, outputs["results"]))

    def _eval_plan(self, directory: Path) -> Command | Skip:
        if self.policy in self.evaluated:  # a training stage was skipped: same weights
            earlier, measured = self.evaluated[self.policy]
            return Skip(f"the policy is unchanged since {earlier}", {"results": measured})
        data = self.config.evaluation.data()
        data["output_dir"] = str(directory / "out")
        block = data["agentic_eval"]
        block["tasks"] = [{"run": str(self.run_dir / "synth")}]
        block["split"] = "heldout"
        block["heldout_fraction"] = self.config.heldout_fraction
        block["trials_dir"] = str(directory / "trials")
        config = _write(directory, data)
        results = directory / "results.json"
        argv = [sys.executable, "-m", "rl", "eval", str(config), "--checkpoint", self.policy]
        argv += ["--json", str(results), "--png", str(directory / "pass_hat_k.png")]
        if not self.config.evaluation.gyms:
            argv += ["--only", "agentic"]
        return Command(argv, {"results": str(results), "policy": self.policy})

    # ---------------------------------------------------------------- summary
    def summary(self) -> dict[str, Any]:
        """Every metric after every evaluated stage: JSON, a Markdown table, a plot."""
        from rl.recipe_report import summarize

        return summarize(self.evaluations, self.run_dir)


def base_policy(policy: str) -> str:
    """The base policy as a model directory (``embedded``: the converted SmolLM2)."""
    if policy == "embedded":
        from llm.embedded.model import ensure_converted

        return str(ensure_converted())
    return policy


def write_train_tasks(run: Path, heldout_fraction: float, path: Path) -> int:
    """The synthesis run's train-split tasks as the tool-use gym's JSONL rows (the task
    with its agent's tool set, tools, MCP server and system prompt beside it)."""
    from rl.task_sources import split_of
    from synth.schema import AgentSpec, TaskSpec

    agents = {
        a.id: a
        for a in (
            AgentSpec.model_validate_json(line)
            for line in (run / "agents.jsonl").read_text().splitlines()
            if line.strip()
        )
    }
    rows = []
    for line in (run / "tasks.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        task = TaskSpec.model_validate_json(line)
        if split_of(task.id, heldout_fraction) != "train" or task.agent_id not in agents:
            continue
        agent = agents[task.agent_id]
        row = task.model_dump(mode="json")
        row.update(
            toolset=agent.toolset,
            system_prompt=agent.system_prompt,
            tools=agent.openai_tools(),
            mcp_server=task.domain if task.environment == "mcp" else None,
        )
        rows.append(json.dumps(row))
    atomic_write(path, ("".join(r + "\n" for r in rows)).encode())
    return len(rows)


def run_command(argv: list[str], log_path: Path, stage_id: str, console: Console) -> None:
    """Run ``argv``, its output to ``log_path`` and (dimmed) to ``console``; a failure or a
    signal stops it and raises (:class:`StageFailed`, ``KeyboardInterrupt``)."""
    with open(log_path, "a", encoding="utf-8") as sink:
        sink.write(f"$ {' '.join(argv)}\n")
        sink.flush()
        child = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        try:
            assert child.stdout is not None
            for line in child.stdout:
                sink.write(line)
                console.print(f"  {stage_id} │ {line.rstrip()}", style="dim", markup=False)
            code = child.wait()
        except BaseException:
            _stop(child)
            raise
    if code != 0:
        raise StageFailed(
            f"stage {stage_id} failed (exit {code}): see {log_path}; "
            "fix it and rerun the recipe to resume from this stage"
        )


def _stop(child: subprocess.Popen[str]) -> None:
    """Ask a stage's command to stop (it keeps what it finished), then make sure."""
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=60)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _write(directory: Path, data: dict[str, Any]) -> Path:
    path = directory / "config.yaml"
    atomic_write(path, (yaml.safe_dump(data, sort_keys=False)).encode())
    return path


def _rows(path: Path) -> int:
    """Rows of a parquet file or of the accepted shards of a run directory."""
    import pyarrow.parquet as pq

    if path.is_dir():
        return sum(pq.read_metadata(p).num_rows for p in path.glob("data/accepted/*.parquet"))
    return pq.read_metadata(path).num_rows if path.exists() else 0


def remove_run(run_dir: Path) -> None:
    """Start over: remove the run directory (``--fresh``)."""
    shutil.rmtree(run_dir, ignore_errors=True)
