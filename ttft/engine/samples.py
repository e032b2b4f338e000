"""Training samples: the deterministic, resumable sample stream of a run, the validation set and the collator."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ttft.core.augment import IDENTITY_COLORS, AugmentSkipped, leave_one_out, leave_two_out, random_spec, try_apply_task
from ttft.core.data import Task
from ttft.core.encoding import IGNORE_INDEX, EncodingConfig, tokenize_task
from ttft.engine.train_config import TrainConfig


def known_pairs_task(task: Task) -> Task:
    """The task with every pair whose output is known as a train pair (finetune mode's source)."""
    pairs = task.train + tuple(p for p in task.test if p.output is not None)
    return Task(task.id, pairs, (), source=task.source)


class SampleStream:
    """A map-style torch dataset of augmented, tokenised samples; sample ``i`` depends only on (seed, i).

    Deterministic per index, so resuming (which skips the batches already seen) gives the same stream."""

    def __init__(self, sources: list[Task], mode: str, n_samples: int, cfg: TrainConfig, tokenizer: Any):
        self.sources = sources
        self.mode = mode
        self.n = n_samples
        self.cfg = cfg
        self.tokenizer = None if _is_embedded_tok(tokenizer) else tokenizer
        self.counts = {"samples": 0, "trimmed": 0, "dropped": 0, "augment_skipped": 0}

    def __len__(self) -> int:
        return self.n

    def _base_task(self, rng: np.random.Generator, i: int) -> Task:
        n = len(self.sources)
        epoch, k = divmod(i, n)
        perm = np.random.default_rng([self.cfg.seed, 7, epoch]).permutation(n)
        src = self.sources[int(perm[k])]
        if self.mode == "finetune":
            order = rng.permutation(len(src.train))
            pairs = tuple(src.train[int(j)] for j in order)
            return Task(src.id, pairs[:-1], pairs[-1:], source=src.source)
        return src  # an n-1 task

    def __getitem__(self, i: int) -> dict:
        for attempt in range(20):
            rng = np.random.default_rng([self.cfg.seed, int(i), attempt])
            task = self._base_task(rng, int(i) + attempt * 7919)
            spec = random_spec(rng, self.cfg.augment, task)
            if self.cfg.keep_original_colors and rng.random() < self.cfg.keep_original_colors:
                spec = dataclasses.replace(spec, colors=IDENTITY_COLORS)
            res = try_apply_task(task, spec)
            if res.task is None:
                self.counts["augment_skipped"] += 1
                continue
            task = res.task
            k = int(rng.integers(len(task.test)))  # n-2 tasks have two test pairs: train on one of them
            tt = tokenize_task(task, self.cfg.encoding, self.tokenizer, test_index=k)
            if not tt.fits and self.cfg.too_long == "trim":
                train = list(task.train)
                while not tt.fits and len(train) > 1:
                    train.pop(0)
                    tt = tokenize_task(Task(task.id, tuple(train), task.test), self.cfg.encoding, self.tokenizer,
                                       test_index=k)
                if tt.fits:
                    self.counts["trimmed"] += 1
            if not tt.fits:
                self.counts["dropped"] += 1
                continue
            self.counts["samples"] += 1
            return tt.to_features()
        raise RuntimeError(f"sample {i}: no augmented task fits max_seq_len={self.cfg.encoding.max_seq_len} after "
                           "20 tries; raise max_seq_len or select smaller tasks (max_task_tokens)")


def _is_embedded_tok(tok: Any) -> bool:
    from ttft.core.tokenizer import is_embedded

    return tok is None or is_embedded(tok)


def fits_at_all(task: Task, mode: str, cfg: TrainConfig, tokenizer: Any) -> bool:
    """Whether the smallest sample of a source task (one example + the test) fits max_seq_len."""
    tok = None if _is_embedded_tok(tokenizer) else tokenizer
    t = task if mode == "ttft" else Task(task.id, task.train[:-1], task.train[-1:])
    small = Task(t.id, t.train[:1], t.test[:1])
    return tokenize_task(small, cfg.encoding, tok).fits


def source_tasks(task: Task, cfg: TrainConfig, tokenizer: Any) -> list[Task]:
    """The tasks a training sample of ``task`` is drawn from, keeping those whose smallest sample fits
    ``max_seq_len``: in finetune mode the task with its known pairs (needs two), in ttft mode its leave-one-out
    (n-1) or leave-two-out (n-2) tasks."""
    if cfg.mode == "finetune":
        t = known_pairs_task(task)
        cands = [t] if len(t.train) >= 2 else []
    else:
        try:
            cands = leave_one_out(task) if cfg.leave_out == 1 else leave_two_out(task)
        except AugmentSkipped:
            cands = []
    return [c for c in cands if fits_at_all(c, cfg.mode, cfg, tokenizer)]


class ValSet:
    """Test-output tokens of tasks with known outputs (no augmentation, loss on the test output only)."""

    def __init__(self, tasks: list[Task], cfg: TrainConfig, tokenizer: Any):
        enc = EncodingConfig(**{**cfg.encoding.to_json(), "loss_on": "test"})
        tok = None if _is_embedded_tok(tokenizer) else tokenizer
        self.items, self.task_ids, self.skipped = [], [], 0
        for t in tasks:
            for k, p in enumerate(t.test):
                if p.output is None:
                    continue
                tt = tokenize_task(t, enc, tok, test_index=k)
                if tt.fits:
                    self.items.append(tt.to_features())
                    self.task_ids.append(t.id)
                else:
                    self.skipped += 1

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def make_collator(pad_id: int):
    import torch

    def collate(batch: list[dict]) -> dict:
        n = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), n), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for j, b in enumerate(batch):
            L = len(b["input_ids"])
            ids[j, :L] = torch.tensor(b["input_ids"])
            labels[j, :L] = torch.tensor(b["labels"])
            mask[j, :L] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate
