import csv
import json
import random
import sqlite3
from contextlib import closing
from io import StringIO

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError

from likes import transfer
from likes.models import APIKey, Like, Post
from likes.services import like_add

pytestmark = pytest.mark.django_db

ORIGINAL_SCHEMA = "CREATE TABLE likes (post_id TEXT PRIMARY KEY, count INTEGER)"


def run(name, *args):
    """Run a command; return its stdout and stderr."""
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def counts():
    return dict(Post.objects.values_list("post_id", "likes"))


def sqlite_file(path, rows, schema=ORIGINAL_SCHEMA):
    with closing(sqlite3.connect(path)) as db:
        db.execute(schema)
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            db.executemany(f"INSERT INTO likes VALUES ({marks})", rows)
        db.commit()
    return path


def csv_file(path, rows, header=("post_id", "likes")):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def json_file(path, value):
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return path


def file_of(kind, path, rows):
    if kind == "sqlite":
        return sqlite_file(path, rows)
    if kind == "csv":
        return csv_file(path, rows)
    return json_file(path, [{"post_id": p, "likes": n} for p, n in rows])


# --- likes_import: formats --------------------------------------------------------


def test_import_reads_the_original_services_sqlite_table(tmp_path):
    path = sqlite_file(tmp_path / "likes.db", [("hello-world", 12), ("café", 3)])

    out, _ = run("likes_import", str(path))

    assert counts() == {"hello-world": 12, "café": 3}
    assert Post.objects.get(post_id="hello-world").imported == 12
    assert "(sqlite): 2 new, 0 updated, 0 unchanged, 0 skipped" in out


def test_import_reads_csv_with_the_export_header(tmp_path):
    path = csv_file(tmp_path / "likes.csv", [("a", "5"), ("b", "0")])

    out, _ = run("likes_import", str(path))

    assert counts() == {"a": 5, "b": 0}
    assert "(csv)" in out


def test_import_reads_a_json_list(tmp_path):
    path = json_file(tmp_path / "likes.json", [{"post_id": "a", "likes": 7}])

    out, _ = run("likes_import", str(path))

    assert counts() == {"a": 7}
    assert "(json)" in out


@pytest.mark.parametrize("kind", ["sqlite", "csv", "json"])
def test_format_is_detected_from_the_content_not_the_name(tmp_path, kind):
    path = file_of(kind, tmp_path / "counts.txt", [("a", 4)])

    out, _ = run("likes_import", str(path))

    assert counts() == {"a": 4}
    assert f"({kind})" in out


def test_explicit_format_overrides_detection(tmp_path):
    path = json_file(tmp_path / "likes.json", [{"post_id": "a", "likes": 7}])

    with pytest.raises(CommandError, match="header post_id,likes"):
        run("likes_import", str(path), "--format", "csv")
    assert counts() == {}


def test_csv_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("post_id,likes\r\ncafé,2\r\n".encode("utf-8-sig"))

    run("likes_import", str(path))

    assert counts() == {"café": 2}


# --- likes_import: semantics ------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "csv", "json"])
def test_importing_the_same_file_twice_leaves_the_same_counts(tmp_path, kind):
    path = file_of(kind, tmp_path / "likes.data", [("a", 5), ("b", 9)])
    run("likes_import", str(path))

    out, _ = run("likes_import", str(path))

    assert counts() == {"a": 5, "b": 9}
    assert "0 new, 0 updated, 2 unchanged" in out


def test_import_after_live_likes_keeps_them(tmp_path):
    Post.objects.create(post_id="a", likes=4)
    path = csv_file(tmp_path / "likes.csv", [("a", "10")])

    run("likes_import", str(path))

    post = Post.objects.get(post_id="a")
    assert (post.likes, post.imported) == (14, 10)


