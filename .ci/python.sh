#!/usr/bin/env bash
# The Python package as users get it: `pip install .` into a throw-away virtual environment, then the package's
# tests and the examples run against the installed package (from outside the clone, so the source tree cannot
# stand in for it) and the `vpc-resolver` script it put on the venv's PATH.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "installing: python3-venv"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
pip=("$work/venv/bin/pip" install --quiet --disable-pip-version-check)
# pytest, boto3, moto and dnspython come with the package (its dependencies).
# maturin builds the binary in release mode; the clone's target dir keeps the build for the next run.
start=$(date +%s)
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}" "${pip[@]}" "$root"
echo "pip install . took $(($(date +%s) - start)) s"
[ -x "$work/venv/bin/vpc-resolver" ] || { echo "pip install . did not put vpc-resolver in the venv's bin" >&2; exit 1; }

cd "$work"
unset VPC_RESOLVER_BIN
status=0
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider "$root/python/tests" "$root/examples/python" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: the Python tests are missing" >&2
  exit 1
fi
exit "$status"
