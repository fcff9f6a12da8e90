"""The train / held-out split of every text task's problem space.

A problem (its canonical prompt string) belongs to the held-out set when a stable hash of it
falls in the held-out bucket. The split depends only on the string, never on a seed or on the
order problems are drawn in, so the training prompt stream, the pre-training corpus of the
bundled tiny LM and :func:`rlseek.envs.text.heldout_prompts` agree on it forever.
"""

from __future__ import annotations

import hashlib

HELDOUT_BUCKETS = 10
"""One bucket in ``HELDOUT_BUCKETS`` (10 %) of each task's problem space is held out."""


def is_heldout(task: str, key: str) -> bool:
    """True when problem ``key`` of ``task`` ("arithmetic", "reviews") is held out.

    The task name salts the hash so that the two tasks' splits are independent.
    """
    digest = hashlib.sha256(f"{task}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % HELDOUT_BUCKETS == 0
