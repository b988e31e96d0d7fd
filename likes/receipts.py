"""Unlike receipts: a signed note naming one like, kept by the visitor's browser."""

from django.core import signing

SALT = "likes.receipt"


class InvalidReceipt(Exception):
    def __init__(self, message: str, *, forged: bool):
        super().__init__(message)
        self.forged = forged


def make_receipt(*, post_id: str, like_id: int) -> str:
    return signing.dumps([like_id, post_id], salt=SALT)


def read_receipt(receipt, *, post_id: str) -> int:
    """Return the like id a receipt names; raise InvalidReceipt when it can't."""
    if not isinstance(receipt, str) or not receipt or len(receipt) > 500:
        raise InvalidReceipt("A receipt (string) is required.", forged=False)
    try:
        like_id, signed_post_id = signing.loads(receipt, salt=SALT)
    except signing.BadSignature as exc:
        raise InvalidReceipt("The receipt is not valid.", forged=True) from exc
    except (TypeError, ValueError) as exc:
        raise InvalidReceipt("The receipt is malformed.", forged=False) from exc
    if signed_post_id != post_id or not isinstance(like_id, int):
        raise InvalidReceipt("The receipt is for another post.", forged=True)
    return like_id
