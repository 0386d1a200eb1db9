"""Prequential protocol, event-file parsing and the evaluate/generate commands."""

from __future__ import annotations

import gzip
import json

import pytest
from click.testing import CliRunner

from online_model.data.events_file import read_events
from online_model.errors import InputError
from online_model.evaluation import PrequentialEvaluator, evaluate
from online_model.models.popularity import DecayedPopularity
from streams.cli import evaluate as evaluate_cli
from streams.cli import generate as generate_cli
from streams.cli import main as cli

# Popularity without decay, k=2. Counts before each event and what is served:
#  1 a p1  a new: not scored                                  -> p1=1
#  2 b p1  b new: not scored                                  -> p1=2
#  3 a p2  excl {p1}; known {p1}: served []          miss     -> p2=1
#  4 c p2  c new: not scored                                  -> p2=2
#  5 b p2  excl {p1}; served [p2]                    hit @1   -> p2=3
#  6 a p3  excl {p1,p2}; served []                   miss     -> p3=1
#  7 c p1  excl {p2}; p2=3 p1=2 p3=1: served [p1,p3] hit @1   -> p1=3
#  8 b p3  excl {p1,p2}; served [p3]                 hit @1   -> p3=2
#  9 d p4  d new: not scored                                  -> p4=1
# 10 c p4  excl {p2,p1}; p3=2 p4=1: served [p3,p4]   hit @2
# scored 6, hits 4 -> hit@2 = 4/6; MRR = (1 + 1 + 1 + 1/2) / 6 = 3.5/6
# recommended {p1,p2,p3,p4} of seen {p1,p2,p3,p4} -> coverage 1.0
LOG = [
    ("a", "p1", 1),
    ("b", "p1", 2),
    ("a", "p2", 3),
    ("c", "p2", 4),
    ("b", "p2", 5),
    ("a", "p3", 6),
    ("c", "p1", 7),
    ("b", "p3", 8),
    ("d", "p4", 9),
    ("c", "p4", 10),
]


def test_prequential_protocol_by_hand() -> None:
    report = evaluate(DecayedPopularity(half_life=0), LOG, k=2)
    assert report["n_events"] == 10
    assert report["n_scored"] == 6
    assert report["hit@2"] == pytest.approx(4 / 6)
    assert report["mrr@2"] == pytest.approx(3.5 / 6)
    assert report["coverage@2"] == pytest.approx(1.0)
    assert report["k"] == 2 and report["model"] == "DecayedPopularity"
    assert report["events_per_s"] > 0


def test_evaluator_is_incremental_and_learns_each_event_once() -> None:
    model = DecayedPopularity(half_life=0)
    ev = PrequentialEvaluator(model, k=2)
    ranks = [ev.update(u, p, t) for u, p, t in LOG]
    assert ranks == [None, None, None, None, 1, None, 1, 1, None, 2]
    assert model.n_events_learned == 10
    assert ev.report()["n_scored"] == 6


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_sorted_stably_by_time(tmp_path) -> None:
    path = write(tmp_path, "v.csv", "user_id,page_id,ts_ms\nu1,b,20\nu1,a,10\nu2,c,20\n")
    log = read_events(path)
    assert [(e.page_id, e.ts_ms) for e in log] == [("a", 10), ("b", 20), ("c", 20)]


BAD_CSV = (
    "user_id,page_id,ts_ms,session_id\n"  # line 1
    "u1,p1,100,s1\n"  # 2 ok
    "u1,,101,s1\n"  # 3 missing page_id
    "u2,p2,yesterday,s2\n"  # 4 bad ts
    "u2,p3\n"  # 5 too few fields
    "u3,p4,103,\n"  # 6 ok, no session
)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (BAD_CSV, 3, "page_id"),
        (BAD_CSV.replace("u1,,101,s1\n", ""), 3, "ts_ms"),
        ("user_id,page_id,ts_ms\nu1,p1,1\nu1,p2,2,extra\n", 3, "fields"),
    ],
)
def test_csv_error_names_the_line(tmp_path, text: str, line: int, reason: str) -> None:
    with pytest.raises(InputError, match=rf"line {line}: .*{reason}"):
        read_events(write(tmp_path, "bad.csv", text))


def test_csv_skip_bad_counts(tmp_path) -> None:
    log = read_events(write(tmp_path, "bad.csv", BAD_CSV), skip_bad=True)
    assert log.n_bad == 3 and log.bad_lines == [3, 4, 5]
    assert [(e.user_id, e.session_id) for e in log] == [("u1", "s1"), ("u3", None)]


def test_csv_header_without_required_column(tmp_path) -> None:
    with pytest.raises(InputError, match="line 1: header lacks ts_ms"):
        read_events(write(tmp_path, "h.csv", "user_id,page_id\nu1,p1\n"))


def test_jsonl_errors_and_skips(tmp_path) -> None:
    text = (
        '{"user_id": "u1", "page_id": "p1", "ts_ms": 5}\n'
        "{not json\n"
        '{"user_id": "u1", "page_id": "p2"}\n'
        '{"user_id": "u2", "page_id": "p3", "ts_ms": 1}\n'
    )
    path = write(tmp_path, "v.jsonl", text)
    with pytest.raises(InputError, match="line 2: invalid JSON"):
        read_events(path)
    log = read_events(path, skip_bad=True)
    assert log.n_bad == 2 and log.bad_lines == [2, 3]
    assert [e.page_id for e in log] == ["p3", "p1"]


