"""Augmented, batched prediction with voting: from a run (base model + adapter, per-task adapters, or a full
fine-tune's ``model/``) or a bare base model, on a dataset's tasks.

For each test input, K augmented views (:func:`view_specs`: view 0 is the identity, then the dihedral transforms in
turn, with a colour permutation each when ``colors`` allows) are encoded as prompts (``encode_task(answer=False)``),
generated in batches with a KV cache (left padding, one ``model.generate`` call per batch, stop at end-of-sequence),
parsed, and mapped back with the view's inverse (``invert_grid(role='output')``). Identical grids are counted as
votes; ties are broken by the mean log-probability of the generated tokens (then by the first view): the top two are
attempt 1 and attempt 2 (:func:`vote`).

:func:`run_prediction` writes a prediction folder (docs/predictions.md): ``config.json``, ``status.json``,
``predictions.jsonl`` (one line per view), ``tasks.jsonl`` (one line per task: attempts, candidates, metrics),
``metrics.json`` and a Kaggle ``submission.json``. SIGTERM/SIGINT stop it between batches with status ``stopped``
(what is done is kept and scored). Nothing here imports streamlit.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from ttft import metrics as M
from ttft.augment import DIHEDRAL, IDENTITY_COLORS, AugmentSpec, InverseError, apply_task, invert_grid, \
    random_color_map
from ttft.data import MAX_SIDE, Task
from ttft.encoding import IGNORE_INDEX, EncodingConfig, grid_to_text, parse_output, tokenize_task
from ttft.runs import (RunDir, append_jsonl, process_start_time, read_json, runs_root, safe_name,
                       write_json_atomic)

COLOR_CHOICES = ("keep-bg", "all", "none")
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: folder (under the runs folder) of predictions of bare base models made without --out
BASELINES_DIR = "baselines"
#: what a prediction folder's config.json adds to PredictConfig (the resolved model source, data version)
RESOLVED_KEYS = ("kind", "source", "dataset_version")
#: generated tokens past the estimated output size (end-of-sequence, end-of-turn texts)
_SLACK_TOKENS = 4


class PredictError(ValueError):
    """An option, run or model that cannot be used; the message names it."""


# --------------------------------------------------------------------------- config


@dataclass
class PredictConfig:
    """Every option of a prediction (saved as the prediction folder's config.json)."""

    run: str | None = None
    base_model: str | None = None
    dataset: str | None = None
    tasks: tuple[str, ...] = ()
    max_task_tokens: int | None = None
    views: int = 8
    transforms: tuple[str, ...] = DIHEDRAL
    colors: str = "keep-bg"
    shuffle: bool = False
    seed: int = 0
    sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 0
    max_new_tokens: int = 0
    max_seq_len: int = 0
    val_loss: bool = True
    format: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    threads: int = 0
    name: str | None = None
    out: str | None = None

    HELP: ClassVar[dict[str, str]] = {
        "run": "a training run folder: its base model + adapter/ (per-task runs: adapters/<task>/ matched to each "
               "task), or its full fine-tune model/",
        "base_model": "a bare base model instead of a run: 'default' (the embedded model), a folder or a hub id",
        "dataset": "bundled name or path (default with a run: the run's dataset)",
        "tasks": "task ids (empty: the run's tasks, or every task of the dataset)",
        "max_task_tokens": "use only tasks whose token estimate (1 per cell + 1 per row) is at most this",
        "views": "augmented views per test input (K); view 0 is the identity, then the dihedral transforms in turn",
        "transforms": "dihedral transforms the views cycle through (" + ", ".join(DIHEDRAL) + ")",
        "colors": "colour permutation of views after the first: keep-bg (shuffle 1-9), all (shuffle 0-9), none",
        "shuffle": "also reorder the train pairs of views after the first",
        "seed": "seed of the colour maps, orders and sampling",
        "sample": "sample instead of greedy decoding",
        "temperature": "sampling temperature (with sample)",
        "top_p": "nucleus sampling threshold (with sample)",
        "batch_size": "sequences per generate call (0: automatic, from free memory and sequence length)",
        "max_new_tokens": "most tokens generated per view (0: estimated from the task's grid sizes); never more "
                          "than a 30x30 grid needs",
        "max_seq_len": "longest prompt + output (0: the run's encoding.max_seq_len, or 8192 for a bare model, "
                       "capped by the model's context); longer views are unanswered",
        "val_loss": "compute the val loss (mean loss on the test-output tokens) where the test outputs are known",
        "format": "grid text format for a bare model (a run uses its own): minimal, shape+rows, separated",
        "device": "auto, cpu, cuda, cuda:N or mps",
        "dtype": "auto (bfloat16 on a GPU that has it, else float32), float32, bfloat16, float16",
        "threads": "CPU threads for torch (0: torch's default)",
        "name": "name of the prediction folder under <run>/predictions/ (default: a time stamp and the views)",
        "out": "write the prediction folder here instead",
    }

    def validate(self) -> "PredictConfig":
        def bad(name: str, msg: str):
            raise PredictError(f"{name}: {msg}, got {getattr(self, name)!r}")

        if bool(self.run) == bool(self.base_model):
            raise PredictError("give either a run (--run RUN_DIR) or a base model (--base-model MODEL), not both "
                               "or neither")
        if self.base_model and not self.dataset:
            bad("dataset", "is needed with a base model")
        for name in ("views",):
            v = getattr(self, name)
            if type(v) is not int or v < 1:
                bad(name, "must be a positive integer")
        for name in ("batch_size", "max_new_tokens", "max_seq_len", "threads"):
            v = getattr(self, name)
            if type(v) is not int or v < 0:
                bad(name, "must be a non-negative integer (0: automatic)")
        if self.max_task_tokens is not None and (type(self.max_task_tokens) is not int or self.max_task_tokens < 1):
            bad("max_task_tokens", "must be a positive integer")
        if isinstance(self.transforms, str) or not self.transforms or any(t not in DIHEDRAL for t in self.transforms):
            bad("transforms", f"must be a non-empty list from {', '.join(DIHEDRAL)}")
        if self.colors not in COLOR_CHOICES:
            bad("colors", f"must be one of {', '.join(COLOR_CHOICES)}")
        distinct = len({"identity", *self.transforms})
        if self.colors == "none" and not self.shuffle and not self.sample and self.views > distinct:
            bad("views", f"must be at most {distinct} with colors 'none' and no shuffle (more views would repeat "
                         "a view)")
        if type(self.seed) is not int:
            bad("seed", "must be an integer")
        for name in ("sample", "shuffle", "val_loss"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "must be true or false")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) \
                or not math.isfinite(self.temperature) or self.temperature <= 0:
            bad("temperature", "must be a positive number")
        if isinstance(self.top_p, bool) or not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            bad("top_p", "must be in (0, 1]")
        if self.format is not None and self.format not in ("minimal", "shape+rows", "separated"):
            bad("format", "must be minimal, shape+rows or separated")
        if self.dtype not in DTYPES:
            bad("dtype", f"must be one of {', '.join(DTYPES)}")
        from ttft.models import ModelError, choose_device

        try:
            choose_device(self.device)
        except ModelError as e:
            raise PredictError(f"device: {e}") from None
        if self.name is not None and (not self.name.strip() or safe_name(self.name) != self.name):
            bad("name", "must be a plain folder name (letters, digits, . _ -)")
        return self

    def to_json(self) -> dict:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_json(cls, d: dict) -> "PredictConfig":
        """From ``to_json()`` or a prediction folder's config.json (whose resolved extras are dropped)."""
        if not isinstance(d, dict):
            raise PredictError(f"a prediction config must be a JSON object, got {d!r}")
        d = {k: v for k, v in d.items() if k not in RESOLVED_KEYS}
        names = {f.name for f in fields(cls)}
        extra = set(d) - names
        if extra:
            raise PredictError(f"unknown prediction option(s): {', '.join(sorted(extra))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# --------------------------------------------------------------------------- views


def view_specs(task: Task, cfg: PredictConfig) -> list[AugmentSpec]:
    """The K views of a task: view 0 is the identity; view k cycles through ``cfg.transforms`` (identity first)
    with a colour permutation (and train order with ``shuffle``) drawn from ``(seed, k)`` unless ``colors`` is
    'none'. The same k gives the same colour map on every task."""
    order = ["identity"] + [t for t in cfg.transforms if t != "identity"]
    specs = [AugmentSpec()]
    for k in range(1, cfg.views):
        rng = np.random.default_rng([cfg.seed, k])
        colors = IDENTITY_COLORS
        if cfg.colors != "none":
            colors = random_color_map(rng, move_bg=cfg.colors == "all")
        perm = tuple(int(i) for i in rng.permutation(len(task.train))) if cfg.shuffle else None
        specs.append(AugmentSpec(order[k % len(order)], colors, perm, seed=None))
    return specs


def output_token_estimate(view_task: Task, test_index: int, fmt: str, count: Callable[[str], int]) -> int:
    """Most tokens the test output of ``view_task`` plausibly needs: a grid as large as the largest train output,
    or the test input scaled by the largest train output/input ratio (per side), at most 30x30; plus slack for the
    end-of-sequence text. ``count`` counts the tokens of a text."""
    ins = [p.input.shape for p in view_task.train]
    outs = [p.output.shape for p in view_task.train]
    th, tw = view_task.test[test_index].input.shape
    rh = max(o[0] / i[0] for i, o in zip(ins, outs))
    rw = max(o[1] / i[1] for i, o in zip(ins, outs))
    h = min(MAX_SIDE, max(max(o[0] for o in outs), math.ceil(th * rh), th))
    w = min(MAX_SIDE, max(max(o[1] for o in outs), math.ceil(tw * rw), tw))
    probe = ((np.arange(h)[:, None] * 7 + np.arange(w)[None, :] * 3) % 10).astype(np.uint8)
    return count(grid_to_text(probe, fmt)) + _SLACK_TOKENS


def max_output_tokens(fmt: str, count: Callable[[str], int]) -> int:
    """Tokens of the largest possible output (a 30x30 grid) plus slack."""
    probe = ((np.arange(MAX_SIDE)[:, None] * 7 + np.arange(MAX_SIDE)[None, :] * 3) % 10).astype(np.uint8)
    return count(grid_to_text(probe, fmt)) + _SLACK_TOKENS


# --------------------------------------------------------------------------- voting


@dataclass
class Candidate:
    """A distinct predicted grid of one test output: how many views voted for it, and their mean log-prob."""

    grid: np.ndarray
    votes: int
    mean_logprob: float | None
    views: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"grid": self.grid.tolist(), "votes": self.votes, "mean_logprob": self.mean_logprob,
                "views": list(self.views)}


