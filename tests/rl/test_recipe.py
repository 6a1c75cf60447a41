"""The recipe's runner: stages run once, markers make a rerun resume, a stopped stage is
stopped with it, held-out tasks never reach a training stage, the summary's arithmetic."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from rl.recipe import Command, Recipe, Skip, StageFailed, write_train_tasks
from rl.recipe_config import RecipeConfig, load_recipe
from rl.recipe_report import flatten, summarize
from rl.task_sources import split_of

ROOT = Path(__file__).resolve().parents[2]


def _config(run_dir: Path, **fields: Any) -> RecipeConfig:
    return RecipeConfig.model_validate(
        {
            "name": "t",
            "run_dir": str(run_dir),
            "policy": str(run_dir / "base-model"),
            "synth": {"config": "configs/synth/recipe-demo.yaml"},
            "evaluation": {"config": "configs/grpo/recipe-demo.yaml"},
            **fields,
        }
    )


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_a_finished_stage_is_not_run_again_and_its_policy_carries(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    recipe = Recipe(_config(tmp_path / "run"))
    plan = lambda d: Command(  # noqa: E731 - a one-line plan
        _python(f"open({str(counter)!r}, 'a').write('x')"), {"policy": "trained"}
    )
    recipe.stage("train", plan)
    again = Recipe(_config(tmp_path / "run"))
    again.stage("train", plan)
    assert counter.read_text() == "x"
    assert again.policy == "trained"
    marker = json.loads((tmp_path / "run" / "stages" / "train" / "done.json").read_text())
    assert marker["status"] == "done" and marker["policy"] == "trained"


def test_a_skipped_stage_says_why_and_keeps_the_policy(tmp_path: Path) -> None:
    recipe = Recipe(_config(tmp_path / "run"))
    before = recipe.policy
    recipe.stage("sft", lambda d: Skip("nothing passed"))
    marker = json.loads((tmp_path / "run" / "stages" / "sft" / "done.json").read_text())
    assert marker == {**marker, "status": "skipped", "reason": "nothing passed", "policy": before}
    assert recipe.policy == before


def test_a_failed_stage_leaves_no_marker_and_names_its_log(tmp_path: Path) -> None:
    recipe = Recipe(_config(tmp_path / "run"))
    with pytest.raises(StageFailed, match=r"stage grpo failed \(exit 3\).*log\.txt"):
        recipe.stage("grpo", lambda d: Command(_python("print('boom'); raise SystemExit(3)"), {}))
    stage = tmp_path / "run" / "stages" / "grpo"
    assert not (stage / "done.json").exists()
    assert "boom" in (stage / "log.txt").read_text()


def test_an_unchanged_policy_is_not_evaluated_twice(tmp_path: Path) -> None:
    recipe = Recipe(_config(tmp_path / "run"))
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"agentic": {"overall": {"pass@1": 0.5}}}))
    recipe.stage("eval-base", lambda d: Command(_python("pass"), {"results": str(results)}))
    recipe.evaluated[recipe.policy] = ("eval-base", str(results))
    recipe.stage("sft", lambda d: Skip("nothing passed"))
    recipe.evaluate("sft")
    marker = json.loads((tmp_path / "run" / "stages" / "eval-sft" / "done.json").read_text())
    assert marker["status"] == "skipped" and "unchanged since eval-base" in marker["reason"]
    assert recipe.evaluations["sft"] == {"agentic": {"overall": {"pass@1": 0.5}}}


def test_sft_trains_on_its_own_data_when_the_synthesis_kept_nothing(tmp_path: Path) -> None:
    recipe = Recipe(_config(tmp_path / "run", sft={"config": "configs/sft/demo.yaml"}))
    empty = tmp_path / "none.parquet"
    first = recipe.sft_stage(tmp_path, [empty], [], own=True)
    assert isinstance(first, Command)
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert written["data"] == ["configs/sft/bank.jsonl"] and written["model"] == recipe.policy
    assert isinstance(recipe.sft_stage(tmp_path, [empty], []), Skip)  # a round with no passes


DRIVER = """
import sys, textwrap
from pathlib import Path
from rl.recipe import Command, Recipe
from rl.recipe_config import RecipeConfig

run, count, wait = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "wait"
config = RecipeConfig.model_validate({{
    "name": "t", "run_dir": str(run), "policy": "base",
    "synth": {{"config": "configs/synth/recipe-demo.yaml"}},
    "evaluation": {{"config": "configs/grpo/recipe-demo.yaml"}},
}})
recipe = Recipe(config)
first = [sys.executable, "-c", f"open({{count!r}}, 'a').write('a')"]
recipe.stage("first", lambda d: Command(first, {{"policy": "after-first"}}))
body = "import time, pathlib; pathlib.Path({started!r}).touch(); time.sleep(600)" if wait else \
    f"open({{count!r}}, 'a').write('b')"
