"""The one place ``rl`` meets TRL: a :class:`TrainConfig` becomes ``GRPOConfig`` + ``GRPOTrainer``.

:func:`build` loads the gyms, mixes their tasks, composes the rewards — one async TRL
reward function per gym (budget control and per-gym metrics included) and the critic's,
which reads the gyms' verifier scores of the same batch (:mod:`rl.composition`) —, maps
our GRPO knobs onto
``GRPOConfig``, routes tool-use rows to their executable environments through
``environment_factory``, and adds the temperature decay and progress callbacks. The
trainer is TRL's own, or — only when a PTX loss is configured — the one-method subclass in
:mod:`rl.ptx`. :func:`train` runs it inside a :class:`Services` scope that owns the judge
server, the Docker sandbox (started only if a gym asks for them) and the run's long-lived
chat clients (one per endpoint and event loop, closed when the run ends).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm.progress import DEFAULT_EVERY_S
from rl.callbacks import RichProgress, TemperatureDecay, train_to_end
from rl.clients import ClientPool
from rl.composition import RewardComposition
from rl.config import TrainConfig
from rl.data import mixture
from rl.environments import environment_class, use_endpoints
from rl.gyms import Budget, Gym, build_gym
from rl.gyms.base import PLAIN_ENVIRONMENT, Resources
from rl.multiturn import with_multiturn

log = logging.getLogger(__name__)


class PlainEnvironment:
    """The environment of rows that act in none: no tools, nothing added to the prompt."""

    def reset(self, **row: Any) -> None:
        return None


class Services(contextlib.ExitStack):
    """Judge endpoint, sandbox and chat clients for the run, made on first use, closed on exit.

    ``clients`` holds the run's one :class:`~llm.ChatClient` per endpoint and event loop:
    the judge's (``resources.judge_client()``, for the gyms) and the critic's, each made on
    the loop that uses it (TRL's reward loop) and kept for the whole run. ``servers``
    holds the run's embedded servers: the default model's (for ``embedded``; the one at
    ``SUMMIT_EMBEDDED_URL`` when that is set) and one per ``model_path`` checkpoint, each
    started on first use.
    """

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        from llm.embedded import EmbeddedServers

        self.config = config
        self.clients = ClientPool()
        self.callback(self.clients.close)  # runs last: after the servers the clients talk to
        self.callback(use_endpoints, None)  # environments stop resolving through this run
        self.servers = self.enter_context(EmbeddedServers())
        self.resources = Resources(judge=self._judge, sandbox=self._sandbox, clients=self.clients)

    def endpoint(self, name: str, model: str | None = None, model_path: Path | None = None) -> Any:
        """Endpoint ``name`` for the environments' user and simulator (``embedded``: the
        run's one embedded server, started on first use; ``model_path``: that checkpoint's)."""
        return self._endpoint(name, model, 8, model_path)

    def critic_endpoint(self) -> Any:
        """The critic's endpoint (starting the embedded server if it is ``embedded``)."""
        critic = self.config.critic
        if critic is None:
            raise ValueError("this run has no critic block")
        return self._endpoint(
            critic.endpoint, critic.model, critic.max_concurrency, critic.model_path
        )

    def _judge(self) -> Any:
        judge = self.config.judge
        return self._endpoint(judge.endpoint, judge.model, judge.max_concurrency, judge.model_path)

    def _endpoint(
        self, name: str, model: str | None, max_concurrency: int, model_path: Path | None = None
    ) -> Any:
        from llm import get_endpoint

        # one server per model for the run, shared by the judge, the critic and the
        # environments (asked for from verifier threads and the reward loop: started once)
        if model_path is not None or name == "embedded":
            return self.servers.endpoint(model_path, max_concurrency=max_concurrency)
        return get_endpoint(name, model=model, max_concurrency=max_concurrency)

    def _sandbox(self) -> Any:
        from sandboxes.docker import IMAGE, DockerSandbox, Limits

        box = DockerSandbox(
            IMAGE,
            pool_size=self.config.sandbox.pool_size,
            limits=Limits(timeout_s=self.config.sandbox.timeout_s),
        )
        return self.enter_context(box)


