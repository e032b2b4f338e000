"""Task selection: a dataset, its tasks by id and token estimate."""

from __future__ import annotations

from ttft.core.data import load_dataset
from ttft.options import ConfigError


def select_tasks(dataset_spec: str, ids: tuple[str, ...] | list[str] = (), max_tokens: int | None = None):
    """(dataset, selected tasks). Unknown ids raise ConfigError naming them."""
    try:
        ds = load_dataset(dataset_spec)
    except (ValueError, OSError) as e:
        raise ConfigError(f"dataset: {e}") from None
    if ids:
        unknown = [t for t in ids if t not in ds.tasks]
        if unknown:
            raise ConfigError(f"tasks: unknown task id(s) {', '.join(unknown[:10])} in dataset {dataset_spec!r}")
        tasks = [ds.tasks[t] for t in ids]
    else:
        tasks = list(ds)
    if max_tokens is not None:
        tasks = [t for t in tasks if t.stats().tokens <= max_tokens]
    if not tasks:
        raise ConfigError(f"tasks: no task of {dataset_spec!r} is selected (max_task_tokens={max_tokens})")
    return ds, tasks
