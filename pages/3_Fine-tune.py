"""Fine-tune: launch background training jobs, watch them live, stop, resume, clone or delete them.

Jobs run as `python -m ttft …` in their own process sessions (ttft.jobs); this page only reads run directories.
"""

import streamlit as st

from ttft.engine import commands
from ttft.engine.train_config import TrainConfig
from ttft.runs import registry
from ttft.ui import jobs_widgets as jw
from ttft.ui import navigation as nav
from ttft.ui import run_panel as rp
from ttft.ui import widgets as w

w.page_frame("Fine-tune")
st.session_state["_ft_full_run"] = True  # fragments' timed reruns see False (set at the end)
cfg = jw.job_config()
root = cfg.root
jw.keep_warm_worker()  # jobs launched from here (a run, Predict from its panel) start from the warm worker

st.title("Fine-tune")
st.caption(
    f"Runs folder `{root}` (set `TTFT_RUNS_DIR` to change) · {cfg.gpu_slots} GPU job(s) and "
    f"{cfg.cpu_slots} CPU job(s) at a time, more wait in the queue · jobs keep running when this page, the "
    "browser or the app goes away"
)
jw.show_message()

# ---------------------------------------------------------------- runs
all_jobs = registry.list_jobs(root)
st.session_state["_ft_sig"] = jw.signature(all_jobs)
st.subheader("Runs")
jw.runs_list(root, all_jobs)  # live while a job is active; else drawn once, a cheap watcher reruns on a change
job = jw.run_picker(all_jobs)
if job is not None:
    with st.container(border=True):
        rp.run_panel(job)

# ---------------------------------------------------------------- new run
st.subheader("New run")
if nav.preselect_form(TrainConfig, jw.PREFIX):
    st.info(f"Task {st.query_params.get('task')} is preselected below: set the steps and Launch.")
form = jw.options_form()
ok = form.error is None
st.caption(form.selected)
if not ok:
    st.error(form.error)
else:
    jw.command_block(form.cfg)
c = st.columns([2, 1], vertical_alignment="bottom")
name = c[0].text_input(
    "Run name (optional)",
    key="ft_name",
    max_chars=60,
    help="the run folder is <date>-<time>-<name> (default: the mode)",
)
if c[1].button(
    "Launch", type="primary", disabled=not ok, key="ft_launch", icon=":material/rocket_launch:", width="stretch"
):
    try:
        launched = commands.launch_train(form.cfg, cfg, name=name.strip() or None)
    except (registry.JobError, ValueError, OSError) as e:
        st.session_state["_ft_msg"] = ("error", f"Not launched: {e}")
    else:
        st.session_state["_ft_select_next"] = launched.id
        st.session_state["_ft_msg"] = ("success", jw.launch_message(launched, root, cfg))
    st.session_state["_ft_full_run"] = False
    st.rerun()
with st.expander("Config files"):
    jw.config_files(form.cfg)
st.session_state["_ft_full_run"] = False
