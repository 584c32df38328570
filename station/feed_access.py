"""Who may read a feed served without signing in (calendars, podcasts): anyone when it is public, otherwise a
client with its token in the address (``?token=``). A wrong or missing token looks like an unknown feed."""

import secrets


def may_read(request, *, public: bool, token: str) -> bool:
    given = request.GET.get("token", "")
    return public or (bool(given) and secrets.compare_digest(given.encode(), token.encode()))


def handed_out(url: str, *, public: bool, token: str) -> str:
    """A feed's address as the station hands it out: with its token unless it is public."""
    return url if public else f"{url}?token={token}"
