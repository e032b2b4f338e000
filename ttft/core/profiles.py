"""Profiles: named sets of option values that reproduce a reference system's definitions, and the definitions they
need that are more than option values.

A profile is a value of the declared options (:data:`PROFILES`): ``ttft`` (ttft's own defaults: it sets nothing),
``arc24`` (ironbar/arc24: its prompt ``output-from-examples-v0`` and grid text inside the tokenizer's chat template,
the loss and val loss on the whole assistant reply, its augmentations with the background moved at p = 0.1, its
TTFT recipe, its inference views and lenient parser) and ``marc`` (ekinakyurek/marc: its text format, the loss on
every output after the first, n-1 and n-2 tasks, its TTT augmenters and recipe, its leave-one-out inference tasks and
two-level vote). :func:`profile_base` puts a
profile's values over a base config (a file, a run's config) before the explicit flags are applied; every config
records its ``profile``, and a profile's defining options (:data:`DEFINING`: its text) cannot be changed under it.

The definitions here, each learnt from the reference repository and written anew:

* the chat layouts of the arc24 and MARC prompts (:func:`prompt_layout`) and how a layout is rendered through a chat
  template with its loss-carrying spans (:func:`encode_chat`; ttft's own markers prompt uses it too);
* whether a tokenizer can write a profile's text (:func:`check_encodable`);
* the inference views of a prediction (:func:`view_specs`: ttft's, or arc24's: a colour map with the background
  moved at ``p_bg`` and a train order on every view);
* MARC's test-time training augmenters (:func:`marc_spec`);
* preview tokenizers (:func:`preview_tokenizer`): a character-level tokenizer with a ChatML or a Llama-3 chat
  template, to see a profile's exact text where no real model is installed (token counts are characters).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ttft.core.augment import DIHEDRAL, IDENTITY_COLORS, AugmentSpec, random_color_map
from ttft.core.compose import Mirror, Tile, Upscale
from ttft.core.data import Pair, Task
from ttft.core.encoding import EncodedText, EncodingConfig, Seg, Span, _require_offsets, _spans
from ttft.core.gridtext import grid_to_text
from ttft.core.tokenizer import is_embedded, tokenizer_name
from ttft.options import ConfigError

__all__ = [
    "PROFILES",
    "PROFILE_NAMES",
    "DEFINING",
    "profile_values",
    "profile_base",
    "check_profile",
    "ChatLayout",
    "prompt_layout",
    "encode_chat",
    "check_encodable",
    "view_specs",
    "MARC_AUGMENTERS",
    "marc_spec",
    "marc_color_map",
    "preview_tokenizer",
    "PREVIEW_TOKENIZERS",
    "ARC24_SYSTEM_PROMPT",
    "MARC_PROMPT",
]

# --------------------------------------------------------------------------- the profiles

_QKVO = "q_proj,k_proj,v_proj,o_proj"

#: profile -> config kind ("train", "predict") -> option values (nested like the config's JSON)
PROFILES: dict[str, dict[str, dict]] = {
    "ttft": {"train": {}, "predict": {}},
    # arc24 (docs/05_Solution_Summary.md, scripts/fine-tuning.py, scripts/inference.py): per-task TTFT of ~300 steps,
    # batch 1, lr 8e-5, linear schedule with warm-up (5 % of the steps), a LoRA with rsLoRA + DoRA, dropout 0.1 on
    # q/k/v/o (continue the fine-tuned one with model.adapter); n-1 tasks drawn on the fly, every task weighted alike
    "arc24": {
        "train": {
            "mode": "ttft",
            "per_task": True,
            "leave_out": 1,
            "task_weighting": "task",
            "steps": 300,
            "lr": 8e-5,
            "batch_size": 1,
            "grad_accum": 1,
            "scheduler": "linear",
            "warmup_steps": 15,
            "weight_decay": 0.0,
            "val_loss_on": "as-trained",
            "keep_original_colors": 0.0,
            "augment_recipe": "options",
            "encoding": {"format": "arc24", "prompt": "arc24", "chat_template": True, "loss_on": "reply"},
            "augment": {"transforms": list(DIHEDRAL), "colors": "keep-bg", "p_bg": 0.1, "shuffle": True, "compose": []},
            "model": {
                "lora_r": 32,
                "lora_alpha": 64,
                "lora_dropout": 0.1,
                "target_modules": _QKVO,
                "use_rslora": True,
                "use_dora": True,
            },
        },
        # scripts/inference.py: predictions_per_task 8 (32 and 96 in later runs), each view a dihedral transform with
        # its own colour map (background moved at 0.1) and train order, greedy decoding, arc24's lenient parser
        "predict": {
            "views": 8,
            "transforms": list(DIHEDRAL),
            "colors": "keep-bg",
            "p_bg": 0.1,
            "shuffle": True,
            "identity_view": False,
            "sample": False,
            "lenient_parse": True,
            "val_loss_on": "as-trained",
        },
    },
    # MARC (README's test_time_train.py command with --new_format, configs/ttt/8B_lora_single_device.yaml,
    # ttt/preprocess.py): per-task LoRA rank 128, alpha 16, on q/v and the MLP, lr 5e-5, batch 2, 2 epochs of at most
    # 250 augmented tasks (about 250 steps), cosine schedule with 5 warm-up steps, weight decay 0.01
    "marc": {
        "train": {
            "mode": "ttft",
            "per_task": True,
            "leave_out": 2,
            "n2_only": False,
            "steps": 250,
            "lr": 5e-5,
            "batch_size": 2,
            "grad_accum": 1,
            "scheduler": "cosine",
            "warmup_steps": 5,
            "weight_decay": 0.01,
            "augment_recipe": "marc",
            "keep_original_colors": 0.0,
            "val_loss_on": "test-output",
            "encoding": {"format": "numpy", "prompt": "marc", "chat_template": True, "loss_on": "outputs"},
            "model": {
                "lora_r": 128,
                "lora_alpha": 16,
                "lora_dropout": 0.0,
                "target_modules": "q_proj,v_proj,gate_proj,up_proj,down_proj",
                "use_rslora": False,
                "use_dora": False,
            },
        },
        # predict.py with --include_n 1 --permute_n 2 (inference/preprocess.py): its leave-one-out inference tasks
        # with two train orders each and five transforms, greedy decoding, its two-level vote (arclib/voting.py)
        "predict": {"views_from": "marc", "score": "marc"},
    },
}
PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)
#: per profile and kind, the option paths that make it that profile (its text): they cannot differ under it
DEFINING: dict[str, dict[str, tuple[str, ...]]] = {
    "arc24": {"train": ("encoding.format", "encoding.prompt", "encoding.loss_on"), "predict": ("identity_view",)},
    "marc": {"train": ("encoding.format", "encoding.prompt", "encoding.loss_on"), "predict": ()},
}


def _check_name(name: str) -> None:
    if name not in PROFILES:
        raise ConfigError(f"profile: must be one of {', '.join(PROFILE_NAMES)}, got {name!r}")


def profile_values(name: str, kind: str) -> dict:
    """The option values profile ``name`` sets on a ``kind`` ("train" or "predict") config, with ``profile``."""
    _check_name(name)
    return {**_copy(PROFILES[name].get(kind, {})), "profile": name}


def _copy(d: dict) -> dict:
    return {k: _copy(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v for k, v in d.items()}


def _merge(into: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v
    return into


def profile_base(kind: str, name: str | None, base: dict | None = None) -> dict | None:
    """``base`` (a config file's or a run's JSON, or None) with profile ``name``'s values put over it: what the
    explicit flags are then applied to. ``name`` None: ``base`` unchanged (no --profile given)."""
    if name is None:
        return base
    return _merge(_copy(base or {}), profile_values(name, kind))


def _get(d: dict, path: str) -> Any:
    for part in path.split("."):
        d = d.get(part, {}) if isinstance(d, dict) else {}
    return d


def check_profile(cfg_json: dict, kind: str) -> str | None:
    """Why a config (its JSON) does not hold its profile's defining values, or None when it does."""
    name = cfg_json.get("profile", "ttft")
    if name not in PROFILES:
        return f"profile: must be one of {', '.join(PROFILE_NAMES)}, got {name!r}"
    values = PROFILES[name].get(kind, {})
    for path in DEFINING.get(name, {}).get(kind, ()):
        want, got = _get(values, path), _get(cfg_json, path)
        if want != got:
            return (
                f"{path}: profile {name!r} defines it as {want!r}, got {got!r} (apply the profile with --profile "
                f"{name}; to change it, use profile 'ttft')"
            )
    return None


