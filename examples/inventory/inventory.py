"""A small stock-keeping module with one bug: the README's `editseq refine` example fixes it."""

from __future__ import annotations


def total_units(stock: dict[str, int]) -> int:
    """How many units are in stock, all items together."""
    return sum(stock.values())


def restock_list(stock: dict[str, int], minimum: int) -> list[str]:
    """The names of the items whose quantity is at or below ``minimum``, sorted."""
    low = []
    for name, quantity in stock.items():
        if quantity < minimum:
            low.append(name)
    return sorted(low)
