"""Profiles (issue 14): the reference systems' definitions as option values, checked against fixtures written by hand
from their repositories (ironbar/arc24, ekinakyurek/marc), and the seed experiment's definitions."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ttft.core.augment import DIHEDRAL, AugmentSpec, apply_task, compose, invert_grid
from ttft.core.data import Pair, Task, load_dataset
from ttft.core.encoding import IGNORE_INDEX, EncodingConfig, encode_task, parse_output, tokenize_task
from ttft.core.gridtext import grid_to_text
from ttft.core.leaveout import leave_out_parent
from ttft.core.profiles import (
    MARC_AUGMENTERS,
    PROFILE_NAMES,
    check_encodable,
    marc_color_map,
    marc_spec,
    preview_tokenizer,
    profile_base,
    view_specs,
)
from ttft.engine.models import ModelConfig, attach_lora, tiny_model_config
from ttft.engine.predict_config import PredictConfig
from ttft.engine.samples import SampleStream, ValSet, source_tasks
from ttft.engine.train_config import TrainConfig
from ttft.options import ConfigError, apply_args

ROOT = Path(__file__).resolve().parents[1]


def a(x):
    return np.array(x, dtype=np.uint8)


#: a tiny task: two train pairs, one test pair
TINY = Task(
    "tiny",
    (Pair(a([[1, 0], [0, 1]]), a([[0, 1], [1, 0]])), Pair(a([[2]]), a([[3, 3]]))),
    (Pair(a([[4, 0, 4]]), a([[0, 4, 0]])),),
)

# arc24's system_prompt_v0 (scripts/arc24/prompting.py), typed out again for the fixture: note the spaces that end its
# first three lines and its final newline
ARC24_SYSTEM = """You are a helpful AI assistant. Your job is to solve tasks from the Abstraction and Reasoning Challenge (ARC). 
The user will present you with sample input and output grids for each task. 
Your job will be to understand the transformation between the input and the output and apply it to the last input grid given by the user. 
The puzzle-like inputs and outputs present a grid where each square can be one of ten colors. A grid can be any height or width between 1x1 and 30x30.
The background of the grid is typically colored with 0.
The tasks from ARC are based on the following priors:

- Objectness: Objects persist and cannot appear or disappear without reason. Objects can interact or not depending on the circumstances.
- Goal-directed: Objects can be animate or inanimate. Some objects are "agents" - they have intentions and they pursue goals.
- Numbers & counting: Objects can be counted or sorted by their shape, appearance, or movement using basic mathematics like addition, subtraction, and comparison.
- Basic geometry & topology: Objects can be shapes like rectangles, triangles, and circles which can be mirrored, rotated, translated, deformed, combined, repeated, etc. Differences in distances can be detected.

