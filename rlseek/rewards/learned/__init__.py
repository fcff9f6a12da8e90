"""Learned rewards: scoring text with a trained reward model.

:mod:`~rlseek.rewards.learned.model` holds :class:`RewardModel` (a transformers backbone with a
scalar head, saved and loaded as a directory) and :mod:`~rlseek.rewards.learned.term` the
``reward_model`` text term that scores a batch with it. Training (preference data, synthesis,
the Bradley–Terry trainer, adversarial augmentation, ``rlseek reward-model train``) lives in a
package above the environments; this one sits with the other reward terms, below them, so an
env is scored by a learned model without importing any training code.

Heavy modules (torch, transformers) load on first use.
"""
