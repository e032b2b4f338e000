"""Tests of ttft.augment and the `augment` CLI command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ttft.core.augment import (
    COMPOSE_TABLE,
    DIHEDRAL,
    IDENTITY_COLORS,
    AugmentOptions,
    AugmentSkipped,
    AugmentSpec,
    apply_grid,
    apply_task,
    check_fits,
    compose,
    dihedral,
    inverse_name,
    invert_colors,
    invert_grid,
    parse_color_map,
    random_color_map,
    random_spec,
    random_views,
    try_apply_task,
)
from ttft.core.compose import InverseError, Mirror, Pad, Tile, Upscale, parse_step, step_from_json
from ttft.core.data import Pair, Task
from ttft.core.leaveout import leave_one_out, leave_out_parent, leave_out_tasks, leave_two_out, seed_leave_two_out

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = settings(max_examples=150, deadline=None)

# --------------------------------------------------------------------------- strategies


@st.composite
def grids(draw, max_side: int = 30):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    return draw(hnp.arrays(np.uint8, (h, w), elements=st.integers(0, 9)))


targets = st.sampled_from(["input", "output", "both"])
steps = st.one_of(
    st.builds(Upscale, st.integers(1, 4), st.integers(1, 4), targets),
    st.builds(Pad, st.integers(1, 3), st.integers(0, 9), targets),
    st.builds(Mirror, st.sampled_from(["h", "v"]), targets),
    st.builds(Tile, st.integers(1, 3), st.integers(1, 3), targets),
)
specs = st.builds(
    AugmentSpec,
    geometric=st.sampled_from(DIHEDRAL),
    colors=st.permutations(list(range(10))).map(tuple),
    steps=st.lists(steps, max_size=3).map(tuple),
)


@st.composite
def tasks(draw, min_train: int = 1, max_train: int = 6, max_side: int = 6):
    n = draw(st.integers(min_train, max_train))
    train = tuple(Pair(draw(grids(max_side)), draw(grids(max_side))) for _ in range(n))
    test = tuple(Pair(draw(grids(max_side)), draw(grids(max_side))) for _ in range(draw(st.integers(1, 2))))
    return Task("t", train, test)


ASYM = np.arange(6, dtype=np.uint8).reshape(2, 3)  # no symmetry: all 8 transforms differ

# --------------------------------------------------------------------------- dihedral group


def test_dihedral_names_mean_what_they_say():
    g = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    expected = {
        "identity": [[1, 2], [3, 4]],
        "rot90": [[3, 1], [4, 2]],  # a quarter turn clockwise
        "rot180": [[4, 3], [2, 1]],
        "rot270": [[2, 4], [1, 3]],
        "flip_h": [[2, 1], [4, 3]],  # left <-> right
        "flip_v": [[3, 4], [1, 2]],  # top <-> bottom
        "transpose": [[1, 3], [2, 4]],
        "antitranspose": [[4, 2], [3, 1]],
    }
    for name, want in expected.items():
        assert dihedral(g, name).tolist() == want, name
    assert dihedral(ASYM, "rot90").shape == (3, 2)


def test_eight_distinct_grids_on_an_asymmetric_grid():
    assert len({dihedral(ASYM, n).tobytes() + bytes(dihedral(ASYM, n).shape) for n in DIHEDRAL}) == 8


def test_compose_table_matches_applying_in_sequence():
    for a in DIHEDRAL:
        for b in DIHEDRAL:
            seq = dihedral(dihedral(ASYM, a), b)
            assert np.array_equal(seq, dihedral(ASYM, COMPOSE_TABLE[a][b])), (a, b)


def test_group_laws():
    for a in DIHEDRAL:
        assert compose(a, "identity") == compose("identity", a) == a
        assert compose(a, inverse_name(a)) == "identity"
        for b in DIHEDRAL:
            for c in DIHEDRAL:
                assert compose(compose(a, b), c) == compose(a, compose(b, c))
    assert inverse_name("rot90") == "rot270"
    assert compose("rot90", "rot90") == "rot180"
    assert compose("rot90", "flip_h") != compose("flip_h", "rot90")  # not commutative


@SETTINGS
@given(grids(), st.sampled_from(DIHEDRAL), st.sampled_from(DIHEDRAL))
def test_dihedral_inverts_and_composes_on_random_grids(g, a, b):
    assert np.array_equal(dihedral(dihedral(g, a), inverse_name(a)), g)
    assert np.array_equal(dihedral(dihedral(g, a), b), dihedral(g, compose(a, b)))


def test_unknown_transform_is_named():
    with pytest.raises(ValueError, match="'rot45'"):
        dihedral(ASYM, "rot45")
    with pytest.raises(ValueError, match="'spin'"):
        AugmentSpec(geometric="spin")


# --------------------------------------------------------------------------- colours


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_random_colour_maps_are_bijections_keeping_zero(seed):
    perm = random_color_map(np.random.default_rng(seed))
    assert sorted(perm) == list(range(10)) and perm[0] == 0
    spec = random_spec(seed, AugmentOptions(shuffle=False))
    assert spec.colors[0] == 0 and sorted(spec.colors) == list(range(10))
    inv = invert_colors(perm)
    assert all(inv[perm[c]] == c for c in range(10))


def test_background_moves_only_when_asked():
    moved_all = [random_spec(s, AugmentOptions(colors="all", shuffle=False)).colors[0] != 0 for s in range(200)]
    moved_p = [random_spec(s, AugmentOptions(p_bg=0.5, shuffle=False)).colors[0] != 0 for s in range(200)]
    assert sum(moved_all) > 150  # 0 stays with probability 1/10
    assert 50 < sum(moved_p) < 130  # about 0.5 * 0.9
    assert all(
        random_spec(s, AugmentOptions(colors="none", shuffle=False)).colors == IDENTITY_COLORS for s in range(20)
    )


def test_parse_colour_maps():
    assert parse_color_map("1:2,2:1") == (0, 2, 1, 3, 4, 5, 6, 7, 8, 9)
    assert parse_color_map("0213456789") == (0, 2, 1, 3, 4, 5, 6, 7, 8, 9)
    assert parse_color_map(" 0:5, 5:0 ") == (5, 1, 2, 3, 4, 0, 6, 7, 8, 9)
    with pytest.raises(ValueError, match=r"'1:2'.*both go to 2.*no colour goes to 1"):
        parse_color_map("1:2")
    with pytest.raises(ValueError, match="0123456788"):
        parse_color_map("0123456788")
    with pytest.raises(ValueError, match="'red'"):
        parse_color_map("red")
    with pytest.raises(ValueError, match="mapped twice"):
        parse_color_map("1:2,1:3,2:1")
    with pytest.raises(ValueError, match="not a bijection"):
        AugmentSpec(colors=(0, 0, 2, 3, 4, 5, 6, 7, 8, 9))


def test_explicit_map_applies():
    spec = random_spec(0, AugmentOptions(transforms=("identity",), colors="1:2,2:1", shuffle=False))
    g = np.array([[0, 1, 2, 3]], dtype=np.uint8)
    assert apply_grid(g, spec).tolist() == [[0, 2, 1, 3]]


# --------------------------------------------------------------------------- composition steps and specs


@SETTINGS
@given(grids(8), specs, st.sampled_from(["input", "output"]))
def test_every_spec_inverts_exactly(g, spec, role):
    try:
        out = apply_grid(g, spec, role)
    except AugmentSkipped as e:
        assert e.shape is not None and max(e.shape) > 30
        return
    assert out.dtype == np.uint8 and out.shape[0] <= 30 and out.shape[1] <= 30
    assert np.array_equal(invert_grid(out, spec, role), g)


@SETTINGS
@given(grids(10), steps)
def test_every_step_inverts_exactly(g, step):
    assert np.array_equal(step.invert(step.apply(g)), g)
    assert step.apply(g).shape == step.out_shape(*g.shape)
    assert parse_step(str(step)) == step
    assert step_from_json(json.loads(json.dumps(step.to_json()))) == step


def test_steps_do_what_they_say():
    g = np.array([[1, 2]], dtype=np.uint8)
    assert Upscale(2, 1).apply(g).tolist() == [[1, 2], [1, 2]]
    assert Upscale(1, 2).apply(g).tolist() == [[1, 1, 2, 2]]
    assert Pad(1, 5).apply(g).tolist() == [[5, 5, 5, 5], [5, 1, 2, 5], [5, 5, 5, 5]]
    assert Mirror("h").apply(g).tolist() == [[1, 2, 2, 1]]
    assert Mirror("v").apply(g).tolist() == [[1, 2], [1, 2]]
    assert Tile(1, 2).apply(g).tolist() == [[1, 2, 1, 2]]
    assert parse_step("upscale:3") == Upscale(3, 3, "both")
    assert parse_step("pad:2:7:output") == Pad(2, 7, "output")


def test_inverses_reject_malformed_predictions():
    odd = np.zeros((3, 5), dtype=np.uint8)
    with pytest.raises(InverseError, match="upscale:2x2:both.*3x5"):
        Upscale(2, 2).invert(odd)
    with pytest.raises(InverseError, match="at least 5x5"):
        Pad(2, 0).invert(odd)
    with pytest.raises(InverseError, match="width must be even"):
        Mirror("h").invert(odd)
    with pytest.raises(InverseError, match="multiple of 2"):
        Tile(2, 1).invert(odd)
    blocks = np.array([[1, 1], [1, 2]], dtype=np.uint8)
    with pytest.raises(InverseError, match="not uniform"):
        Upscale(2, 2).invert(blocks)
    assert Upscale(2, 2).invert(blocks, strict=False).tolist() == [[1]]
    with pytest.raises(InverseError, match="not all colour 3"):
        Pad(1, 3).invert(np.zeros((3, 3), dtype=np.uint8))
    spec = AugmentSpec("rot90", steps=(Upscale(2, 2, "output"),))
    with pytest.raises(InverseError):
        invert_grid(odd, spec, "output")
    assert invert_grid(odd, spec, "input").shape == (5, 3)  # input-only steps do not touch outputs
    with pytest.raises(ValueError, match="0-9"):
        invert_grid(np.full((2, 2), 12), spec)


@SETTINGS
@given(specs, st.integers(0, 5), st.integers(0, 1000))
def test_spec_json_round_trip(spec, n, seed):
    order = tuple(int(i) for i in np.random.default_rng(seed).permutation(n)) if n else None
    spec = AugmentSpec(spec.geometric, spec.colors, order, spec.steps, seed)
    assert AugmentSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_spec_json_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="'spin'"):
        AugmentSpec.from_json({"geometric": "spin"})
    with pytest.raises(ValueError, match="colour"):
        AugmentSpec.from_json({"colors": [1] * 10})
    with pytest.raises(ValueError, match=r"\[0, 0\]"):
        AugmentSpec.from_json({"order": [0, 0]})
    with pytest.raises(ValueError, match="blur"):
        AugmentSpec.from_json({"steps": [{"kind": "blur"}]})
    with pytest.raises(ValueError, match="pad width"):
        AugmentSpec.from_json({"steps": [{"kind": "pad", "width": 0, "color": 1}]})
    with pytest.raises(ValueError, match="wobble"):
        AugmentSpec.from_json({"wobble": 1})


# --------------------------------------------------------------------------- tasks


@SETTINGS
@given(tasks(), specs, st.integers(0, 1000))
def test_apply_task_and_map_outputs_back(task, spec, seed):
    order = tuple(int(i) for i in np.random.default_rng(seed).permutation(len(task.train)))
    spec = AugmentSpec(spec.geometric, spec.colors, order, spec.steps)
    res = try_apply_task(task, spec)
    assert (res.reason is None) == (check_fits(task, spec) is None)
    if not res.ok:
        assert "over the 30x30 limit" in res.reason and "task t" in res.reason
        with pytest.raises(AugmentSkipped):
            apply_task(task, spec)
        return
    view = res.task
    assert view.id == task.id and len(view.train) == len(task.train) and len(view.test) == len(task.test)
    for new, old_index in zip(view.train, order):
        old = task.train[old_index]
        assert np.array_equal(invert_grid(new.input, spec, "input"), old.input)
        assert np.array_equal(invert_grid(new.output, spec, "output"), old.output)
    for new, old in zip(view.test, task.test):
        assert np.array_equal(invert_grid(new.output, spec, "output"), old.output)


def test_oversize_view_is_skipped_with_a_reason():
    big = Task(
        "big", (Pair(np.zeros((20, 3), np.uint8), np.zeros((2, 2), np.uint8)),), (Pair(np.zeros((2, 2), np.uint8)),)
    )
    spec = AugmentSpec(steps=(Upscale(2, 2, "input"),))
    with pytest.raises(AugmentSkipped) as e:
        apply_task(big, spec)
    assert e.value.task == "big" and e.value.pair == "train pair 0" and e.value.shape == (40, 6)
    assert "40x6" in str(e.value)
    res = try_apply_task(big, spec)
    assert not res.ok and res.reason == str(e.value)
    assert try_apply_task(big, AugmentSpec(steps=(Upscale(2, 2, "output"),))).ok
    # rot90 turns the 20x3 input into 3x20: doubling the height then fits, doubling the width does not
    assert try_apply_task(big, AugmentSpec("rot90", steps=(Upscale(2, 1, "input"),))).ok
    assert check_fits(big, AugmentSpec("rot90", steps=(Upscale(2, 1, "input"),))) is None
    assert "3x40" in check_fits(big, AugmentSpec("rot90", steps=(Upscale(1, 2, "input"),)))
    assert "40x3" in check_fits(big, AugmentSpec("identity", steps=(Upscale(2, 1, "input"),)))


def test_wrong_train_order_is_named():
    task = Task("x", (Pair(ASYM, ASYM),), (Pair(ASYM),))
    with pytest.raises(ValueError, match=r"task x.*\[1, 0\].*1 train pairs"):
        apply_task(task, AugmentSpec(order=(1, 0)))


def test_random_spec_is_reproducible_and_uses_options():
    task = Task("x", tuple(Pair(ASYM, ASYM) for _ in range(5)), (Pair(ASYM),))
    opts = AugmentOptions(compose=("upscale", "pad:1:5:output"), p_bg=0.2)
    assert random_spec(7, opts, task) == random_spec(7, opts, task)
    assert len({random_spec(s, opts, task) for s in range(30)}) > 25
    spec = random_spec(7, opts, task)
    assert spec.seed == 7 and sorted(spec.order) == list(range(5))
    assert [s.kind for s in spec.steps] == ["upscale", "pad"] and spec.steps[1] == Pad(1, 5, "output")
    assert spec.steps[0].target in ("input", "output") and 2 <= spec.steps[0].ky <= 4
    assert {random_spec(s, AugmentOptions(transforms=("rot90", "flip_v")), task).geometric for s in range(40)} == {
        "rot90",
        "flip_v",
    }
    assert all(not random_spec(s, AugmentOptions(compose=("tile",), p_compose=0.0), task).steps for s in range(10))
    with pytest.raises(ValueError, match="needs the task"):
        random_spec(0, AugmentOptions())


def test_random_views_skip_what_does_not_fit():
    task = Task(
        "x", (Pair(np.zeros((16, 16), np.uint8), np.zeros((3, 3), np.uint8)),) * 2, (Pair(np.zeros((3, 3), np.uint8)),)
    )
    views = random_views(task, 5, AugmentOptions(compose=("upscale",)), seed=1, max_tries=60)
    assert len(views) == 5
    assert all(s.steps[0].target == "output" for s, _ in views)  # every input upscale of 16x16 is over 30
    assert len({s.seed for s, _ in views}) == 5
    for spec, view in views:
        assert view.to_json() == apply_task(task, spec).to_json()


def test_options_validate_and_round_trip():
    opts = AugmentOptions(transforms=("rot90",), colors="1:2,2:1", compose=("upscale:2x2:input", "pad"), seed=3)
    assert AugmentOptions.from_json(json.loads(json.dumps(opts.to_json()))) == opts
    assert set(AugmentOptions.HELP) == set(AugmentOptions().to_json())
    bad = {
        "transforms": (("rot45",), "'rot45'"),
        "colors": ("purple", "'purple'"),
        "p_bg": (1.5, "1.5"),
        "compose": (("blur",), "'blur'"),
        "compose_targets": (("sideways",), "'sideways'"),
        "seed": ("x", "'x'"),
    }
    for field, (value, named) in bad.items():
        with pytest.raises(ValueError, match=named):
            AugmentOptions(**{field: value}).validate()
    with pytest.raises(ValueError, match="colours 1 and 2 both go to 1"):
        AugmentOptions(colors="1:1,2:1").validate()
    with pytest.raises(ValueError, match="nonsense"):
        AugmentOptions.from_json({"nonsense": 1})


# --------------------------------------------------------------------------- leave-out


def _distinct(task: Task) -> bool:
    keys = [g.tobytes() + bytes(g.shape) for g in task.grids]
    return len(keys) == len(set(keys))


def _contains(tasks_: list[Task], grid: np.ndarray) -> bool:
    return any(g.shape == grid.shape and np.array_equal(g, grid) for t in tasks_ for g in t.grids)


@SETTINGS
@given(tasks(min_train=2, max_side=4))
def test_leave_one_out_has_no_leak(task):
    assume(_distinct(task))
    out = leave_one_out(task)
    n = len(task.train)
    assert len(out) == n and [t.id for t in out] == [f"t/n-1/{k}" for k in range(n)]
    for test_pair in task.test:
        assert not _contains(out, test_pair.output) and not _contains(out, test_pair.input)
    for k, t in enumerate(out):
        held = task.train[k]
        assert len(t.train) == n - 1 and len(t.test) == 1
        assert np.array_equal(t.test[0].output, held.output) and np.array_equal(t.test[0].input, held.input)
        assert not any(np.array_equal(p.output, held.output) and p.output.shape == held.output.shape for p in t.train)
        assert [p.input.tobytes() for p in t.train] == [p.input.tobytes() for i, p in enumerate(task.train) if i != k]


@SETTINGS
@given(tasks(min_train=3, max_side=4), st.integers(0, 5))
def test_leave_two_out(task, m):
    assume(_distinct(task))
    n = len(task.train)
    out = leave_two_out(task)
    assert len(out) == n * (n - 1) // 2
    for t in out:
        i, j = map(int, t.id.rsplit("/", 1)[1].split("-"))
        assert t.id.startswith("t/n-2/") and i < j
        assert len(t.train) == n - 2 and len(t.test) == 2
        assert t.test[0].output is task.train[i].output and t.test[1].output is task.train[j].output
        assert all(p.output is not task.train[i].output and p.output is not task.train[j].output for p in t.train)
    for test_pair in task.test:
        assert not _contains(out, test_pair.output)
    sample = leave_two_out(task, max_tasks=m, seed=1)
    assert len(sample) == min(m, len(out)) and {t.id for t in sample} <= {t.id for t in out}


def test_leave_out_needs_enough_pairs():
    one = Task("one", (Pair(ASYM, ASYM),), (Pair(ASYM, ASYM),))
    with pytest.raises(AugmentSkipped, match="task one.*at least 2 train pairs.*has 1"):
        leave_one_out(one)
    with pytest.raises(AugmentSkipped, match="at least 3"):
        leave_two_out(Task("two", (Pair(ASYM, ASYM),) * 2, (Pair(ASYM),)))


@SETTINGS
@given(tasks(min_train=2, max_side=4))
def test_seed_leave_two_out_is_n1_and_the_n1_of_each_n1_task(task):
    assume(_distinct(task))
    n = len(task.train)
    out = seed_leave_two_out(task)
    # n n-1 tasks, and n-1 more from each of them when it has at least two train pairs (n >= 3)
    assert len(out) == n + (n * (n - 1) if n >= 3 else 0)
    n1 = [t for t in out if t.id.count("/n-1/") == 1]
    assert [t.id for t in n1] == [t.id for t in leave_one_out(task)]
    for t in out:
        assert len(t.test) == 1 and leave_out_parent(t.id) == task.id
        assert len(t.train) == (n - 1 if t in n1 else n - 2)
        held = {id(t.test[0].output)} | {id(p.output) for p in t.train}
        assert len(held) == len(t.train) + 1 and held <= {id(p.output) for p in task.train}
    for test_pair in task.test:
        assert not _contains(out, test_pair.output)
    assert leave_out_tasks(task, 1) == leave_one_out(task) and leave_out_tasks(task, 2) == out


def test_n2_sample_counts_on_arc_agi_1_evaluation():
    from ttft.core.data import load_dataset

    ds = load_dataset("arc-agi-1/evaluation")
    union = {t.id: leave_out_tasks(t, 2) for t in ds}
    # the seed's evaluation_n-2.json (arc24 notebook 004): n-1 and n-2 tasks together
    assert sum(len(v) for v in union.values()) == 4935
    assert sum(len(leave_one_out(t)) for t in ds) == 1363
    # ttft's n-2 before issue 14 ('n-2 only'): 3,572 samples (tasks with two test pairs), none for two-pair tasks
    only = [t for t in ds if len(t.train) >= 3]
    assert sum(len(x.test) for t in only for x in leave_out_tasks(t, 2, n2_only=True)) == 3572
    two = [t for t in ds if len(t.train) == 2]
    assert len(two) == 45
    assert all(len(union[t.id]) == 2 for t in two)  # they keep their two n-1 tasks
    with pytest.raises(AugmentSkipped):
        leave_out_tasks(two[0], 2, n2_only=True)


def test_background_moves_at_p_bg():
    # arc24 / the seed: with probability 0.1 all of 0-9 are shuffled, so 0 moves in 0.1 * 9/10 of the maps
    opts = AugmentOptions(colors="keep-bg", p_bg=0.1, shuffle=False)
    rng = np.random.default_rng(7)
    maps = [random_spec(rng, opts).colors for _ in range(20000)]
    moved = np.mean([m[0] != 0 for m in maps])
    assert abs(moved - 0.09) < 0.01, moved
    assert all(sorted(m) == list(range(10)) for m in maps[:200])
    none = [random_spec(np.random.default_rng(i), AugmentOptions(shuffle=False)).colors[0] for i in range(500)]
    assert set(none) == {0}  # ttft's default: the background never moves


# --------------------------------------------------------------------------- CLI


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ttft", "augment", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


@pytest.fixture(scope="module")
def task_file(tmp_path_factory) -> Path:
    obj = {
        "train": [{"input": [[1, 2], [3, 0]], "output": [[1, 2, 2, 1]]}, {"input": [[4, 0]], "output": [[4]]}],
        "test": [{"input": [[5, 6, 0]], "output": [[5, 6]]}],
    }
    p = tmp_path_factory.mktemp("cli") / "demo.json"
    p.write_text(json.dumps(obj))
    return p


def test_cli_json_last_line_reproduces_the_view(task_file):
    r = _cli(
        str(task_file),
        "demo",
        "--transform",
        "rot90",
        "--colors",
        "1:2,2:1",
        "--compose",
        "upscale:2x2:input",
        "--seed",
        "5",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    spec = AugmentSpec.from_json(out["spec"])
    assert spec.geometric == "rot90" and spec.colors[1] == 2 and spec.steps == (Upscale(2, 2, "input"),)
    assert spec.seed == 5 and sorted(spec.order) == [0, 1]
    from ttft.core.data import load_dataset

    assert apply_task(load_dataset(task_file)["demo"], spec).to_json() == out["task"]


def test_cli_summary_and_bundled_dataset():
    r = _cli("arc-agi-1/training", "007bbfb7", "--transform", "flip_v", "--no-shuffle", "--colors", "none")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("task 007bbfb7: flip_v, colours unchanged")
    assert "train pair 0: input 3x3 -> 3x3, output 9x9 -> 9x9" in r.stdout


@pytest.mark.parametrize(
    "args, named",
    [
        (["nope"], "'nope'"),
        (["demo", "--transform", "rot45"], "'rot45'"),
        (["demo", "--colors", "1:2"], "1:2"),
        (["demo", "--compose", "upscale:20"], "over the 30x30 limit"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(task_file, args, named):
    r = _cli(str(task_file), *args, "--json")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], r.stderr
    assert r.stdout == ""
