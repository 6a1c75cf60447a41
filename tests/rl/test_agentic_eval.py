"""Agentic evaluation: pass@k and pass^k arithmetic on known outcomes, and end to end with a
scripted agent (and once with a served checkpoint) on real executable bank tasks."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from llm.testing import ScriptedEndpoint
from rl.agentic_eval import evaluate_agentic, plot, table, trials_dir
from rl.estimators import Outcome, pass_at_k, pass_hat_k, summarize
from rl.trial_config import AgenticEvalConfig
from rl.trials import Trial
from synth.config import RoleEndpoint
from synth.store import RunStore

from .trial_world import BANK, BankAgent, bank_tasks, role, write_source


def outcomes(task: str, passed: int, failed: int, kind: str = "executable", level: str = "single"):
    return [Outcome(task, kind, level, True)] * passed + [
        Outcome(task, kind, level, False)
    ] * failed


def test_pass_hat_k_is_the_probability_that_all_k_drawn_trials_pass() -> None:
    assert pass_hat_k(4, 2, 1) == pytest.approx(0.5) == pass_at_k(4, 2, 1)
    assert pass_hat_k(4, 2, 2) == pytest.approx(1 / 6)
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)
    assert pass_hat_k(5, 3, 3) == pytest.approx(comb(3, 3) / comb(5, 3))
    assert pass_hat_k(4, 4, 4) == 1.0 and pass_at_k(4, 4, 4) == 1.0  # all pass
    assert pass_hat_k(4, 0, 1) == 0.0 and pass_at_k(4, 0, 4) == 0.0  # none pass
    assert pass_hat_k(4, 3, 4) == 0.0 and pass_at_k(4, 3, 2) == 1.0


@pytest.mark.parametrize(("n", "c", "k"), [(2, 1, 3), (3, 1, 0), (3, 4, 1), (3, -1, 1)])
def test_impossible_counts_are_errors(n: int, c: int, k: int) -> None:
    for estimator in (pass_at_k, pass_hat_k):
        with pytest.raises(ValueError):
            estimator(n, c, k)


def test_summarize_averages_over_tasks_per_kind_and_difficulty() -> None:
    records = (
        outcomes("always", 4, 0)
        + outcomes("never", 0, 4, level="multi_step")
        + outcomes("half", 2, 2, kind="docker")
    )
    report = summarize(records, [1, 2, 4])
    overall = report["overall"]
    assert (overall["tasks"], overall["trials"], overall["passed"]) == (3, 12, 6)
    assert overall["pass@1"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert overall["pass^1"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert overall["pass@2"] == pytest.approx((1 + 0 + 5 / 6) / 3)
    assert overall["pass^2"] == pytest.approx((1 + 0 + 1 / 6) / 3)
    assert overall["pass@4"] == pytest.approx(2 / 3) and overall["pass^4"] == pytest.approx(1 / 3)
    executable = report["by_environment"]["executable"]
    assert executable["tasks"] == 2 and executable["pass^2"] == pytest.approx(0.5)
    assert report["by_environment"]["docker"]["pass^2"] == pytest.approx(1 / 6)
    assert report["by_difficulty"]["multi_step"]["pass@4"] == 0.0
    assert report["by_difficulty"]["single"]["tasks"] == 2


def test_k_above_a_tasks_trials_names_the_task() -> None:
    with pytest.raises(ValueError, match="task short: pass@3 needs 3 trials, it has 2"):
        summarize(outcomes("long", 3, 1) + outcomes("short", 1, 1), [1, 3])


def test_all_pass_none_pass_and_nothing_at_all() -> None:
    assert summarize(outcomes("a", 3, 0), [1, 3])["overall"]["pass^3"] == 1.0
    assert summarize(outcomes("a", 0, 3), [1, 3])["overall"]["pass@3"] == 0.0
    empty = summarize([], [1])["overall"]
    assert empty == {"tasks": 0, "trials": 0, "passed": 0, "pass@1": None, "pass^1": None}


def block_for(tmp_path: Path, url: str, tasks: list[Any], **changes: Any) -> AgenticEvalConfig:
    data = {
        "tasks": [write_source(tmp_path / "src", tasks)],
        "split": "all",
        "samples": 4,
        "ks": [1, 2, 4],
        "endpoints": {r: role(url) for r in ("user", "tool_simulator", "judge")},
        **changes,
    }
    return AgenticEvalConfig.model_validate(data)


def test_a_scripted_policy_gets_the_expected_pass_at_k_and_pass_hat_k(tmp_path: Path) -> None:
    right, wrong, flaky = tasks = bank_tasks(3)
    agent = BankAgent(wrong={wrong.user_goal}, flaky={flaky.user_goal})
    with ScriptedEndpoint(agent) as server:
        block = block_for(tmp_path, server.url, tasks)
        report = evaluate_agentic(block, RoleEndpoint(**role(server.url)), tmp_path / "trials")
    flaky_passes = sum(Trial(flaky, BANK, s).seed % 2 == 0 for s in range(4))
    expected = summarize(
        outcomes(right.id, 4, 0)
        + outcomes(wrong.id, 0, 4)
        + outcomes(flaky.id, flaky_passes, 4 - flaky_passes),
        [1, 2, 4],
    )
    for key in ("overall", "by_environment", "by_difficulty"):
        assert report[key] == expected[key]
    assert report["overall"]["pass^4"] == pytest.approx((1 + (flaky_passes == 4)) / 3)
    assert report["curve"]["overall"]["1"] == report["overall"]["pass^1"]
    assert report["reasons"] == {"state_mismatch": 8 - flaky_passes}
    assert report["tasks_incomplete"] == []
    assert len(RunStore(tmp_path / "trials").done_ids()) == 12


def test_more_samples_reuse_the_trials_already_played(tmp_path: Path) -> None:
    agent = BankAgent()
    with ScriptedEndpoint(agent) as server:
        policy = RoleEndpoint(**role(server.url))
        tasks = bank_tasks(2)
        evaluate_agentic(
            block_for(tmp_path, server.url, tasks, samples=2, ks=[1]), policy, tmp_path / "t"
        )
        agent.seeds.clear()
        report = evaluate_agentic(block_for(tmp_path, server.url, tasks), policy, tmp_path / "t")
    assert sum(len(s) for s in agent.seeds.values()) == 4  # samples 2 and 3 of each task
    assert report["overall"]["trials"] == 8 and report["overall"]["pass^4"] == 1.0


def test_the_report_renders_as_a_table_and_a_pass_hat_k_plot(tmp_path: Path) -> None:
    report = {
        **summarize(outcomes("a", 2, 2) + outcomes("b", 4, 0, kind="docker"), [1, 4]),
        "curve": {"overall": {"1": 0.75, "2": 0.58, "3": 0.5, "4": 0.5}, "docker": {"1": 1.0}},
        "ks": [1, 4],
        "samples": 4,
        "split": "heldout",
        "checkpoint": "runs/sft/final",
    }
    console = Console(record=True, width=200)
    console.print(table(report))
    text = console.export_text()
    assert "pass^4" in text and "env docker" in text and "difficulty single" in text
    path = plot(report, tmp_path / "plots" / "pass_hat_k.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_trials_directory_is_keyed_by_checkpoint_and_block(tmp_path: Path) -> None:
    block = block_for(tmp_path, "http://127.0.0.1:9", bank_tasks(1))
    one = trials_dir(block, "runs/x", "runs/sft/final")
    assert one == trials_dir(block, "runs/x", "runs/sft/final")
    assert one.parent == Path("runs/x/agentic_eval") and one.name.startswith("final-")
    assert one != trials_dir(block, "runs/x", "runs/grpo/final")
    assert trials_dir(block.model_copy(update={"samples": 8}), "runs/x", "runs/sft/final") == one
    assert (
        trials_dir(block.model_copy(update={"temperature": 0.2}), "runs/x", "runs/sft/final") != one
    )


def train_config(tmp_path: Path, tasks_source: dict[str, str], url: str) -> Path:
    data = {
        "name": "agentic",
        "output_dir": str(tmp_path / "run"),
        "gyms": [
            {
                "gym": "math",
                "options": {
                    "count": 2,
                    "eval_count": 1,
                    "datasets": ["basic_arithmetic"],
                    "dataset_config": {
                        "min_terms": 2,
                        "max_terms": 2,
                        "min_digits": 1,
                        "max_digits": 1,
                    },
                },
            }
        ],
        "grpo": {
            "max_completion_length": 16,
            "num_generations": 2,
            "per_device_train_batch_size": 2,
        },
        "agentic_eval": {
            "tasks": [tasks_source],
            "split": "all",
            "samples": 1,
            "ks": [1],
            "limits": {
                "max_turns": 1,
                "max_tool_calls": 2,
                "max_tokens": 64,
                "first_tool_choice": "required",
            },
            "endpoints": {r: role(url) for r in ("user", "tool_simulator", "judge")},
        },
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_an_eval_tasks_file_with_an_unknown_environment_exits_2(tmp_path: Path, watched) -> None:
    source = write_source(tmp_path / "src", bank_tasks(1))
    row = json.loads(Path(source["tasks"]).read_text())
    Path(source["tasks"]).write_text(json.dumps({**row, "environment": "metaverse"}) + "\n")
    config = train_config(tmp_path, source, "http://127.0.0.1:9")
    (tmp_path / "checkpoint").mkdir()
    command = watched("rl", "eval", str(config), "--checkpoint", str(tmp_path / "checkpoint"))
    assert command.finish() == 2
    assert command.stderr.strip() == command.last_line()
    assert (
        f"{source['tasks']}:1: environment: unknown environment kind 'metaverse'" in command.stderr
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.integration
def test_a_served_checkpoint_plays_an_executable_task(tmp_path: Path) -> None:
    from llm.embedded.model import ensure_converted

    checkpoint = ensure_converted()  # the embedded model's directory, served as a checkpoint
    with ScriptedEndpoint(BankAgent()) as server:
        block = block_for(
            tmp_path,
            server.url,
            bank_tasks(1),
            samples=1,
            ks=[1],
            limits={
                "max_turns": 1,
                "max_tool_calls": 2,
                "max_tokens": 64,
                "first_tool_choice": "required",
            },
        )
        report = evaluate_agentic(block, checkpoint, tmp_path / "trials")
    assert report["overall"]["tasks"] == 1 and report["overall"]["trials"] == 1
    row = next(RunStore(tmp_path / "trials").rows())
    assert json.loads(row["trajectory_meta"])["stop_reason"] != ""
    assert row["messages"][2]["role"] == "assistant" and row["messages"][2]["tool_calls"]


@pytest.mark.integration
@pytest.mark.slow
def test_rl_eval_prints_gym_and_agentic_tables_json_and_a_plot(tmp_path: Path, watched) -> None:
    from llm.embedded.model import ensure_converted

    checkpoint = ensure_converted()
    source = write_source(tmp_path / "src", bank_tasks(1))
    with ScriptedEndpoint(BankAgent()) as server:
        config = train_config(tmp_path, source, server.url)
        output = tmp_path / "eval.json"
        command = watched(
            "rl",
            "eval",
            str(config),
            "--checkpoint",
            str(checkpoint),
            "--k",
            "1",
            "--json",
            str(output),
        )
        assert command.finish() == 0, command.stderr
    results = json.loads(command.output.strip().splitlines()[-1])
    assert results == json.loads(output.read_text())
    assert results["math"]["tasks"] == 1
    agentic = results["agentic"]
    assert agentic["overall"]["tasks"] == 1 and agentic["overall"]["trials"] == 1
    assert (
        Path(agentic["png"]) == output.with_suffix(".png") and output.with_suffix(".png").exists()
    )
    assert "pass@k on held-out tasks" in command.stderr and "agentic tasks (all" in command.stderr
