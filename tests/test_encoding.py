"""Tests of ttft.encoding and ttft.tokenizer (offline)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tokenizers import Tokenizer
from tokenizers.models import BPE
from tokenizers.processors import TemplateProcessing

from ttft.core.augment import AugmentOptions, random_spec, try_apply_task
from ttft.core.data import Pair, Task, load_dataset
from ttft.core.encoding import (
    IGNORE_INDEX,
    EncodingConfig,
    OneTokenPerCellError,
    check_one_token_per_cell,
    count_tokens,
    encode_task,
    parse_output,
    tokenize_task,
)
from ttft.core.gridtext import FORMATS, cell_offsets, grid_to_text, text_to_grid
from ttft.core.tokenizer import (
    ASSET_DIR,
    VOCAB,
    _backend,
    build_embedded_tokenizer,
    fast_encoder,
    is_embedded,
    load_tokenizer,
)

SETTINGS = settings(max_examples=150, deadline=None)


@st.composite
def grids(draw, max_side: int = 30):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    return draw(hnp.arrays(np.uint8, (h, w), elements=st.integers(0, 9)))


@st.composite
def tasks(draw, max_side: int = 8):
    train = tuple(Pair(draw(grids(max_side)), draw(grids(max_side))) for _ in range(draw(st.integers(1, 4))))
    return Task("t", train, (Pair(draw(grids(max_side)), draw(grids(max_side))),))


@pytest.fixture(scope="module")
def arc():
    return list(load_dataset("arc-agi-1/training"))


@pytest.fixture(scope="module")
def embedded():
    return load_tokenizer()


def _merging_tokenizer():
    """A BPE tokenizer that merges the digits "1" "2" into one token "12" (as Llama-3 merges digit runs)."""
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, **{str(d): d + 1 for d in range(10)}, "\n": 11, " ": 12, "12": 13, "<": 14, ">": 15}
    backend = Tokenizer(BPE(vocab, [("1", "2")], unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", name_or_path="test/merges-12")


# --------------------------------------------------------------------------- grid text


def test_formats_look_as_documented():
    g = np.array([[0, 1, 2], [3, 4, 0]], dtype=np.uint8)
    assert grid_to_text(g, "minimal") == "012\n340\n"
    assert grid_to_text(g, "shape+rows") == "shape: 2x3\n1 012\n2 340\n"
    assert grid_to_text(g, "separated") == "0 1 2\n3 4 0\n"
    with pytest.raises(ValueError, match="'csv'"):
        grid_to_text(g, "csv")


@SETTINGS
@given(grids(), st.sampled_from(FORMATS))
def test_encode_then_parse_is_identity(g, fmt):
    text = grid_to_text(g, fmt)
    res = text_to_grid(text, fmt)
    assert res.ok and res.reason is None
    assert res.grid.dtype == np.uint8 and np.array_equal(res.grid, g)
    offsets = cell_offsets(g.shape, fmt)
    assert "".join(text[i] for i in offsets.ravel()) == "".join(map(str, g.ravel()))


@SETTINGS
@given(st.text(alphabet="0123456789 \nshapex:<>/abc", max_size=80), st.sampled_from(FORMATS))
def test_parse_never_raises(text, fmt):
    res = text_to_grid(text, fmt)
    assert res.ok != bool(res.reason)


@pytest.mark.parametrize(
    "text, fmt, reason",
    [
        ("", "minimal", "empty"),
        ("01\n0a\n", "minimal", "row 2 '0a'"),
        ("01\n012\n", "minimal", "ragged grid: row 2 has 3 cells"),
        ("0 1\n01\n", "separated", "row 2 '01'"),
        ("1 01\n", "shape+rows", "header"),
        ("shape: 2x2\n1 01\n", "shape+rows", "header says 2x2 but the rows make 1x2"),
        ("shape: 2x2\n1 01\n3 01\n", "shape+rows", "row 2 is numbered 3"),
        ("0" * 31 + "\n", "minimal", "31"),
        ("01\n", "hex", "unknown format"),
    ],
)
def test_unparseable_text_is_reported(text, fmt, reason):
    res = text_to_grid(text, fmt)
    assert res.grid is None and reason in res.reason


def test_parse_output_stops_at_end_texts():
    cfg = EncodingConfig()
    assert parse_output("01\n10\n</s>garbage", cfg).grid.tolist() == [[0, 1], [1, 0]]
    assert parse_output("01\n10\n<input>\n55\n", cfg).grid.tolist() == [[0, 1], [1, 0]]
    tok = _merging_tokenizer()
    tok.eos_token = ">"
    assert parse_output("01\n>junk", cfg, tok).grid.tolist() == [[0, 1]]
    assert parse_output("shape: 1x2\n1 01\n", EncodingConfig(format="shape+rows")).grid.tolist() == [[0, 1]]


# --------------------------------------------------------------------------- prompts and masks


def _expected_trained(task: Task, cfg: EncodingConfig, eos: str = "</s>") -> str:
    outs = [p.output for p in task.train[1:]] if cfg.loss_on == "outputs" else []
    return "".join(grid_to_text(g, cfg.format) for g in outs) + grid_to_text(task.test[0].output, cfg.format) + eos


@SETTINGS
@given(tasks(), st.sampled_from(FORMATS), st.sampled_from(["test", "outputs"]))
def test_spans_cover_the_text_and_mask_exactly_the_outputs(task, fmt, loss_on):
    cfg = EncodingConfig(format=fmt, loss_on=loss_on)
    enc = encode_task(task, cfg)
    assert enc.spans[0].start == 0 and enc.spans[-1].end == len(enc.text)
    assert all(a.end == b.start for a, b in zip(enc.spans, enc.spans[1:]))
    assert enc.trained_text() == _expected_trained(task, cfg)
    trained_roles = {s.role for s in enc.spans if s.trained}
    assert trained_roles == (
        {"output", "test_output", "eos"} if loss_on == "outputs" and len(task.train) > 1 else {"test_output", "eos"}
    )
    first_out = next(s for s in enc.spans if s.role == "output")
    assert not first_out.trained  # the first example's output never carries the loss
    for s in enc.spans:
        if s.role in ("input", "test_input", "output", "test_output"):
            assert text_to_grid(enc.text[s.start : s.end], fmt).ok

    tok = tokenize_task(task, cfg)
    assert tok.input_ids.shape == tok.labels.shape == tok.attention_mask.shape
    ids = fast_encoder().encode(enc.text)
    assert np.array_equal(tok.input_ids, ids)
    trained = tok.labels != IGNORE_INDEX
    assert np.array_equal(tok.labels[trained], tok.input_ids[trained])
    assert tok.n_trained == len(fast_encoder().encode(_expected_trained(task, cfg)))


def test_prompt_for_generation_has_no_answer():
    task = Task("t", (Pair(np.eye(2, dtype=np.uint8), np.ones((1, 1), np.uint8)),), (Pair(np.zeros((1, 2), np.uint8)),))
    enc = encode_task(task, answer=False)
    assert enc.text == "<input>\n10\n01\n<output>\n1\n<input>\n00\n<output>\n"
    assert enc.ranges(True) == [] and enc.ranges(False) == [(0, len(enc.text))]
    with pytest.raises(ValueError, match="task t: test pair 0 has no known output"):
        encode_task(task)
    with pytest.raises(ValueError, match="test_index 3"):
        encode_task(task, test_index=3, answer=False)


def test_minimal_token_count_is_cells_rows_markers_and_eos(arc):
    for task in arc[:50]:
        grids_ = [g for p in task.train for g in (p.input, p.output)] + [task.test[0].input, task.test[0].output]
        expected = sum(g.size + g.shape[0] for g in grids_) + 2 * 2 * (len(task.train) + 1) + 1
        assert count_tokens(task) == expected, task.id


def test_fast_path_matches_the_real_tokenizer_on_arc(arc, embedded):
    opts = AugmentOptions(compose=("pad",), p_compose=0.3)
    rng = np.random.default_rng(0)
    for i, task in enumerate(arc):
        cfg = EncodingConfig(format=FORMATS[i % 3], loss_on=("test", "outputs")[i % 2])
        view = try_apply_task(task, random_spec(rng, opts, task)).task  # None when a pad makes it too big
        for t in (task, view or task):
            fast = tokenize_task(t, cfg)
            real = tokenize_task(t, cfg, embedded, fast=False)
            assert np.array_equal(fast.input_ids, real.input_ids), task.id
            assert np.array_equal(fast.labels, real.labels), task.id
    assert is_embedded(embedded) and is_embedded(build_embedded_tokenizer())


def test_real_tokenizer_masks_decode_to_the_outputs(arc, embedded):
    task = arc[0]
    cfg = EncodingConfig(loss_on="outputs")
    tok = tokenize_task(task, cfg, embedded, fast=False)
    trained = tok.input_ids[tok.labels != IGNORE_INDEX]
    assert embedded.decode(trained.tolist()) == _expected_trained(task, cfg)
    masked = tok.input_ids[tok.labels == IGNORE_INDEX]
    assert "".join(tok.encoded.text[a:b] for a, b in tok.encoded.ranges(False)) == embedded.decode(masked.tolist())


def test_generic_path_masks_added_special_tokens(arc):
    from transformers import PreTrainedTokenizerFast

    backend = _backend()
    backend.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", VOCAB["<s>"])])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    assert not is_embedded(tok)
    task = arc[1]
    res = tokenize_task(task, EncodingConfig(), tok)
    assert res.input_ids[0] == VOCAB["<s>"] and res.labels[0] == IGNORE_INDEX
    assert np.array_equal(res.input_ids[1:], tokenize_task(task).input_ids)
    assert np.array_equal(res.labels[1:], tokenize_task(task).labels)


def test_chat_template_spans(arc):
    tok = build_embedded_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}<s>{{ m.role }}:\n{{ m.content }}</s>\n{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant:\n{% endif %}"
    )
    task = arc[2]
    cfg = EncodingConfig(chat_template=True, format="separated")
    enc = encode_task(task, cfg, tok)
    answer = grid_to_text(task.test[0].output, "separated")
    assert enc.template == "chat" and enc.text.startswith("<s>user:\n<input>\n")
    assert enc.text.endswith("<s>assistant:\n" + answer + "</s>\n")
    assert enc.trained_text() == answer + "</s>"
    res = tokenize_task(task, cfg, tok)
    assert tok.decode(res.input_ids[res.labels != IGNORE_INDEX].tolist()) == answer + "</s>"
    prompt = encode_task(task, cfg, tok, answer=False)
    assert prompt.text.endswith("<output>\n</s>\n<s>assistant:\n") and prompt.ranges(True) == []
    # without a chat template the plain prompt is used and says so
    assert encode_task(task, cfg, build_embedded_tokenizer()).template == "plain"


def test_config_validate_and_round_trip():
    cfg = EncodingConfig(format="shape+rows", loss_on="outputs", chat_template=True, max_seq_len=2048)
    assert EncodingConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    assert set(EncodingConfig.HELP) == set(cfg.to_json())
    for field, value in [
        ("format", "csv"),
        ("loss_on", "all"),
        ("max_seq_len", 0),
        ("chat_template", "yes"),
        ("input_marker", "in1"),
        ("output_marker", ""),
    ]:
        with pytest.raises(ValueError, match=field):
            EncodingConfig(**{field: value}).validate()
    with pytest.raises(ValueError, match="'csv'"):
        EncodingConfig(format="csv").validate()


def test_fits_reports_long_tasks(arc):
    task = max(arc, key=count_tokens)
    assert not tokenize_task(task, EncodingConfig(max_seq_len=2048)).fits
    assert tokenize_task(task, EncodingConfig(max_seq_len=10_000)).fits


# --------------------------------------------------------------------------- tokenizers


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_token_per_cell_passes_on_the_embedded_tokenizer(embedded, fmt):
    check_one_token_per_cell(embedded, fmt)
    check_one_token_per_cell(_backend(), fmt)  # the raw tokenizers.Tokenizer too


def test_one_token_per_cell_fails_on_merged_digits():
    tok = _merging_tokenizer()
    assert tok("0120", add_special_tokens=False)["input_ids"] == [1, 13, 1]
    with pytest.raises(OneTokenPerCellError) as e:
        check_one_token_per_cell(tok, "minimal")
    msg = str(e.value)
    assert "'minimal'" in msg and "test/merges-12" in msg and type(tok).__name__ in msg
    assert "token '12' covers '12'" in msg and "in the line '10111213" in msg
    check_one_token_per_cell(tok, "separated")  # a space between cells stops the merge
    assert not is_embedded(tok)


def test_one_token_per_cell_fails_when_a_token_covers_a_whole_row():
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    backend = Tokenizer(WordLevel({"<unk>": 0, "0123456789": 1}, unk_token="<unk>"))
    backend.pre_tokenizer = Whitespace()
    with pytest.raises(OneTokenPerCellError, match="Tokenizer"):
        check_one_token_per_cell(backend, "minimal")


def test_embedded_tokenizer_is_one_token_per_cell_and_row_end(embedded):
    g = np.array([[0, 1, 2], [9, 8, 7]], dtype=np.uint8)
    ids = embedded(grid_to_text(g), add_special_tokens=False)["input_ids"]
    assert ids == [VOCAB[c] for c in "012\n987\n"] and len(ids) == g.size + g.shape[0]
    assert embedded("<input>\n<output>\n</s>", add_special_tokens=False)["input_ids"] == [
        VOCAB["<input>"],
        VOCAB["\n"],
        VOCAB["<output>"],
        VOCAB["\n"],
        VOCAB["</s>"],
    ]
    assert embedded.pad_token == "<pad>" and embedded.eos_token == "</s>" and len(embedded) == len(VOCAB)
    assert embedded("é")["input_ids"] == [VOCAB["<unk>"]] == fast_encoder().encode("é").tolist()


def test_embedded_tokenizer_round_trips_offline(tmp_path, monkeypatch):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = build_embedded_tokenizer()
    tok.save_pretrained(tmp_path)
    text = "<input>\nshape: 2x2\n1 01\n2 10\n<output>\n0 1\n</s>"
    for loaded in (
        AutoTokenizer.from_pretrained(tmp_path),
        PreTrainedTokenizerFast.from_pretrained(tmp_path),
        load_tokenizer(tmp_path),
    ):
        assert loaded(text)["input_ids"] == tok(text)["input_ids"] == fast_encoder().encode(text).tolist()
        assert loaded.get_vocab() == VOCAB and loaded.eos_token == "</s>"
        assert is_embedded(loaded)


def test_shipped_files_equal_a_fresh_build(tmp_path):
    build_embedded_tokenizer().save_pretrained(tmp_path)
    shipped = sorted(p.name for p in ASSET_DIR.iterdir())
    assert shipped == sorted(p.name for p in tmp_path.iterdir())
    for name in shipped:
        assert json.loads((ASSET_DIR / name).read_text()) == json.loads((tmp_path / name).read_text()), name


def test_load_tokenizer_names_a_bad_path(tmp_path):
    with pytest.raises(ValueError, match=re.escape(f"tokenizer folder '{tmp_path / 'nothing'}' does not exist")):
        load_tokenizer(tmp_path / "nothing")
    with pytest.raises(ValueError, match=re.escape(f"cannot load a tokenizer from '{tmp_path}'")):
        load_tokenizer(tmp_path)


def test_slow_tokenizer_is_refused_with_its_name():
    class SlowTokenizer:
        is_fast = False
        name_or_path = "some/slow-tokenizer"

        def __call__(self, *a, **k):
            raise AssertionError("must be refused before tokenising")

    task = Task(
        "t1",
        [Pair(np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8))] * 2,
        [Pair(np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8))],
    )
    with pytest.raises(TypeError, match=r"some/slow-tokenizer \(SlowTokenizer\) cannot return character offsets"):
        tokenize_task(task, EncodingConfig(), SlowTokenizer())
    with pytest.raises(TypeError, match="cannot return character offsets"):
        check_one_token_per_cell(SlowTokenizer())


# --------------------------------------------------------------------------- issue 14: reference formats, lenient parse


def test_reference_grid_formats_look_as_their_systems_write_them():
    g = np.array([[0, 1, 2], [3, 4, 0]], dtype=np.uint8)
    # arc24's GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder())), plus ttft's final newline
    assert grid_to_text(g, "arc24") == "```grid shape: 2x3\n1 012\n2 340\n```\n"
    # MARC's PythonListGridRepresenter: numpy's str of the array
    assert grid_to_text(g, "numpy") == "[[0 1 2]\n [3 4 0]]\n" == str(g.astype(int)) + "\n"
    assert grid_to_text(np.array([[7]], np.uint8), "numpy") == "[[7]]\n"


@pytest.mark.parametrize(
    "text, fmt, strict_reason, lenient",
    [
        # arc24's parser ignores the header's numbers and the row numbers and keeps the rows
        (
            "```grid shape: 3x3\n1 012\n2 340\n```",
            "arc24",
            "header says 3x3 but the rows make 2x3",
            [[0, 1, 2], [3, 4, 0]],
        ),
        ("```grid shape: 2x3\n1 012\n5 340\n```", "arc24", "row 2 is numbered 5", [[0, 1, 2], [3, 4, 0]]),
        ("shape: 9x9\n1 01\n1 10\n", "shape+rows", "row 2 is numbered 1", [[0, 1], [1, 0]]),
        ("[[0 1]\n [1 0]\n", "numpy", "is not a numpy row", [[0, 1], [1, 0]]),
    ],
)
def test_lenient_parse_keeps_the_rows_where_strict_refuses(text, fmt, strict_reason, lenient):
    strict = text_to_grid(text, fmt)
    assert strict.grid is None and strict_reason in strict.reason
    assert text_to_grid(text, fmt, lenient=True).grid.tolist() == lenient
    # what neither reads: ragged rows, letters
    assert not text_to_grid("```grid shape: 2x2\n1 01\n2 0\n```", "arc24", lenient=True).ok
    assert not text_to_grid("shape: 2x2\n1 0a\n", "shape+rows", lenient=True).ok


def test_parse_output_reads_the_continuation_of_arc24s_prompt_and_marcs_footer():
    arc24 = EncodingConfig(format="arc24", prompt="arc24", chat_template=True, loss_on="reply")
    assert parse_output(" shape: 1x2\n1 01\n```<|im_end|>", arc24).grid.tolist() == [[0, 1]]
    assert parse_output(" shape: 1x3\n1 01\n```", arc24).grid is None  # strict: the header disagrees
    assert parse_output(" shape: 1x3\n1 01\n```", arc24, lenient=True).grid.tolist() == [[0, 1]]
    marc = EncodingConfig(format="numpy", prompt="marc", chat_template=True)
    assert parse_output("[[0 1]\n [2 3]]#<|eot_id|>", marc).grid.tolist() == [[0, 1], [2, 3]]


def test_chat_prompts_need_the_chat_template_and_a_tokenizer_that_has_one(arc):
    with pytest.raises(ValueError, match="chat_template: must be on with prompt 'arc24'"):
        EncodingConfig(prompt="arc24").validate()
    cfg = EncodingConfig(format="arc24", prompt="arc24", chat_template=True)
    with pytest.raises(ValueError, match="chat prompt .* embedded tokenizer has no chat template"):
        encode_task(arc[0], cfg)
    # ttft's markers prompt with loss on the reply and a chat template: the whole assistant turn carries the loss
    tok = build_embedded_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    enc = encode_task(arc[0], EncodingConfig(chat_template=True, loss_on="reply"), tok)
    answer = grid_to_text(arc[0].test[0].output, "minimal")
    assert enc.trained_text() == "\n" + answer + "<|im_end|>\n"
