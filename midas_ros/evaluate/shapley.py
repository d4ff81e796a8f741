"""Shapley contribution of each modality, computed from the errors of the seven modality subsets.

As in attribution-based modality analyses (e.g. AWC), the value of a subset S is the error reduction it
buys against a reference that uses no sensor at all: v(S) = err(empty) - err(S). Here err(empty) is the
error of always predicting the constant pose (the training poses' Procrustes mean at their mean place and
heading, references.py), so v(empty) = 0 and a modality's Shapley value
is its average marginal error reduction (in mm) over all orders in which the modalities can be added.
The values sum to v(full) - v(empty) (efficiency).
"""

from __future__ import annotations

from itertools import combinations
from math import factorial

from midas_ros import MODALITIES


def shapley_values(
    errors: dict[frozenset[str], float], empty_error: float, players: tuple[str, ...] = MODALITIES
) -> dict[str, float]:
    """Shapley value of each player, from `errors[subset]` for every non-empty subset of `players`.

    errors: error (lower is better) of each non-empty subset; empty_error: the no-sensor reference error.
    """
    n = len(players)

    def value(subset: frozenset[str]) -> float:
        if not subset:
            return 0.0
        if subset not in errors:
            raise KeyError(f"no error given for subset {sorted(subset)}")
        return empty_error - errors[subset]

    result: dict[str, float] = {}
    for player in players:
        others = [p for p in players if p != player]
        total = 0.0
        for size in range(n):
            weight = factorial(size) * factorial(n - size - 1) / factorial(n)
            for coalition in combinations(others, size):
                s = frozenset(coalition)
                total += weight * (value(s | {player}) - value(s))
        result[player] = total
    return result
