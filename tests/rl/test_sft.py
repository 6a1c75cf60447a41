"""``python -m rl sft``: the loss mask is exactly the assistant's turns, rendered as the
server renders them; bad data, models and configs are one line and exit 2 with nothing
written; real training on a synthesized run changes the weights, resumes, and leaves a
model the embedded server's loader loads (LoRA merged)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llm.yamlconf import YamlConfigError
from rl.sft_config import SFTRunConfig, load_sft_config
from rl.sft_data import SFTDataError, held_out, read_data, template_messages
from synth.schema import Record, Trajectory
from synth.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def call(ident: str, city: str) -> dict[str, Any]:
    arguments = json.dumps({"city": city})
    return {
        "id": ident,
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }


def weather_chat(city: str, degrees: int) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You report the weather."},
        {"role": "user", "content": f"Weather in {city}?"},
        {"role": "assistant", "content": "", "tool_calls": [call("c1", city)]},
        {"role": "tool", "tool_call_id": "c1", "content": json.dumps({"degrees": degrees})},
        {"role": "assistant", "content": f"It is {degrees} degrees in {city}."},
    ]


def synthesized_run(root: Path, cities: list[str]) -> Path:
    """A synthesis run directory as the pipeline leaves it: accepted and rejected shards."""
    records = [
        Record(
            task_id=f"task-{i}",
            agent_id="agent-1",
            domain="weather",
            environment="executable",
            difficulty="single",
            outcome="accepted" if i < len(cities) else "rejected",
            trajectory=Trajectory(
                task_id=f"task-{i}",
                agent_id="agent-1",
                messages=weather_chat(city, 10 + i),
                tools=[WEATHER],
            ),
        )
        for i, city in enumerate([*cities, "Nowhere"])
    ]
    RunStore(root).write_shard(records)
    return root


def run_config(out: Path, data: list[Any], **fields: Any) -> SFTRunConfig:
    training = {
        "max_steps": 2,
        "per_device_train_batch_size": 1,
        "max_length": 256,
        "save_steps": 1,
        "learning_rate": 1e-4,
        **fields.pop("training", {}),
    }
    return SFTRunConfig.model_validate(
        {
            "name": "test",
            "output_dir": str(out),
            "data": data,
            "training": training,
            "logging": {"progress": False, "report_to": ["tensorboard"]},
            **fields,
        },
        context={"check_files": True},
    )


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from llm.embedded.model import load_tokenizer

    return load_tokenizer()


# ------------------------------------------------------------------------ the loss mask


def masked_runs(ids: list[int], mask: list[int], tokenizer: Any) -> list[str]:
    """The text of each stretch of consecutive tokens with loss."""
    pairs = zip(ids, mask, strict=True)
    return [
        tokenizer.decode([token for token, _ in run])
        for bit, run in itertools.groupby(pairs, key=lambda pair: pair[1])
        if bit
    ]


def test_the_tokens_with_loss_are_exactly_the_assistant_turns(tokenizer) -> None:
    from llm.types import Message
    from rl.sft import training_template
    from rl.sft_data import Conversation, tokenize

    chat = [
        *weather_chat("Paris", 21),
        {"role": "user", "content": "And Oslo and Rome?"},
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [call("c2", "Oslo"), call("c3", "Rome")],
        },
        {"role": "tool", "tool_call_id": "c2", "content": "4"},
        {"role": "tool", "tool_call_id": "c3", "content": "25"},
        {"role": "assistant", "content": "Oslo 4, Rome 25."},
    ]
    conversation = Conversation("x", template_messages([Message(**m) for m in chat]), [WEATHER])
    encoded = tokenize(conversation, tokenizer, training_template(tokenizer, "embedded"))
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]

    def tool_call(city: str) -> str:
        body = json.dumps({"name": "get_weather", "arguments": {"city": city}})
        return f"<tool_call>\n{body}\n</tool_call>"

    turns = [
        "\n" + tool_call("Paris"),
        "\nIt is 21 degrees in Paris.",
        "\nChecking both.\n" + tool_call("Oslo") + "\n" + tool_call("Rome"),
        "\nOslo 4, Rome 25.",
    ]
    # each turn from the newline after its role header to <|im_end|> and the newline after it
    assert masked_runs(ids, mask, tokenizer) == [turn + "<|im_end|>\n" for turn in turns]
    assert tokenizer.decode(ids) == tokenizer.apply_chat_template(
        conversation.messages, tools=[WEATHER], tokenize=False
    )


def test_training_renders_every_row_exactly_as_the_server_does(tokenizer) -> None:
    from llm.embedded.model import tool_chat_template
    from rl.sft import training_template

    config = load_sft_config(ROOT / "configs" / "sft" / "demo.yaml", check_files=True)
    split = read_data(config)
    trained = training_template(tokenizer, "embedded")
    assert trained != tool_chat_template()  # it has the {% generation %} markers
    for conversation in split.train + split.eval:
        kwargs = {"tools": conversation.tools, "tokenize": False}
        served = tokenizer.apply_chat_template(
            conversation.messages, chat_template=tool_chat_template(), **kwargs
        )
        assert (
            tokenizer.apply_chat_template(conversation.messages, chat_template=trained, **kwargs)
            == served
        )


def test_tool_call_arguments_are_rendered_as_json_objects(tokenizer) -> None:
    from llm.types import Message

    messages = template_messages([Message(**m) for m in weather_chat("Lima", 18)])
    assert messages[2]["tool_calls"][0]["function"]["arguments"] == {"city": "Lima"}
    text = tokenizer.apply_chat_template(messages, tools=[WEATHER], tokenize=False)
    assert '{"name": "get_weather", "arguments": {"city": "Lima"}}' in text


# --------------------------------------------------------------------------- the data


def test_the_eval_split_is_chosen_by_row_id_whatever_the_order(tmp_path: Path) -> None:
    rows = [{"id": f"row-{i}", "messages": weather_chat("Paris", i)} for i in range(200)]
    forward, backward = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    forward.write_text("".join(json.dumps(r) + "\n" for r in rows))
    backward.write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
    first = read_data(run_config(tmp_path / "o", [str(forward)], eval_fraction=0.25))
    second = read_data(run_config(tmp_path / "o", [str(backward)], eval_fraction=0.25))
    assert {c.id for c in first.eval} == {c.id for c in second.eval}
    assert first.held_out == len(first.eval) and 20 < len(first.eval) < 80
    assert not {c.id for c in first.eval} & {c.id for c in first.train}
    assert [held_out(f"row-{i}", 0.25) for i in range(200)].count(True) == len(first.eval)


def test_a_synthesis_run_gives_its_accepted_trajectories_only(tmp_path: Path) -> None:
    run = synthesized_run(tmp_path / "run", ["Paris", "Oslo"])
    split = read_data(run_config(tmp_path / "o", [str(run)]))
    assert sorted(c.id for c in split.train) == ["task-0", "task-1"]
    assert split.train[0].tools == [WEATHER]


def jsonl(tmp_path: Path, *rows: Any) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "hi"}, r"rows.jsonl:2: messages: missing"),
        ({"messages": []}, r"rows.jsonl:2: messages: not a non-empty list"),
        (
            {"messages": [{"role": "robot", "content": "x"}]},
            r":2: messages\[0\].role: Input should be",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}]},
            r":2: messages: no assistant turn to learn from",
        ),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]},
            r":2: messages\[0\].tool_calls\[0\].id: Field required",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            call("c", "x") | {"function": {"name": "f", "arguments": "[1]"}}
                        ],
                    }
                ]
            },
            r":2: messages\[0\].tool_calls\[0\].function.arguments: not a JSON object",
        ),
        ({"messages": weather_chat("Paris", 1), "tools": "{nope"}, r":2: tools: not JSON"),
        ("just text", r":2: expected an object with messages, got str"),
    ],
)
def test_a_bad_row_is_named_by_file_line_and_field(tmp_path: Path, row: Any, message: str) -> None:
    path = jsonl(tmp_path, {"messages": weather_chat("Paris", 1)}, row)
    with pytest.raises(SFTDataError, match=message):
        read_data(run_config(tmp_path / "o", [str(path)]))


def test_a_run_directory_without_accepted_shards_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run" / "data" / "accepted").mkdir(parents=True)
    with pytest.raises(SFTDataError, match=r"run: no accepted shards \(data/accepted/\*.parquet\)"):
        read_data(run_config(tmp_path / "o", [str(tmp_path / "run")]))


def test_a_parquet_file_without_messages_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["hello"]}), tmp_path / "t.parquet")
    with pytest.raises(SFTDataError, match=r"t.parquet: no messages column \(columns: text\)"):
        read_data(run_config(tmp_path / "o", [str(tmp_path / "t.parquet")]))


# ------------------------------------------------------------------------- the config

GOOD = """\
name: t
output_dir: runs/t
data:
  - configs/sft/bank.jsonl