@dataclass
class Policy:
    model: str
    tokenizer: Any


def load_policy(config: TrainConfig) -> Policy:
    """The policy's weights location and its tokenizer (left padding, a pad token).

    A local model directory (the embedded model, an SFT or GRPO output) gets the tokenizer
    the embedded engine serves it with, so its chat template renders tools as the
    engine's does (``llm.embedded.model.load_tokenizer``)."""
    from llm.embedded.model import ensure_converted, load_tokenizer

    if config.policy.model == "embedded":
        path = ensure_converted()
        return Policy(str(path), load_tokenizer(path))
    if Path(config.policy.model).is_dir():
        return Policy(config.policy.model, load_tokenizer(Path(config.policy.model)))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.policy.model, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return Policy(config.policy.model, tokenizer)


def build_gyms(config: TrainConfig, resources: Resources) -> list[Gym]:
    return [build_gym(e.gym, e.options, resources) for e in config.gyms]


def reward_functions(
    config: TrainConfig, gyms: list[Gym], tokenizer: Any, services: Services | None = None
) -> list[Any]:
    """TRL's reward functions, all async: one per gym, then ``critic`` when
    ``config.critic`` is set. They are composed per batch (:mod:`rl.composition`): every
    gym's verifier runs first, once, all gyms concurrently, and the critic receives those
    scores of the same batch whatever order TRL calls the functions in."""

    def decode(ids: list[int]) -> str:
        return str(tokenizer.decode(ids, skip_special_tokens=True))

    # A completion not ending in EOS or padding was cut by TRL's generation cap.
    ends = {getattr(tokenizer, n, None) for n in ("eos_token_id", "pad_token_id")}
    stops = {int(i) for i in ends if i is not None}
    critic = None
    if config.critic is not None:
        from rl.critique import CritiqueReward

        critic = CritiqueReward(
            config.critic,
            critic_backend(config, services),
            num_generations=config.grpo.num_generations,
            stop_ids=stops,
        )
    composition = RewardComposition(
        gyms,
        [Budget(e.max_tokens, config.budget_penalty) for e in config.gyms],
        critic=critic,
        decode=decode,
        stop_ids=stops,
    )
    return composition.functions()


def critic_backend(config: TrainConfig, services: Services | None) -> Any:
    """The critic of ``config.critic``: a local trainable model or an endpoint preset
    (resolved on first use, through ``services`` when given so ``embedded`` is started)."""
    from rl.critique import EndpointCritic
    from rl.critique.local import LocalCritic
    from rubrics import library

    critic = config.critic
    if critic is None:
        raise ValueError("critic_backend needs a config with a critic block")
    rubric_set = library(*critic.rubric_files)
    if critic.local_model is not None:
        return LocalCritic.load(critic.local_model, critic.refinement, critic.rubrics, rubric_set)
    exemplars = critic.refinement.exemplars if critic.refinement.method == "in_context" else 0
    if services is not None:
        return EndpointCritic(
            services.critic_endpoint,
            exemplars=exemplars,
            rubric_set=rubric_set,
            clients=services.clients,
        )
    from llm import get_endpoint

    endpoint = get_endpoint(
        critic.endpoint, model=critic.model, max_concurrency=critic.max_concurrency
    )
    return EndpointCritic(endpoint, exemplars=exemplars, rubric_set=rubric_set)


def grpo_args(config: TrainConfig, *, max_steps: int | None = None) -> Any:
    """TRL's ``GRPOConfig`` for this run."""
    from trl import GRPOConfig

    g = config.grpo
    knobs = g.model_dump(exclude={"extra"})
    knobs["max_steps"] = max_steps or g.max_steps
    return GRPOConfig(
        output_dir=config.output_dir,
        seed=config.seed,
        temperature=config.temperature.start,
        reward_weights=[e.reward_weight for e in config.gyms]
        + ([config.critic.reward_weight] if config.critic else []),
        report_to=list(config.logging.report_to),
        disable_tqdm=config.logging.progress,
        model_init_kwargs={"dtype": config.policy.dtype},
        **knobs,
        **g.extra,
    )