# --------------------------------------------------------------------------- prompt texts

#: arc24's system prompt of ``output-from-examples-v0`` (scripts/arc24/prompting.py ``system_prompt_v0``), exactly
ARC24_SYSTEM_PROMPT = (
    "You are a helpful AI assistant. Your job is to solve tasks from the Abstraction and Reasoning Challenge (ARC). \n"
    "The user will present you with sample input and output grids for each task. \n"
    "Your job will be to understand the transformation between the input and the output and apply it to the last "
    "input grid given by the user. \n"
    "The puzzle-like inputs and outputs present a grid where each square can be one of ten colors. A grid can be any "
    "height or width between 1x1 and 30x30.\n"
    "The background of the grid is typically colored with 0.\n"
    "The tasks from ARC are based on the following priors:\n"
    "\n"
    "- Objectness: Objects persist and cannot appear or disappear without reason. Objects can interact or not "
    "depending on the circumstances.\n"
    '- Goal-directed: Objects can be animate or inanimate. Some objects are "agents" - they have intentions and they '
    "pursue goals.\n"
    "- Numbers & counting: Objects can be counted or sorted by their shape, appearance, or movement using basic "
    "mathematics like addition, subtraction, and comparison.\n"
    "- Basic geometry & topology: Objects can be shapes like rectangles, triangles, and circles which can be "
    "mirrored, rotated, translated, deformed, combined, repeated, etc. Differences in distances can be detected.\n"
    "\n"
    "The transformations between input and output should be based on these priors.\n"
)
_ARC24_INTRO = (
    "Let's see if you can solve this simple ARC task. These are some input-output grid examples that define the task.\n"
)
#: MARC's instructions (arclib/messagers.py ``GPTTextMessageRepresenterV2`` without a task description)
MARC_PROMPT = (
    "Figure out the underlying transformation in the following examples and apply it to the test case. "
    "Here are some examples from this transformation, your answer must follow the format.\n"
)
_MARC_NUMPY = "The input-output grids are provided as python arrays:\n"
#: MARC's separator between an input and its output, and the end of an output (README's ``--new_format``)
MARC_IO_SEP, MARC_FOOTER = " -> ", "#"


