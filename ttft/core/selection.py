"""Task selection: a dataset, its tasks by id and token estimate (the one selection train, predict and the
experiments use)."""

from __future__ import annotations

from collections.abc import Sequence

from ttft.core.data import Dataset, Task, load_dataset
from ttft.options import ConfigError


def select_tasks(
    dataset_spec: str, ids: Sequence[str] = (), max_tokens: int | None = None, known_outputs: bool = False
) -> tuple[Dataset, list[Task]]:
    """(dataset, selected tasks): the tasks named by ``ids`` (in that order, each once; empty: every task of the
    dataset), those with a token estimate of at most ``max_tokens`` (None: no limit; pools are kept) and, with
    ``known_outputs``,
    only those whose test outputs are known (so they can be scored). An unknown dataset or task id, or an empty
    selection, raises ConfigError naming it."""
    try:
        ds = load_dataset(dataset_spec)
    except (ValueError, OSError) as e:
        raise ConfigError(f"dataset: {e}") from None
    if ids:
        ids = list(dict.fromkeys(ids))
        unknown = [t for t in ids if t not in ds.tasks]
        if unknown:
            raise ConfigError(f"tasks: unknown task id(s) {', '.join(unknown[:10])} in dataset {dataset_spec!r}")
        tasks = [ds.tasks[t] for t in ids]
    else:
        tasks = list(ds)
    if max_tokens is not None:
        tasks = [t for t in tasks if t.pool or t.stats().tokens <= max_tokens]  # a sample draws a few pool pairs
    if known_outputs:
        tasks = [t for t in tasks if t.test_outputs_known]
    if not tasks:
        why = f"max_task_tokens={max_tokens}" + (", test outputs known" if known_outputs else "")
        raise ConfigError(f"tasks: no task of {dataset_spec!r} is selected ({why})")
    return ds, tasks