def vote(grids: Sequence[Any], logprobs: Sequence[float | None] | None = None) -> list[Candidate]:
    """Group identical grids (``None`` = unanswered, skipped) and rank them: most votes first, ties broken by the
    higher mean log-probability (a candidate without log-probs ranks below one with), then by the first view."""
    logprobs = list(logprobs) if logprobs is not None else [None] * len(grids)
    groups: dict[tuple, Candidate] = {}
    lps: dict[tuple, list[float]] = {}
    for k, (g, lp) in enumerate(zip(grids, logprobs)):
        a = M.as_grid(g)
        if a is None:
            continue
        key = (a.shape, a.tobytes())
        if key not in groups:
            groups[key] = Candidate(a, 0, None, [])
            lps[key] = []
        c = groups[key]
        c.votes += 1
        c.views.append(k)
        if lp is not None and math.isfinite(lp):
            lps[key].append(float(lp))
    for key, c in groups.items():
        c.mean_logprob = float(np.mean(lps[key])) if lps[key] else None
    return sorted(groups.values(), key=lambda c: (-c.votes, -(c.mean_logprob if c.mean_logprob is not None
                                                              else -math.inf), c.views[0]))


def attempts_of(cands: Sequence[Candidate]) -> list[np.ndarray | None]:
    """Attempt 1 and 2 (``None`` where there are fewer candidates)."""
    return [cands[i].grid if i < len(cands) else None for i in range(2)]


