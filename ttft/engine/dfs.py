"""Depth-first sampling (the ARChitects' DFS): every output of a view whose whole-sequence probability is at least
``min_prob``, by a depth-first search over the token tree that reuses one KV cache along the current path.

From the prompt's KV cache, the search expands a node (one forward pass of its last token), and visits its
children most probable first, pruning a branch as soon as the product of its tokens' probabilities falls below
``min_prob`` (so the tree visited holds at most ``1 / min_prob`` nodes per depth). Going back up truncates the cache
to the parent's length (no copy). With the grid constraint the probabilities are those of the masked distribution
(:mod:`ttft.engine.constrain`), so every output is a grid and its log-probability compares with greedy's and
sampling's. A path that reaches ``max_new`` tokens without a stop token is not an output. The outputs come most
probable first (the first one found is the greedy path when it is above ``min_prob``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttft.engine.generate import Generated, Predictor, _prealloc_cache


@dataclass
class _Node:
    """A node being visited: its children above the cut-off (token, log-prob), the next one to visit, the summed
    log-prob of the path to it and its automaton state."""

    children: list[tuple[int, float]]
    cum: float
    state: int | None
    next: int = 0
    lps: list[float] = field(default_factory=list)


def _truncate(cache, length: int) -> None:
    """Cut the cache back to its first ``length`` positions."""
    for layer in cache.layers:
        if hasattr(layer, "_k"):  # a preallocated layer: move the end
            layer._n = length
            layer.keys, layer.values = layer._k[:, :, :length], layer._v[:, :, :length]
        elif layer.keys is not None and layer.keys.shape[-2] > length:
            layer.keys, layer.values = layer.keys[:, :, :length], layer.values[:, :, :length]


def _forward(model, ids, cache):
    import torch

    with torch.no_grad():
        try:
            out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        except TypeError:  # a model without logits_to_keep
            out = model(input_ids=ids, cache=cache, use_cache=True)
    return out.logits[0, -1].float()


def dfs(
    pred: Predictor,
    prompt: np.ndarray,
    max_new: int,
    min_prob: float,
    constrain: bool = False,
    max_outputs: int = 0,
    min_logprob: float | None = None,
    max_steps: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[list[Generated], bool]:
    """Every output of ``prompt`` (token ids) with probability >= ``min_prob`` (or log-probability >=
    ``min_logprob`` when given), most probable first, and whether the search was cut short: at ``max_outputs``
    outputs, or after ``max_steps`` forward passes (when > 0; an unsure model's tree of long outputs can be huge:
    every near-tie spawns a branch that lives for most of the remaining length). ``should_stop`` is checked before
    every forward pass: when it turns true the search raises :class:`Stopped` (a stop never yields a partial set)."""
    import torch
    from transformers import DynamicCache

    model = pred.model
    stops = set(pred.stop_ids)
    a = pred.automaton() if constrain else None
    cut = math.log(min_prob) if min_logprob is None else float(min_logprob)
    cache = _prealloc_cache(model, len(prompt) + max_new + 1)
    if cache is None:
        cache = DynamicCache(config=model.config)
    dev = model.device
    base = len(prompt)
    logits = _forward(model, torch.as_tensor(np.asarray(prompt, dtype=np.int64)[None], device=dev), cache)

    def expand(logits, state, cum) -> list[tuple[int, float]]:
        if a is not None:
            logits = logits + a.bias(logits.device)[state]
        lp = torch.log_softmax(logits, -1)
        keep = torch.nonzero(lp >= cut - cum).squeeze(1)
        vals = lp[keep]
        order = torch.argsort(vals, descending=True)
        return [(int(t), float(v)) for t, v in zip(keep[order].tolist(), vals[order].tolist())]

    root = a.start if a is not None else None
    stack = [_Node(expand(logits, root, 0.0), 0.0, root)]
    path: list[int] = []
    found: list[Generated] = []
    steps, cut_short = 0, False
    while stack:
        node = stack[-1]
        if node.next >= len(node.children):
            stack.pop()
            if path:
                path.pop()
            continue
        tok, lp = node.children[node.next]
        node.next += 1
        cum = node.cum + lp
        if cum < cut:
            continue
        lps = node.lps + [lp]
        if tok in stops:
            toks = path + [tok]
            found.append(Generated(toks, lps, pred.tokenizer.decode(toks, skip_special_tokens=False)))
            if max_outputs and len(found) >= max_outputs:
                cut_short = True
                break
            continue
        if len(path) + 1 >= max_new:  # no room left for a stop token
            continue
        state = a.next(node.state, tok) if a is not None else None
        if a is not None and state is None:
            continue
        if max_steps and steps >= max_steps:
            cut_short = True
            break
        if should_stop is not None and should_stop():
            raise Stopped
        steps += 1
        _truncate(cache, base + len(path))
        logits = _forward(model, torch.as_tensor([[tok]], device=dev), cache)
        path.append(tok)
        child = _Node(expand(logits, state, cum), cum, state)
        child.lps = lps
        stack.append(child)
    found.sort(key=lambda g: -g.logprob)
    return found, cut_short


class Stopped(Exception):
    """A search abandoned because the job is stopping."""


#: forward passes one view's search may take, per token of its budget (a cap on unsure models' trees)
STEPS_PER_TOKEN = 16


def dfs_items(pred: Predictor, items: list, cfg: Any, finish: Callable, should_stop: Callable, on_batch) -> int:
    """Search every view item in turn (``decode dfs``): ``item.alts`` gets its outputs, ``item.out`` the most
    probable; each item is finished (``finish(item)``) and reported (``on_batch([item])``) as it ends. Returns the
    number of searches."""
    n = 0
    for it in items:
        if should_stop():
            break
        try:
            it.alts, it.cut_short = dfs(
                pred,
                it.prompt,
                it.max_new,
                cfg.min_prob,
                cfg.constrain,
                max_steps=STEPS_PER_TOKEN * it.max_new,
                should_stop=should_stop,
            )
        except Stopped:  # the item stays without output, like the items never begun
            break
        it.out = it.alts[0] if it.alts else Generated([], [], "")
        finish(it)
        n += 1
        if on_batch is not None:
            on_batch([it])
    return n