def test_reimport_keeps_likes_counted_since_the_first_import(tmp_path):
    run("likes_import", str(csv_file(tmp_path / "v1.csv", [("a", "10")])))
    like_add(post_id="a")
    like_add(post_id="a")

    run("likes_import", str(csv_file(tmp_path / "v2.csv", [("a", "15")])))

    post = Post.objects.get(post_id="a")
    assert (post.likes, post.imported) == (17, 15)


def test_reimport_of_a_lower_count_never_goes_below_zero(tmp_path):
    Post.objects.create(post_id="a", likes=2, imported=10)

    run("likes_import", str(csv_file(tmp_path / "likes.csv", [("a", "0")])))

    post = Post.objects.get(post_id="a")
    assert (post.likes, post.imported) == (0, 0)


def test_dry_run_reports_the_changes_and_writes_nothing(tmp_path):
    Post.objects.create(post_id="old", likes=1)
    path = csv_file(tmp_path / "likes.csv", [("old", "5"), ("new", "3")])

    out, _ = run("likes_import", str(path), "--dry-run")

    assert counts() == {"old": 1}
    assert Post.objects.get(post_id="old").imported == 0
    assert "old: 1 -> 6 likes" in out
    assert "new: new post -> 3 likes" in out
    assert "Would import 2 of 2 rows" in out
    assert "nothing was written" in out


# --- likes_import: invalid rows ---------------------------------------------------


@pytest.mark.parametrize(
    ("post_id", "likes", "reason"),
    [
        ("bad/id", "3", "may contain only letters"),
        ("", "3", "must not be empty"),
        ("x" * 201, "3", "at most 200 characters"),
        ("p", "-2", "must not be negative"),
        ("p", "abc", "not a whole number"),
        ("p", "1.5", "not a whole number"),
        ("p", "", "count is missing"),
        ("p", str(2**63), "too large"),
    ],
)
def test_invalid_csv_rows_are_reported_and_skipped(tmp_path, post_id, likes, reason):
    path = csv_file(tmp_path / "likes.csv", [("good", "1"), (post_id, likes)])

    out, err = run("likes_import", str(path))

    assert counts() == {"good": 1}
    assert "row 2" in err
    assert reason in err
    assert "1 skipped" in out


def test_csv_row_with_the_wrong_number_of_fields_is_skipped(tmp_path):
    path = tmp_path / "likes.csv"
    path.write_text("post_id,likes\ngood,1\nextra,2,3\n", encoding="utf-8")

    _, err = run("likes_import", str(path))

    assert counts() == {"good": 1}
    assert "row 2 ('extra'): expected 2 fields" in err


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"post_id": "p", "likes": "five"}, "not a whole number"),
        ({"post_id": "p", "likes": True}, "not a whole number"),
        ({"post_id": "p", "likes": 2.5}, "not a whole number"),
        ({"post_id": "p", "likes": None}, "count is missing"),
        ({"post_id": 123, "likes": 5}, "post_id must be text"),
    ],
)
def test_invalid_json_rows_are_reported_and_skipped(tmp_path, item, reason):
    path = json_file(tmp_path / "likes.json", [item, {"post_id": "good", "likes": 1}])

    _, err = run("likes_import", str(path))

    assert counts() == {"good": 1}
    assert "row 1" in err
    assert reason in err


@pytest.mark.parametrize(
    ("post_id", "count", "reason"),
    [
        ("p", None, "count is missing"),
        ("p", "many", "not a whole number"),
        ("p", -1, "must not be negative"),
        (None, 4, "post_id is missing"),
        ("a b", 4, "may contain only"),
    ],
)
def test_invalid_sqlite_rows_are_reported_and_skipped(tmp_path, post_id, count, reason):
    path = sqlite_file(tmp_path / "likes.db", [("good", 1), (post_id, count)])

    _, err = run("likes_import", str(path))

    assert counts() == {"good": 1}
    assert "row 2" in err
    assert reason in err