# --------------------------------------------------------------------------- the model source


@dataclass
class Source:
    """What to load: a base model (ModelConfig), optionally one adapter or per-task adapters, or a full fine-tune's
    model folder; the encoding; the run's dataset and tasks."""

    kind: str  # "base", "adapter", "per-task", "full"
    model: Any  # ModelConfig of the base (for "full": base_model is the run's model/ folder)
    encoding: EncodingConfig
    adapter: str | None = None
    adapters: dict[str, str] = field(default_factory=dict)
    run: str | None = None
    dataset: str | None = None
    tasks: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "base":
            return f"base model {self.model.base_model}"
        what = {"adapter": "adapter/", "per-task": f"{len(self.adapters)} per-task adapters",
                "full": "full fine-tune model/"}[self.kind]
        return f"run {self.run} ({what})"

    def to_json(self) -> dict:
        return {"kind": self.kind, "model": self.model.to_json(), "encoding": self.encoding.to_json(),
                "adapter": self.adapter, "n_adapters": len(self.adapters), "run": self.run,
                "dataset": self.dataset}


def resolve_source(cfg: PredictConfig) -> Source:
    """The model to predict with, from ``cfg.run`` or ``cfg.base_model``. Raises PredictError naming what is wrong
    (missing run, run without an adapter or model, missing model folder)."""
    from ttft.models import ModelConfig, ModelError

    if cfg.base_model:
        mc = ModelConfig(base_model=cfg.base_model)
        try:
            mc.validate()
        except ModelError as e:
            raise PredictError(f"base model: {e}") from None
        enc = EncodingConfig(format=cfg.format or "minimal", max_seq_len=8192)
        return Source("base", mc, enc)
    run = RunDir(Path(cfg.run).expanduser())
    if not run.path.is_dir():
        raise PredictError(f"run {cfg.run}: no such folder")
    rc = run.config()
    if not rc:
        raise PredictError(f"run {cfg.run}: no config.json (not a run directory)")
    try:
        mc = ModelConfig.from_json({**rc.get("model", {}), "adapter": None})
        enc = EncodingConfig.from_json(rc.get("encoding") or {"max_seq_len": 2048})
    except (ValueError, TypeError) as e:
        raise PredictError(f"run {cfg.run}: its config.json cannot be read ({e})") from None
    if cfg.format and cfg.format != enc.format:
        raise PredictError(f"format: the run was trained with format {enc.format!r}, got {cfg.format!r}")
    common = dict(encoding=enc, run=str(run.path), dataset=rc.get("dataset"), tasks=tuple(rc.get("tasks") or ()))
    status = run.status().get("status", "unknown")
    model_dir = run.path / "model"
    if (model_dir / "config.json").exists():
        return Source("full", replace(mc, base_model=str(model_dir), full_finetune=False, init="pretrained"),
                      **common)
    if (run.adapter_dir / "adapter_config.json").exists():
        return Source("adapter", mc, adapter=str(run.adapter_dir), **common)
    adapters = {}
    if run.adapters_dir.is_dir():
        adapters = {p.name: str(p) for p in sorted(run.adapters_dir.iterdir())
                    if (p / "adapter_config.json").exists()}
    if adapters:
        return Source("per-task", mc, adapters=adapters, **common)
    raise PredictError(f"run {cfg.run} has no adapter/, adapters/<task>/ or model/ (status {status}: "
                       f"{'still running' if status == 'running' else 'not finished'}?)")


def select(cfg: PredictConfig, source: Source):
    """(dataset spec, dataset, selected tasks)."""
    from ttft.data import load_dataset

    spec = cfg.dataset or source.dataset
    if not spec:
        raise PredictError("dataset: the run names no dataset; pass --dataset")
    try:
        ds = load_dataset(spec)
    except (ValueError, OSError) as e:
        raise PredictError(f"dataset: {e}") from None
    ids = list(cfg.tasks) or ([t for t in source.tasks] if source.tasks and spec == source.dataset else [])
    if ids:
        unknown = [t for t in ids if t not in ds.tasks]
        if unknown:
            raise PredictError(f"tasks: unknown task id(s) {', '.join(unknown[:10])} in dataset {spec!r}")
        tasks = [ds.tasks[t] for t in dict.fromkeys(ids)]
    else:
        tasks = list(ds)
    if cfg.max_task_tokens is not None:
        tasks = [t for t in tasks if t.stats().tokens <= cfg.max_task_tokens]
    if not tasks:
        raise PredictError(f"tasks: no task of {spec!r} is selected")
    return spec, ds, tasks


# --------------------------------------------------------------------------- loading


@dataclass
class Predictor:
    """A loaded model and tokenizer, ready to generate; switches per-task adapters with :meth:`use`."""

    model: Any
    tokenizer: Any
    device: str
    source: Source
    stop_ids: list[int]
    pad_id: int
    current: str | None = None

    def use(self, task_id: str) -> str | None:
        """Activate the adapter of ``task_id`` (per-task runs); returns its name or None (the base model)."""
        if self.source.kind != "per-task":
            return self.current
        name = safe_name(task_id)
        path = self.source.adapters.get(name)
        if path is None:
            return None
        if name != self.current:
            old = self.current
            self.model.load_adapter(path, adapter_name=name)
            self.model.set_adapter(name)
            if old is not None:
                self.model.delete_adapter(old)
            self.current = name
        return name

    def adapter_enabled(self, task_id: str) -> bool:
        return self.source.kind != "per-task" or safe_name(task_id) in self.source.adapters

    def count_tokens(self, text: str) -> int:
        from ttft.tokenizer import fast_encoder, is_embedded

        if is_embedded(self.tokenizer):
            return int(len(fast_encoder().encode(text)))
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @property
    def context(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 0) or 8192)


def _dtype(name: str, device: str):
    import torch

    from ttft.models import use_bf16

    if name == "auto":
        return torch.bfloat16 if use_bf16(device) else torch.float32
    return getattr(torch, name)