@dataclass(frozen=True)
class ChatLayout:
    """A prompt as chat messages made of ``(text, role, trained)`` segments: the system message (or None), the user
    message, and the assistant's reply: ``reply`` is in the generation prompt too (arc24's ``"### Output\\n\\n"``),
    ``answer`` only in training text (the test output)."""

    system: tuple[Seg, ...] | None
    user: tuple[Seg, ...]
    reply: tuple[Seg, ...] = ()
    answer: tuple[Seg, ...] = ()


def _grid(g: np.ndarray | None, fmt: str) -> str:
    assert g is not None, "train pairs and answered test pairs have outputs"
    return grid_to_text(g, fmt)[:-1]  # the reference systems write grids without the final newline


def prompt_layout(task: Task, cfg: EncodingConfig, test_index: int = 0, answer: bool = True) -> ChatLayout:
    """The chat messages of prompt ``cfg.prompt`` ("arc24" or "marc") for test pair ``test_index`` of ``task``."""
    if not 0 <= test_index < len(task.test):
        raise ValueError(
            f"task {task.id}: test_index {test_index} is out of range (it has {len(task.test)} test pair(s))"
        )
    test = task.test[test_index]
    if answer and test.output is None:
        raise ValueError(f"task {task.id}: test pair {test_index} has no known output to train on; use answer=False")
    fmt, outputs = cfg.format, cfg.loss_on == "outputs"
    pairs: list[Pair] = list(task.train)
    if cfg.prompt == "arc24":
        user: list[Seg] = [(_ARC24_INTRO, "marker", False)]
        for i, p in enumerate(pairs):
            user += [
                (f"\n## Example {i + 1}\n\n### Input\n\n", "marker", False),
                (_grid(p.input, fmt), "input", False),
                ("\n\n### Output\n\n", "marker", False),
                (_grid(p.output, fmt), "output", outputs and i >= 1),
                ("\n", "marker", False),
            ]
        user += [("\n## Test case\n\n### Input\n\n", "marker", False), (_grid(test.input, fmt), "test_input", False)]
        reply: list[Seg] = [("### Output\n\n", "marker", answer and cfg.loss_on == "reply")]
        if answer:
            return ChatLayout(
                ((ARC24_SYSTEM_PROMPT, "marker", False),),
                tuple(user),
                tuple(reply),
                ((_grid(test.output, fmt), "test_output", True),),
            )
        if fmt == "arc24":  # arc24's generation prompt opens the grid's fence: the model writes " shape: ..."
            from ttft.core.gridtext import ARC24_FENCE

            reply.append((ARC24_FENCE, "marker", False))
        return ChatLayout(((ARC24_SYSTEM_PROMPT, "marker", False),), tuple(user), tuple(reply))
    if cfg.prompt == "marc":
        system: list[Seg] = [(MARC_PROMPT + (_MARC_NUMPY if fmt == "numpy" else ""), "marker", False)]
        for i, p in enumerate(pairs):
            system += [
                (_grid(p.input, fmt), "input", False),
                (MARC_IO_SEP, "marker", False),
                (_grid(p.output, fmt), "output", outputs and i >= 1),
                (MARC_FOOTER, "marker", False),
            ]
            if i < len(pairs) - 1:
                system.append(("\n", "marker", False))  # MARC's message text is stripped: no newline at the end
        user = [(_grid(test.input, fmt), "test_input", False), (MARC_IO_SEP.rstrip(), "marker", False)]
        ans = ((_grid(test.output, fmt), "test_output", True), (MARC_FOOTER, "marker", True)) if answer else ()
        return ChatLayout(tuple(system), tuple(user), (), ans)
    raise ValueError(f"prompt {cfg.prompt!r} has no chat layout here (the markers prompt is ttft's own)")