def test_every_row_of_a_duplicated_id_is_skipped(tmp_path):
    path = csv_file(tmp_path / "likes.csv", [("a", "1"), ("b", "2"), ("a", "3")])

    out, err = run("likes_import", str(path))

    assert counts() == {"b": 2}
    assert "row 1 ('a'): post_id appears 2 times" in err
    assert "row 3 ('a'): post_id appears 2 times" in err
    assert "2 skipped" in out


def test_strict_refuses_the_whole_import_when_a_row_is_invalid(tmp_path):
    path = csv_file(tmp_path / "likes.csv", [("a", "1"), ("b", "-1"), ("c", "3")])
    err = StringIO()

    with pytest.raises(CommandError, match="strict import refused"):
        call_command("likes_import", str(path), "--strict", stderr=err)

    assert counts() == {}
    assert "row 2 ('b'): the count must not be negative" in err.getvalue()


def test_strict_imports_a_file_without_invalid_rows(tmp_path):
    path = csv_file(tmp_path / "likes.csv", [("a", "1"), ("b", "2")])

    run("likes_import", str(path), "--strict")

    assert counts() == {"a": 1, "b": 2}


def test_an_error_midway_leaves_nothing_written(tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "BATCH_SIZE", 2)
    path = csv_file(tmp_path / "likes.csv", [(f"p{i}", str(i)) for i in range(6)])

    def fail(done, total):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        transfer.import_counts(path=path, progress=fail, progress_every=2)

    assert counts() == {}


# --- likes_import: unreadable files -----------------------------------------------


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run("likes_import", str(tmp_path / "nope.db"))


def test_random_bytes_named_db_are_an_error(tmp_path):
    path = tmp_path / "likes.db"
    path.write_bytes(random.Random(0).randbytes(4096))

    with pytest.raises(CommandError, match="not a SQLite database"):
        run("likes_import", str(path))
    assert counts() == {}


def test_random_bytes_read_as_sqlite_are_an_error(tmp_path):
    path = tmp_path / "likes.db"
    path.write_bytes(random.Random(0).randbytes(4096))

    with pytest.raises(CommandError, match="not a readable SQLite database"):
        run("likes_import", str(path), "--format", "sqlite")


def test_truncated_sqlite_file_is_an_error(tmp_path):
    path = sqlite_file(tmp_path / "likes.db", [(f"post-{i}", i) for i in range(3000)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(CommandError, match="SQLite database"):
        run("likes_import", str(path))
    assert counts() == {}


def test_sqlite_file_with_a_damaged_index_is_refused(tmp_path):
    # The table itself still reads; only the integrity check finds the damage.
    path = sqlite_file(tmp_path / "likes.db", [(f"post-{i}", i) for i in range(3000)])
    with closing(sqlite3.connect(path)) as db:
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
        (root,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE type = 'index'"
        ).fetchone()
    data = bytearray(path.read_bytes())
    data[(root - 1) * page_size : root * page_size] = b"\xff" * page_size
    path.write_bytes(bytes(data))

    with pytest.raises(CommandError, match="damaged SQLite database"):
        run("likes_import", str(path))
    assert counts() == {}


def test_import_never_changes_the_original_file(tmp_path):
    path = sqlite_file(tmp_path / "likes.db", [("a", 1)])
    before = path.read_bytes()

    run("likes_import", str(path))

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["likes.db"]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ("CREATE TABLE posts (post_id TEXT, count INTEGER)", "no 'likes' table"),
        ("CREATE TABLE likes (post_id TEXT, n INTEGER)", "no count column"),
        ("CREATE TABLE likes (id TEXT, count INTEGER)", "no post_id column"),
    ],
)
def test_sqlite_with_the_wrong_schema_is_an_error(tmp_path, schema, message):
    path = sqlite_file(tmp_path / "likes.db", [], schema=schema)

    with pytest.raises(CommandError, match=message):
        run("likes_import", str(path))