def load_predictor(source: Source, device: str = "cpu", dtype: str = "auto") -> Predictor:
    """Load the model (and its adapter) and tokenizer of ``source`` for inference."""
    from ttft.models import ModelError, load_model, load_tokenizer_for

    try:
        tok = load_tokenizer_for(source.model)
        model = load_model(source.model, device=device, dtype=_dtype(dtype, device))
    except ModelError as e:
        raise PredictError(str(e)) from None
    current = None
    if source.kind == "adapter":
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter, is_trainable=False)
        model = model.merge_and_unload()
    elif source.kind == "per-task":
        from peft import PeftModel

        first = next(iter(source.adapters))
        model = PeftModel.from_pretrained(model, source.adapters[first], adapter_name=first, is_trainable=False)
        current = first
    model.eval()
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    stops = []
    for t in (tok.eos_token, "<|im_end|>", "<|endoftext|>", "<|eot_id|>", source.encoding.input_marker,
              source.encoding.output_marker):
        if not t:
            continue
        ids = tok(t, add_special_tokens=False)["input_ids"]
        if len(ids) == 1 and ids[0] not in stops and ids[0] != tok.unk_token_id:
            stops.append(int(ids[0]))
    if tok.eos_token_id is not None and tok.eos_token_id not in stops:
        stops.insert(0, int(tok.eos_token_id))
    return Predictor(model, tok, device, source, stops, int(pad if pad is not None else 0), current)


# --------------------------------------------------------------------------- generation


@dataclass
class Generated:
    """What one view generated: its tokens (up to and including a stop token) and their log-probs."""

    tokens: list[int]
    logprobs: list[float]
    text: str

    @property
    def mean_logprob(self) -> float | None:
        return float(np.mean(self.logprobs)) if self.logprobs else None


class _LogProbRecorder:
    """A logits processor that records the model's log-probability (of the raw logits, before any sampling warper)
    of every generated token, keeping one (batch, vocab) tensor at a time."""

    def __init__(self) -> None:
        self.prev = None
        self.steps: list = []

    def __call__(self, input_ids, scores):
        import torch

        if self.prev is not None:
            self.steps.append(self.prev.gather(1, input_ids[:, -1:]).squeeze(1))
        self.prev = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, last_tokens):
        if self.prev is not None:
            self.steps.append(self.prev.gather(1, last_tokens[:, None]).squeeze(1))
            self.prev = None


def _prealloc_cache(model, capacity: int):
    """A DynamicCache whose layers write into buffers of ``capacity`` positions allocated once, instead of growing
    by concatenation at every step (which costs O(length) copies per token: most of a CPU decode step at batch
    16). Returns None (generate's default cache) for models whose layers are not plain dynamic layers (sliding
    windows, linear attention ...)."""
    import torch

    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer
    except ImportError:  # pragma: no cover - other transformers versions
        return None

    class PreallocLayer(DynamicLayer):
        def __init__(self, cap: int) -> None:
            super().__init__()
            self.cap = cap

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.device = key_states.device
                b, h, _, d = key_states.shape
                self._k = key_states.new_empty((b, h, self.cap, d))
                self._v = value_states.new_empty((b, h, self.cap, value_states.shape[-1]))
                self._n = 0
                self.is_initialized = True
            n, m = self._n, key_states.shape[-2]
            if n + m > self._k.shape[-2]:  # more than planned: grow (never expected)
                grow = max(n + m, 2 * self._k.shape[-2]) - self._k.shape[-2]
                self._k = torch.cat([self._k, self._k.new_empty((*self._k.shape[:2], grow, self._k.shape[-1]))], 2)
                self._v = torch.cat([self._v, self._v.new_empty((*self._v.shape[:2], grow, self._v.shape[-1]))], 2)
            self._k[:, :, n:n + m] = key_states
            self._v[:, :, n:n + m] = value_states
            self._n = n + m
            self.keys, self.values = self._k[:, :, :n + m], self._v[:, :, :n + m]
            return self.keys, self.values

    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # pragma: no cover - exotic configs
        return None
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    cache.layers = [PreallocLayer(capacity) for _ in cache.layers]
    return cache


def _prefill(model, cache, prompts: Sequence[np.ndarray], L: int) -> None:
    """Fill ``cache`` (a :func:`_prealloc_cache`) with every prompt but its last token, left-padded to ``L``: prompts
    of equal length go through the model together without padding (no prefill compute is spent on pad tokens), and
    their keys/values land at positions ``[L - len, L - 1)`` of their rows; pad positions hold zeros and are masked.
    ``generate`` then runs only the last prompt token of every row and decodes the batch together."""
    import torch

    n = len(prompts)
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p), []).append(i)
    big = cache.layers
    allocated = False
    dev = model.device
    for length, rows in sorted(groups.items(), reverse=True):
        if length < 2:
            continue
        sub = _prealloc_cache(model, length - 1)
        ids = torch.as_tensor(np.stack([np.asarray(prompts[i][:-1], dtype=np.int64) for i in rows]), device=dev)
        with torch.no_grad():
            try:
                model(input_ids=ids, cache=sub, use_cache=True, logits_to_keep=1)
            except TypeError:  # a model without logits_to_keep
                model(input_ids=ids, cache=sub, use_cache=True)
        if not allocated:
            for layer, s in zip(big, sub.layers):
                k, v = s.keys, s.values
                layer._k = k.new_zeros((n, k.shape[1], layer.cap, k.shape[-1]))
                layer._v = v.new_zeros((n, v.shape[1], layer.cap, v.shape[-1]))
                layer.device = k.device
            allocated = True
        idx = torch.as_tensor(rows, device=dev)
        for layer, s in zip(big, sub.layers):
            layer._k[idx, :, L - length:L - 1] = s.keys
            layer._v[idx, :, L - length:L - 1] = s.values
    if not allocated:
        return
    for layer in big:
        layer._n = L - 1
        layer.is_initialized = True
        layer.keys, layer.values = layer._k[:, :, :L - 1], layer._v[:, :, :L - 1]


