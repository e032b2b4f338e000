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
        self._lens: dict[tuple[int, int], int] = {}

    def grid_len(self, h: int, w: int) -> int:
        """Tokens of the text of an ``h x w`` grid."""
        n = self._lens.get((h, w))
        if n is None:
            n = self._lens[(h, w)] = len(grid_template(self.fmt, h, w))
        return n

    def features(
        self, train: Sequence[Pair], test: Pair, spec: AugmentSpec, trim: bool
    ) -> tuple[dict[str, list[int]] | None, int]:
        """The features (``input_ids``, ``labels``, ``attention_mask`` lists) of the view ``spec`` of a task with
        these train pairs (already in the view's order; every output known) and this test pair (output known),
        and how many leading train pairs were dropped to fit ``max_seq_len`` (``trim``: while it does not fit and
        more than one train pair is left; without it none). None when the text does not fit.

        The spec's composition steps must not take a grid over 30x30 (:func:`ttft.core.augment.check_fits`)."""
        swap = _RF[spec.geometric][0] % 2 == 1
        steps = spec.steps
        lens = self._lens

        def shape(g: Grid, role: str) -> tuple[int, int]:
            h, w = g.shape
            if swap:
                h, w = w, h
            for s in steps:
                if s.applies_to(role):
                    h, w = s.out_shape(h, w)
            return h, w

        def size(g: Grid, role: str) -> int:
            hw = shape(g, role)
            n = lens.get(hw)
            return self.grid_len(*hw) if n is None else n

        markers = len(self.in_ids) + len(self.out_ids)
        sizes = [markers + size(p.input, "input") + size(p.output, "output") for p in train]  # type: ignore[arg-type]
        test_out = size(test.output, "output")  # type: ignore[arg-type]
        total = sum(sizes) + markers + size(test.input, "input") + test_out + len(self.eos_ids)
        drop = 0
        if trim:
            while total > self.max_len and drop < len(sizes) - 1:
                total -= sizes[drop]
                drop += 1
        if total > self.max_len:
            return None, drop
        # the text: every grid's template, CELL where its cells go; the cells: every grid's, in the same order
        view = _VIEWS[spec.geometric]
        fmt, templates = self.fmt, _templates
        in_ids, out_ids = self.in_ids, self.out_ids
        pieces: list[np.ndarray] = []
        cells: list[np.ndarray] = []
        outputs: list[int] = []  # with loss_on outputs: the pieces of the trained train outputs
        grids = [(p.input, p.output) for p in train[drop:]] + [(test.input, test.output)]
        for j, (gi, go) in enumerate(grids):
            for g, marker, role in ((gi, in_ids, "input"), (go, out_ids, "output")):
                v = view(g)
                if steps:
                    v = spec._lut[v]
                    for s in steps:
                        if s.applies_to(role):
                            v = s.apply(v)
                t = templates.get((fmt, *v.shape))
                pieces += [marker, grid_template(fmt, *v.shape) if t is None else t]
                cells.append(v.ravel())
            if self.loss_outputs and 1 <= j < len(grids) - 1:
                outputs.append(len(pieces) - 1)
        pieces.append(self.eos_ids)
        ids = np.concatenate(pieces)
        ids_of = _IDENTITY_IDS if steps else np.add(np.array(spec.colors, dtype=np.int64), ZERO_ID)
        ids[ids == CELL] = ids_of[np.concatenate(cells)]
        n = len(ids)
        id_list = ids.tolist()
        tail = test_out + len(self.eos_ids)
        if outputs:
            labels = np.full(n, IGNORE_INDEX, dtype=np.int64)
            starts = np.cumsum([0] + [len(x) for x in pieces])
            for k in outputs:
                a, b = int(starts[k]), int(starts[k + 1])
                labels[a:b] = ids[a:b]
            labels[n - tail :] = ids[n - tail :]
            label_list = labels.tolist()
        else:
            label_list = [IGNORE_INDEX] * (n - tail) + id_list[n - tail :]
        return {"input_ids": id_list, "labels": label_list, "attention_mask": [1] * n}, drop