# --------------------------------------------------------------------------- rendering a layout

#: text opening the assistant's turn in common chat templates (arc24's response templates: ChatML as in Qwen and
#: SmolLM, Llama-3, Phi-3); with ``loss_on="reply"`` everything after it carries the loss
ASSISTANT_HEADERS: tuple[str, ...] = (
    "<|im_start|>assistant",
    "<|start_header_id|>assistant<|end_header_id|>",
    "<|assistant|>",
)
#: end-of-turn texts at which arc24 cuts a rendered conversation to make its generation prompt
END_OF_TURN: tuple[str, ...] = ("<|eot_id|>", "<|im_end|>", "<|end|>")


def _join(segs: Sequence[Seg]) -> str:
    return "".join(s[0] for s in segs)


def _render(tokenizer: Any, messages: list[dict], **kw: Any) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, **kw)
    except Exception as e:  # noqa: BLE001 — jinja's TemplateError and friends: say which tokenizer and why
        raise ValueError(
            f"the chat template of tokenizer {tokenizer_name(tokenizer)} cannot render these messages "
            f"({', '.join(m['role'] for m in messages)}): {e}"
        ) from None


def _generation_text(tokenizer: Any, messages: list[dict], reply: str) -> str:
    """The generation prompt: the template's own, or, when the reply has begun (arc24), the whole conversation with
    that partial reply cut at its last end-of-turn text, as arc24 does."""
    if not reply:
        return _render(tokenizer, messages, add_generation_prompt=True)
    full = _render(tokenizer, messages + [{"role": "assistant", "content": reply}])
    cut = [full.rfind(e) for e in END_OF_TURN if full.rfind(e) >= 0]
    if cut and full[: max(cut)].endswith(reply):
        return full[: max(cut)]
    return _render(tokenizer, messages, add_generation_prompt=True) + reply


