"""Looking pages up in the catalog, and ``set`` refusing a page the topic does not hold,
on the real broker: ``catalog show``, ``catalog list``, ``catalog set --create``."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from streams.catalog.follower import read_catalog
from streams.catalog.publish import publish_pages
from streams.settings import Settings
from tests.integration.test_readme_examples import run


def streamrec(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(["streamrec", *args], env, Path.cwd())


def load(env: dict[str, str], tmp_path: Path) -> None:
    pages = tmp_path / "pages.csv"
    pages.write_text(
        "page_id,available,categories,expires_at,title,author\n"
        "a,true,news|sport,2030-01-01T00:00:00Z,A title,ann\n"
        "b,false,,,,\n"
        "c,,shop,2001-01-01T00:00:00Z,,\n"
    )
    done = streamrec(["catalog", "load", str(pages)], env)
    assert done.returncode == 0, done.stderr


def test_show_prints_a_page_as_the_topic_holds_it_and_exits_1_for_an_unknown_one(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    load(settings_env, tmp_path)
    shown = streamrec(["catalog", "show", "a"], settings_env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == (
        "a: visible; categories news|sport; expires 2030-01-01T00:00:00Z; "
        "title 'A title'; author=ann"
    )
    as_json = streamrec(["catalog", "show", "a", "--json"], settings_env)
    assert as_json.returncode == 0, as_json.stderr
    record = json.loads(as_json.stdout)
    assert record["available"] is True and record["attributes"] == {"author": "ann"}
    assert record["expires_at"] == 1893456000000
    states = [streamrec(["catalog", "show", p], settings_env).stdout for p in ("b", "c")]
    assert states == ["b: hidden\n", "c: expired; categories shop; expires 2001-01-01T00:00:00Z\n"]

    typo = streamrec(["catalog", "show", "aa"], settings_env)
    assert typo.returncode == 1 and typo.stdout == ""
    assert "'aa' is not in the catalog (topic " in typo.stderr and "3 pages" in typo.stderr
    typo_json = streamrec(["catalog", "show", "aa", "--json"], settings_env)
    assert typo_json.returncode == 1 and json.loads(typo_json.stdout) is None

    publish_pages(settings, [("c", None)])  # a tombstone
    deleted = streamrec(["catalog", "show", "c"], settings_env)
    assert deleted.returncode == 1 and "'c' was deleted from the catalog" in deleted.stderr
    assert "Traceback" not in typo.stderr + deleted.stderr


def test_list_prints_every_page_or_the_hidden_ones(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    empty = streamrec(["catalog", "list"], settings_env)
    assert empty.returncode == 0 and empty.stdout == "", empty.stderr
    assert f"no pages in {settings.topic_pages}" in empty.stderr
    assert json.loads(streamrec(["catalog", "list", "--json"], settings_env).stdout) == []

    load(settings_env, tmp_path)
    publish_pages(settings, [{"page_id": "d"}, ("d", None)])  # deleted: not listed
    every = streamrec(["catalog", "list"], settings_env)
    assert every.returncode == 0, every.stderr
    assert [line.split(":")[0] for line in every.stdout.splitlines()] == ["a", "b", "c"]
    hidden = streamrec(["catalog", "list", "--hidden"], settings_env)
    assert hidden.stdout == "b: hidden\n"
    hidden_json = streamrec(["catalog", "list", "--hidden", "--json"], settings_env)
    assert [r["page_id"] for r in json.loads(hidden_json.stdout)] == ["b"]
    records = json.loads(streamrec(["catalog", "list", "--json"], settings_env).stdout)
    assert [(r["page_id"], r["available"]) for r in records] == [
        ("a", True),
        ("b", False),
        ("c", True),
    ]
    assert records[0]["categories"] == ["news", "sport"]


def test_set_refuses_a_page_the_topic_does_not_hold_unless_asked_to_create_it(
    settings: Settings, settings_env: dict[str, str], tmp_path: Path
) -> None:
    # An empty catalog (a site that never loaded one): the page may be known from page
    # views, but the topic has no record of it.
    refused = streamrec(["catalog", "set", "pNOPE", "--hidden"], settings_env)
    assert refused.returncode == 2 and refused.stdout == "", refused.stdout
    [line] = refused.stderr.splitlines()
    assert line.startswith("error: page 'pNOPE' is not in the catalog: topic ")
    assert "holds no pages: nothing written" in line and "--create" in line

    load(settings_env, tmp_path)
    typo = streamrec(["catalog", "set", "aa", "--visible"], settings_env)
    assert typo.returncode == 2 and "(topic " in typo.stderr and "3 pages)" in typo.stderr
    assert "--create" in typo.stderr and "Traceback" not in typo.stderr
    catalog = read_catalog(settings)
    assert catalog.record("pNOPE") is None and catalog.record("aa") is None
    assert len(catalog) == 3

    created = streamrec(["catalog", "set", "pNOPE", "--hidden", "--create", "--json"], settings_env)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout) == {"page_id": "pNOPE", "available": False}
    assert read_catalog(settings).eligible("pNOPE", int(time.time() * 1000)) is False
    # Once it has a record, --create changes nothing but available: the rest is kept.
    again = streamrec(["catalog", "set", "a", "--hidden", "--create", "--json"], settings_env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["title"] == "A title"

    publish_pages(settings, [("b", None)])
    deleted = streamrec(["catalog", "set", "b", "--visible"], settings_env)
    assert deleted.returncode == 2 and "'b' was deleted from the catalog" in deleted.stderr
    back = streamrec(["catalog", "set", "b", "--visible", "--create"], settings_env)
    assert back.returncode == 0, back.stderr
    assert streamrec(["catalog", "show", "b"], settings_env).stdout == "b: visible\n"
