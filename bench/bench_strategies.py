"""Selection strategies on one set of predictions (issue 15): for each view plan (``--views-from`` task,
leave-one-out, marc), one prediction with ``--score poe`` (so every candidate carries its poe score), then per plan
the tasks solved by votes, poe, votes+poe and MARC's two-level vote, against the oracle (any candidate right), from
the strategy explorer's own computation (``ttft.views.strategies``); and each plan's views and seconds per view as a
ratio to the task plan's, measured in the same run.

    .venv/bin/python bench/bench_strategies.py --run RUN_DIR [--views 8] [--loo-views 4] [--out DIR]
    .venv/bin/python bench/bench_strategies.py --only-read --out DIR      # the table of predictions made before
    .venv/bin/python bench/bench_strategies.py --run RUN_DIR --plans task --parts 2   # two processes, one per core

With ``--parts N`` each plan's tasks (the run's, in its order) are dealt round-robin to N ``predict`` processes run
at once, each into ``--out``/<plan>/part-<k>; the table reads the parts as one prediction (seconds per view: the
parts' summed wall time over their views, so it compares with a one-part plan's).

Predictions go to ``--out``/<plan> (never into the run's folder); ``--plans`` picks some of them; the table counts
the tasks every plan predicted (seconds per view: over each plan's whole prediction, model loading included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLANS = {
    "task": lambda a: ["--views", str(a.views)],
    "leave-one-out": lambda a: ["--views", str(a.loo_views), "--views-from", "leave-one-out"],
    "marc": lambda a: ["--views-from", "marc"],
}


def run_tasks(run: Path) -> list[str]:
    """The task ids of a training run, in its order (a task-parallel run's shards: each shard's, in turn)."""
    configs = [run / "config.json"] if (run / "config.json").exists() else sorted(run.glob("shard-*/config.json"))
    return [t for c in configs for t in json.loads(c.read_text()).get("tasks") or []]


def predict(args: argparse.Namespace, plan: str) -> None:
    out = Path(args.out) / plan
    cmd = [sys.executable, "-m", "ttft", "predict", "--run", args.run, *PLANS[plan](args), "--score", "poe"]
    env = {**os.environ, "TTFT_WARM_WORKER": "0"}
    t0 = time.time()
    if args.parts <= 1:
        subprocess.run([*cmd, "--out", str(out), "--json", *args.extra], check=True, cwd=ROOT, env=env)
    else:
        if any(a == "--tasks" or a.startswith("--tasks=") for a in args.extra):
            raise SystemExit("--parts deals the run's tasks to the parts: leave --tasks out of the predict flags")
        tasks = run_tasks(Path(args.run))
        if not tasks:
            raise SystemExit(f"--parts: no task list in {args.run}'s config.json")
        procs = []
        for k in range(args.parts):
            part = out / f"part-{k}"
            part.mkdir(parents=True, exist_ok=True)
            (part.parent / f"tasks-{k}.txt").write_text("\n".join(tasks[k :: args.parts]) + "\n")
            argv = [*cmd, "--tasks", f"@{part.parent / f'tasks-{k}.txt'}", "--out", str(part), "--json", *args.extra]
            procs.append(subprocess.Popen(argv, cwd=ROOT, env=env))
        if any(p.wait() for p in procs):
            raise SystemExit(f"{plan}: a part failed")
    print(f"{plan}: {time.time() - t0:.0f} s", file=sys.stderr)


def parts(out: Path) -> list[Path]:
    """The prediction folders of a plan: itself, or its part-<k> folders."""
    return sorted(out.glob("part-*")) or [out]


def read(out: Path, only: set[str] | None = None) -> tuple[dict, dict]:
    """Tasks solved per strategy (solved, of) and the plan's views and seconds per view, over the tasks in
    ``only`` (None: all)."""
    from ttft.runs.rundir import read_jsonl
    from ttft.views import strategies as sv

    every_task = [r for d in parts(out) for r in read_jsonl(d / "tasks.jsonl")]
    tasks = [r for r in every_task if only is None or r["task"] in only]
    views: dict = {}
    for d in parts(out):
        for v in read_jsonl(d / "predictions.jsonl"):
            views.setdefault((v["task"], v["test_index"]), []).append(v)
    summary = sv.summary_frame(sv.task_frame(tasks, views)).set_index("strategy")
    wall = sum(json.loads((d / "metrics.json").read_text())["wall_seconds"] for d in parts(out))
    n_views = sum(t["n_views"] for r in tasks for t in r["tests"])
    every = sum(t["n_views"] for r in every_task for t in r["tests"])
    return {s: (int(summary.loc[s, "solved"]), int(summary.loc[s, "of"])) for s in summary.index}, {
        "views": n_views,
        "s_per_view": wall / max(1, every),
        "tasks": len(tasks),
        "same_tasks": len(tasks) == len(every_task),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", help="a training run folder (per-task runs: their adapters)")
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--loo-views", type=int, default=4)
    ap.add_argument("--plans", nargs="+", default=list(PLANS), choices=list(PLANS))
    ap.add_argument("--out", default="/tmp/bench_strategies")
    ap.add_argument("--only-read", action="store_true")
    ap.add_argument("--parts", type=int, default=1, help="predict each plan in this many processes at once")
    ap.add_argument("extra", nargs="*", help="more predict flags, after --")
    args = ap.parse_args()
    if not args.only_read:
        if not args.run:
            ap.error("--run is needed (or --only-read)")
        for plan in args.plans:
            predict(args, plan)
    from ttft.runs.rundir import read_jsonl

    out = Path(args.out)
    done = [p for p in args.plans if all((d / "metrics.json").exists() for d in parts(out / p))]
    ids = [{r["task"] for d in parts(out / p) for r in read_jsonl(d / "tasks.jsonl")} for p in done]
    common = set.intersection(*ids) if ids else set()  # plans compared on the tasks they all predicted
    rows = {p: read(Path(args.out) / p, common) for p in done}
    strategies = ["votes", "poe", "votes+poe", "marc", "oracle"]
    base = rows.get("task", (None, None))[1]
    print("| views from | tasks | views | s/view (ratio to task) | " + " | ".join(strategies) + " |")
    print("|---|---|---|---|" + "---|" * len(strategies))
    for plan, (solved, info) in rows.items():
        same = base is not None and info["same_tasks"] and base["same_tasks"]  # else other tasks' views are in it
        ratio = f"{info['s_per_view'] / base['s_per_view']:.2f}x" if same else "other tasks"
        cells = [f"{solved[s][0]}/{solved[s][1]}" for s in strategies]
        print(
            f"| {plan} | {info['tasks']} | {info['views']} | {info['s_per_view']:.2f} ({ratio}) | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main()
