"""Who is signed in to the web page, and whether a form post came from our own page.

The session cookie holds the person's own token (a personal token or an OIDC JWT), checked on every request
exactly as the people endpoints check a bearer token (`people_api.person_of`), so the receiver keeps no session
store and a token removed from the people file stops working at once. It is HttpOnly (page scripts never see
it), SameSite=Strict (another site's page cannot send it) and Secure when the page came over https.

CSRF: every state-changing form carries a token the server checks. Signed in, it is an HMAC keyed by the
session token, so only a page that could read our HTML has it, and every receiver replica computes the same one
without shared secrets. The sign-in form, before there is a session, uses a random value kept in a cookie of
its own and repeated in the form (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import quote

from aiohttp import web

from incidentctl.intake.http import Refused
from incidentctl.intake.people_api import person_of

SESSION_COOKIE = "incidentctl_session"
SIGN_IN_COOKIE = "incidentctl_sign_in"
CSRF_FIELD = "csrf"
# A working day and a bit: people sign in again the next day (their token still lives in the people file).
SESSION_MAX_AGE_S = 12 * 3600
SIGN_IN_MAX_AGE_S = 600
UI_ROOT = "/ui"


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"incidentctl web form", hashlib.sha256).hexdigest()


def _over_https(request: web.Request) -> bool:
    # A proxy that ends TLS says so in X-Forwarded-Proto; believing it can only make the cookie stricter.
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=UI_ROOT, httponly=True, samesite="Strict",
                        secure=_over_https(request))


def forget_cookie(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path=UI_ROOT)


def session_token(request: web.Request) -> str:
    return request.cookies.get(SESSION_COOKIE, "")


async def signed_in(request: web.Request) -> str | None:
    """The person the session cookie names, or None without one; Refused when the cookie names nobody or the
    people file cannot be read (the page says why)."""
    token = session_token(request)
    return await person_of(token) if token else None


def new_sign_in_nonce() -> str:
    return secrets.token_urlsafe(32)


def check_sign_in_form(request: web.Request, form_value: str) -> None:
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, form_value):
        raise Refused(403, "the sign-in form expired or did not come from this page: load it again", "csrf")


def check_csrf(request: web.Request, form_value: str) -> None:
    token = session_token(request)
    if not token or not hmac.compare_digest(csrf_token(token), form_value):
        raise Refused(403, "this form did not come from this page (missing or wrong CSRF token): load the page "
                           "again", "csrf")


def safe_next(target: str) -> str:
    """Where to go after signing in: only a page of ours, never another site (`//evil`, `/\\evil`)."""
    if target.startswith(UI_ROOT) and not target.startswith(("//", "/\\")) and "\\" not in target:
        return target
    return UI_ROOT


def sign_in_url(request: web.Request) -> str:
    return f"{UI_ROOT}/login?next={quote(request.path_qs, safe='')}"
