"""Exact embedded-tokenizer features of an augmented task view, built from the grids (the sample stream's fast path).

With the embedded tokenizer every character of a grid's text is one token (digits, newline, space, ``:`` and
letters; any other character, numpy's brackets or arc24's backticks, one ``<unk>``), and grid text holds no ``<``
(the start of the marker and special tokens). Hence:

* the number of tokens of a grid depends only on its shape and format (:meth:`ViewEncoder.grid_len`), so the length
  of a task's text is arithmetic on the shapes of its grids, and trimming (dropping leading train pairs until the
  text fits ``max_seq_len``) is decided before any text is written or any grid is augmented;
* the ids of a grid's text are those of a template cached per shape and format (the text's ids with
  :data:`CELL` at each cell's offset, :func:`ttft.core.gridtext.cell_offsets`) with each cell's colour's id
  written in; a sample is one concatenation of its templates and markers, and its cells (the dihedral transform
  a numpy view of each grid) go through one table of ids that folds in the colour permutation, in one assignment.

:meth:`ViewEncoder.features` equals :func:`ttft.core.encoding.tokenize_task` (plain markers prompt, embedded
tokenizer) of :func:`ttft.core.augment.apply_task`'s view after the exact trimming loop of the stream:
tests/test_samples_exact.py compares the streams, tests/test_encoding.py the grid templates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ttft.core.augment import _RF, _VIEWS, AugmentSpec
from ttft.core.compose import ROLES, Step
from ttft.core.data import Grid, Pair
from ttft.core.encoding import IGNORE_INDEX, EncodingConfig, valid
from ttft.core.gridtext import cell_offsets, grid_to_text
from ttft.core.tokenizer import EOS, VOCAB, fast_encoder

#: token id of colour c is ``ZERO_ID + c``
ZERO_ID = VOCAB["0"]
_IDENTITY_IDS = np.arange(ZERO_ID, ZERO_ID + 10, dtype=np.int64)
#: where a template holds a cell (no token id is negative)
CELL = -1

_templates: dict[tuple[str, int, int], np.ndarray] = {}


def grid_template(fmt: str, h: int, w: int) -> np.ndarray:
    """The token ids of the text of an ``h x w`` grid in ``fmt``, :data:`CELL` where a cell is (read-only, cached);
    the cells are in row-major order, as in the text."""
    key = (fmt, h, w)
    got = _templates.get(key)
    if got is None:
        got = np.array(fast_encoder().encode(grid_to_text(np.zeros((h, w), dtype=np.uint8), fmt)), dtype=np.int64)
        got[cell_offsets((h, w), fmt).ravel()] = CELL
        got.flags.writeable = False
        if len(_templates) > 8192:
            _templates.clear()
        _templates[key] = got
    return got


def grid_ids(grid: Grid, fmt: str, ids_of: np.ndarray = _IDENTITY_IDS) -> np.ndarray:
    """The embedded tokenizer's ids of ``grid_to_text(grid, fmt)``, ``ids_of[c]`` the id written for colour c."""
    out = grid_template(fmt, *grid.shape).copy()
    out[out == CELL] = ids_of[grid].ravel()
    return out


