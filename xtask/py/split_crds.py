"""Splits a `helm template` output into the objects of Kubernetes' own kinds and those of
custom resources (kinds outside the built-in API groups, e.g. ServiceMonitor), which
kubernetes-validate has no schema for; the chart's tests check those against their own schema.

usage: split_crds.py <rendered.yaml> <core.yaml> <custom.yaml>
"""
import sys

import yaml

CUSTOM_GROUPS = ("monitoring.coreos.com/",)

src, core_out, custom_out = sys.argv[1:4]
with open(src) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
core = [d for d in docs if not d.get("apiVersion", "").startswith(CUSTOM_GROUPS)]
custom = [d for d in docs if d.get("apiVersion", "").startswith(CUSTOM_GROUPS)]
with open(core_out, "w") as f:
    yaml.safe_dump_all(core, f, sort_keys=False)
with open(custom_out, "w") as f:
    yaml.safe_dump_all(custom, f, sort_keys=False)
print(f"{len(core)} core objects, {len(custom)} custom resources")
