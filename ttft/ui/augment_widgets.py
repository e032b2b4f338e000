"""Streamlit helpers of the Augmentations page: the controls, cached tokenizers, and the views' building blocks.

The logic lives in :mod:`ttft.augview`; this module only draws it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import streamlit as st

from ttft.core.augment import COLOR_MODES, DIHEDRAL, AugmentOptions, AugmentResult
from ttft.core.compose import STEP_KINDS, TARGETS
from ttft.core.data import Dataset, Pair, Task
from ttft.core.encoding import (
    LOSS_ON,
    PROMPTS,
    EncodingConfig,
    OneTokenPerCellError,
    check_one_token_per_cell,
    tokenize_task,
)
from ttft.core.gridtext import FORMATS
from ttft.core.profiles import PREVIEW_TOKENIZERS, PROFILE_NAMES, check_encodable, preview_tokenizer, profile_values
from ttft.core.tokenizer import EMBEDDED, load_tokenizer
from ttft.ui import navigation as nav
from ttft.ui import widgets as w
from ttft.views import augview
from ttft.views import grids as viz

RANDOM_TRANSFORM = "random from selected"
EXPLICIT_COLORS = "explicit map…"
FOLDER_TOKENIZER = "a tokenizer folder…"
_E = EncodingConfig.HELP


@dataclass(frozen=True)
class Controls:
    """What the sidebar controls chose. ``options`` is None when they are invalid (``error`` says why)."""

    options: AugmentOptions | None
    error: str | None
    seed: int
    n_variants: int
    numbers: bool
    cfg: EncodingConfig
    tokenizer_path: str | None  # None: the embedded tokenizer


# --------------------------------------------------------------------------- task choice


def task_picker(key: str, ds: Dataset) -> str:
    """A task selectbox mirrored in the ``task`` query parameter (the URL wins; default the first task)."""
    ids = ds.ids
    qp = w.query_param("task") or nav.current().get("task")
    switched = st.session_state.get("_aug_dataset") not in (None, key)
    st.session_state["_aug_dataset"] = key
    if qp is not None and qp not in ds.tasks:
        if not switched:
            st.error(f"Task {qp!r} is not in dataset {key!r}; showing {ids[0]} instead.")
        qp = None
    if qp is not None:
        st.session_state["aug_task"] = qp
    elif st.session_state.get("aug_task") not in ds.tasks:
        st.session_state["aug_task"] = ids[0]
    tid = st.sidebar.selectbox(
        "Task",
        ids,
        key="aug_task",
        help="Type to search; the URL's ?task= follows it",
        on_change=lambda: w.set_query_params(task=st.session_state["aug_task"]),
    )
    w.set_query_params(task=tid)
    nav.remember(task=tid)
    return tid


# --------------------------------------------------------------------------- controls


def _seed_from_url() -> int:
    try:
        return int(w.query_param("seed", 0))
    except (TypeError, ValueError):
        return 0


def _sync_seed() -> None:
    w.set_query_params(seed=st.session_state["aug_seed"])


_PROFILE_KEYS = {"format": "aug_format", "prompt": "aug_prompt", "loss_on": "aug_loss_on", "chat_template": "aug_chat"}


def _apply_profile() -> None:
    """Show the chosen profile's encoding in the (then disabled) widgets."""
    fixed = profile_values(st.session_state["aug_profile"], "train").get("encoding", {})
    for name, key in _PROFILE_KEYS.items():
        if name in fixed:
            st.session_state[key] = fixed[name]


def encoding_problem(cfg: EncodingConfig, tok: Any, warn: bool = True) -> str | None:
    """Why ``tok`` (None: the embedded tokenizer) cannot write ``cfg``'s text, with what to do; None when it can.
    Characters that become unknown tokens are shown as a warning (the text is still shown)."""
    try:
        unknown = check_encodable(cfg, tok, unknown_ok=True)
        if unknown and warn:
            st.warning(unknown)
    except ValueError as e:
        hint = " To see its text without a model, choose the preview-chatml tokenizer." if tok is None else ""
        return f"{e}.{hint if cfg.prompt != 'markers' else ''}"
    return None


