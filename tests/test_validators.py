import pytest

from likes.validators import post_id_error


@pytest.mark.parametrize(
    "post_id",
    [
        "hello-world",
        "my_post.v2~draft",
        "-",  # Hugo's id for the home page: path.Base "/" with "/" replaced
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
    ],
)
def test_invalid_post_ids_say_why(post_id, reason):
    assert reason in post_id_error(post_id)
