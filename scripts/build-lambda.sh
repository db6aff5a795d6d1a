#!/usr/bin/env bash
# Build one Lambda deployment zip per toilkit function (infra/terraform/lambda.tf,
# gateway.tf) and the wheel the CodeBuild projects install (codebuild.tf).
#
#   scripts/build-lambda.sh --catalog FILE [--arch x86_64|arm64] [--python PYTHON]
#                           [--out DIR]
#   scripts/build-lambda.sh --print-requirements    (what `make lock` locks for the zips)
#
# Writes DIR/toilkit-<version>-py3-none-any.whl and DIR/toilkit-<function>.zip for the
# gateway, detector, batch and notifier (DIR defaults to dist/). Each zip holds its own
# service, the sandbox (toilkit/aws_lambda.py), shared/, and only the distributions that
# service imports (scripts/lambda_package.py says which), built for Lambda's Linux and
# Python 3.12; the gateway and batch zips hold the batch command catalog as catalog.yaml
# (TOILKIT_GATEWAY_CATALOG_PATH / TOILKIT_BATCH_CATALOG_PATH point there). No zip holds
# Terraform (scans run in CodeBuild, which installs the wheel with it), the CLI (typer,
# rich), the Python test provider or moto; botocore keeps the models of the AWS services
# toilkit calls. The dependencies are the exact versions and hashes of
# requirements-lambda.lock, so two builds of one commit hold the same packages.
#
# PYTHON should be a Python 3.12 (the functions' runtime): the byte code is compiled with it,
# so Lambda, whose /var/task is read-only, never compiles at a cold start. By default the
# first python3.12 found is used.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
catalog=""
arch="x86_64"
python="${PYTHON:-}"
dist="${here}/dist"
runtime_version="3.12"
functions=(gateway detector batch notifier)

while [ $# -gt 0 ]; do
  case "$1" in
    --catalog) catalog="$2"; shift 2 ;;
    --arch) arch="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    --out) dist="$2"; shift 2 ;;
    --print-requirements)
      "${python:-python3}" "$here/scripts/lambda_package.py" --print-requirements "$here/pyproject.toml"
      exit 0 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
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
catalog="$(realpath "$catalog")"

# The runtime's Python: python3.12 on PATH, else one that pyenv has.
if [ -z "$python" ]; then
  if python3.12 -c '' 2>/dev/null; then
    python="python3.12"
  elif command -v pyenv >/dev/null && pyenv_312="$(pyenv root)/versions/$(pyenv versions --bare | grep -E '^3\.12(\.|$)' | tail -1)/bin/python3.12" && [ -x "$pyenv_312" ]; then
    python="$pyenv_312"
  else
    python="python3"
  fi
fi
# Absolute, without following the venv's symlink: the build changes directory later.
python="$(command -v "$python")" || { echo "no Python interpreter $python" >&2; exit 2; }
python="$(realpath -s "$python")"
mkdir -p "$dist"
dist="$(realpath "$dist")"

build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT

echo "==> building the toilkit wheel"
rm -f "$dist"/toilkit-*.whl
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$dist" "$here"
wheel="$(ls "$dist"/toilkit-*.whl)"

echo "==> installing the locked dependencies for Lambda (python $runtime_version, $platform)"
# Exactly the locked set (every dependency listed, so no resolving: --no-deps), each file
# checked against its hash; each function then takes the part it imports.
"$python" -m pip install --quiet --target "$build/site" \
  --platform "$platform" --implementation cp --python-version "$runtime_version" --only-binary=:all: \
  --require-hashes --no-deps -r "$here/requirements-lambda.lock"
"$python" -m pip install --quiet --target "$build/source" --no-deps "$wheel"

compile=1
if ! "$python" -c "import sys; sys.exit(sys.version_info[:2] != (3, 12))"; then
  compile=0
  echo "note: $python is not Python $runtime_version; the zips have no byte code (slower cold starts)" >&2
fi

for function in "${functions[@]}"; do
  package="$build/$function"
  "$python" "$here/scripts/lambda_package.py" --site "$build/site" --source "$build/source" \
    --function "$function" --catalog "$catalog" --out "$package"
  if [ "$compile" = 1 ]; then
    "$python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$package" >/dev/null || true
  fi
  size_mb=$(du -sm "$package" | cut -f1)
  if [ "$size_mb" -ge 250 ]; then
    echo "the unzipped $function package is ${size_mb} MB, above Lambda's 250 MB limit" >&2
    exit 1
  fi
  rm -f "$dist/toilkit-$function.zip"
  (cd "$package" && "$python" -m zipfile -c "$dist/toilkit-$function.zip" .)
  zip_kb=$(( $(stat -c %s "$dist/toilkit-$function.zip") / 1000 ))
  echo "==> $dist/toilkit-$function.zip: ${zip_kb} kB (${size_mb} MB unzipped)"
done
# The single zip every function shared before there was one per function.
rm -f "$dist/toilkit-lambda.zip"
echo "wrote the four zips and $wheel"
