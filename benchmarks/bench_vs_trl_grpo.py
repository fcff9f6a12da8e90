"""rlseek lm-grpo, lm-rloo and lm-ppo side by side with TRL's GRPOTrainer, on CPU, from one shared base.

1. **The base** is built here: a char-level GPT-2 (~340k parameters: 3 layers, width 96) and its
   tokenizer (digits, ``+``, ``=``, ``<eos>``, ``<pad>``), pre-trained with teacher forcing on
   ``aa+bb=c<eos>`` for operands 0-99 until greedy exact match on the evaluation prompts first
   reaches ``--base-target`` (0.5 by default; the issue asks for ~0.5-0.65), then
   ``save_pretrained``. One base per ``--base-seeds`` seed (0, 1 and 2 by default), and every
   method runs from each: how far RL gets depends on the base (on one 2-core machine seed 0
   needed 1,860 pre-training steps, seeds 1 and 2 under 700), and so does which base a seed
   gives: the pre-training is chaotic in the float reduction order, so the same seed built
   with 2 threads instead of 1, or on another CPU, is another base. Each base is cached under
   ``--work`` (``base-seed{S}-target{T}``, reused only for the same seed and target) and its
   weights' SHA-256 is recorded, so two figure files can be checked for the same base.
2. **Prompts**: all 10,000 problems ``aa+bb=`` (a, b in 0..99 written with two digits, so every
   prompt has 6 tokens: TRL's training forward passes no position ids, so a left-padded
   prompt would be trained at other positions than it was sampled at — equal lengths keep
   that from handicapping TRL here), split by rlseek's prompt hash
   (``split_records``): every method trains on the training split only (rlseek's text env
   through ``env.kwargs.prompts_file``, TRL through a ``datasets.Dataset`` of the same
   records) and is evaluated on the same 300 held-out prompts drawn with seed 0.
3. **Reward**: rlseek's ``accuracy`` term (1 for the exact answer, partial credit < 0.5 for a
   wrong integer), weight 1.0 — TRL's reward function calls the same term.
4. **Evaluation**: greedy decoding of the 300 prompts (:func:`exact_match`), exact match, every
   ``--eval-every`` optimizer steps, the same function for every method; its time is not
   counted. Time = cumulative training wall time (rollouts + updates) since step 0.
5. **Runs** (``torch.set_num_threads(1)`` for all, one process after another):
   TRL GRPO at each ``--trl-lrs`` (defaults of TRL 1.16: loss_type dapo, scale_rewards group,
   beta 0, one iteration per generation; G and the per-step batch as given), rlseek lm-grpo
   at each ``--grpo-lrs`` (the agent's own pieces: the text vector env with the ``group_size``
   reset option, the one rollout engine, :class:`CriticFreeTrainer`; its defaults: token
   loss normalization, group-std scaling, β = 0, on-policy), rlseek lm-rloo at ``--rloo-lr``
   (the same pieces with the leave-one-out baseline, same defaults) and rlseek lm-ppo
   (:class:`PPOTrainer`, one epoch of one minibatch per rollout of ``--batch`` prompts, fixed
   β = 0.02, no entropy bonus). One optimizer step = ``--batch`` completions for every method.
   Every method gets the same ``--steps`` optimizer steps (1200) and the same learning-rate
   schedule ``--lr-schedule`` (linear from the run's rate to 0 over the steps: TRL's
   ``lr_scheduler_type``, rlseek's ``lr_schedule``); each method's rate is its best of the
   ones tried (TRL 3e-4, 6e-4 and 1e-3 are all run; lm-grpo, lm-rloo and lm-ppo run at 6e-4).

Reported, per base: each run's best greedy exact match and the training time at which it
first reached TRL's best (the best over TRL's learning rates), and the ratio to TRL's own time
to reach it; across bases, per method, on how many it reached 0.90 and TRL's best in <= 0.5x
TRL's time.
Run: ``python benchmarks/bench_vs_trl_grpo.py`` (writes ``figures/bench_vs_trl_grpo.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

VOCAB = ["<pad>", "<eos>", *"0123456789", "+", "=", "-"]
EVAL_N = 300


# -- the shared base ----------------------------------------------------------------------
def build_tokenizer(folder: Path) -> Any:
    """A char-level fast tokenizer, one id per character, no BOS; saved into ``folder``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({c: i for i, c in enumerate(VOCAB)}, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("<eos>|<pad>|."), behavior="isolated")
    tok.decoder = decoders.Fuse()  # "4", "6" -> "46" (no spaces between characters)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>",
                                   padding_side="left")
    fast.save_pretrained(folder)
    return fast


