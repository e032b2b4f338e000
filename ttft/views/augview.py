"""What the Augmentations page shows, as pure functions (no Streamlit here).

* :func:`build_options` turns the page's controls into a validated :class:`~ttft.augment.AugmentOptions`;
* :func:`main_view` / :func:`gallery` draw augmented views of a task (skipped views are reported, not raised);
* :func:`invert_task` maps an augmented view back to the original frame (every grid through
  :func:`~ttft.augment.invert_grid` with its role, and the train order undone); :func:`roundtrip_ok` checks that
  augment -> invert gives back the original task exactly;
* :func:`pair_rows` lines each original pair up with its augmented counterpart;
* :func:`leave_out` / :func:`token_rows` build the n-1 / n-2 tasks and count their tokens;
* :func:`encoded_html` renders the exact text a model sees, with the loss-carrying characters highlighted.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ttft.core.augment import (
    AugmentOptions,
    AugmentResult,
    AugmentSkipped,
    AugmentSpec,
    invert_grid,
    random_spec,
    try_apply_task,
)
from ttft.core.compose import STEP_KINDS, InverseError
from ttft.core.data import Pair, Task
from ttft.core.encoding import EncodedText, EncodingConfig, tokenize_task
from ttft.core.leaveout import leave_one_out, leave_two_out

__all__ = [
    "LEAVE_OUT",
    "split_steps",
    "build_options",
    "main_view",
    "variant_seeds",
    "gallery",
    "invert_task",
    "tasks_equal",
    "roundtrip_ok",
    "PairRow",
    "pair_rows",
    "leave_out",
    "task_tokens",
    "token_rows",
    "encoded_html",
]

#: the leave-out kinds: name -> builder ("n-2" alone: ttft's n-2 only; the seed trained on n-1 ∪ n-2)
LEAVE_OUT: dict[str, Any] = {"n-1": leave_one_out, "n-2": leave_two_out}


# --------------------------------------------------------------------------- options


def split_steps(text: str) -> tuple[str, ...]:
    """Explicit composition steps typed as one text: separated by spaces, commas, semicolons or newlines."""
    return tuple(s for s in re.split(r"[\s,;]+", text.strip()) if s)


def build_options(
    transforms: Sequence[str],
    colors: str = "keep-bg",
    p_bg: float = 0.0,
    shuffle: bool = True,
    random_steps: Sequence[str] = (),
    explicit_steps: str = "",
    compose_targets: Sequence[str] = ("input", "output"),
    p_compose: float = 1.0,
    seed: int = 0,
) -> AugmentOptions:
    """Validated options from the page's controls. Random step kinds come first, then the explicit steps, in the
    order given. Raises ValueError naming the bad value (an unknown transform, a bad colour map or step ...)."""
    for k in random_steps:
        if k not in STEP_KINDS:
            raise ValueError(f"unknown composition step kind {k!r}; choose from {', '.join(STEP_KINDS)}")
    return AugmentOptions(
        transforms=tuple(transforms),
        colors=colors.strip(),
        p_bg=float(p_bg),
        shuffle=bool(shuffle),
        compose=tuple(random_steps) + split_steps(explicit_steps),
        p_compose=float(p_compose),
        compose_targets=tuple(compose_targets),
        seed=int(seed),
    ).validate()


# --------------------------------------------------------------------------- views


def main_view(task: Task, options: AugmentOptions, seed: int) -> AugmentResult:
    """The view drawn with ``seed``; a view over 30x30 comes back with ``task=None`` and the reason."""
    return try_apply_task(task, random_spec(int(seed), options, task))


def variant_seeds(seed: int, n: int) -> list[int]:
    """Seeds of the gallery's ``n`` variants: the ``n`` seeds after ``seed`` (the main view's)."""
    return [int(seed) + 1 + k for k in range(max(0, int(n)))]


def gallery(task: Task, options: AugmentOptions, seed: int, n: int) -> list[AugmentResult]:
    """``n`` views drawn with :func:`variant_seeds`; skipped ones are kept (with their reason) so none vanish."""
    return [main_view(task, options, s) for s in variant_seeds(seed, n)]


# --------------------------------------------------------------------------- round trip


def invert_task(view: Task, spec: AugmentSpec) -> Task:
    """Map an augmented view back to the original frame: inputs and outputs through :func:`invert_grid` with their
    role, and the train pairs back in their original order. Raises InverseError when a grid cannot come from
    ``spec`` and ValueError when the order does not fit the view."""

    def back(p: Pair) -> Pair:
        return Pair(
            invert_grid(p.input, spec, "input"), None if p.output is None else invert_grid(p.output, spec, "output")
        )

    train = [back(p) for p in view.train]
    if spec.order is not None:
        if len(spec.order) != len(train):
            raise ValueError(
                f"task {view.id}: spec train order has {len(spec.order)} entries but the view has "
                f"{len(train)} train pairs"
            )
        restored: list[Pair | None] = [None] * len(train)
        for new_i, orig_i in enumerate(spec.order):  # order[i] is the original index of the new i-th pair
            restored[orig_i] = train[new_i]
        train = restored  # type: ignore[assignment]
    return Task(view.id, tuple(train), tuple(back(p) for p in view.test), source=view.source)


def _grid_equal(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b))


def tasks_equal(a: Task, b: Task) -> bool:
    """Same pairs (inputs and outputs, shapes and cells) in the same order."""
    return (
        len(a.train) == len(b.train)
        and len(a.test) == len(b.test)
        and all(
            _grid_equal(p.input, q.input) and _grid_equal(p.output, q.output)
            for p, q in zip(a.train + a.test, b.train + b.test)
        )
    )


def roundtrip_ok(task: Task, spec: AugmentSpec, view: Task | None = None) -> bool:
    """True when augmenting ``task`` with ``spec`` (or taking the given ``view``) and inverting every grid and the
    train order gives back ``task`` exactly. A grid the inverse rejects counts as a failure. Raises
    :class:`~ttft.augment.AugmentSkipped` when ``view`` is None and the view cannot be made (over 30x30)."""
    if view is None:
        res = try_apply_task(task, spec)
        if res.task is None:
            raise AugmentSkipped(res.reason or "view skipped", task=None)
        view = res.task
    try:
        back = invert_task(view, spec)
    except (InverseError, ValueError):
        return False
    return tasks_equal(task, back)


# --------------------------------------------------------------------------- side by side


@dataclass(frozen=True)
class PairRow:
    """An original pair and its augmented counterpart (``view_index`` is its position in the view)."""

    kind: str  # "train" or "test"
    index: int  # position in the original task
    view_index: int
    original: Pair
    augmented: Pair


def pair_rows(task: Task, view: Task, spec: AugmentSpec) -> list[PairRow]:
    """Every pair of ``task`` next to the pair of ``view`` it became (the train order may have moved it)."""
    where = {orig: new for new, orig in enumerate(spec.order)} if spec.order is not None else None
    rows = []
    for i, p in enumerate(task.train):
        j = where[i] if where is not None else i
        rows.append(PairRow("train", i, j, p, view.train[j]))
    for i, p in enumerate(task.test):
        rows.append(PairRow("test", i, i, p, view.test[i]))
    return rows


# --------------------------------------------------------------------------- leave-out tasks and tokens


def leave_out(task: Task, kind: str) -> tuple[list[Task], str | None]:
    """The ``"n-1"`` or ``"n-2"`` tasks of ``task``, or ``[]`` and why there are none (too few train pairs)."""
    if kind not in LEAVE_OUT:
        raise ValueError(f"unknown leave-out kind {kind!r}; choose {' or '.join(LEAVE_OUT)}")
    try:
        return LEAVE_OUT[kind](task), None
    except AugmentSkipped as e:
        return [], str(e)


def task_tokens(task: Task, cfg: EncodingConfig, tokenizer: Any = None) -> int:
    """Tokens of the longest sequence the task gives (one per test pair; answer included where it is known)."""
    return max(
        tokenize_task(task, cfg, tokenizer, test_index=k, answer=p.output is not None).n_tokens
        for k, p in enumerate(task.test)
    )


def token_rows(tasks: Sequence[Task], cfg: EncodingConfig, tokenizer: Any = None) -> list[dict]:
    """One row per task: id, train and test pairs, tokens (:func:`task_tokens`) and whether it fits
    ``cfg.max_seq_len``."""
    rows = []
    for t in tasks:
        n = task_tokens(t, cfg, tokenizer)
        rows.append(
            {
                "task": t.id,
                "train pairs": len(t.train),
                "test pairs": len(t.test),
                "tokens": n,
                "fits": n <= cfg.max_seq_len,
            }
        )
    return rows


# --------------------------------------------------------------------------- the text a model sees

_BOX = (
    "max-height: {h}px; overflow: auto; margin: 0; padding: 0.6rem 0.8rem; border: 1px solid #D5D8DE; "
    "border-radius: 0.5rem; background: #FAFAFB; font-family: 'Source Code Pro', ui-monospace, monospace; "
    "font-size: 13px; line-height: 1.35; white-space: pre; color: #1F2430"
)
_MARK = "background: #FFE08A; color: #1F2430; padding: 0; border-radius: 2px"


def encoded_html(encoded: EncodedText, max_height: int = 420) -> str:
    """The exact text in a scrolling ``<pre>`` block; the characters that carry the loss
    (``encoded.ranges(True)``) are wrapped in ``<mark class="ttft-loss">``. Everything is HTML-escaped (the
    ``<input>`` / ``<output>`` markers show as text)."""
    text = encoded.text
    parts, pos = [], 0
    for a, b in encoded.ranges(True):
        parts.append(html.escape(text[pos:a]))
        parts.append(f'<mark class="ttft-loss" style="{_MARK}">{html.escape(text[a:b])}</mark>')
        pos = b
    parts.append(html.escape(text[pos:]))
    return f'<pre class="ttft-text" style="{_BOX.format(h=int(max_height))}">{"".join(parts)}</pre>'
