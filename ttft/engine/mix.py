"""A run's datasets: one, or a weighted mix (``dataset`` + ``more_datasets``, ``dataset_weights``) in finetune mode.

Each dataset is selected on its own (:func:`ttft.core.selection.select_tasks`; ``tasks`` applies to a single
dataset only) and recorded in the run's manifest with its name, version and weight."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ttft.core.data import Dataset, Task
from ttft.core.selection import select_tasks
from ttft.engine.samples import source_tasks
from ttft.engine.train_config import TrainConfig
from ttft.options import ConfigError


@dataclass
class MixPart:
    """One dataset of a run: its name (as given), the dataset, the tasks selected from it and its weight."""

    name: str
    dataset: Dataset
    tasks: list[Task]
    weight: float

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "version": self.dataset.version,
            "weight": self.weight,
            "n_tasks": len(self.tasks),
            "n_pools": sum(t.pool for t in self.tasks),
        }


def select_mix(cfg: TrainConfig) -> list[MixPart]:
    """The run's datasets with their selected tasks and weights (normalised to sum to 1). Raises ConfigError for a
    dataset that cannot be loaded or selects no task, and for pools in ttft mode (a pool has no test input)."""
    names = (cfg.dataset, *cfg.more_datasets)
    weights = cfg.dataset_weights or (1.0,) * len(names)
    total = sum(weights)
    parts = []
    for i, (name, w) in enumerate(zip(names, weights, strict=True)):
        ds, tasks = select_tasks(name, cfg.tasks if i == 0 else (), cfg.max_task_tokens)
        parts.append(MixPart(name, ds, tasks, w / total))
    if cfg.mode == "ttft":
        pools = [p.name for p in parts if any(t.pool for t in p.tasks)]
        if pools:
            raise ConfigError(
                f"mode: dataset {pools[0]!r} holds pools of pairs (RE-ARC form) with no test input to fine-tune "
                "for at test time; train on them with mode 'finetune', got 'ttft'"
            )
    return parts


def mix_sources(cfg: TrainConfig, parts: list[MixPart], tokenizer: Any) -> list[list[Task]]:
    """The source tasks of each dataset of a mix (:func:`ttft.engine.samples.source_tasks`). Raises ConfigError
    naming a dataset none of whose samples fits ``encoding.max_seq_len``."""
    out = []
    for p in parts:
        srcs = [s for t in p.tasks for s in source_tasks(t, cfg, tokenizer)]
        if not srcs:
            raise ConfigError(
                f"encoding.max_seq_len: no training sample of dataset {p.name!r} ({len(p.tasks)} tasks) fits in "
                f"{cfg.encoding.max_seq_len} tokens; raise max_seq_len or leave the dataset out of the mix, "
                f"got {cfg.encoding.max_seq_len}"
            )
        out.append(srcs)
    return out