def problems() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(training, 300 evaluation) records of 2-digit addition, operands 0..99."""
    from rlseek.envs.text.tasks import split_records

    records = [(f"{a:02d}+{b:02d}=", str(a + b)) for a in range(100) for b in range(100)]
    train, held = split_records("arithmetic", records)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(held), size=EVAL_N, replace=False)
    return train, [held[i] for i in sorted(pick)]


@torch.no_grad()
def exact_match(model: Any, tok: Any, evalset: list[tuple[str, str]], max_new: int = 4) -> float:
    """Greedy exact match of ``model`` on ``evalset``: one left-padded batch, the full prefix
    re-run at each of ``max_new`` steps with position ids counting real tokens only (as both
    rlseek's rollout and the pre-training do), stopping a row at EOS."""
    was_training = model.training
    model.eval()
    enc = tok([p for p, _ in evalset], return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    done = torch.zeros(len(evalset), dtype=torch.bool)
    new = []
    for _ in range(max_new):
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        nxt = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1].argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, tok.pad_token_id), nxt)
        new.append(nxt)
        ids = torch.cat([ids, nxt[:, None]], 1)
        mask = torch.cat([mask, (~done).long()[:, None]], 1)
        done |= nxt == tok.eos_token_id
        if done.all():
            break
    texts = tok.batch_decode(torch.stack(new, 1), skip_special_tokens=True)
    model.train(was_training)
    return float(np.mean([t.strip() == a for t, (_, a) in zip(texts, evalset)]))


