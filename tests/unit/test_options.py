"""``options_from``: the catalog's sources, glob matching, filtering, and Slack's limits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.catalog import ChoiceParameter, load_catalog, parse_catalog, validate_request
from shared.errors import ConfigError
from shared.options import (
    UNAVAILABLE_VALUE,
    GitGlobSource,
    OptionItem,
    clean_items,
    filter_items,
    git_items,
    glob_matches,
)
from shared.options_fetch import fetch_options, listed_parameters
from shared.state_table.options import OptionsList, failed
from toilkit.standins.slack.forms import suggested_options

DEMO = Path(__file__).resolve().parents[2] / "catalog" / "demo.yaml"


def catalog_with(parameter: dict[str, Any]) -> Any:
    return parse_catalog(
        {
            "commands": [
                {
                    "name": "patch",
                    "description": "Run a patch.",
                    "argv": ["bin/rails", "runner", "{script}"],
                    "parameters": [{"name": "script", **parameter}],
                    "environments": {"staging": {"allowed": {"users": ["U0ALICE001"]}}},
                }
            ]
        }
    )


GIT = {"kind": "git", "repository": "app", "ref": "main", "glob": "script/patches/*.rb"}


def test_a_choice_names_its_choices_or_a_source_never_both() -> None:
    spec = catalog_with({"type": "choice", "options_from": GIT}).command("patch").parameters[0]
    assert isinstance(spec, ChoiceParameter) and isinstance(spec.options_from, GitGlobSource)
    for bad in ({"type": "choice"}, {"type": "choice", "choices": ["a"], "options_from": GIT}):
        with pytest.raises(ConfigError, match=r"either choices .* or options_from"):
            catalog_with(bad)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ({**GIT, "ref": "-upload-pack"}, "not a branch, tag or commit"),
        ({**GIT, "ref": "a b"}, "should match pattern"),
        ({**GIT, "repository": "-oops"}, "read by git as an option"),
        ({"kind": "url", "url": "file:///etc/passwd"}, "should match pattern"),
        ({"kind": "command", "argv": []}, "at least 1 item"),
        ({**GIT, "ttl_seconds": 1}, "greater than or equal to 5"),
    ],
)
def test_a_bad_source_is_refused_when_the_catalog_loads(
    source: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem):
        catalog_with({"type": "choice", "options_from": source})


def test_a_listed_value_is_checked_for_form_here_and_for_membership_by_the_gateway() -> None:
    catalog = catalog_with({"type": "choice", "options_from": GIT})
    ok = validate_request(catalog, "patch", "staging", {"script": "script/patches/a.rb"})
    assert not isinstance(ok, list) and ok.argv()[-1] == "script/patches/a.rb"
    for bad, why in (
        ("--eval=1", "starts with '-'"),
        (UNAVAILABLE_VALUE, "the list was unavailable"),
        ("x" * 151, "longer than 150"),
    ):
        errors = validate_request(catalog, "patch", "staging", {"script": bad})
        assert isinstance(errors, list) and why in str(errors[0])


def test_a_glob_star_stays_in_its_folder_and_double_star_crosses() -> None:
    assert glob_matches("script/patches/*.rb", "script/patches/fix.rb")
    assert not glob_matches("script/patches/*.rb", "script/patches/old/fix.rb")
    assert not glob_matches("script/patches/*.rb", "script/patches/fix.rbx")
    assert glob_matches("script/**/*.rb", "script/fix.rb")
    assert glob_matches("script/**/*.rb", "script/patches/old/fix.rb")
    assert glob_matches("s/[!a]?.rb", "s/b1.rb") and not glob_matches("s/[!a]?.rb", "s/a1.rb")


def test_git_items_are_the_matching_paths_sorted_with_the_chosen_label() -> None:
    source = GitGlobSource(repository="app", glob="script/patches/*.rb", label="stem")
    paths = ["README.md", "script/patches/b.rb", "script/patches/a.rb", "script/x.rb"]
    assert git_items(source, paths) == [
        OptionItem(value="script/patches/a.rb", label="a"),
        OptionItem(value="script/patches/b.rb", label="b"),
    ]


def test_typed_text_filters_starting_matches_first_and_limits() -> None:
    items = [OptionItem(value=v) for v in ("beta-acme", "acme", "globex", "ACME-2")]
    assert [i.value for i in filter_items(items, "acme", 100)] == ["acme", "ACME-2", "beta-acme"]
    assert [i.value for i in filter_items(items, "  ", 2)] == ["beta-acme", "acme"]
    assert filter_items(items, "zzz", 100) == []


def test_unusable_and_repeated_choices_are_left_out() -> None:
    items = [OptionItem(value=v) for v in ("a", "a", "", "-x", "b\nc", "ok")]
    kept, dropped = clean_items(items)
    assert [i.value for i in kept] == ["a", "ok"] and dropped == 4


def test_the_demo_lists_the_patch_scripts_of_this_repository_from_git(tmp_path: Path) -> None:
    catalog = load_catalog(DEMO)
    [listed] = listed_parameters(catalog)
    assert (listed.command, listed.parameter) == ("run-patch", "script")
    items = asyncio.run(
        fetch_options(listed.source, base_dir=catalog.base_dir(), cache_dir=tmp_path)
    )
    assert (
        OptionItem(value="catalog/patches/fix_order_totals.py", label="fix_order_totals") in items
    )


def test_the_standin_refuses_suggestions_slack_would_not_show() -> None:
    one = {"text": {"type": "plain_text", "text": "a"}, "value": "a"}
    assert suggested_options({"options": [one]}) == [one]
    grouped = suggested_options({"option_groups": [{"label": {"text": "G"}, "options": [one]}]})
    assert grouped == [{**one, "group": "G"}]
    with pytest.raises(ValueError, match="more than Slack's 100"):
        suggested_options({"options": [one] * 101})
    with pytest.raises(ValueError, match="longer than 75"):
        suggested_options({"options": [{**one, "text": {"type": "plain_text", "text": "x" * 76}}]})
    with pytest.raises(ValueError, match="value must be text"):
        suggested_options({"options": [{**one, "value": "v" * 151}]})


def test_a_list_is_fresh_for_its_ttl_and_a_failure_is_asked_again_sooner() -> None:
    now = datetime(2031, 1, 1, tzinfo=UTC)
    good = OptionsList(command="c", parameter="p", fingerprint="f", fetched_at=now)
    assert good.fresh("f", 300, now + timedelta(seconds=299))
    assert not good.fresh("f", 300, now + timedelta(seconds=301))
    assert not good.fresh("another source", 300, now)
    broken = failed(good, "c", "p", "f", "gone", now + timedelta(seconds=400))
    assert broken.usable("f") and broken.error == "gone"  # the last good list stays
    assert broken.fresh("f", 300, now + timedelta(seconds=429))
    assert not broken.fresh("f", 300, now + timedelta(seconds=431))
    # A failure from another source definition keeps nothing.
    assert not failed(good, "c", "p", "changed", "gone", now).usable("changed")
