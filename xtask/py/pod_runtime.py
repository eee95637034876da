"""What the chart gives each of our containers at run time, from a `helm template` output, so
that the image test runs each image as its pod would: for every service whose image is
`…/magnetm3u8-<service>:…`, a folder `<out>/<service>/` with
- `env`: its environment, one `NAME=value` per line, `secretKeyRef` read from the rendered
  Secrets, `fieldRef` filled for a pod on this host's loopback (`<workload>-0`, 127.0.0.1)
  and `$(NAME)` references expanded as the kubelet does;
- `user`: `uid:gid` of its security context;
- `read_only_root`: present when `readOnlyRootFilesystem` is true;
- `mounts`: one `<ro|rw> <mountPath> <source>` per line, the source a folder under
  `<out>/<service>/volumes/` (a ConfigMap's files written there; emptyDir and claims empty).

usage: pod_runtime.py <rendered.yaml> <out dir>
"""
import base64
import os
import re
import sys

import yaml

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")

src, out = sys.argv[1:3]
with open(src) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d


def secret_value(ref):
    """The value of a `secretKeyRef`; None for an optional one that is not there."""
    secret = by_kind.get("Secret", {}).get(ref["name"], {})
    key = ref["key"]
    if key in secret.get("stringData", {}):
        return secret["stringData"][key]
    if key in secret.get("data", {}):
        return base64.b64decode(secret["data"][key]).decode()
    if ref.get("optional"):
        return None
    sys.exit(f"secret {ref['name']} has no {key} in the rendered chart")


def field_value(path, pod_name):
    """A `fieldRef` as the kubelet fills it, for a pod on this host's loopback."""
    known = {
        "status.podIP": "127.0.0.1",
        "metadata.name": pod_name,
        "metadata.namespace": "media",
    }
    if path not in known:
        sys.exit(f"fieldRef {path} is not known here")
    return known[path]


def environment(container, pod_name):
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            value = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                lambda m: env.get(m.group(1), m.group(0)),
                str(e["value"]),
            )
        elif "fieldRef" in e["valueFrom"]:
            value = field_value(e["valueFrom"]["fieldRef"]["fieldPath"], pod_name)
        else:
            value = secret_value(e["valueFrom"]["secretKeyRef"])
            if value is None:
                continue
        env[e["name"]] = value
    return env


def write_volume(volume, folder):
    os.makedirs(folder, exist_ok=True)
    if "configMap" in volume:
        config = by_kind["ConfigMap"][volume["configMap"]["name"]]
        for key, text in config.get("data", {}).items():
            with open(os.path.join(folder, key), "w") as f:
                f.write(text)


seen = set()
for kind in WORKLOADS:
    for workload in by_kind.get(kind, {}).values():
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {
            c["metadata"]["name"]: {}
            for c in workload["spec"].get("volumeClaimTemplates", [])
        }
        for container in pod["containers"]:
            match = re.search(r"/magnetm3u8-([a-z]+):", container["image"])
            if not match or match.group(1) in seen:
                continue
            service = match.group(1)
            seen.add(service)
            folder = os.path.join(out, service)
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "env"), "w") as f:
                pod_name = workload["metadata"]["name"] + "-0"
                for name, value in environment(container, pod_name).items():
                    f.write(f"{name}={value}\n")
            security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
            with open(os.path.join(folder, "user"), "w") as f:
                f.write(f"{security['runAsUser']}:{security['runAsGroup']}\n")
            flag = os.path.join(folder, "read_only_root")
            if security.get("readOnlyRootFilesystem"):
                open(flag, "w").close()
            elif os.path.exists(flag):
                os.remove(flag)
            with open(os.path.join(folder, "mounts"), "w") as f:
                for m in container.get("volumeMounts", []):
                    source = os.path.join(folder, "volumes", m["name"])
                    volume = volumes.get(m["name"]) or claims.get(m["name"])
                    if volume is None:
                        sys.exit(f"{service}: volume {m['name']} is not declared")
                    write_volume(volume, source)
                    mode = "ro" if m.get("readOnly") else "rw"
                    f.write(f"{mode} {m['mountPath']} {source}\n")
missing = {"gateway", "signaling", "downloader", "transcoder", "streamer"} - seen
if missing:
    sys.exit(f"no container of the rendered chart runs {sorted(missing)}")
