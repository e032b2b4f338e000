"""Experiments: the seed ablation (baseline vs TTFT variants) — launch it and read its table and chart."""

import streamlit as st

from ttft.engine.experiment import ablation_figure, experiments_root, list_experiments, per_task_losses, results_frame
from ttft.runs import metrics as runmetrics
from ttft.runs.rundir import RunDir, read_json
from ttft.ui import experiment_widgets as ew
from ttft.ui import widgets as w

w.page_frame("Experiments")
st.title("Experiments")
st.caption(
    "The seed experiment as a built-in: per-task TTFT with n-1, + geometric, + colour permutations, the "
    "'preserve original colours' and n-2 variants, against the untuned baseline — val loss, accuracy, pass@2 "
    "and wall time per row. Each stage runs as its own `python -m ttft …` process."
)

with st.expander("Launch a seed ablation", expanded=not list_experiments()):
    ew.launch_form()

exps = list_experiments()
if not exps:
    st.info(f"No experiment in {experiments_root()} yet.")
    st.stop()
names = [p.name for p in exps]
qp = w.query_param("experiment")
pick = st.selectbox("Experiment", names, index=names.index(qp) if qp in names else 0, key="exp_pick")
w.set_query_params(experiment=pick)
exp = RunDir(experiments_root() / pick)
status = exp.status()
cfg = exp.config()
st.caption(
    f"status **{status.get('status', '?')}** · {status.get('rows_done', 0)} of {status.get('n_rows', '?')} "
    f"rows · {status.get('n_tasks', '?')} tasks of {cfg.get('dataset')} · {cfg.get('steps')} steps · "
    f"{cfg.get('views')} views · seed {cfg.get('seed')} · {cfg.get('gpus')} process(es)"
)
if status.get("error"):
    st.error(status["error"])
results = read_json(exp.path / "results.json") or {}
df = results_frame(results, exp.path)
if df.empty:
    st.info("No row has finished yet.")
    st.stop()
st.dataframe(
    df,
    hide_index=True,
    column_config={
        "val accuracy": st.column_config.NumberColumn(format="percent"),
        "pass@2": st.column_config.NumberColumn(format="percent"),
        "vote@1": st.column_config.NumberColumn(format="percent"),
        "pixels": st.column_config.NumberColumn(format="percent"),
        "val loss": st.column_config.NumberColumn(format="%.4f"),
        "TTFT s": st.column_config.NumberColumn(format="%.0f"),
        "total s": st.column_config.NumberColumn(format="%.0f"),
        "s/task/100 steps": st.column_config.NumberColumn(format="%.1f"),
        "mean loss change per task": st.column_config.NumberColumn(format="percent"),
    },
)
st.plotly_chart(ablation_figure(results, exp.path), key="ablation_chart")
base_loss = df.loc[df["experiment"] == "baseline", "val loss"]
if len(base_loss) and base_loss.iloc[0] is not None:
    better = df[(df["experiment"] != "baseline") & (df["val loss"] < base_loss.iloc[0])]["experiment"].tolist()
    st.caption(f"Rows with a lower val loss than the baseline: {', '.join(better) or 'none'}.")
with st.expander("Val loss per task and row"):
    st.dataframe(per_task_losses(results, exp.path), column_config={"_index": "task"})
log = exp.path / "log.txt"
if log.exists():
    with st.expander("Log"):
        st.code(runmetrics.tail_text(log, 60))
