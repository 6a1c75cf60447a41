"""Decontamination: tasks overlapping a named evaluation set are removed with the item
they overlap; unrelated tasks stay; bad evaluation files are refused by file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rubrics import Criterion, Rubric
from synth.decontam import (
    DecontamError,
    OverlapIndex,
    decontaminate,
    eval_items,
    planted_precision_recall,
    planted_set,
)
from synth.schema import TaskSpec


def task(task_id: str, goal: str, **fields: object) -> TaskSpec:
    return TaskSpec(
        id=task_id,
        agent_id="agent-1",
        domain="coding",
        difficulty="single",
        environment="docker",
        user_goal=goal,
        rubric=Rubric(
            id=f"task.{task_id}",
            kind="task",
            description="solves it",
            criteria=[Criterion(id="done", description="The code passes.")],
        ),
        **fields,
    )


@pytest.fixture(scope="module")
def humaneval() -> OverlapIndex:
    return OverlapIndex.of(["humaneval"])


def humaneval_prompt(item_id: str) -> str:
    return next(i.text for i in eval_items("humaneval") if i.id == item_id)


def test_a_planted_humaneval_prompt_is_removed_and_unrelated_tasks_stay(
    humaneval: OverlapIndex,
) -> None:
    prompt = humaneval_prompt("HumanEval/12")
    planted = " ".join(line.strip() for line in prompt.splitlines()).replace('"""', "'''")
    planted = planted.replace("Return", "give back")
    tasks = [
        task("t-0", "Transfer 40 euros from checking to savings and tell me the balance."),
        task("t-1", f"My team lead sent me this, could you do it today?\n{planted}\nThanks!"),
        task(
            "t-2",
            "Write a Python function that takes a list of strings and returns the "
            "longest one; return None in case the input list is empty.",
        ),
    ]
    kept, removed = decontaminate(tasks, humaneval)
    assert [t.id for t in kept] == ["t-0", "t-2"]
    (gone,) = removed
    assert (gone.task_id, gone.match.source, gone.match.item_id) == (
        "t-1",
        "humaneval",
        "HumanEval/12",
    )
    assert gone.match.rule == "ngram" and "def longest" in gone.match.snippet
    assert gone.match.reason().startswith("contaminated: humaneval HumanEval/12")


def test_a_task_of_a_named_eval_set_is_removed_by_its_origin(
    humaneval: OverlapIndex, tmp_path: Path
) -> None:
    real = task("t-9", "Write a helper for me.", origin="humaneval:HumanEval/3", eval_set=True)
    _, removed = decontaminate([real], humaneval)
    assert [(r.match.rule, r.match.item_id) for r in removed] == [("origin", "HumanEval/3")]
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"text": "Plan a three day trip to Lisbon for two people."}) + "\n")
    kept, _ = decontaminate([real], OverlapIndex.of([other]))
    assert kept == [real]


def test_a_short_prompt_matches_a_task_that_contains_it(tmp_path: Path) -> None:
    path = tmp_path / "short.jsonl"
    rows = [{"id": "q1", "prompt": "What is the capital of Peru?"}, {"id": "q2", "text": "Hi"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    index = OverlapIndex.of([path])
    match = index.check("Quick one: what is the capital of Peru? I need it for a quiz.")
    assert match is not None and (match.item_id, match.rule) == ("q1", "short_text")
    assert index.check("What is the capital of Chile?") is None
    assert index.check("Hi there, book me a table for two.") is None
    assert index.check("hi!") is not None


def test_held_out_task_rows_messages_and_run_directories_are_read(tmp_path: Path) -> None:
    held_out = task("task-7", "Find my dentist appointment next week and move it to Friday.")
    rl_row = {
        "id": "row-1",
        "prompt": [
            {"role": "system", "content": "You are a calendar assistant."},
            {"role": "user", "content": "Cancel every meeting I have on the 14th of March."},
        ],
    }
    run = tmp_path / "run"
    run.mkdir()
    (run / "tasks.jsonl").write_text(held_out.model_dump_json() + "\n" + json.dumps(rl_row) + "\n")
    items = eval_items(run)
    assert [(i.id, i.text) for i in items] == [
        ("task-7", held_out.user_goal),
        ("row-1", "Cancel every meeting I have on the 14th of March."),
    ]
    index = OverlapIndex.of([run])
    match = index.check("Please find my dentist appointment next week and move it to Friday!")
    assert match is not None and match.item_id == "task-7"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "fine"}\n[1, 2]\n', ":2: not a JSON object"),
        (
            '{"text": "fine"}\n\n{"answer": "4"}\n',
            ":3: no text field (one of user_goal, prompt, text)",
        ),
        ('{"text": "fine"\n', ":1: not JSON"),
        ('{"prompt": 42}\n', ":1: prompt is neither text nor a list of messages"),
        ("\n\n", ": no rows"),
    ],
)
def test_a_bad_eval_file_is_refused_with_its_file_and_line(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "eval.jsonl"
    path.write_text(content)
    with pytest.raises(DecontamError) as caught:
        eval_items(path)
    assert str(caught.value).startswith(f"{path}{message}")


def test_a_missing_eval_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DecontamError, match=rf"{tmp_path}/absent.jsonl: no such file"):
        OverlapIndex.of([tmp_path / "absent.jsonl"])


def test_the_planted_set_is_the_same_for_a_seed_and_half_planted() -> None:
    texts = planted_set(seed=5, size=40)
    assert texts == planted_set(seed=5, size=40) and texts != planted_set(seed=6, size=40)
    assert sum(item is not None for _, item in texts) == 20


def test_precision_and_recall_on_planted_overlaps_reach_the_target() -> None:
    precision, recall = planted_precision_recall(seed=0, size=400)
    assert precision >= 0.95 and recall >= 0.95


def test_a_strict_threshold_misses_paraphrased_copies() -> None:
    _, recall = planted_precision_recall(seed=0, size=200, n=13, threshold=0.9)
    assert recall < 0.95