def encode_chat(task: Task, layout: ChatLayout, answer: bool, loss_on: str, tokenizer: Any) -> EncodedText:
    """``layout`` rendered with ``tokenizer``'s chat template, with spans: the segments where the template left them,
    the template's own text as ``prompt``. Training text (``answer``): the test output carries the loss with the
    end-of-turn text after it (up to the trailing whitespace); with ``loss_on="reply"`` everything after the
    assistant's role header does (the whole reply, end-of-turn text and trailing newline included: arc24's
    completion-only collator)."""
    parts = ([("system", layout.system)] if layout.system is not None else []) + [("user", layout.user)]
    messages = [{"role": role, "content": _join(segs)} for role, segs in parts]
    reply_segs = layout.reply + (layout.answer if answer else ())
    reply = _join(reply_segs)
    prefix = _render(tokenizer, messages, add_generation_prompt=True)
    if answer:
        text = _render(tokenizer, messages + [{"role": "assistant", "content": reply}])
    else:
        text = _generation_text(tokenizer, messages, reply)
    spans: list[Span] = []
    pos = 0
    for (role, segs), m in zip(parts, messages):
        u = text.find(m["content"], pos)
        if u < 0:
            raise ValueError(
                f"task {task.id}: the chat template of tokenizer {tokenizer_name(tokenizer)} changes the "
                f"{role} message, so its spans cannot be located; use chat_template=False"
            )
        spans += [Span(pos, u, "prompt", False)] + _spans(segs, u)
        pos = u + len(m["content"])
    if reply:
        a = text.find(reply, max(pos, len(prefix) if text.startswith(prefix) else pos))
        if a < 0:
            raise ValueError(
                f"task {task.id}: the chat template of tokenizer {tokenizer_name(tokenizer)} changes the "
                "assistant message, so its spans cannot be located; use chat_template=False"
            )
        whole = loss_on == "reply" and answer
        head = a
        if whole:  # arc24: the loss starts right after the assistant's role header
            found = [(text.rfind(h, pos, a), h) for h in ASSISTANT_HEADERS if text.rfind(h, pos, a) >= 0]
            head = max(i + len(h) for i, h in found) if found else a
        spans += [Span(pos, head, "prompt", False), Span(head, a, "prompt", True)]
        spans += [dataclasses.replace(sp, trained=True) if whole else sp for sp in _spans(reply_segs, a)]
        pos = a + len(reply)
        if answer:
            end = len(text) if whole else len(text.rstrip())
            spans.append(Span(pos, end, "eos", True))
            pos = end
    spans.append(Span(pos, len(text), "prompt", False))
    return EncodedText(text, tuple(s for s in spans if s.end > s.start), "chat")


# --------------------------------------------------------------------------- can a tokenizer write it


def check_encodable(
    cfg: EncodingConfig, tokenizer: Any = None, where: str = "encoding", unknown_ok: bool = False
) -> str | None:
    """Raise ConfigError (naming ``where``'s option) unless ``tokenizer`` (None: the embedded one) can write ``cfg``'s
    prompt and grid text: a chat prompt needs a chat template, and no character may become an unknown token. With
    ``unknown_ok`` the unknown characters are returned as a message instead of raised (None when there are none)."""
    cfg = cfg.validate()
    if cfg.prompt != "markers" and not getattr(tokenizer, "chat_template", None):
        from ttft.core.encoding import _needs_chat

        raise ConfigError(f"{where}.prompt: {_needs_chat(cfg, tokenizer)}")
    g = np.arange(12, dtype=np.uint8).reshape(3, 4) % 10
    probe = Task("probe", (Pair(g, g.T.copy()), Pair(g[::-1].copy(), g)), (Pair(g.T.copy(), g),))
    from ttft.core.encoding import encode_task

    try:
        text = encode_task(probe, cfg, tokenizer).text
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    if tokenizer is None or is_embedded(tokenizer):
        from ttft.core.tokenizer import CHARS, MARKERS, SPECIALS

        rest = text
        for t in SPECIALS + MARKERS:
            rest = rest.replace(t, "")
        bad = sorted(set(rest) - set(CHARS))
        name = "the embedded tokenizer"
    else:
        unk = getattr(tokenizer, "unk_token_id", None)
        bad = []
        if unk is not None:
            _require_offsets(tokenizer)
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            bad = sorted({text[a:b] for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]) if i == unk})
        name = f"tokenizer {tokenizer_name(tokenizer)}"
    if not bad:
        return None
    shown = " ".join(repr(c) for c in bad[:12])
    msg = (
        f"{where}.format: {name} cannot write the {cfg.prompt} prompt with {cfg.format} grids: {shown} would "
        "become unknown tokens; use a tokenizer that can (a real model's) or another format/prompt"
    )
    if unknown_ok:
        return msg
    raise ConfigError(msg)


