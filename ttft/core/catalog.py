"""Filtering and paging a dataset's task statistics (pure pandas, used by the Tasks page)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class TaskFilter:
    """Which tasks the gallery shows. Ranges are inclusive; None means no bound."""

    id_contains: str = field(default="", metadata={"help": "case-insensitive substring of the task id"})
    max_side: tuple[int, int] = field(default=(1, 30), metadata={"help": "largest grid side in the task (cells)"})
    n_train: tuple[int, int] | None = field(default=None, metadata={"help": "number of train pairs"})
    tokens: tuple[int, int] | None = field(default=None, metadata={"help": "token estimate of the whole task"})

    def validate(self) -> None:
        for name in ("max_side", "n_train", "tokens"):
            r = getattr(self, name)
            if r is not None and (len(r) != 2 or r[0] > r[1]):
                raise ValueError(f"TaskFilter.{name}: {r!r} is not a (low, high) range with low <= high")

    def apply(self, stats: pd.DataFrame) -> pd.DataFrame:
        self.validate()
        m = pd.Series(True, index=stats.index)
        if self.id_contains:
            m &= stats["id"].str.contains(self.id_contains.strip(), case=False, regex=False)
        side = stats[["max_height", "max_width"]].max(axis=1)
        m &= side.between(*self.max_side)
        if self.n_train is not None:
            m &= stats["n_train"].between(*self.n_train)
        if self.tokens is not None:
            m &= stats["tokens"].between(*self.tokens)
        return stats[m]


def page_count(n: int, per_page: int) -> int:
    return max(1, -(-n // per_page))


def page_slice(items: list, page: int, per_page: int) -> list:
    """Items of 1-based ``page`` (clamped to the valid range)."""
    page = min(max(1, page), page_count(len(items), per_page))
    return items[(page - 1) * per_page : page * per_page]


def neighbours(ids: list[str], current: str) -> tuple[str | None, str | None]:
    """Previous and next id around ``current`` in ``ids`` (None at the ends or when absent)."""
    if current not in ids:
        return None, None
    i = ids.index(current)
    return (ids[i - 1] if i > 0 else None), (ids[i + 1] if i + 1 < len(ids) else None)
