"""Robot-control environments (MuJoCo): Gymnasium and gymnasium-robotics tasks whose reward
comes from rlseek's weighted reward registry. Ids and entry points are in :mod:`.specs`;
the env modules are imported only when an env is made."""
