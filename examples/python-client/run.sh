#!/usr/bin/env bash
# Installs the pinned packages into .venv (once) and runs
# subscribe_and_publish.py against HOOKLINE_URL with HOOKLINE_TOKEN.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ] || ! cmp -s requirements.txt .venv/requirements.txt; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/requirements.txt
fi
exec .venv/bin/python subscribe_and_publish.py