@pytest.mark.parametrize(
    "text",
    ["a,1\nb,2\n", "id,likes\na,1\n", "post_id,count\na,1\n", ""],
)
def test_csv_without_the_header_is_an_error(tmp_path, text):
    path = tmp_path / "likes.csv"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(CommandError, match="post_id,likes"):
        run("likes_import", str(path))
    assert counts() == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"post_id": "a", "likes": 1}, "expected a list"),
        ({"a": 1}, "expected a list"),
        ([{"post_id": "a", "likes": 1}, 5], "item 2 is not an object"),
        ([{"post_id": "a"}], "item 1 is not an object"),
        ([{"id": "a", "count": 1}], "item 1 is not an object"),
    ],
)
def test_json_of_the_wrong_shape_is_an_error(tmp_path, value, message):
    path = json_file(tmp_path / "likes.json", value)

    with pytest.raises(CommandError, match=message):
        run("likes_import", str(path))
    assert counts() == {}


def test_invalid_json_read_as_json_is_an_error(tmp_path):
    path = csv_file(tmp_path / "likes.csv", [("a", "1")])

    with pytest.raises(CommandError, match="not valid JSON"):
        run("likes_import", str(path), "--format", "json")


# --- likes_import: progress -------------------------------------------------------


def test_long_imports_report_progress_on_stderr(tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "PROGRESS_EVERY", 3)
    path = csv_file(tmp_path / "likes.csv", [(f"p{i}", str(i)) for i in range(10)])

    out, err = run("likes_import", str(path))

    lines = [line for line in err.splitlines() if "/10 rows" in line]
    assert lines == ["imported 3/10 rows", "imported 6/10 rows", "imported 9/10 rows"]
    assert "/10 rows" not in out


def test_dry_run_progress_says_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "PROGRESS_EVERY", 2)
    path = csv_file(tmp_path / "likes.csv", [(f"p{i}", str(i)) for i in range(3)])

    _, err = run("likes_import", str(path), "--dry-run")

    assert err.splitlines() == ["checked 2/3 rows"]


def test_progress_counts_skipped_rows_too(tmp_path):
    rows = [("good", "1"), ("bad/1", "1"), ("bad/2", "1"), ("bad/3", "1")]
    path = csv_file(tmp_path / "likes.csv", rows)
    seen = []

    def progress(done, total):
        seen.append((done, total))

    transfer.import_counts(path=path, progress=progress, progress_every=2)

    assert seen == [(2, 4), (4, 4)]


def test_short_imports_report_no_progress(tmp_path):
    path = csv_file(tmp_path / "likes.csv", [(f"p{i}", "1") for i in range(3)])
    seen = []

    transfer.import_counts(
        path=path, progress=lambda *args: seen.append(args), progress_every=3
    )

    assert seen == []


# --- likes_export -----------------------------------------------------------------

ROUND_TRIP = {"café-con-leña": 7, "hello-world": 42, "日本語": 3, "zero": 0}


@pytest.mark.parametrize("format", ["csv", "json"])
def test_export_then_import_into_a_fresh_database_reproduces_counts(tmp_path, format):
    for post_id, likes in ROUND_TRIP.items():
        Post.objects.create(post_id=post_id, likes=likes)
    path = tmp_path / f"likes.{format}"

    run("likes_export", "--format", format, "--output", str(path))
    Post.objects.all().delete()
    run("likes_import", str(path))

    assert counts() == ROUND_TRIP
    assert "café-con-leña".encode() in path.read_bytes()


def test_export_csv_to_stdout_is_ordered_like_top():
    for post_id, likes in [("b", 2), ("a", 2), ("c", 5)]:
        Post.objects.create(post_id=post_id, likes=likes)

    out, _ = run("likes_export")

    assert out.splitlines() == ["post_id,likes", "c,5", "a,2", "b,2"]


def test_export_json_to_stdout_is_a_list_of_objects():
    Post.objects.create(post_id="café", likes=1)
    Post.objects.create(post_id="b", likes=2)

    out, _ = run("likes_export", "--format", "json")

    assert json.loads(out) == [
        {"post_id": "b", "likes": 2},
        {"post_id": "café", "likes": 1},
    ]
    assert "café" in out  # UTF-8, not \u escapes


