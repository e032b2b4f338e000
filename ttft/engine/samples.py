"""Training samples: the deterministic, resumable sample stream of a run, the validation set and the collator.

A shared-adapter ttft run draws a sample's task as ``task_weighting`` says: ``task`` (the default, arc24's) draws one
of the selected tasks, then one of its leave-out tasks, so every task weighs the same; ``leave-out`` draws among all
leave-out tasks, so a task weighs by how many it has. Per-task runs and finetune mode draw the same either way.

In finetune mode a pool (:mod:`ttft.core.pools`, RE-ARC's files of generated pairs) gives each sample k distinct pairs,
k drawn in [pool_pairs_min, pool_pairs_max], the last one its test; a mix of datasets (more_datasets) draws a sample's
dataset by dataset_weights, then one of its tasks. Every draw comes from (seed, sample index) only."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ttft.core.augment import IDENTITY_COLORS, AugmentSkipped, AugmentSpec, check_fits, draw_spec, try_apply_task
from ttft.core.data import Task
from ttft.core.encoding import IGNORE_INDEX, EncodingConfig, tokenize_task, val_encoding
from ttft.core.leaveout import leave_out_parent, leave_out_tasks
from ttft.core.profiles import check_encodable, marc_spec
from ttft.core.viewtokens import ViewEncoder
from ttft.engine.train_config import TrainConfig


def known_pairs_task(task: Task) -> Task:
    """The task with every pair whose output is known as a train pair (finetune mode's source)."""
    pairs = task.train + tuple(p for p in task.test if p.output is not None)
    return Task(task.id, pairs, (), source=task.source, pool=task.pool)


def pool_sample(rng: np.random.Generator, pool: Task, lo: int, hi: int) -> Task:
    """A task of k distinct pairs of a pool, k drawn in [lo, hi] (at most the pool's size), the last one the test."""
    n = len(pool.train)
    k = int(rng.integers(min(lo, n), min(hi, n) + 1))
    pairs = tuple(map(pool.train.__getitem__, rng.choice(n, size=k, replace=False).tolist()))
    return Task(pool.id, pairs[:-1], pairs[-1:], source=pool.source)


class SampleStream:
    """A map-style torch dataset of augmented, tokenised samples; sample ``i`` depends only on (seed, i).

    Deterministic per index, so resuming (which skips the batches already seen) gives the same stream. With the
    embedded tokenizer and the markers prompt a sample is built from its grids (:class:`ttft.core.viewtokens.
    ViewEncoder`: lengths from the shapes, trimming decided before any text, only the kept pairs augmented and
    written as ids); otherwise the view is applied and tokenised by the tokenizer, trimming by tokenising again. Both
    give the samples of the plain computation (tests/test_samples_exact.py)."""

    def __init__(
        self,
        sources: list[Task],
        mode: str,
        n_samples: int,
        cfg: TrainConfig,
        tokenizer: Any,
        mix: list[list[Task]] | None = None,
    ):
        """``mix``: the sources of each dataset of a mix (``sources`` is then ignored); drawn by
        ``cfg.dataset_weights`` (equal weights when empty)."""
        if mix is not None and len(mix) > 1:
            w = np.asarray(cfg.dataset_weights or [1.0] * len(mix), dtype=float)
            if len(w) != len(mix) or not all(mix):
                raise ValueError("a mix needs one weight and at least one source per dataset")
            self.mix: list[list[Task]] | None = mix
            self.mix_p = w / w.sum()
            sources = [t for part in mix for t in part]
        else:
            self.mix = None
            sources = mix[0] if mix else sources
        self.sources = sources
        self.mode = mode
        self.n = n_samples
        self.cfg = cfg
        self.tokenizer = None if _is_embedded_tok(tokenizer) else tokenizer
        self.counts = {"samples": 0, "trimmed": 0, "dropped": 0, "augment_skipped": 0}
        #: the fast path's encoder (embedded tokenizer, markers prompt), made on first use (it validates the encoding)
        self._views: ViewEncoder | None = None
        # ... for sources whose outputs are all known (a sample's pairs are some of its source's pairs)
        self._fast = (
            self.tokenizer is None
            and cfg.encoding.prompt == "markers"
            and all(p.output is not None for t in sources for p in t.train + t.test)
        )
        self._augment_ok = False
        self._perms: dict[int, np.ndarray] = {}
        groups: dict[str, list[Task]] = {}
        if mode == "ttft" and cfg.task_weighting == "task":
            for t in sources:
                groups.setdefault(leave_out_parent(t.id), []).append(t)
        #: the leave-out tasks of each selected task (equal task weighting), or None (draw among all sources)
        self.groups: list[list[Task]] | None = list(groups.values()) if len(groups) > 1 else None

    def __len__(self) -> int:
        return self.n

    def _source(self, i: int) -> Task:
        """Source ``i`` of the stream: each epoch is a permutation of the sources, or, with equal task weighting, of
        the tasks, each visit of a task taking the next of its leave-out tasks in a permutation of them; in a mix,
        a dataset drawn by weight, then one of its sources."""
        if self.mix is not None:
            rng = np.random.default_rng([self.cfg.seed, 13, i])
            part = self.mix[int(rng.choice(len(self.mix), p=self.mix_p))]
            return part[int(rng.integers(len(part)))]
        if self.groups is None:
            n = len(self.sources)
            epoch, k = divmod(i, n)
            return self.sources[int(self._epoch_order(epoch, n)[k])]
        n = len(self.groups)
        epoch, k = divmod(i, n)
        g = int(self._epoch_order(epoch, n)[k])
        group = self.groups[g]
        lap, j = divmod(epoch, len(group))
        return group[int(np.random.default_rng([self.cfg.seed, 11, g, lap]).permutation(len(group))[j])]

    def _epoch_order(self, epoch: int, n: int) -> np.ndarray:
        """The permutation of epoch ``epoch`` (from the seed and the epoch only; the last few kept: a sample of each
        epoch needs it)."""
        perm = self._perms.get(epoch)
        if perm is None:
            if len(self._perms) >= 8:
                self._perms.clear()
            perm = self._perms[epoch] = np.random.default_rng([self.cfg.seed, 7, epoch]).permutation(n)
        return perm

    def _base_task(self, rng: np.random.Generator, i: int) -> Task:
        src = self._source(i)
        if self.mode == "finetune" and src.pool:
            return pool_sample(rng, src, self.cfg.pool_pairs_min, self.cfg.pool_pairs_max)
        if self.mode == "finetune":
            order = rng.permutation(len(src.train))
            pairs = tuple(src.train[int(j)] for j in order)
            return Task(src.id, pairs[:-1], pairs[-1:], source=src.source)
        return src  # an n-1 task

    def _spec(self, rng: np.random.Generator, task: Task) -> AugmentSpec:
        if self.cfg.augment_recipe == "marc":
            spec = marc_spec(rng, task)
        else:
            if not self._augment_ok:  # frozen options: valid once, valid for every sample
                self.cfg.augment.validate()
                self._augment_ok = True
            spec = draw_spec(rng, self.cfg.augment, len(task.train))
        if self.cfg.keep_original_colors and rng.random() < self.cfg.keep_original_colors:
            spec = dataclasses.replace(spec, colors=IDENTITY_COLORS)
        return spec

    def __getitem__(self, i: int) -> dict:
        for attempt in range(20):
            rng = np.random.default_rng([self.cfg.seed, int(i), attempt])
            task = self._base_task(rng, int(i) + attempt * 7919)
            spec = self._spec(rng, task)
            if self._fast:
                features = self._from_grids(rng, task, spec)
            else:
                features = self._tokenised(rng, task, spec)
            if features is not None:
                return features
        raise RuntimeError(
            f"sample {i}: no augmented task fits max_seq_len={self.cfg.encoding.max_seq_len} after "
            "20 tries; raise max_seq_len or select smaller tasks (max_task_tokens)"
        )

    def _count(self, features: dict | None, trimmed: bool) -> dict | None:
        if features is None:
            self.counts["dropped"] += 1
            return None
        self.counts["samples"] += 1
        self.counts["trimmed"] += trimmed
        return features

    def _from_grids(self, rng: np.random.Generator, task: Task, spec: AugmentSpec) -> dict | None:
        """The sample of this view built from its grids (embedded tokenizer, markers prompt, outputs known)."""
        fits = (spec.order is None or len(spec.order) == len(task.train)) and not spec.steps
        if not fits and check_fits(task, spec) is not None:  # a grid over 30x30: skipped as apply_task skips it
            self.counts["augment_skipped"] += 1
            return None
        k = int(rng.integers(len(task.test)))  # n-2-only tasks have two test pairs: train on one of them
        train = task.train if spec.order is None else [task.train[j] for j in spec.order]
        if self._views is None:
            self._views = ViewEncoder(self.cfg.encoding)
        features, drop = self._views.features(train, task.test[k], spec, self.cfg.too_long == "trim")
        return self._count(features, drop > 0)

    def _tokenised(self, rng: np.random.Generator, task: Task, spec: AugmentSpec) -> dict | None:
        """The sample of this view applied and tokenised (any tokenizer and prompt), trimmed by tokenising again."""
        res = try_apply_task(task, spec)
        if res.task is None:
            self.counts["augment_skipped"] += 1
            return None
        task = res.task
        k = int(rng.integers(len(task.test)))
        tt = tokenize_task(task, self.cfg.encoding, self.tokenizer, test_index=k)
        trimmed = False
        if not tt.fits and self.cfg.too_long == "trim":
            train = list(task.train)
            while not tt.fits and len(train) > 1:
                train.pop(0)
                trimmed = True
                tt = tokenize_task(
                    Task(task.id, tuple(train), task.test), self.cfg.encoding, self.tokenizer, test_index=k
                )
        return self._count(tt.to_features() if tt.fits else None, trimmed)


def _is_embedded_tok(tok: Any) -> bool:
    from ttft.core.tokenizer import is_embedded

    return tok is None or is_embedded(tok)


def fits_at_all(task: Task, mode: str, cfg: TrainConfig, tokenizer: Any) -> bool:
    """Whether the smallest sample of a source task (one example + the test) fits max_seq_len."""
    tok = None if _is_embedded_tok(tokenizer) else tokenizer
    t = task if mode == "ttft" else Task(task.id, task.train[:-1], task.train[-1:])
    small = Task(t.id, t.train[:1], t.test[:1])
    return tokenize_task(small, cfg.encoding, tok).fits


_checked: dict[tuple[EncodingConfig, int], None] = {}


def check_tokenizer(cfg: TrainConfig, tokenizer: Any) -> None:
    """Raise ConfigError (``encoding.…``) unless the run's tokenizer can write its prompt and grid text (a chat
    prompt needs a chat template; no character may become an unknown token). Remembered per tokenizer."""
    tok = None if _is_embedded_tok(tokenizer) else tokenizer
    key = (cfg.encoding, id(tok))
    if key not in _checked:
        check_encodable(cfg.encoding, tok)
        if len(_checked) > 64:
            _checked.clear()
        _checked[key] = None


def source_tasks(task: Task, cfg: TrainConfig, tokenizer: Any) -> list[Task]:
    """The tasks a training sample of ``task`` is drawn from, keeping those whose smallest sample fits
    ``max_seq_len``: in finetune mode the task with its known pairs (needs two), in ttft mode its leave-out tasks
    (:func:`ttft.core.augment.leave_out_tasks`: n-1, the seed's n-2 = n-1 and n-2, or n-2 only). Raises
    ConfigError when the tokenizer cannot write the run's text (:func:`check_tokenizer`)."""
    check_tokenizer(cfg, tokenizer)
    if cfg.mode == "finetune":
        t = known_pairs_task(task)
        cands = [t] if len(t.train) >= 2 else []
    else:
        try:
            cands = leave_out_tasks(task, cfg.leave_out, cfg.n2_only)
        except AugmentSkipped:
            cands = []
    return [c for c in cands if fits_at_all(c, cfg.mode, cfg, tokenizer)]


def val_covers(enc: EncodingConfig, covers: str) -> str:
    """In words, which tokens a val loss of ``covers`` ("test-output", "as-trained") covers with encoding ``enc``."""
    loss_on = val_encoding(enc, covers).loss_on
    return {
        "test": "the test output and its end-of-sequence text",
        "outputs": "every output after the first example, the test output and its end-of-sequence text",
        "reply": "the whole assistant reply after its role header (arc24's val loss)",
    }[loss_on]


class ValSet:
    """Loss tokens of tasks with known test outputs (no augmentation): the test output only (``val_loss_on``
    test-output, ttft's definition) or the tokens training puts the loss on (as-trained); ``covers`` says which."""

    def __init__(self, tasks: list[Task], cfg: TrainConfig, tokenizer: Any):
        enc = val_encoding(cfg.encoding, cfg.val_loss_on)
        self.covers = val_covers(cfg.encoding, cfg.val_loss_on)
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