def controls() -> Controls:
    """Draw the sidebar controls and return what they chose."""
    sb = st.sidebar
    sb.subheader("Augmentation")
    h = AugmentOptions.HELP
    st.session_state.setdefault("aug_seed", _seed_from_url())
    if w.query_param("seed") is not None and _seed_from_url() != st.session_state["aug_seed"]:
        st.session_state["aug_seed"] = _seed_from_url()  # the URL changed (a deep link)
    seed = int(
        sb.number_input(
            "Seed",
            0,
            2**31 - 1,
            step=1,
            key="aug_seed",
            on_change=_sync_seed,
            help="Seed of the view's random choices; the gallery uses the next N seeds",
        )
    )
    mode = sb.selectbox(
        "Transform",
        (RANDOM_TRANSFORM,) + DIHEDRAL,
        key="aug_transform",
        help="One dihedral transform, or one drawn at random from those selected",
    )
    transforms: tuple[str, ...] = (mode,)
    if mode == RANDOM_TRANSFORM:
        transforms = tuple(
            sb.multiselect("Draw from", DIHEDRAL, default=list(DIHEDRAL), key="aug_transforms", help=h["transforms"])
        )
    cmode = sb.selectbox("Colours", COLOR_MODES + (EXPLICIT_COLORS,), key="aug_colors", help=h["colors"])
    colors, p_bg = cmode, 0.0
    if cmode == EXPLICIT_COLORS:
        colors = sb.text_input(
            "Colour map",
            "0213456789",
            key="aug_color_map",
            help="10 digits (colour c becomes digit c) or pairs like 1:2,2:1",
        )
    elif cmode == "keep-bg":
        p_bg = sb.slider("p_bg", 0.0, 1.0, 0.0, 0.05, key="aug_p_bg", help=h["p_bg"])
    shuffle = sb.toggle("Shuffle train pairs", True, key="aug_shuffle", help=h["shuffle"])
    with sb.expander("Composition steps", expanded=False):
        kinds = st.multiselect(
            "Random steps",
            STEP_KINDS,
            key="aug_step_kinds",
            help="Kinds drawn with random parameters, in the order picked",
        )
        explicit = st.text_input(
            "Explicit steps",
            key="aug_steps",
            placeholder="upscale:2x2:input pad:1:5:output",
            help="Applied after the random ones, in order. " + h["compose"],
        )
        targets = st.multiselect(
            "Random steps apply to", TARGETS, default=["input", "output"], key="aug_targets", help=h["compose_targets"]
        )
        p_compose = st.slider("p_compose", 0.0, 1.0, 1.0, 0.05, key="aug_p_compose", help=h["p_compose"])
    n = int(sb.number_input("Gallery variants (N)", 0, 48, 6, key="aug_n"))
    numbers = sb.toggle("Cell numbers", key="aug_numbers")
    try:
        options, error = (
            augview.build_options(transforms, colors, p_bg, shuffle, kinds, explicit, targets, p_compose, seed),
            None,
        )
    except ValueError as e:
        options, error = None, str(e)

    sb.subheader("Text encoding")
    profile = sb.selectbox(
        "Profile",
        PROFILE_NAMES,
        key="aug_profile",
        on_change=_apply_profile,
        help="A reference system's encoding: ttft (set the options below), arc24 (its prompt "
        "and grid text in the chat template, loss on the whole reply), marc (its text "
        "format, loss on every output after the first)",
    )
    fixed = profile_values(profile, "train").get("encoding", {})
    fmt = sb.selectbox("Format", FORMATS, key="aug_format", help=_E["format"], disabled="format" in fixed)
    prompt = sb.selectbox("Prompt", PROMPTS, key="aug_prompt", help=_E["prompt"], disabled="prompt" in fixed)
    loss_on = sb.selectbox("Loss on", LOSS_ON, key="aug_loss_on", help=_E["loss_on"], disabled="loss_on" in fixed)
    max_len = int(
        sb.number_input("max_seq_len", 1, 1_000_000, 8192, step=256, key="aug_max_len", help=_E["max_seq_len"])
    )
    chat = sb.toggle("Chat template", key="aug_chat", help=_E["chat_template"], disabled="chat_template" in fixed)
    tmode = sb.radio(
        "Tokenizer",
        ("embedded", *PREVIEW_TOKENIZERS, FOLDER_TOKENIZER),
        key="aug_tok_mode",
        horizontal=True,
        help="The embedded character-level tokenizer; a preview tokenizer (characters, with a ChatML "
        "or Llama-3 chat template: a chat profile's exact text without a model; its counts are "
        "characters); or a tokenizer folder on this machine (loaded offline with transformers)",
    )
    path = None if tmode == "embedded" else tmode
    if tmode == FOLDER_TOKENIZER:
        path = (
            sb.text_input("Tokenizer folder", key="aug_tok_path", placeholder="/models/Qwen2.5-0.5B-Instruct").strip()
            or None
        )
    chosen = {"format": fmt, "prompt": prompt, "loss_on": loss_on, "chat_template": chat or prompt != "markers"}
    cfg = EncodingConfig(**{**chosen, **fixed, "max_seq_len": max_len})
    return Controls(options, error, seed, n, numbers, cfg, path)


