"""RE-ARC-format pools (ttft/core/pools.py), pool sampling and weighted mixes (ttft/engine/samples.py, mix.py)."""

import json
import random
import subprocess
import sys

import numpy as np
import pytest

from ttft.core import pools
from ttft.core.data import TaskError, _parse_pair, load_dataset, load_upload
from ttft.engine.samples import SampleStream, pool_sample
from ttft.engine.train_config import TrainConfig
from ttft.options import ConfigError


def rand_pairs(n, seed=0, side=(1, 6)):
    rng = np.random.default_rng(seed)

    def grid():
        h, w = rng.integers(side[0], side[1] + 1, 2)
        return rng.integers(0, 10, (h, w)).tolist()

    return [{"input": grid(), "output": grid()} for _ in range(n)]


def write(path, obj, **kw):
    path.write_text(json.dumps(obj, **kw))
    return path


# ----------------------------------------------------------------------------- loading


@pytest.mark.parametrize("indent", [None, 2])
def test_a_pool_file_loads_as_one_task_with_its_pairs(tmp_path, indent):
    pairs = rand_pairs(30)
    ds = load_dataset(write(tmp_path / "007bbfc7.json", pairs, indent=indent))
    assert ds.ids == ["007bbfc7"] and ds.errors == [] and ds.version == "pool"
    t = ds["007bbfc7"]
    assert t.pool and t.n_pairs == 30 and t.test == () and t.stats().n_pairs == 30 and t.stats().pool
    for p, want in zip(t.train, pairs):
        assert p.input.tolist() == want["input"] and p.output.tolist() == want["output"]
        assert p.input.dtype == np.uint8


def test_a_folder_of_pools_loads_every_pool_beside_ordinary_tasks(tmp_path):
    for i in range(3):
        write(tmp_path / f"p{i}.json", rand_pairs(10 + i, seed=i))
    write(tmp_path / "task.json", {"train": rand_pairs(2), "test": rand_pairs(1)})
    ds = load_dataset(tmp_path)
    assert ds.ids == ["p0", "p1", "p2", "task"] and not ds.errors
    assert [ds[i].n_pairs for i in ds.ids] == [10, 11, 12, 3]
    assert [ds[i].pool for i in ds.ids] == [True, True, True, False]


def test_bad_pairs_are_located_skipped_and_counted_and_the_rest_kept(tmp_path):
    pairs = rand_pairs(20)
    pairs[3]["input"][0][0] = 10
    pairs[7] = {"input": [[1, 2], [3]], "output": [[1]]}
    pairs[9] = {"input": [[1]]}
    pairs[11]["output"] = [[True]]
    ds = load_dataset(write(tmp_path / "a.json", pairs))
    t = ds["a"]
    assert t.n_pairs == 16
    keep = [p for i, p in enumerate(pairs) if i not in (3, 7, 9, 11)]
    assert [p.input.tolist() for p in t.train] == [p["input"] for p in keep]
    msgs = [str(e) for e in ds.errors]
    assert len(msgs) == 5 and all(str(tmp_path / "a.json") in m and "task a" in m for m in msgs)
    assert "pair 3, field 'input': cell [0][0] is 10" in msgs[0] and msgs[0].endswith("pair skipped")
    assert "pair 7, field 'input': ragged grid" in msgs[1]
    assert "pair 9, field 'output'" in msgs[2] and "pair 11, field 'output': cell [0][0] is true" in msgs[3]
    assert "4 of 20 pairs are bad and skipped; 16 kept" in msgs[4]


def test_many_bad_pairs_are_reported_up_to_a_limit_then_counted(tmp_path):
    pairs = rand_pairs(30)
    for i in range(12):
        pairs[i]["output"] = "x"
    ds = load_dataset(tmp_path) if write(tmp_path / "b.json", pairs) else None
    assert ds["b"].n_pairs == 18
    assert len(ds.errors) == pools.MAX_BAD_REPORTED + 1
    assert "12 of 30 pairs are bad and skipped (7 not listed); 18 kept" in str(ds.errors[-1])