def test_export_of_no_posts_is_still_valid_json():
    out, _ = run("likes_export", "--format", "json")

    assert json.loads(out) == []


def test_export_to_an_unwritable_path_is_an_error(tmp_path):
    with pytest.raises(CommandError, match="cannot write"):
        run("likes_export", "--output", str(tmp_path / "missing-dir" / "x.csv"))


# --- likes_stats ------------------------------------------------------------------


def make_posts():
    for post_id, likes in [("b", 2), ("a", 2), ("c", 1500)]:
        Post.objects.create(post_id=post_id, likes=likes)


def test_stats_prints_a_ranked_table_and_the_total():
    make_posts()

    out, _ = run("likes_stats")

    lines = out.splitlines()
    assert lines[0].split() == ["rank", "post", "id", "likes"]
    assert [line.split() for line in lines[1:4]] == [
        ["1", "c", "1,500"],
        ["2", "a", "2"],
        ["3", "b", "2"],
    ]
    assert lines[4] == "Total: 1,504 likes on 3 posts."


def test_stats_limit_shows_the_top_posts_and_the_overall_total():
    make_posts()

    out, _ = run("likes_stats", "--limit", "1")

    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[1].split() == ["1", "c", "1,500"]
    assert lines[2] == "Total: 1,504 likes on 3 posts (top 1 shown)."


def test_stats_json_lists_post_ids_and_likes():
    make_posts()

    out, _ = run("likes_stats", "--json", "--limit", "2")

    assert json.loads(out) == [
        {"post_id": "c", "likes": 1500},
        {"post_id": "a", "likes": 2},
    ]


def test_stats_refuses_a_negative_limit():
    with pytest.raises(CommandError, match="--limit"):
        run("likes_stats", "--limit", "-1")


# --- likes_apikey -----------------------------------------------------------------


def test_apikey_create_prints_a_working_key_once():
    out, err = run("likes_apikey", "create", "--name", "dashboard")

    key = out.strip()
    api_key = APIKey.objects.get_from_key(key)
    assert api_key.name == "dashboard"
    assert "cannot be shown again" in err
    assert api_key.prefix in err


@pytest.mark.parametrize("name", ["   ", "x" * 51])
def test_apikey_create_refuses_a_bad_name(name):
    with pytest.raises(CommandError, match="name"):
        run("likes_apikey", "create", "--name", name)
    assert not APIKey.objects.exists()


def test_apikey_list_shows_keys_but_never_the_secret_or_hash():
    out, _ = run("likes_apikey", "create", "--name", "grafana")
    key = out.strip()
    api_key = APIKey.objects.get_from_key(key)

    listing, _ = run("likes_apikey", "list")

    assert api_key.prefix in listing
    assert "grafana" in listing
    assert "never" in listing  # last used
    assert "active" in listing
    assert key.partition(".")[2] not in listing
    assert api_key.hashed_key.split("$")[-1] not in listing


def test_apikey_list_marks_revoked_keys():
    api_key, _ = APIKey.objects.create_key(name="old")
    api_key.revoked = True
    api_key.save()

    listing, _ = run("likes_apikey", "list")

    assert "revoked" in listing


def test_apikey_revoke_makes_the_key_unusable():
    out, _ = run("likes_apikey", "create", "--name", "ci")
    key = out.strip()

    revoked, _ = run("likes_apikey", "revoke", key.partition(".")[0])

    assert "Revoked" in revoked
    with pytest.raises(APIKey.DoesNotExist):
        APIKey.objects.get_from_key(key)


def test_apikey_revoke_of_an_unknown_prefix_is_an_error():
    with pytest.raises(CommandError, match="No API key"):
        run("likes_apikey", "revoke", "nosuchpx")


# --- likes_rename -----------------------------------------------------------------


