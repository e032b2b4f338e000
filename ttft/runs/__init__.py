"""The run-directory contract (layout, atomic writes, status lifecycle, readers), processes, the job queue and the
registry of runs, predictions and experiments."""
