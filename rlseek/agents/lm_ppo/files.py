"""lm-ppo's run files, shared by every text-policy agent: checkpoints (policy, value head,
optimizer, generator states; written atomically through :meth:`Run.save_checkpoint`, by rank 0
except the gather of a sharded optimizer) and the final ``save_pretrained`` folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rlseek.agents.lm_ppo.trainer import LmTrainer
from rlseek.distributed import current
from rlseek.errors import RlseekError
from rlseek.runs import Run


def save_checkpoint(run: Run, step: int, policy: Any, trainer: LmTrainer,
                    sample_gen: torch.Generator, state: dict[str, Any]) -> None:
    """Checkpoint ``step``: policy (or LoRA adapter), value head, optimizer, generator states."""
    from safetensors.torch import save_file

    def write(folder: Path) -> None:
        main = current().is_main
        if trainer.sharded is not None:  # every rank: the gather of the sharded Adam state
            trainer.sharded.save_optimizer(trainer.optimizer, folder / "optimizer_full.pt", main)
        if not main:
            return
        policy.lm.save_pretrained(folder / "policy")
        if policy.value_head is not None:
            save_file(policy.value_head.state_dict(), str(folder / "value_head.safetensors"))
        if trainer.sharded is None:
            torch.save(trainer.optimizer.state_dict(), folder / "optimizer.pt")
        torch.save({"sample": sample_gen.get_state(), "shuffle": trainer.shuffle_gen.get_state(),
                    "torch": torch.get_rng_state()}, folder / "rng.pt")

    run.save_checkpoint(step, write, state)


def load_policy_weights(folder: Path, policy: Any, device: torch.device) -> None:
    """Load a checkpoint's policy (or adapter) and value head into ``policy`` in place."""
    from safetensors.torch import load_file

    if policy.lora:
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

        set_peft_model_state_dict(policy.lm, load_peft_weights(str(folder / "policy"), device=str(device)))
    else:
        from transformers import AutoModelForCausalLM

        saved = AutoModelForCausalLM.from_pretrained(str(folder / "policy"))
        policy.lm.load_state_dict(saved.state_dict())
    if policy.value_head is not None:
        policy.value_head.load_state_dict(load_file(str(folder / "value_head.safetensors"),
                                                    device=str(device)))


def load_checkpoint(folder: Path, policy: Any, trainer: LmTrainer,
                    sample_gen: torch.Generator, device: torch.device) -> None:
    """Restore weights, optimizer and generator states, so a resumed run continues exactly."""
    load_policy_weights(folder, policy, device)
    name = "optimizer_full.pt" if trainer.sharded is not None else "optimizer.pt"
    if not (folder / name).is_file():
        raise RlseekError(f"{folder} was written by the other run.distributed.strategy (it has no "
                          f"{name}); resume it with the strategy it was trained with")
    if trainer.sharded is not None:
        head = policy.value_head.state_dict() if policy.value_head is not None else None
        trainer.sharded.load_full(policy.lm.state_dict(), head)
        trainer.sharded.load_optimizer(trainer.optimizer, folder / name)
    else:
        trainer.optimizer.load_state_dict(torch.load(folder / name, weights_only=True, map_location=device))
    rng = torch.load(folder / "rng.pt", weights_only=True)
    sample_gen.set_state(rng["sample"])
    trainer.shuffle_gen.set_state(rng["shuffle"])
    torch.set_rng_state(rng["torch"])


def save_final(run: Run, policy: Any, tokenizer: Any) -> None:
    """The final policy as one ``save_pretrained`` folder (LoRA merged), written atomically."""
    from safetensors.torch import save_file

    from rlseek.runs import atomic_directory

    lm = policy.lm.merge_and_unload() if policy.lora else policy.lm
    with atomic_directory(run.final_dir) as tmp:
        lm.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if policy.value_head is not None:
            save_file(policy.value_head.state_dict(), str(tmp / "value_head.safetensors"))
