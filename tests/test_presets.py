"""Every preset in flags/ parses into a valid config (and a sweep preset into its cells)."""
import glob
import os

import pytest

import run as run_script
from nst_tf import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = sorted(glob.glob(os.path.join(ROOT, "flags", "*.flags")))


@pytest.mark.parametrize("path", PRESETS, ids=os.path.basename)
def test_preset_parses_and_says_what_it_reproduces(path):
    assert open(path).readline().startswith("# ")
    run_script.FLAGS.unparse_flags()
    try:
        run_script.FLAGS(["run.py", f"--flagfile={path}", "--content=c.jpg", "--style=s.jpg"])
        config = run_script.config_from_flags()
        cells = sweep.expand(config)
    finally:
        run_script.FLAGS.unparse_flags()
    if "--sweep=" in open(path).read():
        assert len(cells) >= 2
        assert sweep.batches(cells)   # groups into batches