The transformations between input and output should be based on these priors.
"""  # noqa: E501, W291

# The user message of arc24's prompt_template_v0 rendered by jinja2 (whose default drops the template's final
# newline) for TINY, each grid through GridShapeEncoder(RowNumberEncoder(MinimalGridEncoder())): a fence with the
# shape on its first line, numbered rows, a closing fence, and no newline after it
ARC24_USER = (
    "Let's see if you can solve this simple ARC task. These are some input-output grid examples that define the task.\n"
    "\n## Example 1\n\n### Input\n\n```grid shape: 2x2\n1 10\n2 01\n```\n\n### Output\n\n```grid shape: 2x2\n1 01\n"
    "2 10\n```\n"
    "\n## Example 2\n\n### Input\n\n```grid shape: 1x1\n1 2\n```\n\n### Output\n\n```grid shape: 1x2\n1 33\n```\n"
    "\n## Test case\n\n### Input\n\n```grid shape: 1x3\n1 404\n```"
)
# the assistant message (answer_template_v0) and the ChatML turns of Qwen2/Qwen2.5's template with a system message
ARC24_REPLY = "### Output\n\n```grid shape: 1x3\n1 040\n```"
ARC24_TEXT = (
    f"<|im_start|>system\n{ARC24_SYSTEM}<|im_end|>\n<|im_start|>user\n{ARC24_USER}<|im_end|>\n"
    f"<|im_start|>assistant\n{ARC24_REPLY}<|im_end|>\n"
)
# DataCollatorForCompletionOnlyLM(response_template='<|im_start|>assistant'): every token after it carries the loss
ARC24_TRAINED = f"\n{ARC24_REPLY}<|im_end|>\n"
# inference: the conversation with the reply '### Output\n\n```grid', cut at its last <|im_end|>
ARC24_PROMPT = (
    ARC24_TEXT[: ARC24_TEXT.index("<|im_start|>assistant\n")] + "<|im_start|>assistant\n### Output\n\n```grid"
)

# MARC's GPTTextMessageRepresenterV2 with README's --new_format formatter (io_sep ' -> ', output_footer '#',
# PythonListGridRepresenter: numpy's str of the array), each message stripped, in Llama-3's chat format
MARC_TEXT = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    "Figure out the underlying transformation in the following examples and apply it to the test case. Here are some "
    "examples from this transformation, your answer must follow the format.\n"
    "The input-output grids are provided as python arrays:\n"
    "[[1 0]\n [0 1]] -> [[0 1]\n [1 0]]#\n[[2]] -> [[3 3]]#<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n[[4 0 4]] -><|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n[[0 4 0]]#<|eot_id|>"
)
# unmask_outputs: every output after the first example; and the assistant's answer with its end of turn
MARC_TRAINED = "[[3 3]]" + "[[0 4 0]]#<|eot_id|>"


def profile_cfg(kind: str, name: str, cls, *flags: str):
    """A config as the command line makes it: the profile's values under the flags given."""
    from ttft.engine.commands import add_predict_arguments, add_train_arguments

    p = argparse.ArgumentParser()
    (add_train_arguments if kind == "train" else add_predict_arguments)(p)
    args = p.parse_args(["--profile", name, *flags])
    return apply_args(cls, args, profile_base(kind, args.profile, None))


# --------------------------------------------------------------------------- the arc24 profile's text


def test_arc24_profile_text_is_arc24s_prompt_exactly():
    cfg = profile_cfg("train", "arc24", TrainConfig).encoding
    tok = preview_tokenizer("preview-chatml")
    enc = encode_task(TINY, cfg, tok)
    assert enc.text == ARC24_TEXT
    assert enc.trained_text() == ARC24_TRAINED  # the loss on the whole reply, end of turn and newline included
    assert enc.template == "chat"
    tt = tokenize_task(TINY, cfg, tok)
    assert tok.decode(tt.input_ids[tt.labels != IGNORE_INDEX].tolist()) == ARC24_TRAINED
    gen = encode_task(TINY, cfg, tok, answer=False)
    assert gen.text == ARC24_PROMPT and gen.ranges(True) == []
    # what a model writes after that prompt is read back (arc24 prepends the '```grid' of the prompt)
    assert parse_output(" shape: 1x3\n1 040\n```<|im_end|>", cfg, tok).grid.tolist() == [[0, 4, 0]]
    # val loss as arc24 defines it: the same tokens as the training loss (ttft's own: the test output only)
    vcfg = profile_cfg("train", "arc24", TrainConfig, "--val", "none")
    val = ValSet([TINY], vcfg, tok)
    assert val.covers.startswith("the whole assistant reply")
    assert [t for t in val[0]["labels"] if t != IGNORE_INDEX] == tt.labels[tt.labels != IGNORE_INDEX].tolist()
    assert "the test output" in ValSet([TINY], TrainConfig(), None).covers


def test_marc_profile_text_is_marcs_format_with_the_loss_on_later_outputs():
    cfg = profile_cfg("train", "marc", TrainConfig).encoding
    tok = preview_tokenizer("preview-llama3")
    enc = encode_task(TINY, cfg, tok)
    assert enc.text == MARC_TEXT
    assert enc.trained_text() == MARC_TRAINED
    first = next(s for s in enc.spans if s.role == "output")
    assert not first.trained and enc.text[first.start : first.end] == "[[0 1]\n [1 0]]"
    gen = encode_task(TINY, cfg, tok, answer=False)
    assert gen.text.endswith("[[4 0 4]] -><|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert parse_output("[[0 4 0]]#<|eot_id|>", cfg, tok).grid.tolist() == [[0, 4, 0]]


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=st.integers(0, 9)))
def test_numpy_format_is_numpys_own_str(g):
    assert grid_to_text(g, "numpy") == str(g.astype(int)) + "\n"


