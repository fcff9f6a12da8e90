"""The reward-term registry.

A reward term is a named, documented function registered for one kind of task:

* ``kind="robot"``: ``fn(obs, action, next_obs, info, **params) -> float``, called once per
  transition. ``info`` is the underlying environment's info dict for that step.
* ``kind="text"``: ``fn(batch, **params) -> np.ndarray`` of shape ``(B,)``, called once per
  batch of finished completions (:class:`TextBatch`).

A term returns its *unweighted* value; :class:`rlseek.rewards.WeightedReward` applies weights.
NaN means "not applicable" for that sample (as in TRL's GRPO): it counts as 0 in the sum and is
counted in ``WeightedReward.nan_counts``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rlseek.errors import RlseekError, did_you_mean

Kind = Literal["robot", "text"]
KINDS: tuple[str, ...] = ("robot", "text")


@dataclass
class TextBatch:
    """A batch of finished completions, as text reward terms see it.

    Attributes:
        prompts: the prompt strings, one per sample.
        completions: the decoded completions (without the prompt, without EOS/pad tokens).
        completion_ids: the generated token ids per sample, EOS included when it was produced.
        answers: the reference answer per sample, or ``None`` where the task has none.
        eos: boolean array of shape (B,): True where the completion ended with the EOS token.
        info: one dict per sample with task information (task name, difficulty level, ...).
    """

    prompts: list[str]
    completions: list[str]
    completion_ids: list[list[int]]
    answers: list[str | None]
    eos: np.ndarray
    info: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.prompts)
        self.eos = np.asarray(self.eos, dtype=bool)
        if not self.info:
            self.info = [{} for _ in range(n)]
        lengths = {
            "completions": len(self.completions),
            "completion_ids": len(self.completion_ids),
            "answers": len(self.answers),
            "eos": len(self.eos),
            "info": len(self.info),
        }
        bad = {k: v for k, v in lengths.items() if v != n}
        if bad:
            raise ValueError(f"TextBatch fields disagree in length with prompts ({n}): {bad}")

    def __len__(self) -> int:
        return len(self.prompts)


@dataclass(frozen=True)
class RewardTerm:
    """A registered reward term: its name, kind, function, documentation and default params."""

    name: str
    kind: str
    fn: Callable[..., Any]
    description: str
    defaults: dict[str, Any]
    module: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable description (used by ``rlseek rewards --json``)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "params": {k: _jsonable(v) for k, v in self.defaults.items()},
            "module": self.module,
        }


_REGISTRY: dict[str, RewardTerm] = {}


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return repr(v)


def register_reward(
    name: str, kind: str, *, description: str | None = None, override: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``fn`` as reward term ``name`` of ``kind`` ("robot" or "text").

    The term's keyword-only parameters with defaults become its documented params. The first
    docstring line is its description unless ``description`` is given. Registering a name twice
    is an error unless ``override=True`` (user modules may deliberately replace a term).
    """
    if kind not in KINDS:
        raise ValueError(f"reward term kind must be one of {KINDS}, got {kind!r}")

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and not override and _REGISTRY[name].fn is not fn:
            raise ValueError(
                f"reward term '{name}' is already registered by {_REGISTRY[name].module}; "
                "pass override=True to replace it"
            )
        sig = inspect.signature(fn)
        defaults = {
            p.name: p.default
            for p in sig.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
        }
        doc = description or (inspect.getdoc(fn) or "").split("\n", 1)[0]
        _REGISTRY[name] = RewardTerm(
            name=name, kind=kind, fn=fn, description=doc, defaults=defaults, module=fn.__module__
        )
        return fn

    return decorator


def get_reward(name: str, kind: str | None = None) -> RewardTerm:
    """Look up a term by name; unknown names fail with a did-you-mean and the known list."""
    term = _REGISTRY.get(name)
    if term is None:
        known = sorted(n for n, t in _REGISTRY.items() if kind is None or t.kind == kind)
        raise RlseekError(
            f"unknown reward term '{name}'{did_you_mean(name, known)}; "
            f"known {kind + ' ' if kind else ''}terms: {', '.join(known)}"
        )
    if kind is not None and term.kind != kind:
        raise RlseekError(
            f"reward term '{name}' is a {term.kind} term and cannot score a {kind} environment"
        )
    return term


def list_rewards(kind: str | None = None) -> list[RewardTerm]:
    """All registered terms (optionally of one kind), sorted by kind then name."""
    terms = [t for t in _REGISTRY.values() if kind is None or t.kind == kind]
    return sorted(terms, key=lambda t: (t.kind, t.name))


def import_reward_modules(modules: Sequence[str] | Iterable[str]) -> None:
    """Import user modules so that their ``@register_reward`` calls run.

    Fails with one clear line when a module cannot be imported.
    """
    for mod in modules:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            raise RlseekError(
                f"cannot import reward module '{mod}': {exc}; it must be importable "
                "(installed, or on PYTHONPATH)"
            ) from None