class ViewEncoder:
    """Features of augmented task views for one encoding (markers prompt, embedded tokenizer)."""

    def __init__(self, cfg: EncodingConfig):
        if cfg.prompt != "markers":
            raise ValueError(f"prompt {cfg.prompt!r} is a chat prompt: a view encoder writes the markers prompt only")
        cfg = valid(cfg)
        enc = fast_encoder()
        self.fmt = cfg.format
        self.max_len = cfg.max_seq_len
        self.loss_outputs = cfg.loss_on == "outputs"
        self.in_ids = np.array(enc.encode(cfg.input_marker + "\n"))
        self.out_ids = np.array(enc.encode(cfg.output_marker + "\n"))
        self.eos_ids = np.array(enc.encode(EOS))
        self._templates: dict[tuple[int, ...], np.ndarray] = {}  # this format's templates by shape

    def template(self, shape: tuple[int, ...]) -> np.ndarray:
        """:func:`grid_template` of this format for a grid of this shape."""
        t = self._templates.get(shape)
        if t is None:
            t = self._templates[shape] = grid_template(self.fmt, *shape)
        return t

    def grid_len(self, h: int, w: int) -> int:
        """Tokens of the text of an ``h x w`` grid."""
        return len(self.template((h, w)))

    def features(
        self, train: Sequence[Pair], test: Pair, spec: AugmentSpec, trim: bool
    ) -> tuple[dict[str, list[int]] | None, int]:
        """The features (``input_ids``, ``labels``, ``attention_mask`` lists) of the view ``spec`` of a task with
        these train pairs (already in the view's order; every output known) and this test pair (output known),
        and how many leading train pairs were dropped to fit ``max_seq_len`` (``trim``: while it does not fit and
        more than one train pair is left; without it none). None when the text does not fit.

        The spec's composition steps must not take a grid over 30x30 (:func:`ttft.core.augment.check_fits`)."""
        grids: list[Grid] = [g for p in (*train, test) for g in (p.input, p.output)]  # type: ignore[misc]
        steps = spec.steps
        swap = _RF[spec.geometric][0] % 2 == 1
        if steps:
            shapes = [_shape_after(g.shape, swap, steps, ROLES[k & 1]) for k, g in enumerate(grids)]
        else:
            shapes = [g.shape[::-1] for g in grids] if swap else [g.shape for g in grids]
        known = self._templates
        templates = [known[s] if s in known else self.template(s) for s in shapes]
        lens = list(map(len, templates))
        markers = len(self.in_ids) + len(self.out_ids)
        sizes = [markers + lens[k] + lens[k + 1] for k in range(0, len(lens) - 2, 2)]
        total = sum(sizes) + markers + lens[-2] + lens[-1] + len(self.eos_ids)
        drop = 0
        if trim:
            while total > self.max_len and drop < len(sizes) - 1:
                total -= sizes[drop]
                drop += 1
        if total > self.max_len:
            return None, drop
        # the text: the kept grids' templates (CELL where the cells go) and the markers; then all their cells, in
        # the same order, through one table of ids
        first = 2 * drop
        marker = (self.in_ids, self.out_ids)
        pieces = [x for k in range(first, len(grids)) for x in (marker[k & 1], templates[k])]
        pieces.append(self.eos_ids)
        view = _VIEWS[spec.geometric]
        if steps:
            lut = spec._lut
            cells = []
            for k in range(first, len(grids)):
                v = lut[view(grids[k])]
                for st in steps:
                    if st.applies_to(ROLES[k & 1]):
                        v = st.apply(v)
                cells.append(v.ravel())
            ids_of = _IDENTITY_IDS
        else:
            cells = [view(g).ravel() for g in grids[first:]]
            ids_of = np.add(np.array(spec.colors, dtype=np.int64), ZERO_ID)
        ids = np.concatenate(pieces)
        np.place(ids, ids == CELL, ids_of[np.concatenate(cells)])  # as many cells as CELL marks, in order
        n = len(ids)
        id_list = ids.tolist()
        tail = lens[-1] + len(self.eos_ids)
        if self.loss_outputs and len(grids) - first > 4:  # the outputs of the kept train pairs after the first
            labels = np.full(n, IGNORE_INDEX, dtype=np.int64)
            ends = np.cumsum([len(x) for x in pieces])
            for k in range(7, len(pieces) - 5, 4):  # pieces: (marker, input, marker, output) per pair, then eos
                a, b = int(ends[k - 1]), int(ends[k])
                labels[a:b] = ids[a:b]
            labels[n - tail :] = ids[n - tail :]
            label_list = labels.tolist()
        else:
            label_list = [IGNORE_INDEX] * (n - tail) + id_list[n - tail :]
        return {"input_ids": id_list, "labels": label_list, "attention_mask": [1] * n}, drop


def _shape_after(shape: tuple[int, ...], swap: bool, steps: Sequence[Step], role: str) -> tuple[int, int]:
    h, w = shape[::-1] if swap else shape
    for s in steps:
        if s.applies_to(role):
            h, w = s.out_shape(h, w)
    return h, w
