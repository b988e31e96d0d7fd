import pytest

from likes.validators import canonical, clean_post_id, post_id_error


@pytest.mark.parametrize(
    "post_id",
    [
        "hello-world",
        "my_post.v2~draft",
        "café",
        "cafe\u0301",  # decomposed é: letter plus combining mark
        "日本語の記事",
        "статья-1",
        "a" * 200,
    ],
)
def test_valid_post_ids_are_accepted(post_id):
    assert post_id_error(post_id) is None


@pytest.mark.parametrize(
    ("post_id", "reason"),
    [
        ("", "empty"),
        ("a" * 201, "at most 200"),
        ("a/b", "'/'"),
        ("a b", "' '"),
        ("a\x00b", "'\\x00'"),
        ("a\nb", "'\\n'"),
        ("a\tb", "'\\t'"),
        ("a%2Fb", "'%'"),
        ("<script>", "'<'"),
        (".", "at least one letter or digit"),
        ("..", "at least one letter or digit"),
        ("-", "at least one letter or digit"),
        ("\u0301\u0301", "at least one letter or digit"),  # combining marks alone
        ("-_.~", "at least one letter or digit"),
    ],
)
def test_invalid_post_ids_say_why(post_id, reason):
    assert reason in post_id_error(post_id)


def test_the_composed_and_decomposed_spellings_are_one_id():
    assert canonical("cafe\u0301") == canonical("caf\u00e9") == "caf\u00e9"
    assert clean_post_id("cafe\u0301") == ("caf\u00e9", None)


def test_case_stays_significant():
    assert canonical("Post") != canonical("post")


def test_the_length_limit_applies_to_the_canonical_form():
    # 200 decomposed characters compose to 100: within the limit.
    assert clean_post_id("e\u0301" * 100) == ("\u00e9" * 100, None)
