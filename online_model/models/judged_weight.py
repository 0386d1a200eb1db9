"""A mixing weight learned on hit@10: how the hybrid and the ensemble choose theirs.

Both serve ``(1 - w) · first + w · second`` over their candidates, with ``w`` from
:data:`GRID`. Each judged event asks, for every weight at once, whether the page viewed
next would have been in the top :data:`JUDGE_K` of the list mixed with it
(:func:`hits_by_weight`); the decayed hits, and the events where a weight and 0 disagree,
choose the weight served (:func:`choose_weight`): one above 0 only after
:data:`MIN_EVIDENCE` judged events and a gain over 0 of :data:`MIN_GAIN` hits and
:data:`Z_GAIN` standard deviations of a sign test on the disagreements.
"""

from __future__ import annotations

import numpy as np

#: The weights of the second part to choose from (the first, 0, is the first part alone).
GRID = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5)

#: GRID as a column, to mix every weight with one product.
_GRID_COLUMN = np.asarray(GRID)[:, None]

#: The list length the weights are judged on (hit@10).
JUDGE_K = 10

#: Judged events (decayed) before a weight learned from them is served.
MIN_EVIDENCE = 200.0

#: A weight above 0 is served only if its decayed hits beat those of 0 by ``MIN_GAIN`` and
#: by ``Z_GAIN`` standard deviations of a sign test on the events where the two disagree.
MIN_GAIN = 3.0
Z_GAIN = 2.0


def hits_by_weight(first: np.ndarray, second: np.ndarray, at: int) -> np.ndarray:
    """For every weight of :data:`GRID`, 1.0 if candidate ``at`` ranks in the top
    :data:`JUDGE_K` of ``(1 - w) · first + w · second`` (ranked as a stable sort would:
    the candidates above it, and those tied before it), else 0.0.

    >>> hits_by_weight(np.array([1.0, 0.5]), np.array([0.0, 1.0]), 1).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    mixed = (1.0 - _GRID_COLUMN) * first + _GRID_COLUMN * second  # (weights, candidates)
    mine = mixed[:, at : at + 1]
    rank = (mixed > mine).sum(axis=1) + (mixed[:, :at] == mine).sum(axis=1)
    return (rank < JUDGE_K).astype(float)


def choose_weight(hits: np.ndarray, disagree: np.ndarray, judged: float, unproven: float) -> float:
    """The weight the evidence supports: ``unproven`` until ``judged`` reaches
    :data:`MIN_EVIDENCE`, then the one of most hits among 0 and those that beat 0 by
    enough (the smallest on a tie).

    >>> choose_weight(np.array([10.0, 20, 0, 0, 0, 0]), np.array([0.0, 10, 0, 0, 0, 0]), 300, 0)
    0.05
    """
    if judged < MIN_EVIDENCE:
        return unproven
    gain = hits - hits[0]
    enough = (gain >= MIN_GAIN) & (gain >= Z_GAIN * np.sqrt(disagree))
    enough[0] = True
    return GRID[int(np.argmax(np.where(enough, hits, -np.inf)))]
