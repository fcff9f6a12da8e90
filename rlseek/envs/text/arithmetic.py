"""Arithmetic problems for ``rlseek/Arithmetic-v0``: the prompt ``"12+34="``, the answer ``"46"``.

Difficulty levels grow by the number of digits per operand and the number of operators.
Operands of ``d`` digits are drawn uniformly from ``[10**(d-1), 10**d - 1]`` (``[0, 9]`` for one
digit); answers may be negative where subtraction is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlseek.envs.text.split import is_heldout

TASK = "arithmetic"


@dataclass(frozen=True)
class ArithmeticLevel:
    """One difficulty level: operand digits, allowed operators and operator count."""

    digits: int
    ops: str
    n_ops: int


LEVELS: tuple[ArithmeticLevel, ...] = (
    ArithmeticLevel(digits=1, ops="+", n_ops=1),  # 0: 3+5=
    ArithmeticLevel(digits=2, ops="+", n_ops=1),  # 1: 12+34=
    ArithmeticLevel(digits=2, ops="+-", n_ops=1),  # 2: 52-87=
    ArithmeticLevel(digits=2, ops="+-", n_ops=2),  # 3: 12+34-56=
    ArithmeticLevel(digits=3, ops="+-", n_ops=1),  # 4: 123-456=
)
DEFAULT_LEVEL = 1
"""2-digit addition: the level on which the bundled tiny LM's base accuracy is calibrated."""


def _operand(rng: np.random.Generator, digits: int) -> int:
    lo = 0 if digits == 1 else 10 ** (digits - 1)
    return int(rng.integers(lo, 10**digits))


def make_problem(operands: list[int], ops: list[str]) -> tuple[str, str]:
    """The prompt (``"a+b-c="``) and integer answer string for the given operands."""
    text = str(operands[0])
    value = operands[0]
    for op, x in zip(ops, operands[1:]):
        text += f"{op}{x}"
        value = value + x if op == "+" else value - x
    return text + "=", str(value)


def sample_problem(rng: np.random.Generator, level: int) -> tuple[str, str]:
    """One problem of ``level`` drawn from ``rng`` (train and held-out alike)."""
    spec = LEVELS[level]
    operands = [_operand(rng, spec.digits) for _ in range(spec.n_ops + 1)]
    ops = [spec.ops[int(rng.integers(len(spec.ops)))] for _ in range(spec.n_ops)]
    return make_problem(operands, ops)


def sample_split(rng: np.random.Generator, level: int, heldout: bool) -> tuple[str, str]:
    """A problem of ``level`` from the training part (``heldout=False``) or held-out part.

    Rejection sampling: about 10 % of problems are held out, so this takes ~1.1 (train) or
    ~10 (held-out) draws on average.
    """
    while True:
        prompt, answer = sample_problem(rng, level)
        if is_heldout(TASK, prompt) == heldout:
            return prompt, answer