recipe.stage("second", lambda d: Command([sys.executable, "-c", body], {{}}))
print("policy", recipe.policy)
"""


def test_a_recipe_killed_between_stages_resumes_where_it_stopped(tmp_path: Path) -> None:
    run, count, started = tmp_path / "run", tmp_path / "count", tmp_path / "started"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(started=str(started)))
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(run), str(count), "wait"], cwd=ROOT, env=env
    )
    deadline = time.monotonic() + 120
    while not started.exists():  # the second stage's command is running
        assert proc.poll() is None, "the driver ended before its second stage started"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) != 0
    assert (run / "stages" / "first" / "done.json").exists()
    assert not (run / "stages" / "second" / "done.json").exists()

    done = subprocess.run(
        [sys.executable, str(driver), str(run), str(count), "quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert count.read_text() == "ab"  # the first stage ran once, the second once
    assert "policy after-first" in done.stdout


def test_held_out_tasks_never_reach_the_grpo_tasks(tmp_path: Path) -> None:
    from rl.gyms.tool_use import read_tasks
    from tests.rl.trial_world import bank_tasks, write_source

    run = tmp_path / "synth"
    tasks = bank_tasks(20)
    write_source(run, tasks)
    path = tmp_path / "tasks.jsonl"
    written = write_train_tasks(run, 0.3, path)
    train = {t.id for t in tasks if split_of(t.id, 0.3) == "train"}
    assert 0 < written == len(train) < len(tasks)
    played = read_tasks(path)
    assert {t.task.id for t in played} == train


def test_the_summary_puts_every_metric_beside_every_stage(tmp_path: Path) -> None:
    def results(p1: float) -> dict[str, Any]:
        return {
            "agentic": {
                "overall": {"tasks": 4, "pass@1": p1, "pass^2": p1 / 2},
                "by_environment": {"executable": {"pass@1": p1}},
                "by_difficulty": {"single": {"pass@1": None}},
            },
            "math": {"pass@1": 0.5, "mean_score": 0.25, "tasks": 2},
        }

    assert flatten(results(0.5)) == {
        "agentic/overall/pass@1": 0.5,
        "agentic/overall/pass^2": 0.25,
        "agentic/environment=executable/pass@1": 0.5,
        "gym/math/pass@1": 0.5,
        "gym/math/mean_score": 0.25,
    }
    summary = summarize({"base": results(0.25), "sft": results(0.75)}, tmp_path)
    assert summary["stages"] == ["base", "sft"]
    assert summary["metrics"]["agentic/overall/pass@1"] == {"base": 0.25, "sft": 0.75}
    table = (tmp_path / "summary.md").read_text()
    assert "| agentic/overall/pass@1 | 0.250 | 0.750 |" in table
    assert (tmp_path / "summary.png").stat().st_size > 0


def test_the_demo_and_k2_recipes_validate_with_every_stage_config() -> None:
    for name in ("demo", "k2"):
        config = load_recipe(ROOT / "configs" / "recipe" / f"{name}.yaml", check_files=True)
        assert config.synth.config.exists()


def test_a_bad_stage_config_is_named_with_its_file_and_line(tmp_path: Path) -> None:
    sft = tmp_path / "sft.yaml"
    sft.write_text("name: x\noutput_dir: o\ndata: [a.jsonl]\ntraining:\n  max_steps: -1\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "name: r\nrun_dir: runs/r\n"
        f"synth: {{config: {ROOT / 'configs/synth/recipe-demo.yaml'}}}\n"
        f"sft: {{config: {sft}}}\n"
        f"evaluation: {{config: {ROOT / 'configs/grpo/recipe-demo.yaml'}}}\n"
    )
    with pytest.raises(Exception, match=rf"{sft}:5: training\.max_steps"):
        load_recipe(recipe, check_files=True)


LIMITS = "{max_turns: 1, max_tool_calls: 2, max_tokens: 48, first_tool_choice: required}"
TINY = """
name: tiny
run_dir: RUN
heldout_fraction: 0.5
synth:
  config: configs/synth/recipe-demo.yaml
  set: ["environment_mix={simulated: 0, executable: 1, docker: 0}", agents.count=1,
        "tasks={per_agent: 4, difficulties: [single]}", "rollout=LIMITS"]
sft:
  config: configs/sft/demo.yaml
  set: [training.max_steps=1, training.save_steps=1, training.max_length=512, eval_fraction=0.0]
rejection:
  config: configs/sample/demo.yaml
  rounds: 1
  set: [samples=1, "limits=LIMITS"]
grpo:
  config: configs/grpo/recipe-demo.yaml
  set: [grpo.max_steps=1, grpo.save_steps=1]
evaluation:
  config: configs/grpo/recipe-demo.yaml
  after: [base, sft, grpo]
  set: [agentic_eval.samples=1, "agentic_eval.ks=[1]", "agentic_eval.limits=LIMITS"]
"""


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(2700)  # every stage loads the model; a busy 2-core machine is slow
def test_the_real_recipe_stopped_between_stages_resumes_to_its_summary(tmp_path: Path) -> None:
    """``python -m rl recipe`` on the embedded model, stopped by SIGTERM once its first
    stage is done, then run again: the synthesis is not run twice, every later stage runs,
    and the summary holds each evaluated stage."""
    config = tmp_path / "recipe.yaml"
    run = tmp_path / "run"
    config.write_text(TINY.replace("RUN", str(run)).replace("LIMITS", LIMITS))
    argv = [sys.executable, "-m", "rl", "recipe", str(config)]
    first = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 1500
    while not (run / "stages" / "synth" / "done.json").exists():
        assert first.poll() is None, (first.stderr.read() if first.stderr else b"").decode()
        assert time.monotonic() < deadline, "the synthesis stage did not finish"
        time.sleep(0.5)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=600) == 143
    assert sorted(p.parent.name for p in run.glob("stages/*/done.json")) == ["synth"]

    again = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=3000)
    assert again.returncode == 0, again.stderr[-3000:]
    synth_log = (run / "stages" / "synth" / "log.txt").read_text()
    assert synth_log.count("$ ") == 1  # the synthesis ran once
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["stages"] == ["base", "sft", "grpo"]
    assert "agentic/overall/pass@1" in summary["metrics"]
    done = {p.parent.name for p in run.glob("stages/*/done.json")}
    assert {"eval-base", "sft", "rs1-sample", "rs1-sft", "grpo", "eval-grpo"} <= done
    assert (run / "summary.png").exists()
