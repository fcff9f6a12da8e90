"""Imports run one way: no module of ``rlseek/`` imports from a layer above its own.

The layers, bottom up (README, "Layout"): foundation (errors, version, statistics, config, run
directories, evaluation, models, tracking) → rewards (learned reward-model scoring included) →
envs → agents → reward-model training, offline, serving → api → builtins, cli, demo and the
package root. Every import statement counts, including those inside functions (lazy imports
are still dependencies). A package that is not in ``LAYERS`` fails the test until it is given
a layer, so a new package is placed deliberately.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "rlseek"

LAYERS: dict[str, int] = {
    # 0: foundation, imported by everything above
    "rlseek._version": 0,
    "rlseek.errors": 0,
    "rlseek.statistics": 0,
    "rlseek.config": 0,
    "rlseek.runs": 0,
    "rlseek.jsonl": 0,
    "rlseek.figures": 0,
    "rlseek.evaluation": 0,
    "rlseek.models": 0,
    "rlseek.runtime": 0,
    # MLflow run tracking sits with the run directory it mirrors, so agents may log through it.
    "rlseek.tracking": 0,
    # The torchrun world, gradient all-reduce and rank-0 run directory: under every trainer.
    "rlseek.distributed": 0,
    # Continual learning's data: the run.tasks spec (parsed with the config), the reservoir, the
    # EWC penalty, the accuracy-matrix figures; its agent hooks and its runner sit higher.
    "rlseek.continual": 0,
    # Staged batch sizes: the run.stages spec (parsed with the config) and the promotion rule.
    "rlseek.stages": 0,
    # 1: the reward registry, its terms, and scoring with a learned reward model
    "rlseek.rewards": 1,
    # 2: Gymnasium environments, scored through the registry
    "rlseek.envs": 2,
    # 3: agents (SB3, lm-ppo) behind one interface
    "rlseek.agents": 3,
    "rlseek.continual.robot": 3,
    # FSDP2 wraps the text policy's forward, so it sits with the agents it shards.
    "rlseek.distributed.fsdp": 3,
    "rlseek.continual.text": 3,
    # 4: features built on agents and envs
    "rlseek.reward_models": 4,
    "rlseek.offline": 4,
    "rlseek.serving": 4,
    "rlseek.continual.runner": 4,
    # 5: the Python API
    "rlseek.api": 5,
    # 6: what fills the registries, and the entry points
    "rlseek.builtins": 6,
    "rlseek.cli": 6,
    "rlseek.__main__": 6,
    "rlseek.demo": 6,
    "rlseek": 6,
}

NAMES = {0: "foundation", 1: "rewards", 2: "envs", 3: "agents", 4: "features", 5: "api", 6: "entry points"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT.parent / rel).with_suffix(".py").is_file() or (ROOT.parent / rel / "__init__.py").is_file()


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported rlseek module) for every import statement in ``path``."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "rlseek"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "rlseek":
                continue
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                # `from rlseek import statistics` imports the module rlseek.statistics.
                out.append((node.lineno, sub if _is_module(sub) else node.module))
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; rlseek uses absolute imports")
    return out


def layer_of(module: str) -> int | None:
    """The layer of ``module``: that of the longest ``LAYERS`` prefix naming it."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in LAYERS:
            return LAYERS[key]
    return None


def _sources() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    missing = sorted({_module_name(p) for p in _sources() if layer_of(_module_name(p)) is None})
    assert not missing, f"give these modules a layer in LAYERS: {missing}"
    # Every top-level package or module of rlseek/ is named itself, not only through the root.
    tops = {f"rlseek.{p.stem if p.is_file() else p.name}" for p in ROOT.iterdir()
            if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert not tops - set(LAYERS), f"add to LAYERS: {sorted(tops - set(LAYERS))}"


def test_no_module_imports_from_a_layer_above() -> None:
    upward = []
    for path in _sources():
        mod = _module_name(path)
        mine = layer_of(mod)
        for line, dep in _imports(path):
            theirs = layer_of(dep)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{path.relative_to(ROOT.parent)}:{line}: {mod} ({NAMES[mine]}) "
                              f"imports {dep} ({NAMES[theirs]})")
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def test_rewards_know_nothing_of_reward_model_training() -> None:
    hits = [f"{p.relative_to(ROOT.parent)}:{i}" for p in sorted((ROOT / "rewards").rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if "reward_models" in line]
    assert not hits, hits


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    # The test above can fail: a lazy import inside a function is found and placed.
    src = tmp_path / "probe.py"
    src.write_text("def f():\n    from rlseek.api import train\n    import rlseek.envs.text\n")
    found = [dep for _line, dep in _imports(src)]
    assert found == ["rlseek.api", "rlseek.envs.text"]
    assert layer_of("rlseek.api") > layer_of("rlseek.rewards.learned.term")
    assert layer_of("rlseek.envs.text.core") == LAYERS["rlseek.envs"]


@pytest.mark.parametrize("module", ["rlseek.rewards.registry", "rlseek.envs.registration",
                                    "rlseek.agents.base"])
def test_registries_hold_no_list_of_builtins(module: str) -> None:
    # Built-ins are named once, in rlseek.builtins, by plain imports (no module-name strings).
    path = ROOT.parent / (module.replace(".", "/") + ".py")
    text = path.read_text()
    assert "_BUILTIN_MODULES" not in text and "_FAMILIES" not in text and "_EXTENSIONS" not in text


def test_importing_rlseek_registers_terms_and_envs_but_loads_no_agent() -> None:
    import subprocess
    import sys

    code = (
        "import sys, rlseek\n"
        "from rlseek.rewards import list_rewards\n"
        "from rlseek.envs import rlseek_env_ids\n"
        "print(sorted(t.name for t in list_rewards()))\n"
        "print(len(rlseek_env_ids()))\n"
        "print(sorted(m for m in ('torch', 'stable_baselines3', 'd3rlpy', 'transformers') if m in sys.modules))\n"
        "from rlseek.agents import list_agents\n"
        "print(list_agents())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT.parent).stdout.splitlines()
    assert "reward_model" in out[0] and "distance" in out[0] and "accuracy" in out[0]
    assert int(out[1]) >= 9
    assert out[2] == "[]", f"import rlseek loaded {out[2]}"
    for algo in ("ppo", "sac", "lm-ppo", "bcq", "bc"):
        assert f"'{algo}'" in out[3]