def build_base(folder: Path, train: list[tuple[str, str]], evalset: list[tuple[str, str]],
               target: float, seed: int = 0) -> dict[str, Any]:
    """Pre-train the char-level GPT-2 until greedy exact match >= ``target``; save it."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from rlseek.runs import atomic_write_text

    meta_path = folder / "base_meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("seed") == seed and meta.get("target") == target:
            return meta
        print(f"error: {meta_path}: a base of seed {meta.get('seed')} and target {meta.get('target')}, "
              f"not seed {seed} and target {target}; pass another --work or delete the folder",
              file=sys.stderr)
        raise SystemExit(2)
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder)
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(VOCAB), n_positions=16, n_embd=96, n_layer=3, n_head=4,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.pad_token_id)
    model = GPT2LMHeadModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    t0, step, acc = time.perf_counter(), 0, exact_match(model, tok, evalset)
    while acc < target and step < 20_000:
        batch = [train[i] for i in rng.integers(len(train), size=64)]
        enc = tok([p + a + "<eos>" for p, a in batch], return_tensors="pt", padding=True)
        labels = enc["input_ids"].clone()
        width = labels.shape[1]
        for i, (_, a) in enumerate(batch):  # left-padded: the answer and EOS end each row
            labels[i, :width - (len(a) + 1)] = -100  # loss on the answer and EOS only
        model.train()
        loss = model(**enc, labels=labels,
                     position_ids=(enc["attention_mask"].cumsum(-1) - 1).clamp_min(0)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 10 == 0:
            acc = exact_match(model, tok, evalset)
            if step % 100 == 0:
                print(f"pre-training step {step}: loss {loss.item():.3f}, exact {acc:.3f}", flush=True)
    model.save_pretrained(folder)
    weights = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    meta = {"parameters": sum(p.numel() for p in model.parameters()), "pretrain_steps": step,
            "base_accuracy": acc, "pretrain_seconds": time.perf_counter() - t0, "seed": seed,
            "target": target, "torch_threads": torch.get_num_threads(), "weights_sha256": weights}
    atomic_write_text(meta_path, json.dumps(meta, indent=1))  # the meta marks a finished base
    return meta


# -- one curve ----------------------------------------------------------------------------
class Curve:
    """(step, training seconds, exact match) points; evaluation time is not counted."""

    def __init__(self, name: str) -> None:
        """Starts paused: setup is not training time; call :meth:`resume` to start the clock."""
        self.name, self.points, self.train_s = name, [], 0.0
        self._t = time.perf_counter()
        self._running = False
        self.split = {"rollout_seconds": 0.0, "update_seconds": 0.0}  # rlseek runs only

    def pause(self) -> None:
        if self._running:
            self.train_s += time.perf_counter() - self._t
        self._running = False

    def resume(self) -> None:
        self._t, self._running = time.perf_counter(), True

    def record(self, step: int, acc: float) -> None:
        self.points.append([step, round(self.train_s, 3), acc])
        print(f"{self.name:>22} step {step:4d}  train {self.train_s:7.1f}s  exact {acc:.3f}", flush=True)

    def best(self) -> float:
        return max(a for _, _, a in self.points)

    def time_to(self, acc: float) -> float | None:
        return next((t for _, t, a in self.points if a >= acc), None)


def accuracy_reward(prompts: list[str], completions: list[str], answers: list[str]) -> list[float]:
    """rlseek's ``accuracy`` term on decoded completions (the env's reward, weight 1)."""
    from rlseek.rewards.registry import TextBatch
    from rlseek.rewards.text import accuracy

    batch = TextBatch(prompts=list(prompts), completions=list(completions),
                      completion_ids=[[] for _ in prompts], answers=list(answers),
                      eos=np.ones(len(prompts), bool), info=[{} for _ in prompts])
    return accuracy(batch).tolist()


def run_trl(base: Path, train: list, evalset: list, lr: float, args: argparse.Namespace) -> Curve:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    curve = Curve(f"TRL GRPO lr={lr:g}")
    ds = Dataset.from_dict({"prompt": [p for p, _ in train], "answer": [a for _, a in train]})

    def reward(prompts: list[str], completions: list[str], answer: list[str], **_: Any) -> list[float]:
        return accuracy_reward(prompts, completions, answer)

    class Eval(TrainerCallback):
        def on_step_end(self, _args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step % args.eval_every == 0:
                curve.pause()
                curve.record(state.global_step, exact_match(kw["model"], tok, evalset))
                curve.resume()

    cfg = GRPOConfig(output_dir=str(args.work / f"trl_{lr:g}"), learning_rate=lr,
                     per_device_train_batch_size=args.batch, num_generations=args.group,
                     max_completion_length=4, temperature=args.temperature, max_steps=args.steps,
                     logging_steps=10_000, save_strategy="no", report_to=[], use_cpu=True,
                     seed=args.seed, lr_scheduler_type=args.lr_schedule, warmup_steps=0,
                     disable_tqdm=True, dataloader_num_workers=0, max_grad_norm=1.0)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=ds,
                          processing_class=tok, callbacks=[Eval()])
    curve.record(0, exact_match(model, tok, evalset))
    curve.resume()
    trainer.train()
    curve.pause()
    return curve


def run_rlseek(base: Path, train_file: Path, evalset: list, algo: str, args: argparse.Namespace,
               params: dict[str, Any]) -> Curve:
    from rlseek.agents.lm_grpo.config import LmGrpoConfig, LmRlooConfig
    from rlseek.agents.lm_grpo.trainer import CriticFreeTrainer
    from rlseek.agents.lm_ppo.config import LmPpoConfig
    from rlseek.agents.lm_ppo.model import build_policy
    from rlseek.agents.lm_ppo.trainer import PPOTrainer
    from rlseek.envs.text import make_text_vector_env
    from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine
    from rlseek.models.loader import load_causal_lm

    torch.manual_seed(args.seed)
    critic_free = algo in ("lm-grpo", "lm-rloo")  # G completions per prompt, no value head
    env = make_text_vector_env("rlseek/Arithmetic-v0", args.batch, model=str(base), max_new_tokens=4,
                               reward={"accuracy": 1.0}, prompts_file=str(train_file))
    lm, tok = load_causal_lm(str(base))
    config_class = {"lm-grpo": LmGrpoConfig, "lm-rloo": LmRlooConfig}.get(algo, LmPpoConfig)
    cfg = config_class(model=str(base), temperature=args.temperature, lr_schedule=args.lr_schedule, **params)
    cfg.validate()
    policy, ref = build_policy(lm, cfg, value_head=not critic_free,
                               reference=not critic_free or cfg.kl_coef > 0)
    engine = RolloutEngine.for_env(policy.lm, env, torch.device("cpu"))
    decode = DecodeSettings(temperature=cfg.temperature)
    updates = cfg.ppo_epochs * cfg.num_minibatches  # optimizer steps per rollout
    kw = dict(vocab_size=engine.vocab_size, banned_ids=engine.banned_ids(decode),
              total_iterations=args.steps // updates)
    trainer = (CriticFreeTrainer(policy, ref, cfg, torch.device("cpu"), estimator=algo.removeprefix("lm-"), **kw)
               if critic_free
               else PPOTrainer(policy, ref, cfg, torch.device("cpu"), **kw))
    gen = torch.Generator().manual_seed(args.seed)
    trainer.shuffle_gen.manual_seed(args.seed + 1)
    name = f"rlseek {algo} lr={cfg.learning_rate:g}"
    curve = Curve(name)
    curve.record(0, exact_match(policy.lm, tok, evalset))
    curve.resume()
    options = {"group_size": cfg.group_size} if critic_free else None
    for it in range(args.steps // updates):
        t0 = time.perf_counter()
        ro = engine.rollout(env, decode, generator=gen, seed=args.seed * 1_000_003 + it, options=options)
        t1 = time.perf_counter()
        trainer.step(ro)
        curve.split["rollout_seconds"] += t1 - t0
        curve.split["update_seconds"] += time.perf_counter() - t1
        step = (it + 1) * updates  # optimizer steps, TRL's unit
        if step % args.eval_every < updates:
            curve.pause()
            curve.record(step, exact_match(policy.lm, tok, evalset))
            curve.resume()
    curve.pause()
    env.close()
    return curve


def run_base(seed: int, train: list, train_file: Path, evalset: list, args: argparse.Namespace) -> dict[str, Any]:
    """Build (or reuse) the base of ``seed`` and run every method from it; one figure-file entry."""
    base = args.work / f"base-seed{seed}-target{args.base_target:g}"
    meta = build_base(base, train, evalset, args.base_target, seed=seed)
    print("base:", meta, flush=True)
    curves: list[Curve] = []
    if "trl" in args.only:
        curves += [run_trl(base, train, evalset, lr, args) for lr in args.trl_lrs]
    if "lm-grpo" in args.only:
        curves += [run_rlseek(base, train_file, evalset, "lm-grpo", args,
                              {"learning_rate": lr, "group_size": args.group, **args.grpo_params})
                   for lr in args.grpo_lrs]
    if "lm-rloo" in args.only:
        curves.append(run_rlseek(base, train_file, evalset, "lm-rloo", args,
                                 {"learning_rate": args.rloo_lr, "group_size": args.group, **args.grpo_params}))
    if "lm-ppo" in args.only:
        curves.append(run_rlseek(base, train_file, evalset, "lm-ppo", args,
                                 {"learning_rate": args.ppo_lr, "ppo_epochs": 1, "num_minibatches": 1,
                                  "kl_coef": 0.02, "kl_control": "fixed", "ent_coef": 0.0,
                                  "missing_eos_penalty": 0.0, **args.ppo_params}))
    trl = [c for c in curves if c.name.startswith("TRL")]
    ref = max(trl, key=lambda c: c.best()) if trl else None
    rows = []
    for c in curves:
        row = {"run": c.name, "best_exact_match": c.best(), "train_seconds_total": round(c.train_s, 2),
               "points": c.points}
        if not c.name.startswith("TRL"):
            row.update({k: round(v, 2) for k, v in c.split.items()})
        if ref is not None:
            t_ref, t = ref.time_to(ref.best()), c.time_to(ref.best())
            row.update(trl_best=ref.best(), seconds_to_trl_best=t,
                       time_ratio_to_trl=(t / t_ref) if t is not None and t_ref else None)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "points"}), flush=True)
    summary = {r["run"]: {k: r.get(k) for k in ("best_exact_match", "seconds_to_trl_best",
                                                "time_ratio_to_trl")} for r in rows}
    return {"seed": seed, "base": meta, "trl_best": ref.best() if ref else None,
            "trl_best_run": ref.name if ref else None, "summary": summary, "runs": rows}


def across_bases(bases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method, its best run on each base (TRL: its best learning rate): on how many bases
    it reached 0.90 and TRL's best within 0.5x TRL's time, its best accuracy and time ratio."""
    out: dict[str, dict[str, Any]] = {}
    for b in bases:
        best_run: dict[str, dict[str, Any]] = {}
        for name, r in b["summary"].items():
            method = name.split(" lr=")[0]
            if method not in best_run or r["best_exact_match"] > best_run[method]["best_exact_match"]:
                best_run[method] = r
        for method, r in best_run.items():
            m = out.setdefault("TRL GRPO (best lr)" if method == "TRL GRPO" else method,
                               {"bases": 0, "reached_0.90": 0, "within_half_trl_time": 0, "best": [], "ratio": []})
            m["bases"] += 1
            m["reached_0.90"] += r["best_exact_match"] >= 0.9
            ratio = r["time_ratio_to_trl"]
            m["within_half_trl_time"] += ratio is not None and ratio <= 0.5
            m["best"].append(r["best_exact_match"])
            m["ratio"].append(ratio)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "rlseek_vs_trl")
    p.add_argument("--figures", type=Path, default=None,
                   help="figure file to write (default figures/bench_vs_trl_grpo.json; '-': none)")
    p.add_argument("--steps", type=int, default=1200, help="optimizer steps per run")
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--batch", type=int, default=64, help="completions per optimizer step")
    p.add_argument("--group", type=int, default=8, help="G, completions per prompt (GRPO)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--lr-schedule", choices=["constant", "linear"], default="linear",
                   help="every method's learning-rate schedule (linear: to 0 over --steps)")
    p.add_argument("--trl-lrs", type=float, nargs="+", default=[3e-4, 6e-4, 1e-3])
    p.add_argument("--grpo-lrs", type=float, nargs="+", default=[6e-4])
    p.add_argument("--grpo-params", type=json.loads, default={},
                   help='more lm-grpo params as JSON, e.g. \'{"loss_norm": "sequence"}\'')
    p.add_argument("--ppo-lr", type=float, default=6e-4)
    p.add_argument("--ppo-params", type=json.loads, default={},
                   help='more lm-ppo params as JSON, e.g. \'{"ppo_epochs": 2}\'')
    p.add_argument("--base-target", type=float, default=0.5)
    p.add_argument("--base-seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="one base per seed (its init and pre-training batches); every method runs "
                        "from each, one base after another")
    p.add_argument("--rloo-lr", type=float, default=6e-4)
    p.add_argument("--only", nargs="+", default=["trl", "lm-grpo", "lm-rloo", "lm-ppo"])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    train, evalset = problems()
    train_file = args.work / "train.jsonl"
    train_file.write_text("".join(json.dumps({"prompt": q, "answer": a}) + "\n" for q, a in train))
    bases = [run_base(seed, train, train_file, evalset, args) for seed in args.base_seeds]
    from rlseek.figures import SOURCE_FIGURES, write_figures

    result = {"eval_prompts": EVAL_N, "bases": bases, "across_bases": across_bases(bases),
              "settings": {k: v for k, v in vars(args).items() if k not in ("work", "figures")},
              "torch_threads": torch.get_num_threads()}
    print(json.dumps(result["across_bases"], indent=1), flush=True)
    if str(args.figures) != "-":
        path = write_figures(args.figures or SOURCE_FIGURES / "bench_vs_trl_grpo.json",
                             "bench_vs_trl_grpo", result)
        print("wrote", path)


if __name__ == "__main__":
    main()
