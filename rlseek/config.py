"""Experiment configs: one YAML file per experiment, validated with field paths in errors.

```yaml
env:   {id: rlseek/Reacher-v0, kwargs: {}, reward: {distance: 1.0, control: 0.1}, reward_params: {}}
agent: {algo: sac, params: {learning_rate: 0.0003}}
run:   {total_steps: 30000, seed: 0, n_envs: 1, device: auto, eval_every: 5000, eval_episodes: 10}
imports: []
```

``--set agent.params.learning_rate=1e-5`` overrides any field; the value is parsed as YAML
(so ``1e-5`` is a float, ``[a, b]`` a list, ``null`` None).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlseek.errors import ConfigError, did_you_mean


@dataclass
class EnvSection:
    """Which environment to train on, with its make-kwargs and reward weights."""

    id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    reward: dict[str, float] | None = None
    """Term name -> weight; None keeps the env's default weights."""
    reward_params: dict[str, dict[str, Any]] | None = None
    """Term name -> params for that term."""


@dataclass
class AgentSection:
    """Which algorithm, and its hyperparameters (validated by the agent)."""

    algo: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSection:
    """Budget, seeding, vectorization, evaluation and checkpoint cadence."""

    total_steps: int = 100_000
    """Environment steps (SB3 agents), completions (lm-ppo) or gradient steps (offline
    agents) — each agent's docs say which."""
    seed: int = 0
    n_envs: int = 1
    vec_env: str = "dummy"
    """'dummy' (in-process) or 'subproc' (one process per env)."""
    device: str = "auto"
    torch_threads: int = 0
    """CPU threads torch may use; 0 = the agent's choice (1 for the SB3 agents, whose small
    MLPs gain nothing from a second thread while the env steps in the same process and lose
    badly when processes oversubscribe the cores; torch's default for language models)."""
    eval_every: int = 10_000
    eval_episodes: int = 10
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 3
    stages: Any = field(default_factory=list)
    """Staged batch sizes, ``[{steps, batch_size, curriculum}, ...]`` (steps adding up to
    ``total_steps``); empty: one stage. See :mod:`rlseek.stages`."""
    tracking: bool = True
    """Record the run in MLflow (params, metrics, fingerprints); ``false`` switches it off."""
    tracking_uri: str = ""
    """MLflow tracking URI; empty: ``MLFLOW_TRACKING_URI``, else the embedded sqlite store
    ``runs/mlflow.db`` (see :mod:`rlseek.tracking.settings`)."""
    distributed: dict[str, Any] | None = None
    """Multi-process training under ``torchrun`` (text agents and reward models):
    ``{strategy: ddp|fsdp, backend: auto|gloo|nccl, timeout_s: 1800}``; null = one process
    (a torchrun launch then uses ddp on the auto backend). ``n_envs`` stays the *global*
    batch: each of the world's ranks rolls out ``n_envs / world_size`` of it (see
    :mod:`rlseek.distributed`)."""
    tasks: Any = None
    """Continual learning: a list of tasks ``{env: ..., total_steps: ..., name: ...}`` trained
    in order (see :mod:`rlseek.continual.spec`); None = one task, the ``env`` section."""
    replay: Any = None
    """With ``tasks``: ``{fraction, capacity}`` of past-task samples mixed into each update."""
    ewc: Any = None
    """With ``tasks``: ``{lambda, fisher_samples}`` of elastic weight consolidation."""


@dataclass
class ExperimentConfig:
    """A whole experiment: env, agent, run settings and user modules to import."""

    env: EnvSection
    agent: AgentSection
    run: RunSection = field(default_factory=RunSection)
    imports: list[str] = field(default_factory=list)
    source: str = field(default="<dict>", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (what config.yaml in a run directory holds)."""
        d = dataclasses.asdict(self)
        d.pop("source", None)
        return d

    def sha256(self) -> str:
        """Fingerprint of the resolved config (key order independent)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but ``1e-5`` and ``3E+4`` read as floats (as in YAML 1.2).

    PyYAML follows YAML 1.1, where a float needs a dot, so ``learning_rate: 3e-4`` would
    otherwise arrive as the *string* "3e-4" — the most common way to write a learning rate.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)


_TOP_KEYS = ("env", "agent", "run", "imports")

_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
          "dict": "a mapping", "list": "a list of strings"}


def check_field(value: Any, annotation: Any, where: str, source: str | None = None) -> Any:
    """Check one typed config field and return its value, lightly coerced.

    The one validator behind rlseek's typed configs: the experiment config's sections,
    lm-ppo's ``LmPpoConfig`` and the offline agents' d3rlpy fields. ``annotation`` is a type
    or its string form (``"int"``, ``"float | None"``, ``"list[str] | None"``,
    ``"dict[str, Any]"``); ``where`` is the field path for the message (``"run.total_steps"``),
    ``source`` the file it came from.

    Coercions: an integral float for an int (YAML ``1e4``), an int for a float, one string for
    a list of strings, null for a non-optional mapping (an empty one). A value of the wrong
    type raises :class:`ConfigError`: ``field 'run.seed' must be an integer, got 1.5``.
    """
    ann = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    optional = "None" in ann
    base = ann.split("|")[0].strip().split("[")[0]
    prefix = f"{source}: " if source else ""
    if value is None:
        if optional:
            return None
        if base == "dict":
            return {}
        if base in _KINDS:
            raise ConfigError(f"{prefix}field '{where}' must not be null")
        return value
    ok = True
    if base == "bool":
        ok = isinstance(value, bool)
    elif base == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif base == "str":
        ok = isinstance(value, str)
    elif base == "list":
        if isinstance(value, str):
            value = [value]
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif base == "dict":
        ok = isinstance(value, Mapping)
        value = dict(value) if ok else value
    if not ok:
        raise ConfigError(f"{prefix}field '{where}' must be {_KINDS[base]}, got {value!r}")
    return value


