#!/usr/bin/env bash
# The SDKs' one entry point (CI calls it with GP_BIN set): installs what it needs from
# the package registries, then for sdk/js and sdk/python runs lint and type checks,
# unit and integration tests against the real gp binary with line coverage (failing
# under 80 %), builds the packages and their API reference, and finally runs every
# example in examples/ against the real binary with the SDKs installed from their
# built artifacts (npm pack tarball, wheel) in a clean node project and a clean venv.
#
#   GP_BIN=target/debug/gp sdk/run-tests.sh
set -euo pipefail

SDK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$SDK")"
: "${GP_BIN:?GP_BIN must point at the gp binary, e.g. GP_BIN=target/debug/gp sdk/run-tests.sh}"
[[ -x "$GP_BIN" ]] || { echo "GP_BIN=$GP_BIN is not an executable file" >&2; exit 1; }
GP_BIN="$(realpath "$GP_BIN")"
export GP_BIN
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gatepulse-sdk.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
export PIP_DISABLE_PIP_VERSION_CHECK=1 NEXT_TELEMETRY_DISABLED=1

step() { echo; echo "== $*"; }

step "toolchains"
node --version
"$PYTHON" --version
"$GP_BIN" --version

step "conformance vectors are up to date (sdk/conformance)"
"$PYTHON" "$SDK/conformance/generate.py" --check

step "sdk/js: install, lint (eslint, tsc --strict), build (ESM + CJS + types)"
cd "$SDK/js"
npm ci
npm run lint
npm run build
step "sdk/js: unit and integration tests, coverage (c8, >= 80 % of lines)"
npm test
step "sdk/js: API reference (typedoc -> sdk/js/docs/api) and package (npm pack)"
npm run docs
npm pack --pack-destination "$WORK" --silent
TARBALL="$(ls "$WORK"/gatepulse-*.tgz)"

step "sdk/python: venv and dev dependencies"
cd "$SDK/python"
"$PYTHON" -m venv "$WORK/dev-venv"
DEV="$WORK/dev-venv/bin"
"$DEV/pip" install --quiet --upgrade pip
"$DEV/pip" install --quiet -e ".[dev]"
step "sdk/python: lint and types (ruff, mypy --strict)"
"$DEV/ruff" check src tests scripts ../testing ../../examples
"$DEV/ruff" format --check src tests scripts ../testing
"$DEV/mypy"
step "sdk/python: unit and integration tests, coverage (coverage.py, >= 80 %)"
"$DEV/coverage" erase
"$DEV/coverage" run -m pytest -p no:cacheprovider
"$DEV/coverage" report
step "sdk/python: wheel (python -m build) and API reference (pdoc -> sdk/python/docs/api)"
"$DEV/python" -m build --wheel --outdir "$WORK/dist" .
WHEEL="$(ls "$WORK"/dist/gatepulse-*.whl)"
"$DEV/pdoc" --output-directory docs/api gatepulse

step "examples: a clean venv with the wheel, a clean node project with the tarball"
"$PYTHON" -m venv "$WORK/examples-venv"
"$WORK/examples-venv/bin/pip" install --quiet "$WHEEL" -r "$ROOT/examples/requirements.txt"
mkdir "$WORK/examples"
(cd "$ROOT/examples" && tar --exclude=node_modules --exclude=.next --exclude=__pycache__ -cf - .) | tar -xf - -C "$WORK/examples"
(cd "$WORK/examples" && npm ci --silent && npm install --no-save --silent "$TARBALL")
step "examples: every example against the real server"
cd "$ROOT/examples"
EXAMPLES_NODE_DIR="$WORK/examples" EXAMPLES_PYTHON="$WORK/examples-venv/bin/python" \
  "$DEV/python" -m pytest -p no:cacheprovider -p no:asyncio -v test_examples.py

step "sdk: all checks passed"
