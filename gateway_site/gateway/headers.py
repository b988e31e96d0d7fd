"""Header rules of a proxy, framework-free (the benchmark's ceiling uses them too)."""

# Headers that describe one connection, not the message (RFC 9110 §7.6.1),
# plus the proxy-authentication pair meant for the next hop only.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
# aiohttp adds none of these by itself: the caller's are forwarded, or none.
SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


def hop_by_hop(connection_values) -> frozenset[str]:
    """The hop-by-hop names of a message: the fixed list plus those in Connection."""
    named = {
        token.strip().lower()
        for value in connection_values
        for token in value.split(",")
        if token.strip()
    }
    return HOP_BY_HOP | named if named else HOP_BY_HOP
