"""The Python API: what ``rlseek train`` and ``rlseek eval`` do, callable from code.

```python
import rlseek

run = rlseek.train("examples/configs/reacher_sac.yaml", out="runs/reacher",
                   overrides=["run.total_steps=5000"])
print(run.summary["eval"]["mean_return"])
print(rlseek.evaluate(run.path, episodes=20)["mean_return"])
```
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlseek.config import ExperimentConfig, apply_overrides, config_from_dict, load_config
from rlseek.errors import RlseekError


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
) -> TrainedRun:
    """Train an agent from a config (YAML path, dict or ExperimentConfig) into a run directory.

    With ``resume=True``, ``out`` names an unfinished run to continue from its newest checkpoint
    (``config`` is then ignored). Bad input raises :class:`~rlseek.errors.RlseekError` and
    leaves nothing behind.
    """
    from rlseek.agents import get_agent_class
    from rlseek.envs.factory import check_env_id
    from rlseek.rewards import import_reward_modules
    from rlseek.runs import Run

    if resume:
        if out is None:
            raise RlseekError("--resume needs --out RUN_DIR naming the run to continue")
        run = Run.open(out)
        if run.is_finished:
            raise RlseekError(f"{out} is already finished; nothing to resume")
        if run.latest_checkpoint() is None:
            raise RlseekError(f"{out} has no complete checkpoint to resume from; start a new run instead")
        import_reward_modules(run.config.imports)
        agent = get_agent_class(run.config.agent.algo)(run.config)
        run.append_command(command)
        summary = agent.train(run, resume=True, progress=progress)
    else:
        if config is None:
            raise RlseekError("train needs a config (a YAML path, a dict or an ExperimentConfig)")
        cfg = _as_config(config, overrides)
        import_reward_modules(cfg.imports)
        agent_cls = get_agent_class(cfg.agent.algo)
        if agent_cls.env_kind != "offline":
            check_env_id(cfg.env.id)
        agent = agent_cls(cfg)
        cfg = agent.resolve_config(cfg)
        agent.config = cfg
        run = Run.create(Path(out) if out else _default_out(cfg), cfg, command)
        try:
            summary = agent.train(run, resume=False, progress=progress)
        except RlseekError:
            # Bad input found only once training started: leave nothing behind if no
            # checkpoint was written yet.
            if run.latest_checkpoint() is None:
                shutil.rmtree(run.path, ignore_errors=True)
            raise
    run.finish(summary)
    return TrainedRun(run.path, summary)


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
    import_reward_modules([*run.config.imports, *imports])
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
