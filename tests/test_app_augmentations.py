"""The Augmentations page (AppTest) and the pure functions behind it (ttft.augview)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from ttft.core import augment
from ttft.core.augment import DIHEDRAL, AugmentSkipped, AugmentSpec, apply_grid, apply_task
from ttft.core.compose import Pad, Tile, Upscale
from ttft.core.data import Pair, Task, load_dataset
from ttft.core.encoding import EncodingConfig, encode_task, tokenize_task
from ttft.views import augview

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/2_Augmentations.py"
TASK = "009d5c81"  # arc-agi-1/evaluation: 5 train pairs and 1 test pair, all 14x14


@pytest.fixture(scope="module")
def evaluation():
    return load_dataset("arc-agi-1/evaluation")


@pytest.fixture(scope="module")
def task(evaluation):
    return evaluation[TASK]


# =========================================================================== pure functions


def test_split_steps_and_build_options():
    assert augview.split_steps(" upscale:2x2:input, pad:1:5;mirror:h\ntile:2x1 ") == (
        "upscale:2x2:input",
        "pad:1:5",
        "mirror:h",
        "tile:2x1",
    )
    assert augview.split_steps("  ") == ()
    o = augview.build_options(["rot90"], "all", random_steps=["tile"], explicit_steps="pad:1:5:output", seed=7)
    assert o.transforms == ("rot90",) and o.colors == "all" and o.compose == ("tile", "pad:1:5:output")
    assert o.seed == 7
    with pytest.raises(ValueError, match="bad step 'upscale:0x2'"):
        augview.build_options(DIHEDRAL, explicit_steps="upscale:0x2")
    with pytest.raises(ValueError, match="not a bijection"):
        augview.build_options(DIHEDRAL, colors="1123456789")
    with pytest.raises(ValueError, match="transforms: must be a non-empty list"):
        augview.build_options([])
    with pytest.raises(ValueError, match="unknown composition step kind 'zoom'"):
        augview.build_options(DIHEDRAL, random_steps=["zoom"])
    with pytest.raises(ValueError, match="colors: must be one of"):
        augview.build_options(DIHEDRAL, colors="")


def test_views_are_reproducible_and_skips_are_reported(task):
    opts = augview.build_options(DIHEDRAL, "all", random_steps=["pad"])
    a, b = augview.main_view(task, opts, 3), augview.main_view(task, opts, 3)
    assert a.ok and a.spec == b.spec and a.spec.seed == 3
    assert augview.variant_seeds(10, 3) == [11, 12, 13] and augview.variant_seeds(0, 0) == []
    g = augview.gallery(task, opts, 10, 3)
    assert [r.spec.seed for r in g] == [11, 12, 13]
    big = augview.main_view(task, augview.build_options(["identity"], explicit_steps="upscale:3x3:input"), 0)
    assert big.task is None and "42x42" in big.reason and "30x30" in big.reason and TASK in big.reason


def _specs(task: Task):
    yield AugmentSpec()
    for name in DIHEDRAL:
        yield AugmentSpec(name, (0, 3, 1, 2, 5, 4, 7, 6, 9, 8), tuple(reversed(range(len(task.train)))))
    yield AugmentSpec("rot90", tuple(range(9, -1, -1)), None, (Pad(1, 7, "input"), Upscale(2, 1, "output")))
    yield AugmentSpec("flip_v", augment.IDENTITY_COLORS, (1, 0, 2, 3, 4), (Tile(1, 2, "both"),))


def test_invert_task_gives_back_the_original(task, evaluation):
    for spec in _specs(task):
        view = apply_task(task, spec)
        assert augview.tasks_equal(augview.invert_task(view, spec), task), spec
        assert augview.roundtrip_ok(task, spec, view) and augview.roundtrip_ok(task, spec)
    # random views of many tasks, with composition steps and shuffles
    opts = augview.build_options(
        DIHEDRAL,
        "all",
        random_steps=["upscale", "pad", "mirror", "tile"],
        compose_targets=["input", "output", "both"],
        p_compose=0.5,
    )
    checked = 0
    for t in list(evaluation)[:40]:
        for res in augview.gallery(t, opts, 0, 4):
            if res.ok:
                assert augview.roundtrip_ok(t, res.spec, res.task), (t.id, res.spec)
                checked += 1
    assert checked > 40


def test_roundtrip_fails_when_the_train_order_is_not_undone(task):
    spec = AugmentSpec("rot90", order=(1, 0, 2, 3, 4))
    view = apply_task(task, spec)
    no_order = AugmentSpec("rot90")
    assert not augview.tasks_equal(augview.invert_task(view, no_order), task)
    assert not augview.roundtrip_ok(task, no_order, view)
    with pytest.raises(ValueError, match="train order has 2 entries"):
        augview.invert_task(view, AugmentSpec("rot90", order=(1, 0)))


def test_roundtrip_is_false_for_a_broken_inverse(task, monkeypatch):
    spec = AugmentSpec("rot90", (0, 2, 1, 3, 4, 5, 6, 7, 8, 9))
    view = apply_task(task, spec)
    assert augview.roundtrip_ok(task, spec, view)
    # the inverse of a quarter turn deliberately wrong: rot90 "undoes" rot90
    monkeypatch.setitem(augment.INVERSE, "rot90", "rot90")
    assert not augview.roundtrip_ok(task, spec, view)
    monkeypatch.undo()
    assert augview.roundtrip_ok(task, spec, view)
    # an inverse that forgets the colours
    monkeypatch.setattr(augview, "invert_grid", lambda g, s, role="output": augment.dihedral(g, "rot270").copy())
    assert not augview.roundtrip_ok(task, spec, view)


def test_roundtrip_of_a_tampered_view_and_of_an_impossible_view(task):
    spec = AugmentSpec("identity", steps=(Upscale(2, 2, "output"),))
    view = apply_task(task, spec)
    bad_out = view.train[0].output.copy()
    bad_out[0, 1] = (bad_out[0, 1] + 1) % 10  # a 2x2 block that is no longer uniform: InverseError
    tampered = Task(view.id, (Pair(view.train[0].input, bad_out),) + view.train[1:], view.test)
    assert not augview.roundtrip_ok(task, spec, tampered)
    hidden = Task(task.id, task.train, (Pair(task.test[0].input, None),))
    assert augview.roundtrip_ok(hidden, spec)  # a hidden test output stays hidden
    assert not augview.tasks_equal(hidden, task)
    with pytest.raises(AugmentSkipped, match="30x30"):
        augview.roundtrip_ok(task, AugmentSpec(steps=(Upscale(3, 3),)))


def test_pair_rows_line_up_each_pair_with_what_it_became(task):
    spec = AugmentSpec("flip_h", (0, 5, 2, 3, 4, 1, 6, 7, 8, 9), (3, 0, 4, 1, 2), (Pad(1, 6, "input"),))
    view = apply_task(task, spec)
    rows = augview.pair_rows(task, view, spec)
    assert [(r.kind, r.index) for r in rows] == [("train", i) for i in range(5)] + [("test", 0)]
    assert [r.view_index for r in rows[:5]] == [1, 3, 4, 0, 2]
    for r in rows:
        assert np.array_equal(r.augmented.input, apply_grid(r.original.input, spec, "input"))
        assert np.array_equal(r.augmented.output, apply_grid(r.original.output, spec, "output"))
        assert r.augmented.input.shape == (16, 16) and r.augmented.output.shape == (14, 14)


def test_leave_out_tasks_and_their_tokens(task, evaluation):
    n1, why = augview.leave_out(task, "n-1")
    assert why is None and len(n1) == 5
    n2, _ = augview.leave_out(task, "n-2")
    assert len(n2) == 10
    cfg = EncodingConfig(max_seq_len=2000)
    rows = augview.token_rows(n1 + n2, cfg)
    assert [r["task"] for r in rows] == [t.id for t in n1 + n2]
    for r, t in zip(rows, n1 + n2):
        expect = max(tokenize_task(t, cfg, test_index=k).n_tokens for k in range(len(t.test)))
        assert r["tokens"] == expect and r["fits"] == (expect <= 2000)
        assert (r["train pairs"], r["test pairs"]) == (len(t.train), len(t.test))
    assert {r["fits"] for r in rows} == {True, False}  # n-1 tasks are longer than 2000 tokens, n-2 ones are not
    one = Task("x", task.train[:1], task.test)
    assert augview.leave_out(one, "n-1") == ([], "task x: leave-one-out needs at least 2 train pairs, the task has 1")
    with pytest.raises(ValueError, match="unknown leave-out kind"):
        augview.leave_out(task, "n-3")


def _unmark(s: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", s))


@pytest.mark.parametrize("loss_on", ["test", "outputs"])
@pytest.mark.parametrize("fmt", ["minimal", "shape+rows", "separated"])
def test_encoded_html_is_the_exact_text_with_the_loss_highlighted(task, fmt, loss_on):
    enc = encode_task(task, EncodingConfig(format=fmt, loss_on=loss_on))
    out = augview.encoded_html(enc, max_height=300)
    assert out.startswith('<pre class="ttft-text"') and "max-height: 300px" in out and "overflow: auto" in out
    assert "<input>" not in out and "&lt;input&gt;" in out and "&lt;/s&gt;" in out  # escaped, shown as text
    body = out[out.index(">") + 1 : out.rindex("</pre>")]
    assert _unmark(body) == enc.text
    marked = re.findall(r'<mark class="ttft-loss"[^>]*>(.*?)</mark>', body, flags=re.S)
    assert len(marked) == len(enc.ranges(True)) == (1 if loss_on == "test" else len(task.train))
    assert "".join(html.unescape(m) for m in marked) == enc.trained_text()


def test_encoded_html_escapes_everything():
    from ttft.core.encoding import EncodedText, Span

    enc = EncodedText("<b>&'\"</b>x<script>", (Span(0, 10, "prompt", False), Span(10, 19, "test_output", True)), "chat")
    out = augview.encoded_html(enc)
    assert "<b>" not in out and "<script>" not in out
    assert '<mark class="ttft-loss"' in out and "&lt;script&gt;</mark>" in out


# =========================================================================== the page (AppTest)


def aug_page(**params) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(PAGE)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def qp(at, name):
    v = at.query_params.get(name)
    return v[0] if isinstance(v, list) else v


def image_urls(at) -> list[str]:
    return [im.proto.imgs[0].url for im in at.get("image")]


def side_by_side(at, n_pairs: int = 6) -> tuple[list[str], list[str]]:
    """(original, augmented) image URLs of the side-by-side tab: 4 per pair (orig in, orig out, aug in, aug out)."""
    urls = image_urls(at)[: 4 * n_pairs]
    orig = [u for i, u in enumerate(urls) if i % 4 < 2]
    aug = [u for i, u in enumerate(urls) if i % 4 >= 2]
    return orig, aug


def badges(at) -> list[str]:
    return [m.value for m in at.markdown if "round-trip" in m.value]


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_deep_link_shows_original_and_augmented_pairs():
    at = aug_page(dataset="arc-agi-1/evaluation", task=TASK)
    assert not at.exception, at.exception
    assert at.title[0].value == f"Augmentations · {TASK}"
    assert at.selectbox(key="aug_task").value == TASK
    assert at.selectbox(key="ttft_dataset_choice").value == "arc-agi-1/evaluation"
    caps = [c.value for c in at.caption]
    assert any("5 train, 1 test" in c for c in caps)
    for label in ("original input · 14×14", "original output · 14×14", "augmented input · 14×14"):
        assert caps.count(label) == 6, label
    urls = image_urls(at)
    assert len(urls) == 6 * 4 + 6  # 6 pairs x (original + augmented) + a gallery of 6 thumbnails
    assert all(u.endswith(".png") for u in urls)
    orig, aug = side_by_side(at)
    assert len(set(aug)) == 12 and set(orig).isdisjoint(aug)  # seed 0 moves the colours
    assert any(m.value.startswith("**Spec** · ") and "seed 0" in m.value for m in at.markdown)
    assert any('"geometric"' in c.value for c in at.code)
    link = next(pl for pl in at.get("page_link") if pl.proto.label == "Open in Tasks")
    assert link.proto.page == "Tasks"
    assert link.proto.query_string == "dataset=arc-agi-1%2Fevaluation&task=009d5c81"


def test_changing_seed_and_transform_changes_the_augmented_images():
    at = aug_page(dataset="arc-agi-1/evaluation", task=TASK)
    orig0, aug0 = side_by_side(at)
    at.number_input(key="aug_seed").set_value(5).run()
    assert not at.exception
    assert qp(at, "seed") == "5"
    orig5, aug5 = side_by_side(at)
    assert orig5 == orig0 and set(aug5).isdisjoint(aug0)
    # the identity transform, no colour change and no shuffle: augmented == original, image for image
    at.selectbox(key="aug_transform").set_value("identity").run()
    at.selectbox(key="aug_colors").set_value("none").run()
    at.toggle(key="aug_shuffle").set_value(False).run()
    orig, aug = side_by_side(at)
    assert aug == orig
    assert any("identity, colours unchanged" in m.value for m in at.markdown)
    # a quarter turn: every augmented grid is the original's turned
    at.selectbox(key="aug_transform").set_value("rot180").run()
    orig, aug = side_by_side(at)
    assert aug != orig and any(m.value.startswith("**Spec** · rot180") for m in at.markdown)
    # an explicit colour map
    at.selectbox(key="aug_colors").set_value("explicit map…").run()
    at.text_input(key="aug_color_map").input("0987654321").run()
    assert any("colours 0987654321" in m.value for m in at.markdown)
    at.text_input(key="aug_color_map").input("0987").run()
    assert not at.exception and any("bad colour map '0987'" in e.value for e in at.error)


def test_every_round_trip_badge_is_green():
    at = aug_page(dataset="arc-agi-1/evaluation", task=TASK)
    at.number_input(key="aug_n").set_value(12).run()
    at.selectbox(key="aug_colors").set_value("all").run()
    at.multiselect(key="aug_step_kinds").set_value(["pad"]).run()
    assert not at.exception
    b = badges(at)
    warns = [w.value for w in at.warning]
    main_ok = not any(w.startswith("View skipped:") for w in warns)
    gallery_ok = sum(m.value.startswith("**Seed ") for m in at.markdown) - sum(w.startswith("Skipped:") for w in warns)
    assert len(b) == main_ok + gallery_ok >= 4
    assert all(v == ":green-badge[round-trip ✓]" for v in b), b


def test_gallery_variant_opens_side_by_side():
    at = aug_page(dataset="arc-agi-1/evaluation", task=TASK)

    def gallery_seeds():
        return sorted(int(m.value[7:-2]) for m in at.markdown if m.value.startswith("**Seed "))

    assert gallery_seeds() == [1, 2, 3, 4, 5, 6]
    _, aug_before = side_by_side(at)
    at.button(key="aug_pick_3").click().run()
    assert at.number_input(key="aug_seed").value == 3 and qp(at, "seed") == "3"
    assert any("seed 3" in m.value and m.value.startswith("**Spec**") for m in at.markdown)
    assert gallery_seeds() == [4, 5, 6, 7, 8, 9]
    _, aug_after = side_by_side(at)
    assert aug_after != aug_before


def test_seed_deep_link():
    at = aug_page(dataset="arc-agi-1/evaluation", task=TASK, seed="42")
    assert at.number_input(key="aug_seed").value == 42
    assert any(m.value.startswith("**Spec**") and "seed 42" in m.value for m in at.markdown)


def test_leave_out_tables_have_a_row_per_task_with_tokens():
    at = aug_page(dataset="arc-agi-1/evaluation", task=TASK)
    n1, n2 = (d.value for d in at.dataframe)
    assert len(n1) == 5 and len(n2) == 10
    assert list(n1["task"]) == [f"{TASK}/n-1/{k}" for k in range(5)]
    assert (n1["train pairs"] == 4).all() and (n2["train pairs"] == 3).all()
    assert n1["fits"].all()
    # a max_seq_len between the n-2 and n-1 sizes: only the n-2 tasks fit
    at.number_input(key="aug_max_len").set_value(2000).run()
    n1, n2 = (d.value for d in at.dataframe)
    assert not n1["fits"].any() and n2["fits"].all()
    # view one of them: its pairs and its text
    at.selectbox(key="aug_lo_view").set_value(f"{TASK}/n-2/1-3").run()
    assert not at.exception
    assert any(f"{TASK}/n-2/1-3 · format minimal" in c.value for c in at.caption)
    assert at.selectbox(key="aug_lo_test").options == ["test 1", "test 2"]


def test_a_task_with_one_train_pair_has_no_leave_out_tasks(tmp_path):
    import json

    (tmp_path / "solo.json").write_text(
        json.dumps({"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 4]]}]})
    )
    at = aug_page(dataset=str(tmp_path))
    assert not at.exception
    infos = [i.value for i in at.info]
    assert any("leave-one-out needs at least 2" in i for i in infos)
    assert any("leave-two-out needs at least 3" in i for i in infos)
    assert any("test output hidden: prompt for generation" in c.value for c in at.caption)


def test_text_view_highlights_the_loss_and_counts_tokens(task):
    at = aug_page(dataset="arc-agi-1/evaluation", task=TASK)
    at.selectbox(key="aug_transform").set_value("identity").run()
    at.selectbox(key="aug_colors").set_value("none").run()
    at.toggle(key="aug_shuffle").set_value(False).run()
    html_block = at.get("html")[-1].proto.body
    assert html_block.count('<mark class="ttft-loss"') == 1 and "&lt;output&gt;" in html_block
    n = tokenize_task(task, EncodingConfig())
    assert metric(at, "Tokens") == f"{n.n_tokens:,}" and metric(at, "Trained tokens") == f"{n.n_trained:,}"
    assert n.n_trained == 14 * 15 + 1  # the test output's cells and row ends, and </s>
    assert any("fits" in m.value and "badge" in m.value for m in at.markdown)
    # loss on every output after the first: one highlighted span per later train output, and the test output
    at.selectbox(key="aug_loss_on").set_value("outputs").run()
    assert at.get("html")[-1].proto.body.count('<mark class="ttft-loss"') == 5
    # over max_seq_len: a red badge
    at.number_input(key="aug_max_len").set_value(1000).run()
    assert any(m.value.startswith(":red-badge[") and "over max_seq_len by" in m.value for m in at.markdown)
    # another format changes the count
    at.selectbox(key="aug_format").set_value("separated").run()
    sep = tokenize_task(task, EncodingConfig(format="separated", loss_on="outputs"))
    assert metric(at, "Tokens") == f"{sep.n_tokens:,}"
    # the original task's text
    at.radio(key="aug_text_of").set_value("original task").run()
    assert not at.exception


def test_missing_tokenizer_folder_is_an_error_not_an_exception(tmp_path):
    at = aug_page(dataset="arc-agi-1/evaluation", task=TASK)
    at.radio(key="aug_tok_mode").set_value("a tokenizer folder…").run()
    at.text_input(key="aug_tok_path").input(str(tmp_path / "no_such_tokenizer")).run()
    assert not at.exception, at.exception
    errs = [e.value for e in at.error]
    assert any("does not exist" in e and "no_such_tokenizer" in e for e in errs), errs
    assert any(c.value == "Tokenizer: embedded (fallback)" for c in at.caption)
    assert len(at.dataframe) == 2  # the rest of the page still works


def test_tokenizer_folder_is_used_and_checked(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    from ttft.core.tokenizer import save_embedded_tokenizer

    save_embedded_tokenizer(tmp_path / "embedded_copy")
    at = aug_page(dataset="arc-agi-1/evaluation", task=TASK)
    embedded_tokens = metric(at, "Tokens")
    at.radio(key="aug_tok_mode").set_value("a tokenizer folder…").run()
    at.text_input(key="aug_tok_path").input(str(tmp_path / "embedded_copy")).run()
    assert not at.exception and not at.error and not at.warning
    assert metric(at, "Tokens") == embedded_tokens
    # a tokenizer that merges the digits 1 and 2 into one token: a warning, and fewer tokens
    vocab = {"<unk>": 0, **{str(d): d + 1 for d in range(10)}, "\n": 11, " ": 12, "12": 13, "<": 14, ">": 15}
    PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(BPE(vocab, [("1", "2")], unk_token="<unk>")), unk_token="<unk>", eos_token="<unk>"
    ).save_pretrained(tmp_path / "merges")
    at.text_input(key="aug_tok_path").input(str(tmp_path / "merges")).run()
    assert not at.exception
    warns = [w.value for w in at.warning]
    assert any("One token per cell check failed" in w and "'minimal'" in w for w in warns), warns
    assert int(metric(at, "Tokens").replace(",", "")) != int(embedded_tokens.replace(",", ""))


def test_composition_over_30x30_is_reported_as_skipped():
    at = aug_page(dataset="arc-agi-1/evaluation", task=TASK)
    at.text_input(key="aug_steps").input("upscale:3x3:input").run()
    assert not at.exception, at.exception
    warns = [w.value for w in at.warning]
    assert any(w.startswith("View skipped:") and "42x42" in w and "30x30" in w for w in warns), warns
    assert sum(w.startswith("Skipped:") for w in warns) == 6  # every gallery variant too
    assert not badges(at)
    assert any("this view is skipped" in i.value for i in at.info)
    assert at.radio(key="aug_text_of").options == ["original task"]
    # a bad step is an error, not a traceback
    at.text_input(key="aug_steps").input("upscale:zz").run()
    assert not at.exception and any("bad step 'upscale:zz'" in e.value for e in at.error)


def test_unknown_task_and_task_choice_follow_the_url():
    at = aug_page(dataset="arc-agi-1/evaluation", task="zzzzzzzz")
    assert not at.exception
    assert any("'zzzzzzzz' is not in dataset" in e.value for e in at.error)
    assert at.title[0].value == "Augmentations · 00576224"  # the first task
    at.selectbox(key="aug_task").set_value("00dbd492").run()
    assert qp(at, "task") == "00dbd492" and at.title[0].value == "Augmentations · 00dbd492"


def test_default_task_is_the_first_one():
    at = aug_page()
    assert not at.exception
    first = load_dataset("arc-agi-1/training").ids[0]
    assert at.title[0].value == f"Augmentations · {first}" and qp(at, "task") == first