def test_a_pool_without_two_good_pairs_is_skipped_in_a_folder_and_refused_alone(tmp_path):
    write(tmp_path / "good.json", rand_pairs(5))
    write(tmp_path / "empty.json", [])
    write(tmp_path / "one.json", rand_pairs(1))
    write(tmp_path / "numbers.json", [1, 2])
    ds = load_dataset(tmp_path)
    assert ds.ids == ["good"]
    text = " | ".join(map(str, ds.errors))
    assert "empty.json, task empty: the pool is empty" in text
    assert "one.json, task one: a pool needs at least 2 good pairs" in text
    assert "numbers.json, task numbers, pair 0: pair must be an object" in text
    with pytest.raises(TaskError) as ei:
        load_dataset(tmp_path / "numbers.json")
    assert "numbers.json" in str(ei.value) and "at least 2 good pairs" in str(ei.value) and "pair 0" in str(ei.value)


def test_an_uploaded_pool_loads():
    ds = load_upload("re.json", json.dumps(rand_pairs(4)).encode())
    assert ds.ids == ["re"] and ds["re"].n_pairs == 4 and ds.version == "upload (pool)"


def test_the_vectorised_reader_agrees_with_json_or_declines():
    """Random edits of a pool's text: whatever the fast reader accepts is valid JSON that the exact checks read to
    the same pairs; everything else it declines (and the exact path then reads it)."""
    rnd = random.Random(3)
    base = json.dumps([{"input": [[1, 2], [3, 4]], "output": [[5]]}, {"output": [[0, 0, 7]], "input": [[9]]}])
    alphabet = b'0123456789[]{},: "IOinputoa-.e\n'
    accepted = 0
    for _ in range(3000):
        b = bytearray(base.encode())
        for _ in range(rnd.randint(1, 3)):
            i = rnd.randrange(len(b))
            op = rnd.random()
            if op < 0.4:
                b[i] = rnd.choice(alphabet)
            elif op < 0.7:
                del b[i]
            else:
                b.insert(i, rnd.choice(alphabet))
        got = pools.read_plain_pool(bytes(b))
        if got is None:
            continue
        accepted += 1
        obj = json.loads(bytes(b))
        assert all(set(p) == {"input", "output"} for p in obj), bytes(b)
        ref = [_parse_pair(p, "x", True) for p in obj]
        assert len(ref) == len(got)
        for r, g in zip(ref, got):
            assert np.array_equal(r.input, g.input) and np.array_equal(r.output, g.output), bytes(b)
    assert accepted > 20  # cell edits and whitespace are still the plain form
    big = json.dumps(rand_pairs(200, side=(1, 30))).encode()
    assert pools.read_plain_pool(big) is not None
    for bad in [
        b'[{"input": [[1]], "output": [[1]], "x": 1}]',
        b'[{"input": [[0] * 31], "output": [[1]]}]',
        b"[]",
        b'[{"input": [[1, 2], [3]], "output": [[1]]}]',
        b'[{"input": [[1]], "input": [[1]]}]',
        b'[{"input": [[[1]]], "output": [[1]]}]',
        b'[{"input": [[1]], "output": [[1]]},]',
        json.dumps([{"input": [[0] * 31], "output": [[1]]}]).encode(),
        b'[{"in put": [[1]], "output": [[1]]}]',  # whitespace inside a key is part of it
        b'[{"input": [[1]], "output\t": [[1]]}]',
        b'[{"input": [[1]], "output": [[1]], "": 1}]',
        b'[{"output": [[1]], "output": [[1]]}]',
    ]:
        assert pools.read_plain_pool(bad) is None
    spaced = pools.read_plain_pool(b'[ {"output" :[[1 ,2]] ,\n"input"\t: [ [3],[4] ]} ]')
    assert spaced is not None and spaced[0].input.tolist() == [[3], [4]] and spaced[0].output.tolist() == [[1, 2]]


