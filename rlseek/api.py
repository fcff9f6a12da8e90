"""The Python API: what the ``rlseek`` commands do, callable from code.

``train`` / ``evaluate`` are ``rlseek train`` / ``rlseek eval``; ``synthesize_preferences``,
``train_reward_model`` and ``evaluate_reward_model`` are ``rlseek prefs synth`` and
``rlseek reward-model train|eval`` (the offline commands are :func:`rlseek.offline.collect.collect`
and :func:`rlseek.offline.compare.compare`). The CLI handlers only parse arguments and print.

```python
import rlseek

run = rlseek.train("examples/configs/reacher_sac.yaml", out="runs/reacher",
                   overrides=["run.total_steps=5000"])
print(run.summary["eval"]["mean_return"])
print(rlseek.evaluate(run.path, episodes=20)["mean_return"])
```
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlseek.config import ExperimentConfig, apply_overrides, config_from_dict, load_config
from rlseek.errors import RlseekError
from rlseek.models.loader import DEFAULT_MODEL


@dataclass
class TrainedRun:
    """A finished run: its directory and the figures of its ``summary.json``."""

    path: Path
    summary: dict[str, Any]


def _as_config(config: str | Path | Mapping[str, Any] | ExperimentConfig, overrides: Sequence[str]) -> ExperimentConfig:
    if isinstance(config, ExperimentConfig):
        if overrides:
            return config_from_dict(apply_overrides(config.to_dict(), overrides), source="--set")
        return config
    if isinstance(config, Mapping):
        return config_from_dict(apply_overrides(dict(config), overrides), source="<dict>")
    return load_config(config, overrides)


def train(
    config: str | Path | Mapping[str, Any] | ExperimentConfig | None = None,
    *,
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
    progress: bool = False,
    command: list[str] | None = None,
    imports: Sequence[str] = (),
) -> TrainedRun:
    """Train an agent from a config (YAML path, dict or ExperimentConfig) into a run directory.

    ``imports`` names modules that register reward terms or envs (the CLI's ``--import``); they
    are added to the config's ``imports``, so the resolved ``config.yaml`` records them and
    subprocess env workers, ``rlseek eval`` and ``--resume`` import them too. With
    ``resume=True``, ``out`` names an unfinished run to continue from its newest checkpoint
    (``config`` is then ignored; its recorded imports are imported). Bad input raises
    :class:`~rlseek.errors.RlseekError` and leaves nothing behind. The run is recorded in MLflow
    unless ``run.tracking`` is false (see :mod:`rlseek.tracking`); a tracking failure only warns.
    """
    from rlseek.agents import get_agent_class
    from rlseek.distributed.files import session
    from rlseek.distributed.launch import create_run, open_run, record_world, settings, start_world
    from rlseek.envs.factory import check_env_id
    from rlseek.rewards import import_reward_modules
    from rlseek.runs import Run

    if resume:
        if out is None:
            raise RlseekError("--resume needs --out RUN_DIR naming the run to continue")
        run = Run.open(out)
        if run.is_finished:
            raise RlseekError(f"{out} is already finished; nothing to resume")
        if run.latest_checkpoint() is None and run.config.run.tasks is None:
            raise RlseekError(f"{out} has no complete checkpoint to resume from; start a new run instead")
        import_reward_modules(merge_imports(run.config.imports, imports))
        if run.config.run.tasks is not None:
            return _train_sequence(run, resume=True, progress=progress, command=command)
        agent_cls = get_agent_class(run.config.agent.algo)
        agent = agent_cls(run.config)
        world = start_world(run.config, agent_cls.distributed_strategies, run.config.agent.algo)
        run = open_run(run, collective=settings(run.config)["strategy"] == "fsdp")
        run.append_command(command)
        record_world(run, settings(run.config)["strategy"])
        with session(run, kind="train") as tracked:
            summary = agent.train(run, resume=True, progress=progress and world.is_main)
            tracked.finish(summary)
    else:
        if config is None:
            raise RlseekError("train needs a config (a YAML path, a dict or an ExperimentConfig)")
        cfg = _as_config(config, overrides)
        cfg = dataclasses.replace(cfg, imports=merge_imports(cfg.imports, imports))
        import_reward_modules(cfg.imports)
        agent_cls = get_agent_class(cfg.agent.algo)
        if agent_cls.env_kind != "offline":
            check_env_id(cfg.env.id)
        if cfg.run.tasks is not None:
            from rlseek.continual.runner import check_supported, spec_of, task_config

            start_world(cfg, (), cfg.agent.algo)  # refuses a torchrun launch, before any file

            check_supported(agent_cls, cfg)
            for task in spec_of(cfg).tasks:  # every task's env and params checked up front
                check_env_id(task.env["id"])
                first = task_config(cfg, task)
                agent_cls.config_class.from_params(first.agent.params).create(first).resolve_config(first)
            run = Run.create(Path(out) if out else _default_out(cfg), cfg, command)
            return _train_sequence(run, resume=False, progress=progress, command=command)
        # The typed agent.params, parsed once (d3rlpy-style), then the agent built from them.
        agent = agent_cls.config_class.from_params(cfg.agent.params).create(cfg)
        cfg = agent.resolve_config(cfg)
        agent.config = cfg
        # Under torchrun: checks that fail alike on every rank, then the process group; rank 0
        # creates the one run directory (see rlseek.distributed).
        world = start_world(cfg, agent_cls.distributed_strategies, cfg.agent.algo)
        out_path = Path(out) if out else _default_out(cfg)
        run = create_run(lambda: Run.create(out_path, cfg, command),
                         collective=settings(cfg)["strategy"] == "fsdp")
        record_world(run, settings(cfg)["strategy"])
        with session(run, kind="train") as tracked:
            try:
                summary = agent.train(run, resume=False, progress=progress and world.is_main)
            except RlseekError:
                # Bad input found only once training started: leave nothing behind if no
                # checkpoint was written yet (neither files nor a tracking record).
                if world.is_main and run.latest_checkpoint() is None:
                    run.tracker.discard()
                    shutil.rmtree(run.path, ignore_errors=True)
                raise
            tracked.finish(summary)
    return TrainedRun(run.path, summary)


def _train_sequence(run: Any, *, resume: bool, progress: bool, command: list[str] | None) -> TrainedRun:
    """A continual run (``run.tasks``): see :mod:`rlseek.continual.runner`."""
    from rlseek.continual.runner import train_sequence
    from rlseek.tracking import TrackedRun

    if resume:
        run.append_command(command)
    with TrackedRun(run, kind="train") as session:
        try:
            summary = train_sequence(run, resume=resume, progress=progress, command=command)
        except RlseekError:
            if not resume and not (run.path / "continual.json").is_file() and not any(
                    (run.path / "tasks").glob("*/checkpoints/*")):
                run.tracker.discard()
                shutil.rmtree(run.path, ignore_errors=True)
            raise
        session.finish(summary)
    return TrainedRun(run.path, summary)


def merge_imports(recorded: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``recorded`` followed by the modules of ``extra`` not already in it, in order."""
    out = list(recorded)
    out += [m for m in dict.fromkeys(extra) if m not in out]
    return out


def evaluate(
    run_dir: str | Path, *, episodes: int | None = None, overrides: Sequence[str] = (),
    imports: Sequence[str] = (),
) -> dict[str, Any]:
    """Evaluate a run's final policy (or newest checkpoint); ``overrides`` change its config
    for this evaluation only (e.g. ``["env.reward.control=0.5"]``)."""
    from rlseek.agents import get_agent_class
    from rlseek.rewards import import_reward_modules
    from rlseek.runs import Run

    run = Run.open(run_dir)
    import_reward_modules(merge_imports(run.config.imports, imports))
    config = run.config
    if overrides:
        config = config_from_dict(apply_overrides(config.to_dict(), overrides), source="--set")
    if episodes is not None:
        if episodes < 1:
            raise RlseekError(f"--episodes must be >= 1, got {episodes}")
        config.run.eval_episodes = episodes
    agent = get_agent_class(config.agent.algo)(config)
    return agent.evaluate(run, episodes=episodes)


def load_summary(run_dir: str | Path) -> dict[str, Any]:
    """The ``summary.json`` of a finished run."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise RlseekError(f"{run_dir} has no summary.json (is the run finished?)")
    return json.loads(path.read_text())


def _default_out(config: ExperimentConfig) -> Path:
    import datetime as dt

    name = config.env.id.split("/")[-1].lower()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{name}-{config.agent.algo}-s{config.run.seed}-{stamp}"


# -- preferences and reward models ------------------------------------------------------------
def _quiet_transformers() -> None:
    # Load/save progress bars and hub notices would drown the one-line-per-event output.
    from rlseek.runtime import quiet_libraries

    quiet_libraries("transformers")


def _set_threads(device: str) -> None:
    """``OMP_NUM_THREADS`` threads on CPU when it is set (else torch's default)."""
    import os

    from rlseek.runtime import set_torch_threads

    set_torch_threads(device, int(os.environ.get("OMP_NUM_THREADS") or 0), default=None)


def synthesize_preferences(
    task: str,
    n: int,
    out: str | Path,
    *,
    device: str = "cpu",
    imports: Sequence[str] = (),
    force: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Sample ``n`` completion pairs on text env ``task``, label them with the scripted
    annotator and write them to ``out`` (JSONL, atomically; an existing file only with
    ``force``). ``options`` are :func:`rlseek.reward_models.synth.synthesize`'s keyword
    arguments (``noise``, ``seed``, ``policy``, ``temperature``, ``heldout``, ``score_term``,
    ``log``). Returns the synthesis figures."""
    from rlseek.models.loader import resolve_device
    from rlseek.reward_models.data import PreferenceDataset
    from rlseek.reward_models.synth import get_task, synthesize
    from rlseek.rewards import import_reward_modules
    from rlseek.runs import atomic_write_text, check_new_output

    out = Path(out)
    check_new_output(out, "output file", force)
    get_task(task)
    import_reward_modules(imports)
    _quiet_transformers()
    dev = resolve_device(device)
    _set_threads(dev)
    pairs, stats = synthesize(task, n, device=dev, **options)
    atomic_write_text(out, PreferenceDataset(pairs).to_jsonl())
    stats["out"] = str(out)
    return stats


def train_reward_model(
    train_data: str | Path,
    out: str | Path,
    *,
    eval_data: str | Path | None = None,
    eval_split: float | None = None,
    backbone: str = DEFAULT_MODEL,
    config: Any = None,
    attack: Any = None,
    max_length: int = 512,
    device: str = "auto",
    log: Callable[[str], None] | None = None,
    tracking: bool = True,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Train a Bradley–Terry reward model on the pairs in ``train_data`` (JSONL) into the new
    directory ``out``; evaluate on ``eval_data`` or a seeded ``eval_split`` of the training
    pairs (default 0.1). ``config`` is a :class:`~rlseek.reward_models.trainer.TrainConfig`,
    ``attack`` the :class:`~rlseek.reward_models.adversarial.AdversarialConfig` whose PGD attack
    the robustness figure uses (default ε = 0.1, 5 steps). ``out`` gets the model and its
    ``metrics.json``; returns the headline figures. Warnings (duplicate pairs) and progress go
    to ``log``. The training is recorded in MLflow (kind ``reward-model``) unless ``tracking`` is
    false; ``tracking_uri`` picks the store (see :mod:`rlseek.tracking`)."""
    from rlseek.models.loader import resolve_device
    from rlseek.reward_models.adversarial import AdversarialConfig
    from rlseek.reward_models.data import DEFAULT_EVAL_SPLIT, PreferenceDataset
    from rlseek.reward_models.trainer import TrainConfig
    from rlseek.rewards.learned.model import RewardModel
    from rlseek.runs import check_new_output

    say = log or (lambda _msg: None)
    out = Path(out)
    check_new_output(out, "model directory")
    if eval_split is not None and not 0.0 < eval_split < 1.0:
        raise RlseekError(f"--eval-split must be a fraction in (0, 1), got {eval_split}")
    cfg = config if config is not None else TrainConfig()
    adv = attack if attack is not None else AdversarialConfig()
    cfg.validate()
    world = _reward_model_world(cfg.batch_size, device)
    if not world.is_main:  # one record and one progress log per training, rank 0's
        tracking, log, say = False, None, (lambda _msg: None)
    train = PreferenceDataset.from_jsonl(train_data)
    if train.duplicates:
        say("warning: " + train.duplicate_report())
    if eval_data is not None:
        evaluation = PreferenceDataset.from_jsonl(eval_data)
        if evaluation.duplicates:
            say("warning: " + evaluation.duplicate_report())
    else:
        train, evaluation = train.split(eval_split or DEFAULT_EVAL_SPLIT, seed=cfg.seed)
    _quiet_transformers()
    dev = resolve_device(device)
    _set_threads(dev)
    model = RewardModel.from_backbone(backbone, max_length=max_length, seed=cfg.seed).to(dev)
    from rlseek.tracking.record import close_model_tracker, open_model_tracker

    tracker = open_model_tracker(
        out, kind="reward-model", algo="bradley-terry", seed=cfg.seed, enabled=tracking, uri=tracking_uri,
        data={"train": train_data, **({"eval": eval_data} if eval_data is not None else {})},
        params={**{k: v for k, v in dataclasses.asdict(cfg).items() if k != "extra"}, "backbone": backbone,
                "max_length": max_length, "eval_split": eval_split, "device": device},
    )
    try:
        summary, result = _fit_reward_model(model, cfg, adv, train, evaluation, train_data, eval_data,
                                            eval_split, out, log)
    except BaseException as exc:
        tracker.finish("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    history = [{"train/loss": rec.get("train_loss"),
                **{f"eval/{k[5:]}": v for k, v in rec.items() if k.startswith("eval_")}, "step": rec["step"]}
               for rec in result.get("history") or []]
    close_model_tracker(tracker, history, {k: v for k, v in summary.items() if k != "out"},
                        int(result.get("steps") or 0), [out / "metrics.json"])
    return summary


def _reward_model_world(batch_size: int, device: str) -> Any:
    """Under torchrun, the process group of a data-parallel (ddp) reward-model training: each
    rank takes ``batch_size / world size`` pairs of every batch. A world size that does not
    divide ``batch_size`` fails before anything starts."""
    import os

    from rlseek.distributed import current, init_world, launched_by_torchrun
    from rlseek.runtime import resolve_device

    if not launched_by_torchrun():
        return current()
    size = int(os.environ["WORLD_SIZE"])
    if batch_size % size:
        raise RlseekError(f"--batch-size {batch_size} (pairs per step, all ranks together) is not "
                          f"divisible by world size {size}; use a multiple of {size}")
    return init_world("auto", resolve_device(device, check=True))


def _fit_reward_model(model: Any, cfg: Any, adv: Any, train: Any, evaluation: Any, train_data: str | Path,
                      eval_data: str | Path | None, eval_split: float | None, out: Path,
                      log: Callable[[str], None] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit, evaluate (plain and under PGD) and write the model directory; returns the headline
    figures and the full metrics."""
    from rlseek.reward_models.data import DEFAULT_EVAL_SPLIT
    from rlseek.reward_models.trainer import BradleyTerryTrainer, evaluate
    from rlseek.runs import atomic_directory, check_new_output, sha256_file

    say = log or (lambda _msg: None)
    trainer = BradleyTerryTrainer(model, cfg, log=log)
    if trainer.parameter_share:
        s = trainer.parameter_share
        say(f"LoRA r={cfg.lora_rank} alpha={cfg.lora_alpha}: {s['trainable']:,} of {s['total']:,} "
            f"parameters trainable ({100 * s['share']:.2f}%)")
    result = trainer.train(train, evaluation)
    # Robustness is always reported, so runs with and without adversarial training compare directly.
    result["eval_adversarial"] = evaluate(model, evaluation, adversarial=adv)
    eval_path = eval_data if eval_data is not None else train_data
    result["data"] = {
        "train": {"path": str(train_data), "sha256": sha256_file(train_data), "pairs": len(train)},
        "eval": {"path": str(eval_path), "sha256": sha256_file(eval_path), "pairs": len(evaluation),
                 "split": None if eval_data is not None else eval_split or DEFAULT_EVAL_SPLIT},
    }
    from rlseek.distributed import barrier, current

    if current().is_main:  # under torchrun rank 0 writes the model; the others wait for it
        check_new_output(out, "model directory")
        with atomic_directory(out) as tmp:
            model.save(tmp, metrics=result)
    barrier()
    ev, adv_ev = result["eval"], result["eval_adversarial"]
    summary = {
        "out": str(out),
        "eval_accuracy": ev["accuracy"],
        "eval_adversarial_accuracy": adv_ev["adversarial_accuracy"],
        "eval_pairs": ev["n"],
        "train_accuracy": result["train"]["accuracy"],
        "steps": result["steps"],
        "stopped_early": result["stopped_early"],
        "pairs_per_second": result["pairs_per_second"],
        "trainable_share": result["trainable_parameters"]["share"],
    }
    return summary, result


def evaluate_reward_model(
    model_dir: str | Path, data: str | Path, *, attack: Any = None, device: str = "auto",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Accuracy (and mean margin) of the reward model in ``model_dir`` on the pairs in ``data``;
    with ``attack`` (an AdversarialConfig) also the accuracy under that PGD attack."""
    from rlseek.models.loader import resolve_device
    from rlseek.reward_models.data import PreferenceDataset
    from rlseek.reward_models.trainer import evaluate
    from rlseek.rewards.learned.model import RewardModel

    _quiet_transformers()
    model = RewardModel.load(model_dir, device=resolve_device(device))
    pairs = PreferenceDataset.from_jsonl(data)
    if pairs.duplicates and log is not None:
        log("warning: " + pairs.duplicate_report())
    return evaluate(model, pairs, adversarial=attack)
