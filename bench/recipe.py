"""Benchmark K2's recipe: does it make the embedded policy better on held-out tasks?

The real recipe (``python -m rl recipe``'s :class:`rl.recipe.Recipe`, every stage its own
command) runs on this CPU with the embedded SmolLM2-135M as teacher, user, judge and
policy: a synthesis of verifiable tool-use tasks — the executable tool sets (bank,
calendar, files; decided by their expected final state) and the Docker code sandbox (unit
tests) — an SFT on the SFT demo's twelve hand-written bank conversations plus the
synthesis' accepted train-split trajectories, one rejection-sampling round (the policy
plays every train task ``k`` times, SFT on those that pass), and GRPO on the train tasks.
Half of the tasks (by a hash of their id) are held out: never trained on, played ``n``
times each after each training stage by the agentic evaluation (the synthesis' own
roll-out and verifiable checks).

The figures are pass@1 on the held-out tasks for the base policy, after the first SFT,
after the rejection-sampling SFT round, and after GRPO, each with a 95% interval from a
bootstrap over tasks (10,000 resamples). ``sft_gain`` is the paired difference (same
tasks) between the rejection-sampling round's policy and the base, ``rs_gain`` what the
round added to the first SFT, ``rl_gain`` what GRPO added; ``sft_gain_ci_low`` is the
lower end of the first one's interval. A lower end above 0 is the target.

    python bench/recipe.py [--quick] [--json] [--out DIR] [--fresh]

The run directory is kept (``runs/bench/recipe``): a rerun resumes the recipe where it
stopped and recomputes the figures. ``--quick`` is a smaller run for a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "runs" / "bench" / "recipe"
RESAMPLES = 10_000
STAGES = {"base": "pass1_base", "sft": "pass1_sft_seed", "rs1": "pass1_sft", "grpo": "pass1_rl"}
"""Evaluation points measured, and their JSON key."""
LIMITS = "{max_turns: 1, max_tool_calls: 3, max_tokens: 96, first_tool_choice: required}"


def sizes(quick: bool) -> dict[str, int]:
    """How big a run is: tasks, trials per held-out task, samples per train task, steps."""
    if quick:
        return {"agents": 4, "per_agent": 4, "eval_samples": 1, "k": 2, "grpo_steps": 1}
    return {"agents": 6, "per_agent": 8, "eval_samples": 2, "k": 4, "grpo_steps": 4}


def recipe_config(out: Path, quick: bool) -> Path:
    """The benchmark's recipe: the demo's stage configs, sized by :func:`sizes`."""
    size = sizes(quick)
    docker = 1
    config = {
        "name": "bench-quick" if quick else "bench",
        "run_dir": str(out / "run"),
        "seed": 0,
        "policy": "embedded",
        "heldout_fraction": 0.5,
        "synth": {
            "config": "configs/synth/recipe-demo.yaml",
            "set": [
                f"environment_mix={{simulated: 0, executable: {size['agents'] - docker}, "
                f"docker: {docker}}}",
                f"agents.count={size['agents']}",
                f"tasks={{per_agent: {size['per_agent']}, difficulties: [single]}}",
                f"rollout={LIMITS}",
            ],
        },
        "sft": {
            "config": "configs/sft/demo.yaml",
            "set": [
                "eval_fraction=0.0",
                "training.max_steps=16",
                "training.save_steps=8",
                "training.learning_rate=3.0e-5",
            ],
        },
        "rejection": {
            "config": "configs/sample/demo.yaml",
            "rounds": 1,
            "set": [f"samples={size['k']}", "temperature=0.9", f"limits={LIMITS}", "concurrency=8"],
        },
        "grpo": {
            "config": "configs/grpo/recipe-demo.yaml",
            "set": [
                f"grpo.max_steps={size['grpo_steps']}",
                f"grpo.save_steps={size['grpo_steps']}",
            ],
        },
        "evaluation": {
            "config": "configs/grpo/recipe-demo.yaml",
            "after": ["base", "sft", "rejection", "grpo"],
            "set": [
                f"agentic_eval.samples={size['eval_samples']}",
                "agentic_eval.ks=[1]",
                f"agentic_eval.limits={LIMITS}",
            ],
        },
    }
    path = out / "recipe.yaml"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def per_task(run_dir: Path, stage: str) -> dict[str, float]:
    """Pass rate of each held-out task at an evaluation stage, read from its trials."""
    from rl.config import load_config
    from rl.task_sources import in_split, load_task_set
    from rl.trials import finished, open_store, plan

    directory = run_dir / "stages" / f"eval-{stage}"
    block = load_config(directory / "config.yaml").agentic_eval
    assert block is not None
    task_set = load_task_set(block.tasks)
    tasks = in_split(task_set.tasks, block.split, block.heldout_fraction)
    trials = plan(task_set, tasks, block.samples)
    passed: dict[str, list[bool]] = {}
    for trial, row in finished(open_store(directory / "trials", block), trials):
        passed.setdefault(trial.task.id, []).append(row["outcome"] == "accepted")
    return {task: sum(p) / len(p) for task, p in passed.items() if len(p) == block.samples}


def interval(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """95% bootstrap interval of the mean of ``values`` (resampled over tasks)."""
    if len(values) == 0:
        return (float("nan"), float("nan"))
    means = rng.choice(values, size=(RESAMPLES, len(values)), replace=True).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def figures(run_dir: Path) -> dict[str, Any]:
    """pass@1 per measured stage with its interval, and the paired gains."""
    rng = np.random.default_rng(0)
    rates = {stage: per_task(run_dir, stage) for stage in STAGES}
    common = sorted(set.intersection(*(set(r) for r in rates.values())))
    result: dict[str, Any] = {"tasks_heldout": len(common)}
    for stage, key in STAGES.items():
        values = np.array([rates[stage][t] for t in common])
        result[key] = float(values.mean()) if len(values) else None
        result[f"{key}_ci"] = interval(values, rng)
    gains = {"sft_gain": ("rs1", "base"), "rs_gain": ("rs1", "sft"), "rl_gain": ("grpo", "rs1")}
    for name, (a, b) in gains.items():
        diff = np.array([rates[a][t] - rates[b][t] for t in common])
        result[name] = float(diff.mean()) if len(diff) else None
        result[f"{name}_ci_low"], result[f"{name}_ci_high"] = interval(diff, rng)
    markers = sorted((run_dir / "stages").glob("*/done.json"))
    result["stages"] = {m.parent.name: json.loads(m.read_text()) for m in markers}
    return result


def training_rows(run_dir: Path) -> dict[str, int]:
    """Rows each training stage trained on (0 when it was skipped)."""
    rows = {}
    for stage in ("sft", "rs1-sft"):
        marker = run_dir / "stages" / stage / "done.json"
        if marker.exists():
            rows[stage] = int(json.loads(marker.read_text())["outputs"].get("rows", 0))
    return rows


def table(result: dict[str, Any]) -> Table:
    out = Table(title=f"held-out tasks: {result['tasks_heldout']} (pass@1, 95% interval)")
    for column in ("policy", "pass@1", "interval"):
        out.add_column(column, justify="left" if column == "policy" else "right")
    names = {
        "pass1_base": "base",
        "pass1_sft_seed": "after SFT (demonstrations + synthesis)",
        "pass1_sft": "after the rejection-sampling SFT round",
        "pass1_rl": "after GRPO",
    }
    for key, name in names.items():
        low, high = result[f"{key}_ci"]
        value = result[key]
        out.add_row(name, "-" if value is None else f"{value:.3f}", f"[{low:.3f}, {high:.3f}]")
    for gain in ("sft_gain", "rs_gain", "rl_gain"):
        value = result[gain]
        low, high = result[f"{gain}_ci_low"], result[f"{gain}_ci_high"]
        shown = "-" if value is None else f"{value:+.3f}"
        out.add_row(gain.replace("_", " "), shown, f"[{low:+.3f}, {high:+.3f}]")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small run (smoke test)")
    parser.add_argument("--json", action="store_true", help="figures as JSON on the last line")
    parser.add_argument("--out", type=Path, default=None, help="run directory (kept)")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    args = parser.parse_args()
    out = args.out or DEFAULT_OUT.with_name("recipe-quick" if args.quick else "recipe")
    console = Console(stderr=True)

    from rl.recipe import Recipe, remove_run
    from rl.recipe_config import load_recipe

    config = load_recipe(recipe_config(out, args.quick), check_files=True)
    if args.fresh:
        remove_run(config.run_dir)
    Recipe(config, console).run()
    result = figures(Path(config.run_dir))
    result["training_rows"] = training_rows(Path(config.run_dir))
    result["summary_png"] = str(Path(config.run_dir) / "summary.png")
    Console().print(table(result))
    if args.json:
        stages = result.pop("stages")
        result["stage_seconds"] = {name: s.get("seconds") for name, s in stages.items()}
        print(json.dumps(result))


if __name__ == "__main__":
    main()