def generate(pred: Predictor, prompts: Sequence[np.ndarray], max_new: Sequence[int], sample: bool = False,
             temperature: float = 1.0, top_p: float = 1.0, seed: int = 0) -> list[Generated]:
    """One ``model.generate`` call for a batch of prompts (token id arrays): left padding with an attention mask
    (generate derives the position ids from it), a KV cache, stop at a stop token. Row i keeps at most
    ``max_new[i]`` tokens, so its output does not depend on the batch it is in."""
    import torch
    from transformers import GenerationConfig, LogitsProcessorList

    n = len(prompts)
    L = max(len(p) for p in prompts)
    ids = torch.full((n, L), pred.pad_id, dtype=torch.long)
    mask = torch.zeros((n, L), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, L - len(p):] = torch.as_tensor(np.asarray(p, dtype=np.int64))
        mask[i, L - len(p):] = 1
    ids, mask = ids.to(pred.device), mask.to(pred.device)
    mx = int(max(max_new))
    gc = GenerationConfig(max_new_tokens=mx, do_sample=sample, num_beams=1, eos_token_id=list(pred.stop_ids),
                          pad_token_id=pred.pad_id, use_cache=True, repetition_penalty=1.0,
                          **({"temperature": float(temperature), "top_p": float(top_p), "top_k": 0} if sample
                             else {"temperature": None, "top_p": None, "top_k": None}))
    rec = _LogProbRecorder()
    if sample:
        torch.manual_seed(seed)
    kw = {}
    cache = _prealloc_cache(pred.model, L + mx + 1)
    if cache is not None:
        if n > 1:
            _prefill(pred.model, cache, prompts, L)
        kw["cache"] = cache
    out = pred.model.generate(input_ids=ids, attention_mask=mask, generation_config=gc,
                              logits_processor=LogitsProcessorList([rec]), **kw)
    seqs = out if isinstance(out, torch.Tensor) else out.sequences
    gen = seqs[:, L:]
    if gen.shape[1]:
        rec.finish(gen[:, -1])
    lp = torch.stack(rec.steps, dim=1).cpu().numpy() if rec.steps else np.zeros((n, 0))
    gen = gen.cpu().numpy()
    stops = set(pred.stop_ids)
    res = []
    for i in range(n):
        toks: list[int] = []
        for t in gen[i][: int(max_new[i])]:
            toks.append(int(t))
            if int(t) in stops:
                break
        text = pred.tokenizer.decode(toks, skip_special_tokens=False)
        res.append(Generated(toks, [float(x) for x in lp[i, : len(toks)]], text))
    return res