def environment_factories(dataset: Any) -> dict[str, Any] | None:
    """``{name: factory}`` for the environments the rows name; None when none acts in one."""
    names = set(dataset["environment"]) - {PLAIN_ENVIRONMENT}
    if not names:
        return None
    factories: dict[str, Any] = {PLAIN_ENVIRONMENT: PlainEnvironment}
    factories.update({name: environment_class(name) for name in sorted(names)})
    return factories


def build(
    config: TrainConfig,
    services: Services,
    *,
    max_steps: int | None = None,
    progress_every_s: float = DEFAULT_EVERY_S,
) -> Any:
    """The ready-to-train ``GRPOTrainer`` for ``config`` (``progress_every_s``: the
    interval of progress lines where output is not a terminal)."""
    from trl import GRPOTrainer

    from rl.ptx import PtxData, PtxGRPOTrainer

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    gyms = build_gyms(config, services.resources)  # a bad data file fails before the model loads
    policy = load_policy(config)
    dataset = mixture(gyms, [e.weight for e in config.gyms], config.dataset_size, config.seed)
    args = grpo_args(config, max_steps=max_steps)
    decay = TemperatureDecay(config.temperature, args.max_steps)
    callbacks: list[Any] = [decay]
    if config.logging.progress:
        callbacks.append(RichProgress(every_s=progress_every_s))
    trainer_class = PtxGRPOTrainer if config.ptx else GRPOTrainer
    factories = environment_factories(dataset)
    if factories is not None:
        # agentic rows: tool calls, the simulated user, and loss on the policy's tokens only
        use_endpoints(services.endpoint, services.clients)
        trainer_class = with_multiturn(trainer_class)
    trainer: Any = trainer_class(
        model=policy.model,
        reward_funcs=reward_functions(config, gyms, policy.tokenizer, services),
        args=args,
        train_dataset=dataset,
        processing_class=policy.tokenizer,
        callbacks=callbacks,
        peft_config=config.policy.lora.to_peft() if config.policy.lora else None,
        environment_factory=factories,
    )
    decay.bind(trainer)
    if config.ptx:
        trainer.ptx = PtxData(
            config.ptx.path,
            policy.tokenizer,
            batch_size=config.ptx.batch_size,
            max_length=config.ptx.max_length,
            seed=config.seed,
        )
        trainer.ptx_weight = config.ptx.weight
    return trainer


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete ``checkpoint-N`` in ``output_dir``, or None.

    A checkpoint is complete once its ``trainer_state.json``, which the trainer writes
    last, reads back: a run stopped while saving leaves a newer, partial one behind.
    """
    found = []
    for path in Path(output_dir).glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        with contextlib.suppress(OSError, ValueError):
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
            found.append((int(step), path))
    return max(found)[1] if found else None


def train(
    config: TrainConfig,
    *,
    resume: str | bool = False,
    progress_every_s: float = DEFAULT_EVERY_S,
) -> dict[str, Any]:
    """Train (or resume: ``True`` for the latest complete checkpoint, or a checkpoint path)."""
    out = Path(config.output_dir)
    checkpoint = latest_checkpoint(out) if resume is True else (resume or None)
    if resume is True and checkpoint is None:
        raise ValueError(f"--resume latest: no complete checkpoint in {out}")
    config.write(out)
    with Services(config) as services:
        trainer = build(config, services, progress_every_s=progress_every_s)
        result = train_to_end(trainer, checkpoint)
        trainer.save_model(str(out / "final"))
    metrics = dict(result.metrics)
    log.info("trained %s: %d steps, metrics %s", config.name, trainer.state.global_step, metrics)
    return {"global_step": trainer.state.global_step, **metrics}
