#!/usr/bin/env python
"""Installed size of a dependency closure, with and without some requirements (docs/install.md).

  python bench/install_size.py REQ,REQ,... DROPPED,DROPPED   # run with the venv's own python
"""
import os, re, sys
from importlib import metadata

def norm(n): return re.sub(r"[-_.]+", "-", n).lower()
dists = {norm(d.metadata["Name"]): d for d in metadata.distributions()}
def size(d):
    total = 0
    for f in d.files or []:
        p = d.locate_file(f)
        try: total += os.path.getsize(p)
        except OSError: pass
    return total
def reqs(d):
    out = []
    for r in d.requires or []:
        if ";" in r and "extra" in r.split(";",1)[1]: continue
        if ";" in r:
            marker = r.split(";",1)[1]
            try:
                from packaging.markers import Marker
                if not Marker(marker).evaluate(): continue
            except Exception: pass
        out.append(norm(re.split(r"[ <>=!~\[;(]", r.strip(), 1)[0]))
    return out
def closure(roots):
    seen, todo = set(), list(roots)
    while todo:
        n = todo.pop()
        if n in seen or n not in dists: continue
        seen.add(n); todo += reqs(dists[n])
    return seen
root = [norm(x) for x in sys.argv[1].split(",")]
drop = [norm(x) for x in sys.argv[2].split(",")]
full = closure(root)
core_roots = [r for r in root if r not in drop]
core = closure(core_roots)
extra = full - core
mb = lambda s: sum(size(dists[n]) for n in s) / 2**20
print(f"all installed: {len(dists)} dists, {sum(size(d) for d in dists.values())/2**20:.0f} MiB")
print(f"closure of nst_tf: {len(full)} dists {mb(full):.0f} MiB; core closure: {len(core)} dists {mb(core):.0f} MiB")
print(f"only for the extras ({', '.join(drop)}): {len(extra)} dists {mb(extra):.0f} MiB: " +
      ", ".join(f"{n} {size(dists[n])/2**20:.0f}" for n in sorted(extra, key=lambda n: -size(dists[n]))))