def _build_section(cls: type, data: Any, name: str, src: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{src}: section '{name}' must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(
                f"{src}: unknown field '{name}.{key}'{did_you_mean(str(key), fields)}; "
                f"'{name}' takes: {', '.join(fields)}"
            )
        kwargs[key] = check_field(value, fields[key].type, f"{name}.{key}", src)
    missing = [
        f.name
        for f in fields.values()
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{src}: missing required field '{name}.{missing[0]}'")
    return cls(**kwargs)


def _validate_reward(env: EnvSection, src: str) -> None:
    for term, w in (env.reward or {}).items():
        if isinstance(w, bool) or not isinstance(w, (int, float)):
            raise ConfigError(f"{src}: field 'env.reward.{term}' must be a number, got {w!r}")
        if w != w or w in (float("inf"), float("-inf")):
            raise ConfigError(f"{src}: field 'env.reward.{term}' must be finite, got {w}")
    for term, p in (env.reward_params or {}).items():
        if not isinstance(p, Mapping):
            raise ConfigError(f"{src}: field 'env.reward_params.{term}' must be a mapping, got {p!r}")


def config_from_dict(data: Any, source: str = "<dict>") -> ExperimentConfig:
    """Validate a plain dict as an experiment config; errors name the field path."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a config must be a YAML mapping with env, agent, run; got {type(data).__name__}")
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(
                f"{source}: unknown top-level field '{key}'{did_you_mean(str(key), _TOP_KEYS)}; "
                f"expected: {', '.join(_TOP_KEYS)}"
            )
    for key in ("env", "agent"):
        if key not in data:
            raise ConfigError(f"{source}: missing required section '{key}'")
    env = _build_section(EnvSection, data["env"], "env", source)
    agent = _build_section(AgentSection, data["agent"], "agent", source)
    run = _build_section(RunSection, data.get("run") or {}, "run", source)
    imports = data.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(m, str) for m in imports):
        raise ConfigError(f"{source}: field 'imports' must be a list of module names, got {imports!r}")
    _validate_reward(env, source)
    for name in ("total_steps", "n_envs", "eval_episodes"):
        if getattr(run, name) < 1:
            raise ConfigError(f"{source}: field 'run.{name}' must be >= 1, got {getattr(run, name)}")
    if run.vec_env not in ("dummy", "subproc"):
        raise ConfigError(f"{source}: field 'run.vec_env' must be 'dummy' or 'subproc', got {run.vec_env!r}")
    if run.distributed is not None:
        run.distributed = check_distributed(run.distributed, source)
    from rlseek.continual.spec import parse_continual
    from rlseek.stages import parse_stages

    run.stages = [s.to_dict() for s in parse_stages(run.stages, run.total_steps, source)]
    if run.stages and getattr(run, "tasks", None):
        raise ConfigError(f"{source}: run.stages and run.tasks cannot be combined; stage one "
                          "task's batch size in a run of its own")
    parse_continual(run, dataclasses.asdict(env), source)
    return ExperimentConfig(env=env, agent=agent, run=run, imports=list(imports), source=source)


DISTRIBUTED_DEFAULTS: dict[str, Any] = {"strategy": "ddp", "backend": "auto", "timeout_s": 1800.0}
"""``run.distributed`` with every field at its default."""


def check_distributed(value: Any, source: str = "<dict>") -> dict[str, Any]:
    """``run.distributed`` validated and completed with :data:`DISTRIBUTED_DEFAULTS`."""
    out = dict(DISTRIBUTED_DEFAULTS)
    for key, v in value.items():
        if key not in DISTRIBUTED_DEFAULTS:
            raise ConfigError(f"{source}: unknown field 'run.distributed.{key}'"
                              f"{did_you_mean(str(key), DISTRIBUTED_DEFAULTS)}; it takes: "
                              f"{', '.join(DISTRIBUTED_DEFAULTS)}")
        out[key] = v
    choices = {"strategy": ("ddp", "fsdp"), "backend": ("auto", "gloo", "nccl")}
    for key, allowed in choices.items():
        if out[key] not in allowed:
            raise ConfigError(f"{source}: field 'run.distributed.{key}' must be "
                              f"{' or '.join(repr(a) for a in allowed)}, got {out[key]!r}")
    out["timeout_s"] = check_field(out["timeout_s"], "float", "run.distributed.timeout_s", source)
    if not out["timeout_s"] > 0:
        raise ConfigError(f"{source}: field 'run.distributed.timeout_s' must be > 0, got {out['timeout_s']}")
    return out


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], source: str = "--set") -> dict[str, Any]:
    """Return a copy of ``data`` with ``KEY=VALUE`` overrides applied (dotted keys, YAML values)."""
    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{source} '{item}': expected KEY=VALUE, e.g. agent.params.learning_rate=1e-5")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"{source} '{item}': empty component in key '{key}'")
        try:
            value = _yaml_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        for i, p in enumerate(parts[:-1]):
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"{source} '{item}': '{'.'.join(parts[: i + 1])}' is not a mapping")
            node = nxt
        node[parts[-1]] = value
    return out


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file; a syntax error names the file, line and column."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p}: {exc}") from None
    try:
        return _yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load, override and validate an experiment config file."""
    data = read_yaml(path)
    if data is None:
        raise ConfigError(f"{path}: config file is empty; it needs env, agent and run sections")
    if overrides:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config must be a YAML mapping")
        data = apply_overrides(data, overrides)
    return config_from_dict(data, source=str(path))


def dump_config(config: ExperimentConfig) -> str:
    """The config as YAML text (block style, keys in schema order)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False)
