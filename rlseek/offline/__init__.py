"""Offline RL: D4RL-style dataset collection, dataset I/O, and BCQ-vs-BC comparison (d3rlpy).

* :mod:`rlseek.offline.dataset`: the HDF5 dataset format (d3rlpy's, plus metadata), read safely;
* :mod:`rlseek.offline.collect`: random / medium / medium-replay / expert / medium-expert data;
* :mod:`rlseek.offline.minari_export`: export to Minari's dataset format;
* :mod:`rlseek.offline.algos`: d3rlpy BCQ and BC (discrete variants too), saved without pickle;
* :mod:`rlseek.offline.compare`: seeds × algorithms, rlseek's seeded evaluation, IQM and CIs;
* :mod:`rlseek.offline.agent`: the ``bcq`` and ``bc`` agents of ``rlseek train``.
"""

import contextlib as _contextlib
import io as _io

# d3rlpy imports gym 0.26, which prints a multi-line deprecation notice to stderr (also in every
# worker process of `offline compare --jobs`). rlseek never uses gym; keep stderr for its own
# messages.
with _contextlib.redirect_stderr(_io.StringIO()), _contextlib.suppress(ImportError):
    import gym as _legacy_gym  # noqa: F401

from rlseek.offline.dataset import EpisodeData, OfflineDataset, read_dataset, write_dataset

__all__ = ["EpisodeData", "OfflineDataset", "read_dataset", "write_dataset"]
