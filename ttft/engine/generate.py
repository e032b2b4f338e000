"""Batched generation with a preallocated KV cache, recording each token's log-probability."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ttft.engine.predict_config import PredictError
from ttft.engine.sources import Source
from ttft.runs.rundir import safe_name


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
        from ttft.core.tokenizer import fast_encoder, is_embedded

        if is_embedded(self.tokenizer):
            return int(len(fast_encoder().encode(text)))
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def automaton(self):
        """The grid automaton of this model's tokenizer and the source's encoding (cached;
        :mod:`ttft.engine.constrain`)."""
        from ttft.engine.constrain import automaton_for

        vocab = int(getattr(self.model.config, "vocab_size", 0) or len(self.tokenizer))
        return automaton_for(self.tokenizer, self.source.encoding, self.stop_ids, vocab)

    @property
    def context(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 0) or 8192)


def _dtype(name: str, device: str):
    import torch

    from ttft.engine.models import use_bf16

    if name == "auto":
        return torch.bfloat16 if use_bf16(device) else torch.float32
    return getattr(torch, name)


#: on CPU, a model under this many parameters decodes on one thread (``threads 0``): its decode steps are too small
#: to split (the embedded model, 8 views of a task: 4.1 s on one thread, 63 s on two on a loaded 2-core machine)
SMALL_MODEL_PARAMS = 50_000_000


def auto_threads(model, device: str) -> int | None:
    """The torch CPU threads for ``threads 0``: 1 for a small model on CPU, else None (torch's default)."""
    if not device.startswith("cpu") or model is None:
        return None
    return 1 if sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS else None


def load_predictor(source: Source, device: str = "cpu", dtype: str = "auto") -> Predictor:
    """Load the model (and its adapter) and tokenizer of ``source`` for inference."""
    from ttft.engine.models import ModelError, load_model, load_tokenizer_for

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
    for t in (
        tok.eos_token,
        "<|im_end|>",
        "<|endoftext|>",
        "<|eot_id|>",
        source.encoding.input_marker,
        source.encoding.output_marker,
    ):
        if not t:
            continue
        ids = tok(t, add_special_tokens=False)["input_ids"]
        if len(ids) == 1 and ids[0] not in stops and ids[0] != tok.unk_token_id:
            stops.append(int(ids[0]))
    if tok.eos_token_id is not None and tok.eos_token_id not in stops:
        stops.insert(0, int(tok.eos_token_id))
    return Predictor(model, tok, device, source, stops, int(pad if pad is not None else 0), current)


@dataclass
class Generated:
    """What one view generated: its tokens (up to and including a stop token) and their log-probs."""

    tokens: list[int]
    logprobs: list[float]
    text: str

    @property
    def mean_logprob(self) -> float | None:
        return float(np.mean(self.logprobs)) if self.logprobs else None

    @property
    def logprob(self) -> float:
        """The whole sequence's log-probability (the sum of its tokens')."""
        return float(np.sum(self.logprobs)) if self.logprobs else 0.0


class _Interrupt:
    """A stopping criterion that ends the whole batch as soon as ``should_stop()`` is true (a SIGTERM during a
    long batch: the job stops within a decode step instead of after the batch)."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self.should_stop, self.fired = should_stop, False

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.fired = self.fired or bool(self.should_stop())
        return torch.full((input_ids.shape[0],), self.fired, dtype=torch.bool, device=input_ids.device)


class _LogProbRecorder:
    """A logits processor that records the log-probability of every generated token in the distribution decoded
    from: the model's logits after the processors before it (the grid constraint when constraining) and before any
    sampling warper (temperature, top-p); it keeps one (batch, vocab) tensor at a time."""

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
            self._k[:, :, n : n + m] = key_states
            self._v[:, :, n : n + m] = value_states
            self._n = n + m
            self.keys, self.values = self._k[:, :, : n + m], self._v[:, :, : n + m]
            return self.keys, self.values

    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # pragma: no cover - exotic configs
        return None
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    cache.layers = [PreallocLayer(capacity) for _ in cache.layers]
    return cache


def _prefill(
    model, cache, prompts: Sequence[np.ndarray], L: int, should_stop: Callable[[], bool] | None = None
) -> bool:
    """Fill ``cache`` (a :func:`_prealloc_cache`) with every prompt but its last token, left-padded to ``L``: prompts
    of equal length go through the model together without padding (no prefill compute is spent on pad tokens), and
    their keys/values land at positions ``[L - len, L - 1)`` of their rows; pad positions hold zeros and are masked.
    ``generate`` then runs only the last prompt token of every row and decodes the batch together. Returns False
    when ``should_stop()`` turned true between two groups (the cache is then unusable)."""
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
        if should_stop is not None and should_stop():
            return False
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
            layer._k[idx, :, L - length : L - 1] = s.keys
            layer._v[idx, :, L - length : L - 1] = s.values
    if not allocated:
        return True
    for layer in big:
        layer._n = L - 1
        layer.is_initialized = True
        layer.keys, layer.values = layer._k[:, :, : L - 1], layer._v[:, :, : L - 1]
    return True


def generate(
    pred: Predictor,
    prompts: Sequence[np.ndarray],
    max_new: Sequence[int],
    sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    constrain: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> list[Generated] | None:
    """One ``model.generate`` call for a batch of prompts (token id arrays): left padding with an attention mask
    (generate derives the position ids from it), a KV cache, stop at a stop token. Row i keeps at most
    ``max_new[i]`` tokens, so its output does not depend on the batch it is in. ``constrain``: every row can only
    write a grid in the source's format (:class:`ttft.engine.constrain.GridConstraint`), and the recorded
    log-probs are of the masked distribution. ``should_stop`` is checked after every token: when it turns true
    the call ends at once and returns None (the batch is abandoned, not cut short: a stop never yields a partial
    output)."""
    import torch
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    n = len(prompts)
    L = max(len(p) for p in prompts)
    ids = torch.full((n, L), pred.pad_id, dtype=torch.long)
    mask = torch.zeros((n, L), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, L - len(p) :] = torch.as_tensor(np.asarray(p, dtype=np.int64))
        mask[i, L - len(p) :] = 1
    ids, mask = ids.to(pred.device), mask.to(pred.device)
    mx = int(max(max_new))
    gc = GenerationConfig(
        max_new_tokens=mx,
        do_sample=sample,
        num_beams=1,
        eos_token_id=list(pred.stop_ids),
        pad_token_id=pred.pad_id,
        use_cache=True,
        repetition_penalty=1.0,
        **(
            {"temperature": float(temperature), "top_p": float(top_p), "top_k": 0}
            if sample
            else {"temperature": None, "top_p": None, "top_k": None}
        ),
    )
    rec = _LogProbRecorder()
    procs: list = [rec]
    if constrain:
        from ttft.engine.constrain import GridConstraint

        procs.insert(0, GridConstraint(pred.automaton(), n))
    if sample:
        torch.manual_seed(seed)
    kw = {}
    cache = _prealloc_cache(pred.model, L + mx + 1)
    if cache is not None:
        if n > 1 and not _prefill(pred.model, cache, prompts, L, should_stop):
            return None  # stopped while prefilling
        kw["cache"] = cache
    interrupt = _Interrupt(should_stop) if should_stop is not None else None
    if interrupt is not None:
        kw["stopping_criteria"] = StoppingCriteriaList([interrupt])
    out = pred.model.generate(
        input_ids=ids, attention_mask=mask, generation_config=gc, logits_processor=LogitsProcessorList(procs), **kw
    )
    if interrupt is not None and interrupt.fired:
        return None
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
