"""Every option of a training run (the run's config.json)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import ClassVar

from ttft.core.augment import AugmentOptions
from ttft.core.data import parse_task_list
from ttft.core.encoding import VAL_COVERS, EncodingConfig
from ttft.core.names import task_id_problem
from ttft.core.profiles import PROFILE_NAMES, check_profile
from ttft.engine.models import ModelConfig, device_problem
from ttft.options import ConfigError, Options, option

MODES = ("finetune", "ttft")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
#: Trainer loggers that need a package of their own
_REPORTERS = {
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "comet_ml": "comet_ml",
    "clearml": "clearml",
    "dvclive": "dvclive",
    "trackio": "trackio",
}
SEED_MAX = 2**32 - 1
#: how a shared-adapter ttft run draws a sample's task
TASK_WEIGHTING = ("task", "leave-out")
#: how a sample's augmentation is drawn
AUGMENT_RECIPES = ("options", "marc")


def check_task_ids(cfg: Options, name: str = "tasks") -> None:
    for tid in getattr(cfg, name):
        why = task_id_problem(tid)
        if why:
            raise cfg.bad(name, why)


def check_mix(cfg: TrainConfig) -> None:
    """The pool and mix options: pool_pairs_min <= pool_pairs_max; a mix (more_datasets) is for finetune mode, of
    whole datasets, with one weight per dataset when weights are given."""
    if cfg.pool_pairs_min > cfg.pool_pairs_max:
        raise cfg.bad("pool_pairs_max", f"must be at least pool_pairs_min ({cfg.pool_pairs_min})")
    names = (cfg.dataset, *cfg.more_datasets)
    if any(not d.strip() for d in cfg.more_datasets):
        raise cfg.bad("more_datasets", "each must be a bundled name or a path")
    if cfg.more_datasets and cfg.mode != "finetune":
        raise cfg.bad("more_datasets", "a mix of datasets is for mode 'finetune' (ttft trains on the selected tasks)")
    if cfg.more_datasets and cfg.tasks:
        raise cfg.bad("tasks", "selects tasks of one dataset; a mix uses every task of each (max_task_tokens applies)")
    if len(set(names)) < len(names):
        raise cfg.bad("more_datasets", f"names a dataset twice (dataset is {cfg.dataset!r})")
    if cfg.dataset_weights and len(cfg.dataset_weights) != len(names):
        raise cfg.bad("dataset_weights", f"needs one weight per dataset ({len(names)}: {', '.join(names)})")


def check_device(device: str) -> None:
    """Refuse a device this machine does not have, naming the option; 'auto' and 'cpu' import nothing (validating
    a config, the Fine-tune form on every rerun, costs no torch import: :func:`device_problem`)."""
    if why := device_problem(device):
        raise ConfigError(f"device: {why}")


@dataclass
class TrainConfig(Options):
    """Every option of a training run (saved as the run's config.json)."""

    TITLE: ClassVar[str] = "training"
    GROUP: ClassVar[str] = "Other"

    profile: str = option(
        "ttft",
        "a reference system's definitions as option values: ttft (ttft's own), arc24, "
        "marc (see docs/experiments.md); --profile puts its values under the flags given, and a "
        "profile's text format and prompt cannot be changed under it",
        choices=PROFILE_NAMES,
        group="Data",
    )
    mode: str = option(
        "ttft",
        "finetune: train on a dataset's tasks (all known pairs, one held out per sample); "
        "ttft: test-time fine-tune on the selected tasks' train pairs only (n-1 tasks + "
        "augmentations)",
        choices=MODES,
        group="Data",
    )
    dataset: str = option(
        "arc-agi-1/evaluation",
        "bundled name (arc-agi-1/training, ...) or a path (a task file, a folder of tasks or pools, a Kaggle file)",
        group="Data",
        widget="dataset",
        repeat_into="more_datasets",
    )
    more_datasets: tuple[str, ...] = option(
        (),
        "finetune mode: more datasets mixed with dataset (bundled names or paths); a sample first draws a dataset "
        "by dataset_weights, then one of its tasks; on the command line repeat --dataset",
        flag=False,
        group="Data",
    )
    dataset_weights: tuple[float, ...] = option(
        (),
        "a mix's weights, one per dataset (dataset first, then more_datasets), any positive numbers "
        "(empty: equal weights)",
        lo=0.0,
        lo_open=True,
        group="Data",
    )
    tasks: tuple[str, ...] = option(
        (),
        "task ids to use, comma-separated or @FILE with one id per line (empty: every task of the dataset)",
        group="Data",
        widget="tasks",
        parse=parse_task_list,
    )
    pool_pairs_min: int = option(
        4,
        "finetune mode, pools (RE-ARC's files of generated pairs): the fewest pairs a sample draws from a "
        "task's pool, the test pair included (each sample draws k in [pool_pairs_min, pool_pairs_max] distinct "
        "pairs, the last one its test, as arc24 draws n_train + 1 without replacement)",
        lo=2,
        hi=1000,
        group="Data",
    )
    pool_pairs_max: int = option(
        7, "finetune mode, pools: the most pairs a sample draws (see pool_pairs_min)", lo=2, hi=1000, group="Data"
    )
    max_task_tokens: int | None = option(
        None,
        "use only tasks whose token estimate (1 per cell + 1 per row) is at most this (pools are kept: a sample "
        "draws a few of their pairs)",
        lo=1,
        group="Data",
    )
    per_task: bool = option(
        False, "ttft mode: one adapter per task (trained from the same base) instead of one for all", group="Data"
    )
    leave_out: int = option(
        1,
        "ttft mode: build tasks by leaving out train pairs: 1 (n-1: each pair in turn is the "
        "test) or 2 (the seed's n-2: the n-1 tasks and the n-1 tasks of each of them, 4,935 on "
        "ARC-AGI-1 evaluation; tasks with two train pairs keep their n-1 tasks)",
        choices=(1, 2),
        group="Data",
    )
    n2_only: bool = option(
        False,
        "with leave_out 2: only the tasks with two pairs left out (both as test pairs; "
        "ttft's n-2 before issue 14: 3,572 samples on ARC-AGI-1 evaluation, none for a task with "
        "two train pairs)",
        group="Data",
    )
    task_weighting: str = option(
        "task",
        "shared-adapter ttft runs: 'task' draws a task, then one of its leave-out "
        "tasks (every task weighs the same, as arc24); 'leave-out' draws among all leave-out "
        "tasks (a task weighs by how many it has: its n train pairs with n-1, n*n with the "
        "seed's n-2; ttft before issue 14, and the seed's dataset files)",
        choices=TASK_WEIGHTING,
        group="Data",
    )
    augment_recipe: str = option(
        "options",
        "how a sample's augmentation is drawn: 'options' (from the augment "
        "options), 'marc' (one of MARC's TTT augmenters, then MARC's colour permutation and "
        "a train order for half of the samples)",
        choices=AUGMENT_RECIPES,
        group="Data",
    )
    keep_original_colors: float = option(
        0.0,
        "probability that a sample keeps the original colours (the seed "
        "experiment's 'preserve original colours' variant)",
        lo=0.0,
        hi=1.0,
        group="Data",
    )
    model: ModelConfig = option(default_factory=ModelConfig)
    steps: int = option(100, "optimizer steps (per task with per_task)", lo=1, hi=10_000_000, group="Optimisation")
    lr: float = option(1e-4, "peak learning rate", lo=0.0, lo_open=True, hi=10.0, group="Optimisation")
    batch_size: int = option(
        1, "samples per device per step (before gradient accumulation)", lo=1, hi=4096, group="Optimisation"
    )
    grad_accum: int = option(1, "gradient accumulation steps", lo=1, hi=4096, group="Optimisation")
    scheduler: str = option("cosine", "learning-rate schedule", choices=SCHEDULERS, group="Optimisation")
    warmup_steps: int = option(0, "linear warm-up steps", lo=0, hi=10_000_000, group="Optimisation")
    weight_decay: float = option(0.0, "AdamW weight decay", lo=0.0, hi=10.0, group="Optimisation")
    encoding: EncodingConfig = option(default_factory=lambda: EncodingConfig(max_seq_len=2048))
    too_long: str = option(
        "trim",
        "a sample longer than encoding.max_seq_len: 'trim' drops train pairs until it "
        "fits, 'drop' draws another sample (both are counted)",
        choices=("trim", "drop"),
        group="Data",
    )
    augment: AugmentOptions = option(default_factory=AugmentOptions)
    seed: int = option(
        0, "seed of the sample stream, augmentations and initialisation", lo=0, hi=SEED_MAX, group="Optimisation"
    )
    device: str = option(
        "auto", "auto, cpu, cuda, cuda:N or mps", suggestions=("auto", "cpu", "cuda", "mps"), group="Optimisation"
    )
    val: str = option(
        "auto",
        "validation set for the val loss (mean loss on test-output tokens): 'auto' (the "
        "selected tasks in ttft mode; the matching evaluation split in finetune mode), 'none', or a "
        "dataset name/path",
        suggestions=("auto", "none"),
        group="Eval & logging",
    )
    val_loss_on: str = option(
        "test-output",
        "which tokens the val loss covers: test-output (the test output and "
        "end of sequence: ttft's definition) or as-trained (the tokens training puts the loss "
        "on; with the arc24 profile the whole assistant reply, arc24's val loss)",
        choices=VAL_COVERS,
        group="Eval & logging",
    )
    val_max_tokens: int | None = option(
        None, "use only validation tasks whose token estimate is at most this", lo=1, group="Eval & logging"
    )
    eval_steps: int = option(0, "compute the val loss every N steps (0: only at the end)", lo=0, group="Eval & logging")
    logging_steps: int = option(1, "write a metrics line every N steps", lo=1, group="Eval & logging")
    save_steps: int = option(50, "save a checkpoint every N steps (and always on stop)", lo=1, group="Eval & logging")
    save_total_limit: int = option(2, "keep at most this many checkpoints", lo=1, hi=1000, group="Eval & logging")
    report_to: str = option(
        "none",
        "extra loggers for Trainer: none, tensorboard, wandb, ...",
        suggestions=("none", "tensorboard", "wandb"),
        group="Eval & logging",
    )
    threads: int = option(0, "CPU threads for torch (0: torch's default)", lo=0, hi=1024, group="Optimisation")

    def check(self) -> None:
        why = check_profile(self.to_json(), "train")
        if why:
            raise ConfigError(why)
        if self.n2_only and self.leave_out != 2:
            raise self.bad("n2_only", "is only for leave_out 2")
        if self.per_task and self.mode != "ttft":
            raise self.bad("per_task", "is only for mode 'ttft'")
        if self.per_task and self.model.full_finetune:
            raise self.bad(
                "per_task",
                "trains one LoRA adapter per task from the same base; a full fine-tune per "
                "task is not supported (it would keep a whole model copy per task): use "
                "LoRA, or --no-per-task for one fully fine-tuned model",
            )
        check_task_ids(self)
        if not self.dataset.strip():
            raise self.bad("dataset", "must be a bundled name or a path")
        check_mix(self)
        check_device(self.device)
        for name in [r.strip() for r in self.report_to.split(",") if r.strip() not in ("", "none")]:
            pkg = _REPORTERS.get(name)
            if pkg and importlib.util.find_spec(pkg) is None:
                raise self.bad("report_to", f"needs the package {pkg!r}, which is not installed (pip install {pkg})")