# --------------------------------------------------------------------------- inference views


def view_specs(
    task: Task,
    views: int,
    transforms: Sequence[str] = DIHEDRAL,
    colors: str = "keep-bg",
    p_bg: float = 0.0,
    shuffle: bool = False,
    identity_view: bool = True,
    seed: int = 0,
) -> list[AugmentSpec]:
    """The ``views`` inference views of a task. View k uses the k-th of ``transforms`` in turn (identity first) with
    a colour map and (with ``shuffle``) a train order drawn from ``(seed, k)``: the same k gives the same map on every
    task. ``identity_view`` (ttft's): view 0 is the task untouched; off (arc24's), view 0 is drawn like the others.
    ``colors``: keep-bg (shuffle 1-9; the background 0 moves too with probability ``p_bg``: arc24's 0.1, about 9 %
    of the maps), all (shuffle 0-9), none. arc24 makes K/8 views of each transform, transform after transform; with
    K a multiple of 8 these are the same transforms in another order (which only matters to break vote ties)."""
    order = ["identity"] + [t for t in transforms if t != "identity"]
    specs = [AugmentSpec()] if identity_view else []
    for k in range(1 if identity_view else 0, views):
        rng = np.random.default_rng([seed, k])
        cmap = IDENTITY_COLORS
        if colors != "none":
            move = colors == "all" or (p_bg > 0 and rng.random() < p_bg)
            cmap = random_color_map(rng, move_bg=move)
        perm = tuple(int(i) for i in rng.permutation(len(task.train))) if shuffle else None
        specs.append(AugmentSpec(order[k % len(order)], cmap, perm, seed=None))
    return specs


# --------------------------------------------------------------------------- MARC's augmenters

#: MARC's test-time training augmenters (ttt/preprocess.py ``get_augmenters`` with basic, size, chain and repeat),
#: applied to inputs and outputs alike, as ttft specs; the identity stands for MARC's un-augmented tasks.
#: ``RandomTranslateXY`` (np.roll by 0-3 cells) has no ttft step and is left out. MARC's ``Rotate(90)`` is numpy's
#: counter-clockwise quarter turn, ttft's ``rot270``; ``Reflect(axis, reverse=True)`` puts the reflection first.
MARC_AUGMENTERS: tuple[tuple[str, AugmentSpec], ...] = (
    ("Identity", AugmentSpec()),
    ("Rotate(90)", AugmentSpec("rot270")),
    ("Rotate(270)", AugmentSpec("rot90")),
    ("Rotate(180)", AugmentSpec("rot180")),
    ("Flip(0)", AugmentSpec("flip_v")),
    ("Flip(1)", AugmentSpec("flip_h")),
    ("Reflect(0, reverse=True)", AugmentSpec("flip_v", steps=(Mirror("v"),))),
    ("Reflect(1, reverse=True)", AugmentSpec("flip_h", steps=(Mirror("h"),))),
    ("Reflect(0, reverse=False)", AugmentSpec(steps=(Mirror("v"),))),
    ("Reflect(1, reverse=False)", AugmentSpec(steps=(Mirror("h"),))),
    ("Transpose()", AugmentSpec("transpose")),
    ("IncreaseResolution(2)", AugmentSpec(steps=(Upscale(2, 2),))),
    ("IncreaseHeight(2)", AugmentSpec(steps=(Upscale(2, 1),))),
    ("IncreaseWidth(2)", AugmentSpec(steps=(Upscale(1, 2),))),
    *(
        (f"Chain([{name}, IncreaseResolution(2)])", AugmentSpec(geo, steps=(Upscale(2, 2),)))
        for name, geo in (
            ("Rotate(90)", "rot270"),
            ("Rotate(270)", "rot90"),
            ("Rotate(180)", "rot180"),
            ("Flip(0)", "flip_v"),
            ("Flip(1)", "flip_h"),
            ("Transpose()", "transpose"),
        )
    ),
    ("Repeat(0, 2)", AugmentSpec(steps=(Tile(2, 1),))),
    ("Repeat(1, 2)", AugmentSpec(steps=(Tile(1, 2),))),
    ("Repeat(2, 2)", AugmentSpec(steps=(Tile(2, 2),))),
)