def auto_batch_size(model, seq_len: int, device: str, n_items: int) -> int:
    """How many sequences of ``seq_len`` tokens fit one generate call: KV cache (2 x layers x kv heads x head dim per
    token) plus prefill activations and attention scores, within half the free GPU memory or a quarter of the
    available RAM; at most 64 on CPU (decoding stops gaining there) and 256 on a GPU."""
    import torch

    c = model.config
    layers = int(getattr(c, "num_hidden_layers", 12))
    hidden = int(getattr(c, "hidden_size", 768))
    heads = int(getattr(c, "num_attention_heads", 12))
    kv = int(getattr(c, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(c, "head_dim", None) or hidden // heads)
    inter = int(getattr(c, "intermediate_size", 4 * hidden))
    elem = next(model.parameters()).element_size()
    per_token = 2 * layers * kv * head_dim * elem + (6 * hidden + 3 * inter) * elem
    per_seq = per_token * seq_len + heads * seq_len * seq_len * 4
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        budget, cap = free * 0.5, 256
    else:
        budget, cap = _available_ram() * 0.25, 64
    return int(max(1, min(cap, n_items, budget // max(1, per_seq))))


def _available_ram() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 4e9


# --------------------------------------------------------------------------- items


@dataclass
class ViewItem:
    """One view of one test input: its prompt and generation budget, then what came out."""

    task: str
    test_index: int
    view: int
    spec: AugmentSpec
    prompt: np.ndarray | None
    max_new: int
    reason: str | None = None  # why it was not generated (too long)
    out: Generated | None = None
    grid: np.ndarray | None = None
    parse_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.grid is not None


def build_items(task: Task, cfg: PredictConfig, pred: Predictor, limit: int) -> list[ViewItem]:
    """The view items of every test input of ``task``, with prompts (``encode_task(answer=False)``)."""
    enc = pred.source.encoding
    tok = pred.tokenizer
    from ttft.tokenizer import is_embedded

    tok_arg = None if is_embedded(tok) else tok
    most = max_output_tokens(enc.format, pred.count_tokens)
    items = []
    for spec_k, spec in enumerate(view_specs(task, cfg)):
        vt = apply_task(task, spec)
        for i in range(len(task.test)):
            est = min(most, cfg.max_new_tokens or output_token_estimate(vt, i, enc.format, pred.count_tokens))
            tt = tokenize_task(vt, enc, tok_arg, test_index=i, answer=False)
            item = ViewItem(task.id, i, spec_k, spec, tt.input_ids, est)
            if tt.n_tokens + est > limit:
                item.reason = f"prompt ({tt.n_tokens} tokens) + output ({est}) exceed max_seq_len {limit}"
                item.prompt = None
            items.append(item)
    return items


def finish_item(item: ViewItem, pred: Predictor) -> None:
    """Parse the generated text and map the grid back to the original frame."""
    if item.out is None:
        item.parse_reason = item.reason or "not generated"
        return
    res = parse_output(item.out.text, pred.source.encoding, pred.tokenizer)
    if not res.ok:
        item.parse_reason = res.reason
        return
    try:
        item.grid = invert_grid(res.grid, item.spec, role="output")
    except (InverseError, ValueError) as e:
        item.parse_reason = f"cannot map back: {e}"


def run_items(pred: Predictor, items: list[ViewItem], batch_size: int, cfg: PredictConfig,
              should_stop: Callable[[], bool] = lambda: False) -> int:
    """Generate every item that has a prompt, longest first, in batches; returns the number of generate calls.
    Stops early (leaving items without output) when ``should_stop()`` turns true between batches."""
    todo = sorted((it for it in items if it.prompt is not None), key=lambda it: (-len(it.prompt), -it.max_new))
    calls = 0
    k = 0
    while k < len(todo):
        if should_stop():
            break
        longest = len(todo[k].prompt)
        bs = batch_size or auto_batch_size(pred.model, longest + todo[k].max_new, pred.device, len(todo) - k)
        batch = todo[k:k + bs]
        if not batch_size:  # automatic: prompts are prefilled without padding (``_prefill``), so padding only costs
            # decode attention over masked positions and cache memory: allow prompts down to 30% of the longest
            batch = [it for it in batch if len(it.prompt) >= 0.3 * longest]  # a prefix: sorted longest first
        bs = len(batch)
        outs = generate(pred, [it.prompt for it in batch], [it.max_new for it in batch], cfg.sample,
                        cfg.temperature, cfg.top_p, seed=cfg.seed + k)
        for it, o in zip(batch, outs):
            it.out = o
        calls += 1
        k += bs
    for it in items:
        finish_item(it, pred)
    return calls


# --------------------------------------------------------------------------- val loss


def val_losses(pred: Predictor, task: Task, limit: int) -> list[float | None]:
    """Per test output, the mean loss on its tokens (test output + end of sequence; the training ValSet's
    definition: no augmentation, loss on the test output only); None when unknown or longer than ``limit``."""
    import torch

    from ttft.tokenizer import is_embedded

    enc = EncodingConfig(**{**pred.source.encoding.to_json(), "loss_on": "test"})
    tok_arg = None if is_embedded(pred.tokenizer) else pred.tokenizer
    out: list[float | None] = []
    for k, p in enumerate(task.test):
        if p.output is None:
            out.append(None)
            continue
        tt = tokenize_task(task, enc, tok_arg, test_index=k, answer=True)
        if tt.n_tokens > limit:
            out.append(None)
            continue
        ids = torch.as_tensor(tt.input_ids[None], device=pred.device)
        labels = torch.as_tensor(tt.labels[None], device=pred.device)
        with torch.no_grad():
            logits = pred.model(input_ids=ids).logits[:, :-1].float()
            tgt = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                                     ignore_index=IGNORE_INDEX)
        out.append(float(loss))
    return out


# --------------------------------------------------------------------------- results of a task


def task_result(task: Task, items: list[ViewItem], vloss: list[float | None], adapter: str | None) -> dict:
    """The tasks.jsonl line of a task: per test input its attempts, candidates, input, truth and metrics."""
    tests = []
    for i, p in enumerate(task.test):
        its = sorted((it for it in items if it.test_index == i), key=lambda it: it.view)
        grids = [it.grid for it in its]
        cands = vote(grids, [it.out.mean_logprob if it.out else None for it in its])
        att = attempts_of(cands)
        metrics = M.score_output(grids, att, p.output, vloss[i] if i < len(vloss) else None)
        tests.append({
            "test_index": i, "input": p.input.tolist(), "truth": None if p.output is None else p.output.tolist(),
            "attempts": [None if a is None else a.tolist() for a in att],
            "candidates": [c.to_json() for c in cands], "n_views": len(its), "metrics": metrics,
        })
    return {"task": task.id, "adapter": adapter, "tests": tests,
            "metrics": M.task_metrics([t["metrics"] for t in tests])}


def item_line(it: ViewItem, truth: np.ndarray | None) -> dict:
    """The predictions.jsonl line of one view."""
    return {
        "task": it.task, "test_index": it.test_index, "view": it.view, "spec": it.spec.to_json(),
        "text": it.out.text if it.out else None, "grid": None if it.grid is None else it.grid.tolist(),
        "unanswered": it.grid is None, "reason": it.parse_reason, "mean_logprob": it.out.mean_logprob if it.out
        else None, "tokens": len(it.out.tokens) if it.out else 0,
        "prompt_tokens": None if it.prompt is None else int(len(it.prompt)),
        "correct": None if truth is None else M.same_grid(it.grid, truth),
    }


def submission(task_ids: Sequence[str], results: dict[str, dict], n_tests: dict[str, int]) -> dict:
    """Kaggle's submission: ``{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}``, one dict per test input,
    every task present; a missing attempt is ``[[0]]``."""
    sub = {}
    for tid in task_ids:
        tests = {t["test_index"]: t for t in results.get(tid, {}).get("tests", [])}
        rows = []
        for i in range(n_tests[tid]):
            att = tests.get(i, {}).get("attempts") or [None, None]
            rows.append({"attempt_1": att[0] if att[0] is not None else [[0]],
                         "attempt_2": att[1] if len(att) > 1 and att[1] is not None else [[0]]})
        sub[tid] = rows
    return sub


# --------------------------------------------------------------------------- the whole prediction


@dataclass
class PredictResult:
    out_dir: str
    status: str
    summary: dict
    n_predictions: int
    predictions_per_second: float
    wall_seconds: float

    def to_json(self) -> dict:
        s = self.summary
        return {"out_dir": self.out_dir, "status": self.status, "n_tasks": s.get("n_tasks"),
                **{k: s.get(k) for k in ("accuracy", "pass_at_2", "vote_1", "pass_n", "correct_pixels",
                                         "correct_size", "unanswered", "val_loss", "solved", "n_scored")},
                "n_predictions": self.n_predictions, "predictions_per_second": self.predictions_per_second,
                "wall_seconds": self.wall_seconds}


def default_out_dir(cfg: PredictConfig, dataset: str) -> Path:
    name = cfg.name or (time.strftime("%Y%m%d-%H%M%S") + f"-{cfg.views}v" + ("-sampled" if cfg.sample else ""))
    if cfg.run:
        return Path(cfg.run).expanduser() / "predictions" / name
    model = safe_name(Path(cfg.base_model).name if cfg.base_model != "default" else "default")
    return runs_root() / BASELINES_DIR / "predictions" / f"{model}-{name}"


def write_json_compact(path: Path, obj: Any) -> None:
    """Write JSON on one line (grids stay small), atomically (temp file + rename)."""
    import json
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, separators=(",", ":"))
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Stop:
    """SIGTERM/SIGINT set a flag checked between batches (installed only in the main thread)."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for s in (signal.SIGTERM, signal.SIGINT):
            self._old[s] = signal.signal(s, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()


def run_prediction(cfg: PredictConfig, log: Callable[[str], None] = lambda m: None) -> PredictResult:
    """Predict every selected task and write the prediction folder. Bad options, a missing run or model, or an
    unknown task raise PredictError before the folder is written."""
    import torch

    from ttft.models import choose_device

    cfg.validate()
    source = resolve_source(cfg)
    spec, ds, tasks = select(cfg, source)
    if source.kind == "base":
        from ttft.models import ModelError, check_model_source

        try:
            check_model_source(source.model)
        except ModelError as e:
            raise PredictError(str(e)) from None
    out = Path(cfg.out).expanduser() if cfg.out else default_out_dir(cfg, spec)
    out.mkdir(parents=True, exist_ok=True)
    run = RunDir(out)
    for f in ("predictions.jsonl", "tasks.jsonl", "metrics.json", "submission.json", "status.json"):
        (out / f).unlink(missing_ok=True)
    device = choose_device(cfg.device)
    write_json_atomic(run.config_file, {"kind": "predict", **cfg.to_json(), "dataset": spec,
                                        "tasks": [t.id for t in tasks], "source": source.to_json(),
                                        "dataset_version": ds.version, "device": device})
    stop = _Stop()
    stop.install()
    t0 = time.time()
    run.update_status(status="running", pid=os.getpid(), pid_start=process_start_time(os.getpid()), started=t0,
                      done=0, total=len(tasks), error=None)
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        pred = load_predictor(source, device, cfg.dtype)
        limit = min(cfg.max_seq_len or source.encoding.max_seq_len, pred.context)
        log(f"predicting {len(tasks)} task(s) of {spec} with {source.describe()}, {cfg.views} views, on {device}")
        results, gen_s, n_pred = _predict_tasks(cfg, pred, tasks, limit, run, stop, log)
        status = "stopped" if stop.requested else "finished"
        per_task = {tid: r["metrics"] for tid, r in results.items()}
        summary = M.summarize(per_task)
        outs = [t["metrics"] for r in results.values() for t in r["tests"]]
        summary["val_loss_outputs"] = M.mean_metrics(outs, ["val_loss"])["val_loss"]
        summary["n_test_outputs"] = len(outs)
        pps = n_pred / gen_s if gen_s > 0 else 0.0
        wall = time.time() - t0
        write_json_atomic(out / "metrics.json", {
            "summary": summary, "per_task": per_task, "n_predictions": n_pred, "predictions_per_second": pps,
            "generate_seconds": gen_s, "wall_seconds": wall, "status": status,
            "selected_tasks": len(tasks)})
        write_json_compact(out / "submission.json", submission([t.id for t in tasks], results,
                                                               {t.id: len(t.test) for t in tasks}))
        run.update_status(status=status, ended=time.time(), done=len(results), summary=summary)
        log(f"{status}: {len(results)} task(s), pass@2 {summary.get('pass_at_2')}, accuracy "
            f"{summary.get('accuracy')}, val loss {summary.get('val_loss')}; {out}")
        return PredictResult(str(out), status, summary, n_pred, pps, wall)
    except BaseException as e:
        run.update_status(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-4000:],
                          ended=time.time())
        raise
    finally:
        stop.restore()


def _groups(tasks: list[Task], pred: Predictor, cfg: PredictConfig) -> list[list[Task]]:
    """Tasks predicted together: one per adapter for per-task runs, else chunks of about 4 batches of views."""
    if pred.source.kind == "per-task":
        return [[t] for t in tasks]
    per_chunk = max(1, (cfg.batch_size or 32) * 4 // max(1, cfg.views))
    return [tasks[i:i + per_chunk] for i in range(0, len(tasks), per_chunk)]


def _predict_tasks(cfg, pred: Predictor, tasks, limit, run: RunDir, stop: _Stop, log):
    results: dict[str, dict] = {}
    gen_s, n_pred = 0.0, 0
    for group in _groups(tasks, pred, cfg):
        if stop.requested:
            break
        adapter = pred.use(group[0].id)
        if not pred.adapter_enabled(group[0].id):
            log(f"task {group[0].id}: the run has no adapter for it; predicted with the base model")
        ctx = _no_adapter(pred) if not pred.adapter_enabled(group[0].id) else _null()
        with ctx:
            items = [it for t in group for it in build_items(t, cfg, pred, limit)]
            t1 = time.time()
            run_items(pred, items, cfg.batch_size, cfg, lambda: stop.requested)
            gen_s += time.time() - t1
            if stop.requested and any(it.prompt is not None and it.out is None for it in items):
                break  # this group was cut short: keep only whole tasks
            vl = {t.id: val_losses(pred, t, limit) if cfg.val_loss else [None] * len(t.test) for t in group}
        for t in group:
            its = [it for it in items if it.task == t.id]
            n_pred += sum(it.out is not None for it in its)
            truth = {i: p.output for i, p in enumerate(t.test)}
            for it in sorted(its, key=lambda it: (it.test_index, it.view)):
                append_jsonl(run.path / "predictions.jsonl", item_line(it, truth[it.test_index]))
            res = task_result(t, its, vl[t.id], adapter if pred.adapter_enabled(t.id) else None)
            append_jsonl(run.path / "tasks.jsonl", res)
            results[t.id] = res
        run.update_status(done=len(results))
        log(f"{len(results)}/{len(tasks)} tasks")
    return results, gen_s, n_pred


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _no_adapter(pred: Predictor):
    """The base model for a task without its own adapter in a per-task run."""
    return pred.model.disable_adapter()


# --------------------------------------------------------------------------- reading prediction folders

#: where prediction folders are looked for, relative to the runs folder
FIND_PATTERNS = ("*/predictions/*", "*/predictions", "experiments/*/rows/*/predictions",
                 "experiments/*/rows/*/predictions/*")


@dataclass
class PredictionRef:
    """A prediction folder as the app sees it: its run (the folder holding ``predictions/``, relative to the runs
    folder) and name, its config and status (``lost`` when a running prediction's process is gone)."""

    path: Path
    run_key: str
    name: str
    config: dict
    status: dict

    @property
    def label(self) -> str:
        return f"{self.run_key} · {self.name}"

    @property
    def state(self) -> str:
        s = self.status.get("status", "unknown")
        if s == "running":
            pid, start = self.status.get("pid"), self.status.get("pid_start")
            now = process_start_time(pid) if isinstance(pid, int) else None
            if now is None or (start is not None and abs(now - float(start)) > 1e-3):
                return "lost"
        return s

    @property
    def source_run(self) -> Path | None:
        r = (self.config.get("source") or {}).get("run") or self.config.get("run")
        return Path(r) if r else None

    @property
    def mtime(self) -> float:
        try:
            return (self.path / "config.json").stat().st_mtime
        except OSError:
            return 0.0

    def metrics(self) -> dict:
        return read_json(self.path / "metrics.json", {}) or {}

    def summary(self) -> dict:
        """metrics.json's summary, or (while running) the mean over the tasks done so far."""
        m = self.metrics().get("summary")
        if m:
            return m
        return M.summarize({r["task"]: r["metrics"] for r in self.tasks()})

    def tasks(self) -> list[dict]:
        from ttft.runs import read_jsonl

        return read_jsonl(self.path / "tasks.jsonl")

    def views(self) -> list[dict]:
        from ttft.runs import read_jsonl

        return read_jsonl(self.path / "predictions.jsonl")


def is_prediction_dir(p: Path) -> bool:
    cfg = read_json(p / "config.json")
    return isinstance(cfg, dict) and cfg.get("kind") == "predict"


def read_prediction(path: Path | str, root: Path | None = None) -> PredictionRef:
    """A prediction folder, with its run key relative to ``root`` (default: the runs folder)."""
    path = Path(path)
    root = Path(root) if root is not None else runs_root()
    group = path.parent.parent if path.parent.name == "predictions" else path.parent
    try:
        key = group.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        key = str(group)
    return PredictionRef(path, key, path.name, read_json(path / "config.json", {}) or {},
                         read_json(path / "status.json", {}) or {})


def find_predictions(root: Path | str | None = None) -> list[PredictionRef]:
    """Every prediction folder under the runs folder (:data:`FIND_PATTERNS`), newest first."""
    root = Path(root) if root is not None else runs_root()
    if not root.is_dir():
        return []
    seen: dict[Path, PredictionRef] = {}
    for pat in FIND_PATTERNS:
        for p in root.glob(pat):
            if p.is_dir() and p not in seen and is_prediction_dir(p):
                seen[p] = read_prediction(p, root)
    return sorted(seen.values(), key=lambda r: (r.mtime, r.label), reverse=True)


# --------------------------------------------------------------------------- background launch

_FLAGS = {"run": "--run", "base_model": "--base-model", "dataset": "--dataset", "max_task_tokens": "--max-task-tokens",
          "views": "--views", "colors": "--colors", "seed": "--seed", "temperature": "--temperature",
          "top_p": "--top-p", "batch_size": "--batch-size", "max_new_tokens": "--max-new-tokens",
          "max_seq_len": "--max-seq-len", "format": "--format", "device": "--device", "dtype": "--dtype",
          "threads": "--threads", "name": "--name", "out": "--out"}
_BOOLS = {"shuffle": "--shuffle", "sample": "--sample", "val_loss": "--val-loss"}


def predict_argv(cfg: PredictConfig) -> list[str]:
    """The ``predict …`` command line (after ``python -m ttft``) that runs ``cfg``: every option that differs from
    the default."""
    d, default = cfg.to_json(), PredictConfig().to_json()
    argv = ["predict"]
    for k, flag in _FLAGS.items():
        if d[k] is not None and d[k] != default[k]:
            argv += [flag, str(d[k])]
    for k, flag in _BOOLS.items():
        if d[k] != default[k]:
            argv.append(flag if d[k] else "--no-" + flag[2:])
    if d["tasks"]:
        argv += ["--tasks", ",".join(d["tasks"])]
    if d["transforms"] != default["transforms"]:
        argv += ["--transforms", ",".join(d["transforms"])]
    return argv + ["--json"]


def launch_prediction(cfg: PredictConfig) -> dict:
    """Start ``python -m ttft predict …`` for ``cfg`` in the background (its own session; it survives the app) and
    return ``{"out": folder, "argv": [...], "job": job id or None}``. The output folder is fixed now (``cfg.out`` or
    the default under the run / the runs folder). Uses :func:`ttft.jobs.launch` (queue, device slots) when it is
    there, else a detached ``subprocess.Popen``."""
    cfg.validate()
    source = resolve_source(cfg)
    spec = cfg.dataset or source.dataset or ""
    out = Path(cfg.out).expanduser() if cfg.out else default_out_dir(cfg, spec)
    cfg = replace(cfg, out=str(out.absolute()))
    argv = predict_argv(cfg)
    try:
        from ttft import jobs
    except ImportError:
        jobs = None  # type: ignore[assignment]
    if jobs is not None and hasattr(jobs, "launch"):
        kind = jobs.device_kind(cfg.device) if hasattr(jobs, "device_kind") else None
        job = jobs.launch(argv, name=f"predict-{out.name}", kind=kind)
        return {"out": str(out), "argv": argv, "job": job.id}
    import subprocess
    import sys

    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with open(out / "stderr.txt", "ab") as err:
        subprocess.Popen([sys.executable, "-m", "ttft", *argv], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=err, env=env, start_new_session=True, close_fds=True)
    return {"out": str(out), "argv": argv, "job": None}