def test_missing_file_is_an_input_error(tmp_path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_events(tmp_path / "absent.csv")


# -- commands -------------------------------------------------------------------------


def test_generate_command_is_deterministic(tmp_path) -> None:
    runner = CliRunner()
    args = ["--users", "30", "--pages", "40", "--events", "500", "--seed", "5"]
    for name in ("a.csv", "b.csv"):
        result = runner.invoke(generate_cli.command, [*args, "--output", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    a, b = (tmp_path / "a.csv").read_text(), (tmp_path / "b.csv").read_text()
    assert a == b
    lines = a.splitlines()
    assert lines[0] == "user_id,page_id,ts_ms,session_id" and len(lines) == 501


def test_evaluate_command_prints_one_json_object(tmp_path) -> None:
    data = tmp_path / "v.csv"
    CliRunner().invoke(generate_cli.command, ["--events", "3000", "--output", str(data)])
    result = CliRunner().invoke(
        evaluate_cli.command,
        ["--input", str(data), "--model", "popularity", "--k", "5", "--param", "half_life=500"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == "popularity" and report["k"] == 5
    assert report["params"] == {"half_life": "500"}
    assert report["n_events"] == 3000 and 0 < report["hit@5"] < 1
    assert "progress" not in result.stdout


def test_evaluate_command_env_fallback_and_skip_bad(tmp_path) -> None:
    path = write(tmp_path, "bad.csv", BAD_CSV)
    env = {
        "STREAMREC_EVALUATE_INPUT": str(path),
        "STREAMREC_K": "3",
        "STREAMREC_EVALUATE_SKIP_BAD": "1",
    }
    result = CliRunner().invoke(evaluate_cli.command, [], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["k"] == 3 and report["n_bad"] == 3 and report["n_events"] == 2

    failed = CliRunner().invoke(cli, ["evaluate", "--input", str(path)])
    assert failed.exit_code == 2 and f"error: {path} line 3" in failed.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nope"], "unknown model"),
        (["--param", "window=abc"], "expected int"),
        (["--param", "colour=red"], "no parameter 'colour'"),
        (["--param", "novalue"], "key=value"),
    ],
)
def test_evaluate_command_rejects_bad_model_args(tmp_path, args, message) -> None:
    path = write(tmp_path, "v.csv", "user_id,page_id,ts_ms\nu1,p1,1\n")
    result = CliRunner().invoke(cli, ["evaluate", "--input", str(path), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_help_shows_env_vars() -> None:
    for cmd in (evaluate_cli.command, generate_cli.command):
        out = CliRunner().invoke(cmd, ["--help"]).output
        assert "STREAMREC_" in out


def test_generate_publishes_new_pages_over_time_and_writes_their_catalog(tmp_path) -> None:
    from streams.catalog.pages_file import read_pages

    args = ["--users", "200", "--pages", "100", "--events", "5000", "--seed", "3"]
    out, pages = tmp_path / "v.csv", tmp_path / "pages.csv"
    result = CliRunner().invoke(
        generate_cli.command,
        [*args, "--new-pages", "0.3", "--output", str(out), "--catalog", str(pages)],
    )
    assert result.exit_code == 0, result.output
    catalog = {page["page_id"]: page for page in read_pages(pages)}
    assert len(catalog) == 100
    start = min(page["published_at"] for page in catalog.values())
    late = {p for p, page in catalog.items() if page["published_at"] > start}
    assert 15 <= len(late) <= 45  # about 30 % of the pages
    assert all(page["categories"][0].startswith("t") for page in catalog.values())
    views = read_events(out).events
    assert all(v.ts_ms >= catalog[v.page_id]["published_at"] for v in views)
    assert {v.page_id for v in views} & late  # new pages are read once out
    plain = tmp_path / "plain.csv"
    CliRunner().invoke(generate_cli.command, [*args, "--output", str(plain)])
    assert plain.read_text() != out.read_text()
    again = tmp_path / "again.csv"
    CliRunner().invoke(generate_cli.command, [*args, "--new-pages", "0", "--output", str(again)])
    assert again.read_text() == plain.read_text()  # no new pages: the log of before


def test_no_view_precedes_its_page_even_when_almost_every_page_is_new() -> None:
    from online_model.data.generate import generate

    views = generate(n_users=50, n_pages=10, n_events=3000, seed=1, new_pages=0.99)
    assert views.published_ms is not None
    assert (views.ts_ms >= views.published_ms[views.page]).all()
    assert (views.published_ms > views.published_ms.min()).sum() == 9  # all but the head
    with pytest.raises(ValueError, match="new_pages"):
        generate(n_pages=10, new_pages=1.0)


def test_evaluate_reads_gzipped_csv_and_jsonl_as_the_plain_files(tmp_path) -> None:
    plain = tmp_path / "views.csv"
    CliRunner().invoke(generate_cli.command, ["--events", "2000", "--output", str(plain)])
    text = plain.read_text()
    zipped = tmp_path / "views.csv.gz"
    zipped.write_bytes(gzip.compress(text.encode()))
    jsonl = tmp_path / "views.jsonl.gz"
    rows = [dict(zip(("user_id", "page_id", "ts_ms"), r, strict=True)) for r in LOG]
    jsonl.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))

    reports = []
    for path in (plain, zipped):
        result = CliRunner().invoke(
            evaluate_cli.command, ["--input", str(path), "--model", "popularity"]
        )
        assert result.exit_code == 0, result.output
        reports.append(json.loads(result.stdout))
    assert reports[0]["n_events"] == reports[1]["n_events"] == 2000
    assert reports[0]["hit@10"] == reports[1]["hit@10"] and reports[0]["hit@10"] > 0
    assert [tuple(e[:3]) for e in read_events(jsonl)] == LOG


def test_truncated_gzip_is_an_input_error(tmp_path) -> None:
    path = tmp_path / "views.csv.gz"
    data = gzip.compress(("user_id,page_id,ts_ms\n" + "u1,p1,1\n" * 5000).encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot read"):
        read_events(path)
