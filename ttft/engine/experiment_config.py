"""Options of the experiments (the experiment folder's config.json): a sweep's shared options, a row's own, and
the seed ablation, a predefined sweep (its rows, :data:`PRESETS`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ttft.core.augment import DIHEDRAL
from ttft.core.data import parse_task_list
from ttft.core.profiles import PROFILE_NAMES
from ttft.engine.train_config import check_device, check_task_ids
from ttft.options import Options, option
from ttft.runs.experiments import slug  # noqa: F401 - where the rows are named

#: the seed experiment's colour swap (arc24 notebook 003 ``swap_task_colors``): 1-9 shuffled, and with probability 0.1
#: all of 0-9 (the background moves in about 9 % of the maps)
SEED_COLOURS = {"transforms": list(DIHEDRAL), "colors": "keep-bg", "p_bg": 0.1}

#: the rows and the TrainConfig options each sets (besides the experiment's shared ones). ``n-2`` is the seed's n-2
#: set (n-1 and n-2 tasks together: 4,935 on ARC-AGI-1 evaluation); ``n-2 only`` is ttft's n-2 before issue 14
#: (only the tasks with two pairs left out: 3,572 samples, none for a task with two train pairs)
ROWS: dict[str, dict | None] = {
    "baseline": None,
    "n-1": {"augment": {"transforms": ["identity"], "colors": "none"}},
    "n-1 + geometric": {"augment": {"transforms": list(DIHEDRAL), "colors": "none"}},
    "n-1 + geometric + colour": {"augment": dict(SEED_COLOURS)},
    "preserve original colours": {"augment": dict(SEED_COLOURS), "keep_original_colors": 0.5},
    "n-2": {"augment": dict(SEED_COLOURS), "leave_out": 2},
    "n-2 only": {"augment": dict(SEED_COLOURS), "leave_out": 2, "n2_only": True},
}
#: the TrainConfig options a row may set besides ``augment`` (experiment.train_config_for passes each one on)
ROW_OPTIONS = ("leave_out", "n2_only", "keep_original_colors")


@dataclass
class SweepConfig(Options):
    """The options every row of a sweep shares (``python -m ttft experiment sweep``; the experiment folder's
    config.json). A row changes some of them, or any training or prediction option (:mod:`ttft.engine.sweep_plan`);
    the task subset and the seeds stay the same for every row."""

    TITLE: ClassVar[str] = "experiment"
    GROUP: ClassVar[str] = "Other"

    dataset: str = option(
        "arc-agi-1/evaluation",
        "dataset of the tasks to solve (test outputs must be known to score)",
        group="Tasks",
        widget="dataset",
    )
    tasks: tuple[str, ...] = option(
        (),
        "task ids, comma-separated or @FILE (empty: every task under max_task_tokens)",
        group="Tasks",
        widget="tasks",
        parse=parse_task_list,
    )
    max_task_tokens: int | None = option(
        1200,
        "use only tasks whose token estimate is at most this (the default "
        "subset: ARC-AGI-1 evaluation tasks under 1,200 tokens, about 170)",
        lo=1,
        group="Tasks",
    )
    limit: int | None = option(None, "use only the first N selected tasks (sorted by id)", lo=1, group="Tasks")
    base_model: str = option("default", "the model every row starts from", group="Training", widget="model")
    per_task: bool = option(
        True,
        "per-task TTFT: one adapter per task; false: one shared adapter over all the selected tasks (the seed's "
        "form), a sample's task drawn with equal weight, 'steps' then counts the shared run's steps",
        group="Training",
    )
    steps: int = option(
        30,
        "TTFT optimizer steps per task (30: the 172-task default finishes in about 1.5 h on 2 "
        "CPU cores; augmented rows overtake plain n-1 only from about 100 steps, see "
        "docs/experiments.md)",
        lo=1,
        hi=1_000_000,
        group="Training",
    )
    lr: float = option(1e-3, "TTFT learning rate", lo=0.0, lo_open=True, hi=10.0, group="Training")
    lora_r: int = option(16, "LoRA rank", lo=1, hi=4096, group="Training")
    lora_alpha: int = option(32, "LoRA alpha", lo=1, hi=65536, group="Training")
    max_seq_len: int = option(2048, "longest training sample", lo=1, hi=1_048_576, group="Training")
    views: int = option(4, "augmented views per test input at prediction (voted)", lo=1, hi=1024, group="Prediction")
    predict: bool = option(
        True,
        "predict every row (accuracy, pass@2, the val loss of the prediction); off: no prediction, the val loss "
        "is the TTFT run's own (per task for per-task runs), and rows without TTFT are refused",
        group="Prediction",
    )
    profile: str = option(
        "ttft",
        "a reference system's definitions for every row's TTFT run and prediction: ttft, arc24, marc (the "
        "profile's values under the sweep's options and the row's; a row's train.profile or predict.profile "
        "wins for that stage)",
        choices=PROFILE_NAMES,
        group="Training",
    )
    seed: int = option(0, "seed of every row (same samples where rows agree)", lo=0, hi=2**32 - 1, group="Training")
    gpus: int = option(
        1,
        "processes for the TTFT stage: N devices, or N CPU processes (torchrun, task-parallel)",
        lo=1,
        hi=64,
        group="Hardware",
    )
    device: str = option("auto", "auto, cpu, cuda, mps", suggestions=("auto", "cpu", "cuda", "mps"), group="Hardware")
    threads: int = option(
        0,
        "CPU threads for torch in every row's TTFT run and prediction (0: each stage's own default: torch's for "
        "training, automatic for prediction); a row's train.threads or predict.threads wins for that stage",
        lo=0,
        hi=1024,
        group="Hardware",
    )

    def check(self) -> None:
        check_task_ids(self)
        check_device(self.device)

    def shared(self) -> SweepConfig:
        """The sweep options alone (an AblationConfig without its ``rows``)."""
        names = {o.name for o in SweepConfig.options()}
        return SweepConfig.from_json({k: v for k, v in self.to_json().items() if k in names})


#: the sweep options every row keeps: the same task subset and seeds for every row
SHARED_ONLY = ("dataset", "tasks", "max_task_tokens", "limit", "seed")


@dataclass
class RowOptions(Options):
    """The options a sweep row has besides the sweep's, training and prediction options."""

    TITLE: ClassVar[str] = "row"
    GROUP: ClassVar[str] = "Rows"

    ttft: bool = option(True, "test-time fine-tune the row (off: predict the base model untouched, the baseline)")


@dataclass
class AblationConfig(SweepConfig):
    """Options of ``python -m ttft experiment seed-ablation`` (saved as the experiment's config.json): the sweep
    options and which of the predefined rows to run."""

    rows: tuple[str, ...] = option(tuple(ROWS), "which rows to run", choices=tuple(ROWS), min_len=1, group="Rows")


def seed_rows() -> list[dict]:
    """The seed ablation as sweep rows: ``[{"name", "options"}]`` with the options as sweep names
    (``ttft``, ``train.<path>``)."""
    out = []
    for name, over in ROWS.items():
        if over is None:
            out.append({"name": name, "options": {"ttft": False}})
            continue
        opts = {f"train.augment.{k}": v for k, v in (over.get("augment") or {}).items()}
        opts.update({f"train.{k}": over[k] for k in ROW_OPTIONS if k in over})
        out.append({"name": name, "options": opts})
    return out


#: predefined sweeps: {name: rows}
PRESETS: dict[str, list[dict]] = {"seed-ablation": seed_rows()}