def test_the_embedded_tokenizer_cannot_write_a_chat_profile_and_says_so():
    cfg = profile_cfg("train", "arc24", TrainConfig)
    with pytest.raises(ConfigError, match=r"encoding.prompt: prompt 'arc24' is a chat prompt .* embedded tokenizer"):
        check_encodable(cfg.encoding, None)
    with pytest.raises(ConfigError, match="chat template"):
        source_tasks(TINY, cfg, None)  # a run refuses before any work (training_sources, jobs launch)
    with pytest.raises(ConfigError, match=r"'\[' '\]' would become unknown tokens"):
        check_encodable(EncodingConfig(format="numpy"), None)
    check_encodable(cfg.encoding, preview_tokenizer())  # a tokenizer that can write it
    check_encodable(EncodingConfig(), None)  # ttft's own text on the embedded tokenizer


# --------------------------------------------------------------------------- applying profiles


def test_a_profile_is_the_base_under_explicit_flags_and_is_recorded():
    cfg = profile_cfg("train", "arc24", TrainConfig, "--steps", "12", "--lora-dropout", "0.0")
    assert cfg.profile == "arc24" and cfg.steps == 12 and cfg.model.lora_dropout == 0.0  # flags win
    assert cfg.lr == 8e-5 and cfg.scheduler == "linear" and cfg.per_task and cfg.augment.p_bg == 0.1
    assert cfg.model.use_rslora and cfg.model.use_dora and cfg.model.target_modules == "q_proj,k_proj,v_proj,o_proj"
    assert (cfg.encoding.format, cfg.encoding.prompt, cfg.encoding.loss_on) == ("arc24", "arc24", "reply")
    assert cfg.val_loss_on == "as-trained" and cfg.to_json()["profile"] == "arc24"
    assert TrainConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg  # config.json round trip
    marc = profile_cfg("train", "marc", TrainConfig)
    assert (marc.leave_out, marc.n2_only, marc.augment_recipe, marc.model.lora_r) == (2, False, "marc", 128)
    # the default stays ttft's own: nothing of a profile leaks into it
    d = TrainConfig()
    assert d.profile == "ttft" and d.encoding.prompt == "markers" and d.encoding.loss_on == "test"
    assert d.augment.p_bg == 0.0 and not d.model.use_dora and d.val_loss_on == "test-output"
    assert profile_cfg("train", "ttft", TrainConfig).to_json() == TrainConfig().to_json()
    # a profile's text cannot be changed under it, and a profile named without its values is refused
    with pytest.raises(ConfigError, match="encoding.format: profile 'arc24' defines it as 'arc24'"):
        profile_cfg("train", "arc24", TrainConfig, "--format", "minimal")
    with pytest.raises(ConfigError, match="profile 'marc' defines"):
        TrainConfig(profile="marc").validate()
    assert set(PROFILE_NAMES) == {"ttft", "arc24", "marc"}


