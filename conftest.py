"""Test settings for unit tests and for the notebook kernels nbval starts (they inherit these)."""

import os

os.environ["DISLIB_BUDGET"] = "smoke"
os.environ["DISLIB_DOWNLOAD"] = "0"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")

collect_ignore_glob = ["_build/*", "**/.ipynb_checkpoints/*"]
