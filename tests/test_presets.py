"""Every preset in flags/ parses into a valid config (and a sweep preset into its cells), with the images
its own usage line names (or c.jpg and s.jpg where it names none)."""
import glob
import os
import re

import pytest

import run as run_script
from nst_tf.comparison import axes as sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = sorted(glob.glob(os.path.join(ROOT, "flags", "*.flags")))


def usage_args(path: str) -> list[str]:
    """The flags after --flagfile on the preset's `#   python run.py --flagfile=...` line."""
    for line in open(path):
        match = re.match(r"#\s+python run\.py --flagfile=\S+ (.*)", line)
        if match:
            return match.group(1).split()
    return []


@pytest.mark.parametrize("path", PRESETS, ids=os.path.basename)
def test_preset_parses_and_says_what_it_reproduces(path):
    assert open(path).readline().startswith("# ")
    args = usage_args(path)
    if not any(a.startswith("--content=") for a in args) and "--mode=train" not in open(path).read():
        args += ["--content=c.jpg"]   # a stylizer trains on photos of its own
    if not any(a.startswith("--style=") for a in args):
        args += ["--style=s.jpg"]
    run_script.FLAGS.unparse_flags()
    try:
        run_script.FLAGS(["run.py", f"--flagfile={path}", *args])
        config = run_script.config_from_flags()
        cells = sweep.expand(config)
    finally:
        run_script.FLAGS.unparse_flags()
    if "--sweep=" in open(path).read():
        assert len(cells) >= 2
        groups = sweep.batches(cells)   # every cell in exactly one batch, each batch sharing its batch key
        assert sorted(c.index for g in groups for c in g) == list(range(len(cells)))
        assert all(len({sweep.batch_key(c.config) for c in g}) == 1 for g in groups)
    else:
        assert cells == []
