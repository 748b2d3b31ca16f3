#!/bin/sh
# Runs inside the build sandbox as the jobs' unprivileged user: this recipe is at /src
# (read-only), the runtime being built at /runtime (writable), no network but loopback.
set -eu
python3 --version
# pip builds in the source tree, and /src is read-only: build from a copy in /tmp.
cp -r /src/pkg /tmp/joblet-demo
python3 -m pip install --no-index --no-build-isolation --no-cache-dir \
    --disable-pip-version-check --target /runtime/site-packages /tmp/joblet-demo
python3 -c "import sys; sys.path.insert(0, '/runtime/site-packages'); import joblet_demo; print('built', joblet_demo.__version__)"