# --------------------------------------------------------------------------- tokenizers


@st.cache_resource(max_entries=4, show_spinner="Loading tokenizer…")
def _tokenizer(path: str) -> Any:
    return preview_tokenizer(path) if path in PREVIEW_TOKENIZERS else load_tokenizer(path)


@st.cache_data(max_entries=32, show_spinner=False)
def _cell_check(path: str, fmt: str) -> str | None:
    try:
        check_one_token_per_cell(_tokenizer(path), fmt)
    except (OneTokenPerCellError, TypeError) as e:
        return str(e)
    return None


def tokenizer(path: str | None, fmt: str) -> tuple[Any, str]:
    """The tokenizer at ``path`` (None for the embedded one, which the fast encoder handles) and a label.

    A folder that cannot be loaded is shown as an error and the embedded tokenizer is used instead; one that does
    not give one token per cell in ``fmt`` is shown as a warning."""
    if path is None or path == EMBEDDED:
        return None, "embedded"
    try:
        tok = _tokenizer(path)
    except ValueError as e:
        st.error(f"Tokenizer: {e}. Token counts below use the embedded tokenizer.")
        return None, "embedded (fallback)"
    problem = _cell_check(path, fmt)
    if problem:
        st.warning(f"One token per cell check failed: {problem}")
    return tok, path + (" (characters: not a real model's token counts)" if path in PREVIEW_TOKENIZERS else "")


# --------------------------------------------------------------------------- drawing


def badge(ok: bool) -> None:
    if ok:
        st.badge("round-trip ✓", color="green", help="augment → invert gives back the original task exactly")
    else:
        st.badge("round-trip ✗", color="red", help="augment → invert does NOT give back the original task")


def spec_block(res: AugmentResult, task: Task) -> None:
    """The spec in one line with its round-trip badge (or why the view is skipped), and the spec as JSON."""
    c = st.columns([6, 1], vertical_alignment="center")
    c[0].markdown(
        f"**Spec** · {res.spec.describe()}" + (f" · seed {res.spec.seed}" if res.spec.seed is not None else "")
    )
    with c[1]:
        if res.task is not None:
            badge(augview.roundtrip_ok(task, res.spec, res.task))
    if res.task is None:
        st.warning(f"View skipped: {res.reason}")
    with st.expander("Spec JSON"):
        st.code(json.dumps(res.spec.to_json()), language="json", wrap_lines=True)


def _grid_cell(col, label: str, grid, numbers: bool) -> None:
    with col:
        if grid is None:
            st.caption(f"{label} · hidden")
        else:
            st.caption(f"{label} · {grid.shape[0]}×{grid.shape[1]}")
            w.grid_image(grid, numbers=numbers)


def side_by_side(task: Task, res: AugmentResult, numbers: bool) -> None:
    """Each original pair (input, output) next to the pair it became."""
    for row in augview.pair_rows(task, res.task, res.spec):
        name = f"{row.kind.title()} {row.index + 1}"
        moved = f" (now {row.kind} {row.view_index + 1})" if row.view_index != row.index else ""
        with st.container(border=True):
            st.markdown(f"**{name}**{moved}")
            c = st.columns([1, 1, 0.06, 1, 1], gap="small")
            _grid_cell(c[0], "original input", row.original.input, numbers)
            _grid_cell(c[1], "original output", row.original.output, numbers)
            c[2].markdown(
                "<div style='border-left:2px solid #D5D8DE;height:100%;min-height:120px'></div>", unsafe_allow_html=True
            )
            _grid_cell(c[3], "augmented input", row.augmented.input, numbers)
            _grid_cell(c[4], "augmented output", row.augmented.output, numbers)


