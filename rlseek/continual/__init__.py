"""Continual learning: ``rlseek train`` over a sequence of tasks with replay and EWC.

:mod:`~rlseek.continual.spec` parses ``run.tasks`` / ``run.replay`` / ``run.ewc``;
:mod:`~rlseek.continual.buffer` is the reservoir of past-task samples; :mod:`~rlseek.continual.ewc`
the diagonal Fisher and quadratic penalty; :mod:`~rlseek.continual.metrics` the task × task
accuracy matrix with ACC and BWT; :mod:`~rlseek.continual.robot` and
:mod:`~rlseek.continual.text` the per-family hooks; :mod:`~rlseek.continual.runner` trains the
sequence.
"""