def test_tasks_cli_reports_n_pairs(tmp_path):
    write(tmp_path / "p.json", rand_pairs(12))
    r = subprocess.run(
        [sys.executable, "-m", "ttft", "tasks", str(tmp_path), "--json"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout.strip().splitlines()[-1])
    assert row["id"] == "p" and row["n_pairs"] == 12 and row["pool"] is True and row["n_test"] == 0


# ----------------------------------------------------------------------------- sampling from pools


def pool_task(n=50, tid="p"):
    from ttft.core.pools import pool_from_json

    task, errors = pool_from_json(rand_pairs(n), tid)
    assert task is not None and not errors
    return task


def key(p):
    return (p.input.tobytes(), p.input.shape, p.output.tobytes(), p.output.shape)


def test_pool_samples_hold_k_distinct_pairs_within_the_range():
    pool = pool_task(50)
    index = {key(p): i for i, p in enumerate(pool.train)}
    assert len(index) == 50
    ks = set()
    for s in range(300):
        t = pool_sample(np.random.default_rng(s), pool, 3, 6)
        pairs = t.train + t.test
        assert len(t.test) == 1 and 3 <= len(pairs) <= 6
        ids = [index[key(p)] for p in pairs]
        assert len(set(ids)) == len(ids)  # no pair twice in one sample
        ks.add(len(pairs))
    assert ks == {3, 4, 5, 6}
    assert len(pool_sample(np.random.default_rng(0), pool_task(3), 5, 9).train) == 2  # capped by the pool's size


def stream_of(cfg, sources=None, mix=None, n=200):
    return SampleStream(sources or [], "finetune", n, cfg, None, mix=mix)


def test_the_pool_stream_is_deterministic_by_seed_and_resumable():
    pools_ = [pool_task(40, "a"), pool_task(40, "b")]
    cfg = TrainConfig(mode="finetune", pool_pairs_min=2, pool_pairs_max=4, encoding=TrainConfig().encoding)
    a = [stream_of(cfg, pools_)[i]["input_ids"] for i in range(40)]
    b = [stream_of(cfg, pools_)[i]["input_ids"] for i in range(40)]
    resumed = stream_of(cfg, pools_)
    tail = [resumed[i]["input_ids"] for i in range(20, 40)]  # a resume skips the samples already seen
    other = [stream_of(cfg.replace(seed=1), pools_)[i]["input_ids"] for i in range(40)]
    assert a == b and tail == a[20:] and other != a


def test_a_weighted_mix_draws_each_dataset_by_its_share():
    parts = [[pool_task(10, f"a{i}") for i in range(3)], [pool_task(10, f"b{i}") for i in range(5)]]
    cfg = TrainConfig(mode="finetune", more_datasets=("other",), dataset_weights=(1.0, 3.0))
    st_ = stream_of(cfg, mix=parts, n=4000)
    drawn = [st_._source(i).id for i in range(4000)]
    share_b = sum(d.startswith("b") for d in drawn) / len(drawn)
    assert abs(share_b - 0.75) < 0.03, share_b
    assert {d for d in drawn if d.startswith("b")} == {f"b{i}" for i in range(5)}  # every task of a dataset drawn
    again = stream_of(cfg, mix=parts, n=4000)
    assert [again._source(i).id for i in range(0, 4000, 7)] == drawn[::7]
    even = stream_of(cfg.replace(dataset_weights=()), mix=parts, n=4000)
    assert abs(sum(even._source(i).id.startswith("b") for i in range(4000)) / 4000 - 0.5) < 0.03


def test_mix_and_pool_options_are_checked():
    with pytest.raises(ConfigError, match="pool_pairs_max: must be at least pool_pairs_min"):
        TrainConfig(pool_pairs_min=5, pool_pairs_max=4).validate()
    with pytest.raises(ConfigError, match="more_datasets: a mix of datasets is for mode 'finetune'"):
        TrainConfig(more_datasets=("x",)).validate()
    with pytest.raises(ConfigError, match="dataset_weights: needs one weight per dataset"):
        TrainConfig(mode="finetune", more_datasets=("x",), dataset_weights=(1.0,)).validate()
    with pytest.raises(ConfigError, match="dataset_weights: must be"):
        TrainConfig(mode="finetune", more_datasets=("x",), dataset_weights=(1.0, 0.0)).validate()
    with pytest.raises(ConfigError, match="names a dataset twice"):
        TrainConfig(mode="finetune", dataset="x", more_datasets=("x",)).validate()
    # an old config.json without the new options still loads, with their defaults
    old = {k: v for k, v in TrainConfig().to_json().items() if k not in ("more_datasets", "dataset_weights")}
    assert TrainConfig.from_json(old) == TrainConfig()


def test_dataset_is_repeatable_on_the_command_line_and_round_trips():
    import argparse

    from ttft.engine.commands import add_train_arguments, train_argv
    from ttft.options import apply_args

    p = argparse.ArgumentParser()
    add_train_arguments(p)
    argv = ["--mode", "finetune", "--dataset", "arc-agi-1/training", "--dataset", "/d/re_arc/tasks"]
    cfg = apply_args(TrainConfig, p.parse_args([*argv, "--dataset-weights", "1,3"]))
    assert cfg.dataset == "arc-agi-1/training" and cfg.more_datasets == ("/d/re_arc/tasks",)
    assert cfg.dataset_weights == (1.0, 3.0)
    flags = train_argv(cfg)
    assert flags.count("--dataset") == 2 and "--dataset-weights" in flags
    assert apply_args(TrainConfig, p.parse_args(flags[1:])) == cfg
    # one --dataset over a config with a mix replaces the mix
    base = {**cfg.to_json(), "dataset_weights": []}
    one = apply_args(TrainConfig, p.parse_args(["--dataset", "arc-agi-1/evaluation"]), base=base)
    assert one.more_datasets == () and one.dataset == "arc-agi-1/evaluation"
    assert train_argv(TrainConfig()) is not None and "--dataset" in train_argv(TrainConfig())


# ----------------------------------------------------------------------------- a run on a mix


def test_a_finetune_run_on_a_mix_of_pools_and_tasks_records_each_dataset(tiny_model, tmp_path):
    from ttft.engine.models import ModelConfig
    from ttft.engine.train import train
    from ttft.runs.rundir import RunDir

    pool_dir, task_dir = tmp_path / "re_arc", tmp_path / "tasks"
    pool_dir.mkdir()
    task_dir.mkdir()
    for i in range(3):
        write(pool_dir / f"p{i}.json", rand_pairs(20, seed=i, side=(1, 4)))
    write(task_dir / "t.json", {"train": rand_pairs(3, side=(1, 4)), "test": rand_pairs(1, side=(1, 4))})
    cfg = TrainConfig(
        mode="finetune",
        dataset=str(task_dir),
        more_datasets=(str(pool_dir),),
        dataset_weights=(1.0, 3.0),
        pool_pairs_min=2,
        pool_pairs_max=3,
        steps=3,
        val="none",
        device="cpu",
        threads=1,
        save_steps=100,
        model=ModelConfig(base_model=tiny_model, lora_r=2, lora_alpha=4),
    )
    res = train(cfg, run_dir=str(tmp_path / "run"))
    assert res.status == "finished" and res.steps == 3
    run = RunDir(tmp_path / "run")
    assert run.config()["more_datasets"] == [str(pool_dir)] and run.config()["dataset_weights"] == [1.0, 3.0]
    man = run.manifest()
    assert man["dataset"] == str(task_dir) and man["n_tasks"] == 4
    assert man["datasets"] == [
        {"name": str(task_dir), "version": "folder", "weight": 0.25, "n_tasks": 1, "n_pools": 0},
        {"name": str(pool_dir), "version": "folder", "weight": 0.75, "n_tasks": 3, "n_pools": 3},
    ]
    with pytest.raises(ConfigError, match="holds pools of pairs"):
        train(TrainConfig(dataset=str(pool_dir), model=cfg.model, device="cpu"), run_dir=str(tmp_path / "ttft"))


@pytest.mark.parametrize("fmt", ["minimal", "shape+rows", "separated", "arc24", "numpy"])
def test_trimming_decided_from_the_shapes_gives_the_exact_trimmed_stream(fmt):
    """With the embedded tokenizer the stream counts a sample's tokens from its grids' shapes and drops the leading
    train pairs that do not fit before writing any text: the samples (and counts) are those of the path that
    tokenises the whole view and pops a pair while it does not fit, for every grid format."""
    from ttft.core.encoding import EncodingConfig

    big = [pool_task(30, f"p{i}") for i in range(2)]
    big = [
        type(t)(
            t.id, tuple(type(p)(np.tile(p.input, (3, 3)), np.tile(p.output, (3, 3))) for p in t.train), (), pool=True
        )
        for t in big
    ]
    enc = EncodingConfig(format=fmt, max_seq_len=1536)
    cfg = TrainConfig(mode="finetune", encoding=enc, pool_pairs_min=6, pool_pairs_max=7)
    fast = stream_of(cfg, big, n=60)
    got = [fast[i]["input_ids"] for i in range(60)]
    assert fast.counts["trimmed"] >= 3
    exact = stream_of(cfg, big, n=60)
    exact._fast = False  # apply the view, tokenise it, pop the first train pair while it does not fit
    assert [exact[i]["input_ids"] for i in range(60)] == got
    assert exact.counts == fast.counts