@st.cache_data(max_entries=2000, show_spinner=False)
def _thumb(inp: bytes, in_shape: tuple[int, int], out: bytes, out_shape: tuple[int, int]) -> bytes:
    import numpy as np

    pair = Pair(np.frombuffer(inp, np.uint8).reshape(in_shape), np.frombuffer(out, np.uint8).reshape(out_shape))
    return viz.task_thumbnail_png(Task("thumbnail", (pair,), ()), size=110)


def _first_pair_png(task: Task) -> bytes:
    p = task.train[0]
    i, o = p.input.astype("uint8", copy=False), p.output.astype("uint8", copy=False)
    return _thumb(i.tobytes(), i.shape, o.tobytes(), o.shape)


def gallery_card(task: Task, res: AugmentResult, pick) -> None:
    """One gallery variant: its first train pair, spec, round-trip badge and a button to show it in full."""
    with st.container(border=True):
        st.markdown(f"**Seed {res.spec.seed}**")
        if res.task is None:
            st.warning(f"Skipped: {res.reason}")
            return
        st.image(_first_pair_png(res.task), output_format="PNG")
        st.caption(res.spec.describe())
        badge(augview.roundtrip_ok(task, res.spec, res.task))
        st.button(
            "Show side by side", key=f"aug_pick_{res.spec.seed}", on_click=pick, args=(res.spec.seed,), width="stretch"
        )


def token_meter(n_tokens: int, n_trained: int, max_len: int) -> None:
    """Token count against max_seq_len (red when over) and the trained tokens."""
    c = st.columns([1, 1, 3], vertical_alignment="center")
    c[0].metric("Tokens", f"{n_tokens:,}", help="Tokens of this exact text with the chosen tokenizer")
    c[1].metric("Trained tokens", f"{n_trained:,}", help="Tokens that carry the loss (highlighted below)")
    with c[2]:
        st.progress(min(1.0, n_tokens / max_len), text=f"{n_tokens:,} of max_seq_len {max_len:,}")
        if n_tokens > max_len:
            st.badge(f"over max_seq_len by {n_tokens - max_len:,}", color="red", icon=":material/error:")
        else:
            st.badge(f"fits ({max_len - n_tokens:,} to spare)", color="green", icon=":material/check:")


def pairs(task: Task, numbers: bool) -> None:
    """A task's pairs, compactly: input and output of each, train then test."""
    for kind, ps in (("Train", task.train), ("Test", task.test)):
        cols = st.columns(4)
        for i, p in enumerate(ps):
            with cols[i % 4].container(border=True):
                st.caption(f"{kind} {i + 1}")
                c = st.columns(2)
                _grid_cell(c[0], "input", p.input, numbers)
                _grid_cell(c[1], "output", p.output, numbers)


def text_view(task: Task, cfg: EncodingConfig, tok: Any, key: str) -> None:
    """The exact text the model sees for ``task`` (loss-carrying part highlighted) and its token count."""
    k = 0
    if len(task.test) > 1:
        k = st.selectbox("Test pair", range(len(task.test)), format_func=lambda i: f"test {i + 1}", key=key)
    answer = task.test[k].output is not None
    problem = encoding_problem(cfg, tok, warn=False)
    if problem:
        st.error(f"Cannot encode {task.id}: {problem}")
        return
    try:
        tt = tokenize_task(task, cfg, tok, test_index=k, answer=answer)
    except (ValueError, TypeError) as e:
        st.error(f"Cannot encode {task.id}: {e}")
        return
    token_meter(tt.n_tokens, tt.n_trained, cfg.max_seq_len)
    st.caption(
        f"{task.id} · format {cfg.format} · prompt {cfg.prompt} · loss on {cfg.loss_on} · "
        f"{tt.encoded.template} prompt · "
        + ("with the test answer (training)" if answer else "test output hidden: prompt for generation")
        + " · highlighted = carries the loss"
    )
    st.html(augview.encoded_html(tt.encoded))