training:
  max_steps: 1
"""


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_a_good_config_loads_and_set_overrides_apply(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    path = config_file(tmp_path, GOOD)
    config = load_sft_config(path, ["training.max_steps=3", "lora.r=4"], check_files=True)
    assert config.training.max_steps == 3 and config.lora and config.lora.r == 4
    assert config.data[0].path == Path("configs/sft/bank.jsonl")
    assert config.logging.report_to == ["tensorboard"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("max_steps: 1", "max_steps: 0"),
            r"c.yaml:6: training.max_steps: Input should be greater",
        ),
        (
            ("name: t", "name: t\neval_fraction: 1"),
            r"c.yaml:2: eval_fraction: Input should be less",
        ),
        (("name: t", "name: t\nepochs: 2"), r"c.yaml:2: epochs: unknown field"),
        (
            ("bank.jsonl", "missing.jsonl"),
            r"c.yaml:4: data\[0\].path: .*missing.jsonl: no such file",
        ),
        (
            ("bank.jsonl", "demo.yaml"),
            r"c.yaml:4: data\[0\].path: .*demo.yaml: expected a synthesis",
        ),
        (("max_steps: 1", "max_steps: 1\n  extra: {warp: 9}"), r"not SFTConfig fields: warp"),
        (
            ("max_steps: 1", "max_steps: 1\n  extra: {seed: 9}"),
            r"set by this config's own fields.*: seed",
        ),
        (
            ("name: t", "name: t\nmodel: configs"),
            r"c.yaml:2: model: configs: not a model directory",
        ),
        (
            ("name: t", "name: t\nchat_template: model"),
            r"the embedded model's own template renders no tools",
        ),
    ],
)
def test_bad_fields_are_named_with_file_and_line(
    tmp_path: Path, monkeypatch, edit: tuple[str, str], message: str
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(YamlConfigError, match=message):
        load_sft_config(config_file(tmp_path, GOOD.replace(*edit)), check_files=True)


def test_the_demo_config_validates() -> None:
    config = load_sft_config(ROOT / "configs" / "sft" / "demo.yaml")
    assert config.model == "embedded" and config.eval_fraction > 0


# ------------------------------------------------------------------------------ the CLI


def cli(tmp_path: Path, config: SFTRunConfig, *args: str) -> Any:
    from rl.__main__ import app

    path = config_file(tmp_path, json.dumps(config.model_dump(mode="json")))
    return CliRunner().invoke(app, ["sft", str(path), *args])


def one_line_exit_2(result: Any, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert re.search(pattern, lines[0]), lines[0]


def test_a_dataset_without_messages_exits_2_writing_nothing(tmp_path: Path) -> None:
    data = jsonl(tmp_path, {"prompt": "hi", "completion": "hello"})
    out = tmp_path / "out"
    result = cli(tmp_path, run_config(out, [str(data)]))
    one_line_exit_2(result, r"rows.jsonl:1: messages: missing")
    assert not out.exists()


def test_a_directory_that_is_not_a_model_exits_2_writing_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    out = tmp_path / "out"
    data = str(ROOT / "configs" / "sft" / "bank.jsonl")
    result = cli(tmp_path, run_config(out, [data], model=str(broken)))
    one_line_exit_2(result, r"broken: not a loadable tokenizer")
    assert not out.exists()


def test_a_fresh_run_over_an_earlier_one_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "checkpoint-2").mkdir(parents=True)
    data = str(ROOT / "configs" / "sft" / "bank.jsonl")
    one_line_exit_2(
        cli(tmp_path, run_config(out, [data])), r"holds an earlier run \(checkpoint-2\).*--resume"
    )
    one_line_exit_2(
        cli(tmp_path, run_config(out, [data]), "--resume", "latest"),
        r"--resume latest: no complete checkpoint in",
    )
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-2"]


# --------------------------------------------------------------------- real training


@pytest.fixture(scope="module")
def trained(module_dir: Path) -> dict[str, Any]:
    """Two full fine-tuning steps on a synthesized run, a checkpoint after each."""
    from rl.sft import train

    tmp = module_dir
    run = synthesized_run(tmp / "run", ["Paris", "Oslo", "Rome", "Lima"])
    config = run_config(tmp / "out", [str(run)])
    return {"summary": train(config), "config": config, "out": tmp / "out", "tmp": tmp}


def changed_tensors(final: Path) -> list[str]:
    from safetensors.torch import load_file

    from llm.embedded.model import ensure_converted

    before = load_file(str(ensure_converted() / "model.safetensors"))
    after = load_file(str(final / "model.safetensors"))
    assert set(after) == set(before), "final/ holds the base model's tensors, no others"
    return [name for name in before if not before[name].equal(after[name])]


@pytest.mark.integration
def test_sft_on_a_synthesized_run_changes_the_weights(trained) -> None:
    summary, out = trained["summary"], trained["out"]
    assert summary["global_step"] == 2 and summary["train_rows"] == 4
    assert summary["final"] == str(out / "final") and summary["adapter"] is None
    assert summary["train_loss"] > 0
    assert changed_tensors(out / "final"), "two SFT steps changed no weights"
    assert (out / "checkpoint-1").is_dir() and (out / "checkpoint-2").is_dir()
    assert list((out / "runs").glob("*/events.out.tfevents.*")), "TensorBoard events written"
    assert load_sft_config(out / "config.yaml") == trained["config"]


@pytest.mark.integration
def test_the_final_model_loads_as_the_embedded_server_loads_it(trained) -> None:
    from llm.embedded.model import load_model, tool_chat_template

    model, tokenizer = load_model(trained["out"] / "final")
    assert model.config.model_type == "llama"
    saved = (trained["out"] / "final" / "chat_template.jinja").read_text()
    assert saved == tool_chat_template() == tokenizer.chat_template


@pytest.mark.integration
def test_resume_latest_continues_from_the_newest_checkpoint(trained) -> None:
    config = trained["config"].model_copy(deep=True)
    config.training.max_steps = 3
    result = cli(trained["tmp"], config, "--resume", "latest")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["global_step"] == 3
    state = json.loads((trained["out"] / "checkpoint-3" / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3]


@pytest.mark.integration
def test_a_lora_run_saves_the_adapter_merged_into_a_model_that_loads(tmp_path: Path) -> None:
    from llm.embedded.model import load_model
    from rl.sft import train

    run = synthesized_run(tmp_path / "run", ["Paris", "Oslo"])
    config = run_config(
        tmp_path / "out",
        [str(run)],
        eval_data=[str(jsonl(tmp_path, {"messages": weather_chat("Rome", 30)}))],
        lora={"r": 4, "alpha": 8},
        training={"max_steps": 1, "learning_rate": 1e-2},
    )
    summary = train(config)
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").is_file()
    assert summary["adapter"] == str(tmp_path / "out" / "adapter")
    assert changed_tensors(tmp_path / "out" / "final"), "the merged adapter changed nothing"
    load_model(tmp_path / "out" / "final")
    assert (summary["train_rows"], summary["eval_rows"], summary["held_out"]) == (2, 1, 0)
    assert summary["eval_loss"] > 0
