"""Grids and tasks as text, tokenisation with a loss mask, parsing model output, and the one-token-per-cell check.

Grid formats (every row ends with a newline):

* ``minimal``: the digits of each row, e.g. ``"012\\n340\\n"``;
* ``shape+rows``: a header ``"shape: 2x3\\n"`` then each row prefixed by its number (from 1) and a space,
  ``"1 012\\n2 340\\n"`` (arc24's best encoding on Qwen);
* ``separated``: cells separated by a space, ``"0 1 2\\n3 4 0\\n"`` (for tokenizers such as Llama-3's that merge
  runs of digits);
* ``arc24``: arc24's grid text (``GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder()))``): a code fence whose
  first line carries the shape, numbered rows, a closing fence: ``"```grid shape: 2x3\\n1 012\\n2 340\\n```\\n"``;
* ``numpy``: MARC's grid text (its ``PythonListGridRepresenter``, numpy's ``str`` of the array):
  ``"[[0 1 2]\\n [3 4 0]]\\n"``.

The text of a grid always ends with a newline; prompts that embed a grid without one (arc24's, MARC's) drop it.

With ``prompt="markers"`` (ttft's own) a task becomes a prompt of ``<input>\\n GRID <output>\\n GRID`` blocks,
train pairs first, then the test input, its output marker and (for training) the test output followed by the
tokenizer's end-of-sequence text. With ``chat_template`` and a tokenizer that has one, the examples and test input
form the user message and the test output the assistant message. ``prompt="arc24"`` and ``prompt="marc"`` are the
reference systems' chat prompts (:mod:`ttft.core.profiles` writes their messages; they need a tokenizer with a chat
template). ``loss_on`` says which tokens carry the loss: the test output (``test``), every output after the first
example too (``outputs``, MARC's), or the whole assistant reply after its role header (``reply``, arc24's).
:func:`encode_task` returns the exact text with labelled character spans (which parts carry the loss);
:func:`tokenize_task` returns ``input_ids``, ``labels`` (-100 where masked) and ``attention_mask``.
Model output is read back with :func:`text_to_grid` / :func:`parse_output`, which never raise: they return a
:class:`ParseResult` with the grid or the reason it is unparseable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ttft.core.data import MAX_SIDE, Task
from ttft.core.gridtext import (
    _DEFAULT_STOPS,
    ARC24_FENCE,
    FORMATS,
    ParseResult,
    _check_format,
    _clip,
    cell_offsets,
    grid_to_text,
    text_to_grid,
)
from ttft.core.tokenizer import EOS, INPUT_MARKER, OUTPUT_MARKER, fast_encoder, is_embedded, tokenizer_name
from ttft.options import ConfigError, Options, option

__all__ = [
    "FORMATS",
    "LOSS_ON",
    "IGNORE_INDEX",
    "EncodingConfig",
    "Span",
    "EncodedText",
    "TokenizedTask",
    "OneTokenPerCellError",
    "encode_task",
    "tokenize_task",
    "count_tokens",
    "check_one_token_per_cell",
    "PROMPTS",
    "val_encoding",
    "VAL_COVERS",
]

LOSS_ON: tuple[str, ...] = ("test", "outputs", "reply")
#: prompt layouts: ttft's markers, arc24's ``output-from-examples-v0`` chat prompt, MARC's chat prompt
PROMPTS: tuple[str, ...] = ("markers", "arc24", "marc")
#: what a val loss covers: the test output (and end of sequence), or the tokens training puts the loss on
VAL_COVERS: tuple[str, ...] = ("test-output", "as-trained")
#: label of tokens that carry no loss
IGNORE_INDEX = -100

# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class EncodingConfig(Options):
    """How tasks become text and tokens: the typed config a training run saves."""

    TITLE: ClassVar[str] = "encoding"
    GROUP: ClassVar[str] = "Encoding"

    format: str = option(
        "minimal",
        "grid text format: minimal (digits, one row per line), shape+rows (a "
        "'shape: HxW' header and row numbers), separated (a space between cells, for tokenizers "
        "that merge digits)",
        choices=FORMATS,
    )
    loss_on: str = option(
        "test",
        "which tokens carry the loss: test (the test output and end of sequence), outputs "
        "(every output after the first example, and the test output: MARC's), reply (the whole "
        "assistant reply after its role header, end-of-turn text included: arc24's)",
        choices=LOSS_ON,
    )
    chat_template: bool = option(
        False,
        "wrap the prompt in the tokenizer's chat template (user: examples + test "
        "input; assistant: test output) when the tokenizer has one; prompts arc24 and marc "
        "are chat prompts and need it",
    )
    prompt: str = option(
        "markers",
        "prompt layout: markers (ttft's input/output markers), arc24 (arc24's "
        "output-from-examples-v0: system prompt, examples in markdown, reply '### Output'), marc "
        "(MARC's: instructions and examples 'IN -> OUT' in the system message, the test input as "
        "the user message)",
        choices=PROMPTS,
    )
    max_seq_len: int = option(
        8192, "longest tokenised task used for training; longer ones are reported as too long", lo=1, hi=1_048_576
    )
    input_marker: str = option(INPUT_MARKER, "text before each input grid (followed by a newline)")
    output_marker: str = option(OUTPUT_MARKER, "text before each output grid (followed by a newline)")

    def check(self) -> None:
        for name in ("input_marker", "output_marker"):
            m = getattr(self, name)
            if not m.strip() or re.search(r"\d", m):
                raise self.bad(name, "must be non-empty text on one line without digits")
        if self.input_marker == self.output_marker:
            raise ConfigError(f"input_marker and output_marker must differ, both are {self.input_marker!r}")
        if self.prompt != "markers" and not self.chat_template:
            raise self.bad(
                "chat_template",
                f"must be on with prompt {self.prompt!r} (it is written as chat messages: "
                "system, user and assistant turns)",
            )


# --------------------------------------------------------------------------- grids <-> text


# --------------------------------------------------------------------------- tasks -> text


@dataclass(frozen=True)
class Span:
    """Characters ``[start, end)`` of an encoded text, what they are, and whether they carry the loss.

    ``role`` is one of: prompt (chat-template text), marker, input, output (train pairs), test_input, test_output,
    eos (end-of-sequence or end-of-turn text after the test output)."""

    start: int
    end: int
    role: str
    trained: bool


@dataclass(frozen=True)
class EncodedText:
    """A task as text: the exact string and spans covering it end to end."""

    text: str
    spans: tuple[Span, ...]
    template: str  # "plain" or "chat"

    def ranges(self, trained: bool = True) -> list[tuple[int, int]]:
        """Merged ``(start, end)`` character ranges that carry the loss (or, with ``trained=False``, are masked)."""
        out: list[tuple[int, int]] = []
        for s in self.spans:
            if s.trained == trained and s.end > s.start:
                if out and out[-1][1] == s.start:
                    out[-1] = (out[-1][0], s.end)
                else:
                    out.append((s.start, s.end))
        return out

    def trained_text(self) -> str:
        """The characters that carry the loss, concatenated."""
        return "".join(self.text[a:b] for a, b in self.ranges(True))


def _eos_text(tokenizer: Any) -> str:
    if tokenizer is None:
        return EOS
    eos = getattr(tokenizer, "eos_token", None)
    return eos if isinstance(eos, str) else ""


def _segments(task: Task, cfg: EncodingConfig, test_index: int, answer: bool) -> list[tuple[str, str, bool]]:
    """(text, role, trained) pieces of the plain prompt, up to the test output marker, plus the answer."""
    if not 0 <= test_index < len(task.test):
        raise ValueError(
            f"task {task.id}: test_index {test_index} is out of range (it has {len(task.test)} test pair(s))"
        )
    test = task.test[test_index]
    if answer and test.output is None:
        raise ValueError(f"task {task.id}: test pair {test_index} has no known output to train on; use answer=False")
    fmt = cfg.format
    inp, outp = cfg.input_marker + "\n", cfg.output_marker + "\n"
    segs: list[tuple[str, str, bool]] = []
    for i, p in enumerate(task.train):
        assert p.output is not None, f"task {task.id}: train pair {i} has no output"  # the loaders require one
        segs += [
            (inp, "marker", False),
            (grid_to_text(p.input, fmt), "input", False),
            (outp, "marker", False),
            (grid_to_text(p.output, fmt), "output", cfg.loss_on == "outputs" and i >= 1),
        ]
    segs += [(inp, "marker", False), (grid_to_text(test.input, fmt), "test_input", False), (outp, "marker", False)]
    if answer and test.output is not None:
        segs.append((grid_to_text(test.output, fmt), "test_output", True))
    return segs


def _spans(segs: Sequence[tuple[str, str, bool]], start: int = 0) -> list[Span]:
    spans, pos = [], start
    for text, role, trained in segs:
        spans.append(Span(pos, pos + len(text), role, trained))
        pos += len(text)
    return spans


_VALID: set[EncodingConfig] = set()


def valid(cfg: EncodingConfig) -> EncodingConfig:
    """``cfg`` validated (remembered: a config is frozen, so one that passed once passes again; the sample stream
    encodes thousands of tasks a second with the same one)."""
    if cfg not in _VALID:
        cfg.validate()
        if len(_VALID) > 256:
            _VALID.clear()
        _VALID.add(cfg)
    return cfg


def encode_task(
    task: Task, cfg: EncodingConfig | None = None, tokenizer: Any = None, test_index: int = 0, answer: bool = True
) -> EncodedText:
    """The prompt text of ``task`` with labelled spans.

    ``answer=True`` appends the test output (and the end-of-sequence text of ``tokenizer``; ``</s>`` for the embedded
    tokenizer when ``tokenizer`` is None) for training; ``answer=False`` stops where generation starts (after the
    test output marker; with prompt arc24 after the opening ``"```grid"`` of the reply, as arc24 does).
    ``cfg.chat_template`` uses ``tokenizer.apply_chat_template`` when the tokenizer has a chat template and, for the
    markers prompt, falls back to the plain prompt otherwise (``EncodedText.template`` says which was used); the
    arc24 and marc prompts exist only as chat messages and raise ValueError without a chat template."""
    cfg = valid(cfg or EncodingConfig())
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if cfg.prompt != "markers":
        if not has_chat:
            raise ValueError(_needs_chat(cfg, tokenizer))
        from ttft.core.profiles import encode_chat, prompt_layout

        return encode_chat(task, prompt_layout(task, cfg, test_index, answer), answer, cfg.loss_on, tokenizer)
    segs = _segments(task, cfg, test_index, answer)
    if cfg.chat_template and has_chat:
        from ttft.core.profiles import ChatLayout, encode_chat

        layout = ChatLayout(None, tuple(segs[:-1]) if answer else tuple(segs), answer=(segs[-1],) if answer else ())
        return encode_chat(task, layout, answer, cfg.loss_on, tokenizer)
    if answer:
        eos = _eos_text(tokenizer)
        if eos:
            segs.append((eos, "eos", True))
    return EncodedText("".join(s[0] for s in segs), tuple(_spans(segs)), "plain")


Seg = tuple[str, str, bool]


def _needs_chat(cfg: EncodingConfig, tokenizer: Any) -> str:
    embedded = tokenizer is None or is_embedded(tokenizer)
    name = "the embedded tokenizer" if embedded else f"tokenizer {tokenizer_name(tokenizer)}"
    why = (
        ": the embedded model's 45-token vocabulary (digits, newline, space, ':', a-z and the two markers) cannot "
        "write its text either"
        if embedded
        else ""
    )
    return (
        f"prompt {cfg.prompt!r} is a chat prompt (system, user and assistant turns) and {name} has no chat "
        f"template{why}; use a tokenizer that has one (an instruct model's, e.g. a Qwen2.5-0.5B-Instruct folder) "
        "or prompt 'markers'"
    )


def val_encoding(cfg: EncodingConfig, covers: str = "test-output") -> EncodingConfig:
    """The encoding a val loss is computed with. ``test-output`` (ttft's definition): the loss on the test output and
    the end of sequence only; ``as-trained``: on the tokens training puts it on (``cfg.loss_on``; with arc24's
    profile the whole assistant reply, arc24's val loss)."""
    if covers not in VAL_COVERS:
        raise ValueError(f"val loss covers {covers!r}: choose one of {', '.join(VAL_COVERS)}")
    return cfg if covers == "as-trained" else cfg.replace(loss_on="test")


# --------------------------------------------------------------------------- tokenisation


@dataclass(frozen=True)
class TokenizedTask:
    """Token ids of an encoded task with its loss mask (int64 arrays of equal length)."""

    input_ids: np.ndarray
    labels: np.ndarray
    attention_mask: np.ndarray
    encoded: EncodedText
    max_seq_len: int

    @property
    def n_tokens(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def n_trained(self) -> int:
        """Tokens that carry the loss."""
        return int(np.count_nonzero(self.labels != IGNORE_INDEX))

    @property
    def fits(self) -> bool:
        """Whether the task fits in ``max_seq_len`` tokens."""
        return self.n_tokens <= self.max_seq_len

    def to_features(self) -> dict[str, list[int]]:
        """``input_ids`` / ``labels`` / ``attention_mask`` as lists, for a dataset or a collator."""
        return {
            "input_ids": self.input_ids.tolist(),
            "labels": self.labels.tolist(),
            "attention_mask": self.attention_mask.tolist(),
        }


def _fast_ids(encoded: EncodedText) -> tuple[np.ndarray, np.ndarray]:
    enc = fast_encoder()
    text = encoded.text
    pieces = [enc.encode(text[s.start : s.end]) for s in encoded.spans]
    ids = np.concatenate(pieces)
    trained = np.repeat([s.trained for s in encoded.spans], [len(p) for p in pieces])
    return ids, np.where(trained, ids, IGNORE_INDEX)


def _require_offsets(tokenizer: Any) -> None:
    """Character offsets (for loss masks and highlighting) come only from fast (tokenizers-backed) tokenizers."""
    if getattr(tokenizer, "is_fast", True) is False:
        raise TypeError(
            f"tokenizer {tokenizer_name(tokenizer)} cannot return character offsets; use a fast "
            "(tokenizers-backed) tokenizer"
        )


def _generic_ids(encoded: EncodedText, tokenizer: Any) -> tuple[np.ndarray, np.ndarray]:
    add_special = encoded.template == "plain"  # a chat template writes its own special tokens
    _require_offsets(tokenizer)
    enc = tokenizer(encoded.text, add_special_tokens=add_special, return_offsets_mapping=True)
    ids = np.asarray(enc["input_ids"], dtype=np.int64)
    offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    mask = np.zeros(len(encoded.text) + 1, dtype=np.int64)
    for a, b in encoded.ranges(True):
        mask[a + 1 : b + 1] = 1
    covered = np.cumsum(mask)
    trained = covered[offsets[:, 1]] - covered[offsets[:, 0]] > 0  # a token carries the loss if it overlaps
    return ids, np.where(trained, ids, IGNORE_INDEX)


def tokenize_task(
    task: Task,
    cfg: EncodingConfig | None = None,
    tokenizer: Any = None,
    test_index: int = 0,
    answer: bool = True,
    fast: bool = True,
) -> TokenizedTask:
    """Encode and tokenise ``task``. A token carries the loss (label = its id, otherwise -100) when it overlaps a
    trained span of :func:`encode_task`.

    ``tokenizer=None`` means the embedded tokenizer. For it (or any tokenizer :func:`ttft.tokenizer.is_embedded`
    recognises) and a plain prompt, ``fast=True`` uses the exact lookup-table encoder instead of calling the
    tokenizer; ``fast=False`` always calls the real tokenizer."""
    cfg = valid(cfg or EncodingConfig())
    if tokenizer is None and not fast:
        from ttft.core.tokenizer import load_tokenizer

        tokenizer = load_tokenizer()
    encoded = encode_task(task, cfg, tokenizer, test_index, answer)
    if fast and encoded.template == "plain" and (tokenizer is None or is_embedded(tokenizer)):
        ids, labels = _fast_ids(encoded)
    else:
        ids, labels = _generic_ids(encoded, tokenizer)
    return TokenizedTask(ids, labels, np.ones_like(ids), encoded, cfg.max_seq_len)


def count_tokens(task: Task, cfg: EncodingConfig | None = None, tokenizer: Any = None, answer: bool = True) -> int:
    """Number of tokens of the encoded task (fast for the embedded tokenizer)."""
    return tokenize_task(task, cfg, tokenizer, answer=answer).n_tokens


# --------------------------------------------------------------------------- one token per cell


class OneTokenPerCellError(ValueError):
    """A tokenizer that does not give exactly one token per grid cell in some format."""


def _probe_grids() -> list[np.ndarray]:
    """Grids holding every ordered pair of adjacent digits, and long runs of one digit."""
    pairs = np.array([[a if k % 2 == 0 else k // 2 for k in range(20)] for a in range(10)], dtype=np.uint8)
    runs = np.repeat(np.arange(10, dtype=np.uint8)[:, None], MAX_SIDE, axis=1)
    return [pairs, pairs.T.copy(), runs]


def _offsets(tokenizer: Any, text: str) -> tuple[list[str], np.ndarray]:
    from tokenizers import Tokenizer

    if isinstance(tokenizer, Tokenizer):
        enc = tokenizer.encode(text, add_special_tokens=False)
        return list(enc.tokens), np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
    _require_offsets(tokenizer)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    return list(tokens), np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)


def check_one_token_per_cell(tokenizer: Any, fmt: str = "minimal", cfg: EncodingConfig | None = None) -> None:
    """Raise :class:`OneTokenPerCellError` unless every cell of probe grids written in ``fmt`` (after an output
    marker) is covered by exactly one token that covers no other digit. The message names the format, the tokenizer
    and an example of what merged. Accepts a transformers tokenizer or a raw ``tokenizers.Tokenizer``."""
    _check_format(fmt)
    cfg = cfg or EncodingConfig()
    name = tokenizer_name(tokenizer)
    for grid in _probe_grids():
        prefix = cfg.output_marker + "\n"
        body = grid_to_text(grid, fmt)
        text = prefix + body
        cells = cell_offsets(grid.shape, fmt).ravel() + len(prefix)
        is_digit = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        is_digit = ((is_digit >= 48) & (is_digit <= 57)).astype(np.int64)
        digits_before = np.concatenate([[0], np.cumsum(is_digit)])
        tokens, offsets = _offsets(tokenizer, text)
        coverage = np.zeros(len(text), dtype=np.int64)
        for tok, (a, b) in zip(tokens, offsets):
            if b <= a:
                continue
            coverage[a:b] += 1
            n_digits = digits_before[b] - digits_before[a]
            if n_digits > 1 and np.any((cells >= a) & (cells < b)):
                line = text[text.rfind("\n", 0, a) + 1 : text.find("\n", b - 1)]
                raise OneTokenPerCellError(
                    f"tokenizer {name} does not give one token per cell in format {fmt!r}: token {tok!r} covers "
                    f"{text[a:b]!r} ({n_digits} digits) in the line {_clip(line)!r}"
                )
        bad = cells[coverage[cells] != 1]
        if bad.size:
            c = int(bad[0])
            raise OneTokenPerCellError(
                f"tokenizer {name} does not give one token per cell in format {fmt!r}: the cell at character {c} "
                f"({text[max(0, c - 3) : c + 4]!r}) is covered by {int(coverage[c])} tokens"
            )


def parse_output(
    text: str, cfg: EncodingConfig | None = None, tokenizer: Any = None, lenient: bool = False
) -> ParseResult:
    """Read a model's generated output grid: ``text_to_grid`` in ``cfg.format``, stopping at ``cfg``'s markers, the
    tokenizer's end-of-sequence text and common end texts (and MARC's ``#``). With prompt and format ``arc24`` the
    generation prompt ends with the opening of the fence (``"```grid"``), which is put back before parsing.
    ``lenient``: see :func:`text_to_grid`. Never raises for bad text."""
    cfg = cfg or EncodingConfig()
    stops = [cfg.input_marker, cfg.output_marker, *_DEFAULT_STOPS]
    eos = getattr(tokenizer, "eos_token", None)
    if isinstance(eos, str) and eos:
        stops.append(eos)
    if cfg.prompt == "marc":
        stops.append("#")  # MARC's end of an output
    if cfg.prompt == "arc24" and cfg.format == "arc24" and isinstance(text, str) and not text.lstrip().startswith("`"):
        text = ARC24_FENCE + text
    return text_to_grid(text, cfg.format, stop=stops, lenient=lenient)