def test_rename_moves_the_count_and_the_like_history():
    for _ in range(3):
        like_add(post_id="old-slug")

    out, _ = run("likes_rename", "old-slug", "new-slug")

    assert counts() == {"new-slug": 3}
    assert Like.objects.filter(post__post_id="new-slug").count() == 3
    assert "now has 3 likes" in out


def test_rename_onto_an_existing_post_merges_the_two():
    Post.objects.create(post_id="new", likes=5)
    like_add(post_id="old")

    out, _ = run("likes_rename", "old", "new")

    assert counts() == {"new": 6}
    assert "Merged" in out


def test_rename_of_an_unknown_post_is_an_error():
    with pytest.raises(CommandError, match="No post 'ghost'"):
        run("likes_rename", "ghost", "new")
    assert counts() == {}


@pytest.mark.parametrize("new", ["a/b", "has space", ""])
def test_rename_to_an_invalid_post_id_is_an_error(new):
    Post.objects.create(post_id="old", likes=2)

    with pytest.raises(CommandError, match="not a valid post id"):
        run("likes_rename", "old", new)
    assert counts() == {"old": 2}


# --- help -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("likes_import", ["--dry-run", "--strict", "--format", "original service"]),
        ("likes_export", ["--format", "--output", "post_id,likes"]),
        ("likes_stats", ["--limit", "--json"]),
        ("likes_apikey", ["create", "list", "revoke"]),
        ("likes_rename", ["OLD", "NEW", "history"]),
    ],
)
def test_help_describes_the_command(name, expected):
    parser = load_command_class("likes", name).create_parser("manage.py", name)
    help_text = parser.format_help()

    for word in expected:
        assert word in help_text


# --- reactions in JSON exports and imports ------------------------------------------


def reaction_counts():
    from likes.models import PostReaction

    return {
        (r.post.post_id, r.kind): r.count
        for r in PostReaction.objects.select_related("post")
    }


def test_json_export_and_import_carry_reactions(tmp_path):
    from likes.models import PostReaction

    post = Post.objects.create(post_id="p", likes=2)
    Post.objects.create(post_id="q", likes=1)
    PostReaction.objects.create(post=post, kind="👍", count=3)
    PostReaction.objects.create(post=post, kind="clap", count=1)
    PostReaction.objects.create(post=post, kind="🎉", count=0)
    path = tmp_path / "likes.json"

    run("likes_export", "--format", "json", "--output", str(path))
    exported = json.loads(path.read_text())
    assert exported == [
        {"post_id": "p", "likes": 2, "reactions": {"clap": 1, "👍": 3}},
        {"post_id": "q", "likes": 1},
    ]
    Post.objects.all().delete()
    out, _ = run("likes_import", str(path))

    assert counts() == {"p": 2, "q": 1}
    assert reaction_counts() == {("p", "👍"): 3, ("p", "clap"): 1}
    assert "2 reaction counts" in out
    # Again: nothing changes; reactions counted since are kept.
    PostReaction.objects.filter(kind="clap").update(count=5)
    run("likes_import", str(path))
    assert reaction_counts() == {("p", "👍"): 3, ("p", "clap"): 5}


def test_bad_reactions_in_a_json_file_are_row_errors(tmp_path):
    path = json_file(
        tmp_path / "bad.json",
        [
            {"post_id": "a", "likes": 1, "reactions": {"👍": 2, "not ok": 1}},
            {"post_id": "b", "likes": 1, "reactions": [1]},
            {"post_id": "c", "likes": 1, "reactions": {"👍": -1}},
            {"post_id": "d", "likes": 1, "reactions": {"🎉": 4}},
        ],
    )

    _, err = run("likes_import", str(path))

    assert counts() == {"a": 1, "b": 1, "c": 1, "d": 1}  # the likes go in
    assert reaction_counts() == {("d", "🎉"): 4}  # a's reactions all or none
    assert "row 1" in err and "row 2" in err and "row 3" in err
    with pytest.raises(CommandError):
        run("likes_import", "--strict", str(path))