def test_predict_profile_and_bare_model_encoding(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    cfg = profile_cfg("predict", "arc24", PredictConfig, "--run", str(run))
    assert cfg.profile == "arc24" and not cfg.identity_view and cfg.p_bg == 0.1 and cfg.shuffle
    assert cfg.lenient_parse and cfg.val_loss_on == "as-trained" and cfg.views == 8
    assert PredictConfig(run=str(run)).identity_view and not PredictConfig(run=str(run)).lenient_parse
    enc = PredictConfig(base_model="default", dataset="x", prompt="arc24").bare_encoding()
    assert (enc.format, enc.prompt, enc.chat_template, enc.loss_on) == ("arc24", "arc24", True, "reply")
    assert PredictConfig(base_model="default", dataset="x").bare_encoding() == EncodingConfig(max_seq_len=8192)


def test_every_new_option_round_trips_on_the_command_line(tmp_path):
    from ttft.engine import commands

    cfg = TrainConfig(
        mode="ttft",
        leave_out=2,
        n2_only=True,
        task_weighting="leave-out",
        augment_recipe="marc",
        val_loss_on="as-trained",
        model=ModelConfig(use_rslora=True, use_dora=True, lora_dropout=0.1),
        encoding=EncodingConfig(format="arc24", prompt="marc", chat_template=True, loss_on="reply"),
    )
    argv = commands.train_argv(cfg)
    assert argv is not None and commands.parse_train_argv(argv)[0].to_json() == cfg.to_json()
    for flag in (
        "--n2-only",
        "--task-weighting",
        "--augment-recipe",
        "--val-loss-on",
        "--use-rslora",
        "--use-dora",
        "--prompt",
    ):
        assert flag in argv


# --------------------------------------------------------------------------- inference views


def test_ttft_views_are_unchanged_and_arc24_views_colour_and_shuffle_every_view():
    from ttft.engine.views import view_specs as engine_view_specs

    task = load_dataset("arc-agi-1/evaluation")["00576224"]
    for kw in ({}, {"colors": "all"}, {"colors": "none", "views": 4}, {"shuffle": True, "seed": 3}):
        pc = PredictConfig(base_model="default", dataset="x", **kw)
        assert view_specs(
            task, pc.views, pc.transforms, pc.colors, pc.p_bg, pc.shuffle, pc.identity_view, pc.seed
        ) == engine_view_specs(task, pc)  # a drop-in for engine.views.view_specs
    specs = view_specs(task, 8, DIHEDRAL, "keep-bg", 0.1, True, identity_view=False)
    assert sorted(s.geometric for s in specs) == sorted(DIHEDRAL)  # 8 views: each transform once
    assert all(s.order is not None and s.colors != tuple(range(10)) for s in specs)
    assert not specs[0].is_identity
    moved = [
        s.colors[0] != 0
        for k in range(300)
        for s in view_specs(task, 8, DIHEDRAL, "keep-bg", 0.1, True, identity_view=False, seed=k)
    ]
    assert abs(np.mean(moved) - 0.09) < 0.025  # background in ~9 % of the views (p 0.1 times 9/10)


def test_arc24_transform_names_map_to_ttfts():
    # arc24's geometric_augmentation: hflip (np.flip axis 1) first, then np.rot90(k) (counter-clockwise)
    g = np.arange(6, dtype=np.uint8).reshape(2, 3)
    for hflip in (False, True):
        for k in range(4):
            ref = np.rot90(np.flip(g, axis=1) if hflip else g, k=k)
            name = compose("flip_h" if hflip else "identity", ("identity", "rot270", "rot180", "rot90")[k])
            assert np.array_equal(apply_task(Task("g", (), (Pair(g),)), AugmentSpec(name)).test[0].input, ref)


# --------------------------------------------------------------------------- MARC's augmenters


def test_marc_augmenters_are_marcs_and_invertible():
    g = np.arange(6, dtype=np.uint8).reshape(2, 3)
    by_name = dict(MARC_AUGMENTERS)
    expect = {
        "Rotate(90)": np.rot90(g, 1),
        "Rotate(270)": np.rot90(g, 3),
        "Flip(0)": np.flipud(g),
        "Flip(1)": np.fliplr(g),
        "Reflect(0, reverse=True)": np.concatenate([np.flipud(g), g], 0),
        "Reflect(1, reverse=False)": np.concatenate([g, np.fliplr(g)], 1),
        "Transpose()": g.T,
        "IncreaseHeight(2)": np.repeat(g, 2, 0),
        "Chain([Rotate(90), IncreaseResolution(2)])": np.repeat(np.repeat(np.rot90(g), 2, 0), 2, 1),
        "Repeat(2, 2)": np.tile(g, (2, 2)),
    }
    for name, want in expect.items():
        view = apply_task(Task("g", (), (Pair(g, g),)), by_name[name])
        assert np.array_equal(view.test[0].input, want) and np.array_equal(view.test[0].output, want), name
        assert np.array_equal(invert_grid(want, by_name[name]), g)
    assert len(MARC_AUGMENTERS) == 23  # 22 of MARC's 23 augmenters (no RandomTranslateXY) and the identity
    rng = np.random.default_rng(0)
    cmap = marc_color_map(rng, TINY)  # colours 1-4 used: they go to unused colours 5-9
    assert cmap[0] == 0 and sorted(cmap) == list(range(10)) and {cmap[c] for c in (1, 2, 3, 4)} <= {5, 6, 7, 8, 9}
    specs = [marc_spec(np.random.default_rng(i), TINY) for i in range(400)]
    assert 0.4 < np.mean([s.order is not None for s in specs]) < 0.6


# --------------------------------------------------------------------------- equal task weighting


def _tasks_with_pairs(counts):
    return [
        Task(f"t{n}", tuple(Pair(a([[i % 10]]), a([[i % 10, 1]])) for i in range(n)), (Pair(a([[0]])),)) for n in counts
    ]


@pytest.mark.parametrize("leave_out", [1, 2])
def test_shared_adapter_runs_weight_tasks_equally(leave_out):
    tasks = _tasks_with_pairs([2, 5, 3])
    cfg = TrainConfig(leave_out=leave_out, seed=4)
    sources = [s for t in tasks for s in source_tasks(t, cfg, None)]
    per_task = {t.id: sum(leave_out_parent(s.id) == t.id for s in sources) for t in tasks}
    assert per_task == ({"t2": 2, "t5": 5, "t3": 3} if leave_out == 1 else {"t2": 2, "t5": 25, "t3": 9})
    n = 6000
    stream = SampleStream(sources, "ttft", n, cfg, None)
    shares = {t.id: 0 for t in tasks}
    seen = set()
    for i in range(n):
        src = stream._source(i)
        shares[leave_out_parent(src.id)] += 1
        seen.add(src.id)
    for tid in shares:
        assert abs(shares[tid] / n - 1 / 3) < 0.02, shares  # every task a third of the samples
    assert seen == {s.id for s in sources}  # every leave-out task is drawn
    old = SampleStream(sources, "ttft", n, cfg.replace(task_weighting="leave-out"), None)
    by = {t.id: 0 for t in tasks}
    for i in range(n):
        by[leave_out_parent(old._source(i).id)] += 1
    for tid, k in per_task.items():
        assert abs(by[tid] / n - k / len(sources)) < 0.02  # weighted by the number of leave-out tasks
    assert len(stream[0]["input_ids"]) > 0  # the samples themselves are made as before


def test_a_per_task_stream_is_unchanged_by_the_weighting():
    sources = source_tasks(_tasks_with_pairs([4])[0], TrainConfig(), None)
    a_ = SampleStream(sources, "ttft", 50, TrainConfig(), None)
    b_ = SampleStream(sources, "ttft", 50, TrainConfig(task_weighting="leave-out"), None)
    assert a_.groups is None and [a_[i] for i in range(10)] == [b_[i] for i in range(10)]


# --------------------------------------------------------------------------- the seed ablation's rows


def test_seed_ablation_rows_use_the_seeds_definitions():
    from ttft.engine.experiment_config import ROW_OPTIONS, ROWS

    assert ROWS["n-1 + geometric + colour"]["augment"]["p_bg"] == 0.1
    assert ROWS["preserve original colours"]["augment"]["p_bg"] == 0.1
    assert ROWS["n-2"]["leave_out"] == 2 and not ROWS["n-2"].get("n2_only")
    assert ROWS["n-2 only"]["n2_only"] is True and "n2_only" in ROW_OPTIONS


# --------------------------------------------------------------------------- LoRA options


def test_rslora_dora_and_dropout_reach_peft():
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM(tiny_model_config())
    cfg = ModelConfig(
        lora_r=4, lora_alpha=8, lora_dropout=0.1, target_modules="q_proj,v_proj", use_rslora=True, use_dora=True
    )
    peft_model = attach_lora(model, cfg)
    pc = peft_model.peft_config["default"]
    assert pc.use_rslora and pc.use_dora and pc.lora_dropout == 0.1 and pc.r == 4
    q = peft_model.base_model.model.model.layers[0].self_attn.q_proj
    assert q.scaling["default"] == pytest.approx(8 / 4**0.5)  # rsLoRA: alpha / sqrt(r)
    assert "default" in q.lora_magnitude_vector  # DoRA's magnitude
    plain = attach_lora(
        LlamaForCausalLM(tiny_model_config()), ModelConfig(lora_r=4, lora_alpha=8, target_modules="q_proj")
    )
    q = plain.base_model.model.model.layers[0].self_attn.q_proj
    assert q.scaling["default"] == pytest.approx(2.0) and not plain.peft_config["default"].use_dora


def test_per_task_runs_continue_the_same_adapter_for_every_task(tiny_model, tmp_path):
    import torch
    from safetensors.torch import load_file

    from ttft.engine.train import train

    ids = ("00576224", "0c786b71")
    common = dict(
        mode="ttft",
        dataset="arc-agi-1/evaluation",
        steps=2,
        device="cpu",
        val="none",
        save_steps=100,
        lr=1e-2,
        encoding=EncodingConfig(max_seq_len=1024),
        logging_steps=1,
    )
    first = train(
        TrainConfig(tasks=ids[:1], model=ModelConfig(base_model=tiny_model, lora_r=4, lora_alpha=8), **common),
        run_dir=str(tmp_path / "first"),
    )
    start = Path(first.run_dir) / "adapter"
    model = ModelConfig(base_model=tiny_model, adapter=str(start))
    both = train(TrainConfig(tasks=ids, per_task=True, model=model, **common), run_dir=str(tmp_path / "both"))
    alone = train(TrainConfig(tasks=ids[1:], per_task=True, model=model, **common), run_dir=str(tmp_path / "alone"))
    w0 = load_file(start / "adapter_model.safetensors")

    def weights(run, tid):
        return load_file(Path(run.run_dir) / "adapters" / tid / "adapter_model.safetensors")

    w_both, w_alone = weights(both, ids[1]), weights(alone, ids[1])
    assert set(w_both) == set(w0)  # the continued adapter, not a fresh one
    assert all(torch.equal(w_both[k], w_alone[k]) for k in w0)  # the second task started from the adapter too
    assert any(not torch.equal(w_both[k], w0[k]) for k in w0)  # and trained it


# --------------------------------------------------------------------------- ttft encode


def _encode(*argv: str) -> tuple[int, str, str]:
    from ttft.cli import encode
    from ttft.cli.main import CliError

    p = argparse.ArgumentParser()
    encode.register(p.add_subparsers())
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            args = p.parse_args(["encode", *argv])
            rc = args.func(args)
        except CliError as e:
            rc, _ = 2, err.write(str(e))
    return rc, out.getvalue(), err.getvalue()


def test_encode_command_shows_the_exact_text_spans_and_tokens():
    rc, out, _ = _encode(
        "arc-agi-1/evaluation", "00576224", "--profile", "arc24", "--tokenizer", "preview-chatml", "--json"
    )
    assert rc == 0
    d = json.loads(out.strip().splitlines()[-1])
    assert d["profile"] == "arc24" and d["encoding"]["prompt"] == "arc24" and d["template"] == "chat"
    assert d["text"].startswith("<|im_start|>system\nYou are a helpful AI assistant.")
    assert d["trained_text"].startswith("\n### Output\n\n```grid shape: 6x6\n1 323232\n")
    assert d["spans"][0][0] == 0 and d["spans"][-1][1] == len(d["text"])
    assert "".join(d["text"][a_:b] for a_, b in d["trained_ranges"]) == d["trained_text"]
    assert d["n_tokens"] > d["n_trained"] > 0 and d["fits"]
    rc, out, _ = _encode("arc-agi-1/evaluation", "00576224", "--json")  # ttft's own text, embedded tokenizer
    d = json.loads(out.strip().splitlines()[-1])
    assert d["text"].startswith("<input>\n86\n64\n<output>\n") and d["trained_text"].endswith("</s>")
    rc, _, err = _encode("arc-agi-1/evaluation", "00576224", "--profile", "arc24")
    assert rc == 2 and "chat template" in err and "--tokenizer preview-chatml" in err
    rc, _, err = _encode("arc-agi-1/evaluation", "00576224", "--format", "numpy", "--loss-on", "outputs")
    assert rc == 2 and "unknown tokens" in err


# --------------------------------------------------------------------------- the Augmentations page


def test_augmentations_page_shows_a_profiles_text():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/2_Augmentations.py")
    at.query_params["dataset"] = "arc-agi-1/evaluation"
    at.query_params["task"] = "00576224"
    at.run()
    at.selectbox(key="aug_profile").set_value("arc24").run()
    assert at.selectbox(key="aug_format").value == "arc24" and at.selectbox(key="aug_format").disabled
    assert any("chat prompt" in e.value for e in at.error)  # the embedded tokenizer cannot write it: said so
    at.radio(key="aug_tok_mode").set_value("preview-chatml").run()
    assert not at.exception, at.exception
    body = at.get("html")[-1].proto.body
    assert "You are a helpful AI assistant." in body and "### Output" in body and '<mark class="ttft-loss"' in body
