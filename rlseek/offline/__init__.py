"""Offline RL: D4RL-style dataset collection, dataset I/O, and BCQ-vs-BC comparison (d3rlpy).

* :mod:`rlseek.offline.dataset`: the HDF5 dataset format (d3rlpy's, plus metadata), read safely;
* :mod:`rlseek.offline.collect`: random / medium / medium-replay / expert / medium-expert data;
* :mod:`rlseek.offline.minari_export`: export to Minari's dataset format;
* :mod:`rlseek.offline.algos`: d3rlpy BCQ and BC (discrete variants too), saved without pickle;
* :mod:`rlseek.offline.compare`: seeds × algorithms, rlseek's seeded evaluation, IQM and CIs.
"""

from rlseek.offline.dataset import EpisodeData, OfflineDataset, read_dataset, write_dataset

__all__ = ["EpisodeData", "OfflineDataset", "read_dataset", "write_dataset"]