def marc_color_map(rng: np.random.Generator, task: Task) -> tuple[int, ...]:
    """MARC's ``PermuteColors``: 0 stays; the task's other colours go to colours the task does not use, while there
    are any, then among the rest (MARC swaps pairs there; here they are permuted at random)."""
    grids = [g for p in task.train + task.test for g in (p.input, p.output) if g is not None]
    used = sorted({int(c) for g in grids for c in np.unique(g)} - {0})
    free = [c for c in range(1, 10) if c not in used]
    rng.shuffle(free)
    order = [int(c) for c in rng.permutation(used)] if used else []
    targets = free[: len(order)]
    if len(targets) < len(order):
        pool = [c for c in range(1, 10) if c not in targets]
        targets += [int(c) for c in rng.permutation(pool)[: len(order) - len(targets)]]
    mapping = dict(zip(order, targets))
    left = [c for c in range(1, 10) if c not in mapping]
    mapping.update(zip(left, [c for c in range(1, 10) if c not in mapping.values()]))
    return (0,) + tuple(mapping[c] for c in range(1, 10))


def marc_spec(rng: np.random.Generator, task: Task) -> AugmentSpec:
    """A training view drawn as MARC's TTT data is made: one of :data:`MARC_AUGMENTERS` (uniformly), then, for half
    of the views, MARC's colour permutation and a shuffled train order (MARC keeps each augmented task both with
    and without them)."""
    _, spec = MARC_AUGMENTERS[int(rng.integers(len(MARC_AUGMENTERS)))]
    if rng.random() < 0.5:
        spec = dataclasses.replace(
            spec, colors=marc_color_map(rng, task), order=tuple(int(i) for i in rng.permutation(len(task.train)))
        )
    return spec


# --------------------------------------------------------------------------- preview tokenizers

_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_LLAMA3 = (
    "<|begin_of_text|>{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
#: name -> (chat template, special tokens, eos, pad)
PREVIEW_TOKENIZERS: dict[str, tuple[str, tuple[str, ...], str, str]] = {
    "preview-chatml": (_CHATML, ("<|endoftext|>", "<|im_start|>", "<|im_end|>"), "<|im_end|>", "<|endoftext|>"),
    "preview-llama3": (
        _LLAMA3,
        ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        "<|eot_id|>",
        "<|end_of_text|>",
    ),
}


def preview_tokenizer(name: str = "preview-chatml") -> Any:
    """A character-level tokenizer (one token per printable ASCII character and newline, the template's special
    tokens whole) with a chat template in the layout of ChatML (Qwen2/Qwen2.5 when a system message is given) or of
    Llama-3 (as MARC's tokenizer writes it, without its final ``<|end_of_text|>``). It writes a profile's exact text
    where no real model is installed; its token counts are characters, not a real model's tokens."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    if name not in PREVIEW_TOKENIZERS:
        raise ValueError(f"unknown preview tokenizer {name!r}; choose one of {', '.join(PREVIEW_TOKENIZERS)}")
    template, specials, eos, pad = PREVIEW_TOKENIZERS[name]
    chars = ["\n"] + [chr(c) for c in range(32, 127)]
    vocab = {"<unk>": 0, **{ch: i + 1 for i, ch in enumerate(chars)}}
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", *specials)])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", eos_token=eos, pad_token=pad, name_or_path=name
    )
    tok.chat_template = template
    return tok
