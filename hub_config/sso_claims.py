"""What an OpenID Connect login proves: the ID token's claims checked against the issuer,
the client and the clock, and the identity (username, subject, groups) read from the claims;
the keyed binding of a hub name to that identity; the provider logout request.

Pure: no I/O and no clock of its own. ``sso.py`` fetches the tokens and calls these.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class Refused(Exception):
    """A login the provider vouched for but mlfactory does not accept; the message is for
    the person at the login page (no token contents, no internals)."""


@dataclass(frozen=True)
class Identity:
    username: str
    subject: str
    groups: tuple[str, ...]


def check_id_token(
    claims: Mapping[str, Any], *, issuer: str, client_id: str, now: float, leeway: int = 60
) -> None:
    """Raise :class:`Refused` unless the (signature-checked) ID token claims were issued by
    ``issuer`` for ``client_id`` and are valid at ``now`` (seconds since the epoch).

    OpenID Connect Core 3.1.3.7: ``iss`` matches exactly; ``aud`` contains the client, and
    with several audiences ``azp`` names it; ``exp`` is in the future; ``iat`` not in it.
    ``leeway`` seconds absorb clock skew between the hub and the provider.
    """
    if claims.get("iss") != issuer:
        raise Refused(
            "The sign-in was issued by another identity provider than the configured one."
        )
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else list(audience or [])
    if client_id not in audiences or (len(audiences) > 1 and claims.get("azp") != client_id):
        raise Refused("The sign-in was issued for another application (wrong audience).")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool) or now > exp + leeway:
        raise Refused("The sign-in has expired. Sign in again.")
    if isinstance(iat, (int, float)) and not isinstance(iat, bool) and iat > now + leeway:
        raise Refused("The sign-in was issued in the future; check the clocks of both machines.")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise Refused("The identity provider sent no subject (sub) for this sign-in.")


def read_identity(
    claims: Mapping[str, Any],
    *,
    username_claim: str,
    groups_claim: str,
    require_verified_email: bool,
) -> Identity:
    """The identity in merged ID-token and userinfo claims, or :class:`Refused`.

    An e-mail address counts only when the provider says it verified it: with
    ``require_verified_email`` every identity needs ``email_verified`` to be exactly true,
    whatever claim names the user (oauthenticator's advisories: an unverified address, or a
    domain, proves nothing about who signs in). A missing groups claim means no groups,
    never all of them.
    """
    if require_verified_email and claims.get("email_verified") is not True:
        raise Refused(
            "Your e-mail address is not verified at the identity provider. "
            "Verify it there, then sign in again."
        )
    username = claims.get(username_claim)
    if not isinstance(username, str) or not username.strip():
        raise Refused(
            f"The identity provider sent no {username_claim!r} for your account, "
            "which this hub uses as the username. Ask an administrator."
        )
    raw_groups = claims.get(groups_claim)
    if raw_groups is None:
        groups: tuple[str, ...] = ()
    elif isinstance(raw_groups, list) and all(isinstance(g, str) for g in raw_groups):
        groups = tuple(sorted({g for g in raw_groups if g}))
    else:
        raise Refused(
            f"The identity provider's {groups_claim!r} claim is not a list of group names. "
            "Ask an administrator."
        )
    return Identity(username=username.strip(), subject=str(claims.get("sub", "")), groups=groups)


BINDING_CONTEXT = b"mlfactory sso binding v1"


def binding_key(secret: bytes) -> bytes:
    """The binding key derived from one of the hub's encryption keys (``CryptKeeper.keys``,
    ``$JUPYTERHUB_CRYPT_KEY``): a key of its own, so a binding never doubles as an
    encrypted value or the other way round."""
    return hmac.new(secret, BINDING_CONTEXT, hashlib.sha256).digest()


def binding(issuer: str, subject: str, username: str, *, key: bytes) -> dict[str, str]:
    """What the hub keeps (in ``user_info``) of the provider identity ``username`` is bound
    to: an HMAC of (iss, sub, name) under a key only the hub holds, not the values.

    JupyterHub shows ``user_info`` to admins, and whoever can write the hub's database could
    plant a plain digest of their own identity on another user; without the key they cannot
    compute this one, and the name in it keeps a binding copied from another user's row from
    matching."""
    message = f"{issuer}\n{subject}\n{username}".encode()
    return {"hmac_sha256": hmac.new(key, message, hashlib.sha256).hexdigest()}


def unkeyed_binding(issuer: str, subject: str) -> dict[str, str]:
    """The digest older hubs stored (no key): only ever compared, never written again."""
    return {"sha256": hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()}


def stored_binding(value: Any) -> dict[str, str] | None:
    """A binding as ``user_info`` holds it, or None. Hubs before the keyed binding stored a
    plain digest, and older ones iss and sub themselves (read as their digest)."""
    if not isinstance(value, Mapping) or not value:
        return None
    if "sub" in value:
        return unkeyed_binding(str(value.get("iss", "")), str(value["sub"]))
    return {str(k): str(v) for k, v in value.items()}


def bound_here(
    stored: Mapping[str, str] | None,
    *,
    issuer: str,
    subject: str,
    username: str,
    keys: Sequence[bytes],
    accept_unkeyed: bool,
) -> bool | None:
    """Whether the binding ``stored`` (see :func:`stored_binding`) is this identity's: None
    when there is none, True when it is (keyed under any of ``keys``, so an older encryption
    key still matches after a rotation; or unkeyed, if ``accept_unkeyed``), else False.

    The caller stores :func:`binding` under the first key at every sign-in, so an unkeyed
    or old-key binding that matched is upgraded then, and works as unkeyed only once.
    """
    if not stored:
        return None
    digest = stored.get("hmac_sha256")
    if digest is not None:
        return any(
            hmac.compare_digest(binding(issuer, subject, username, key=k)["hmac_sha256"], digest)
            for k in keys
        )
    if accept_unkeyed and "sha256" in stored:
        return hmac.compare_digest(unkeyed_binding(issuer, subject)["sha256"], stored["sha256"])
    return False


def check_binding(
    username: str,
    *,
    exists: bool,
    bound: bool | None,
    admin: bool,
    adopt_existing: bool,
) -> None:
    """Raise :class:`Refused` unless a provider identity may sign in as the hub user
    ``username``; ``bound`` says whether the name's stored binding is this identity's
    (:func:`bound_here`: None when the name has none).

    A new name is bound to the identity at its first sign-in. An existing name bound to
    another identity is refused. An existing name with no binding (an ``admin_users`` name
    the hub created at start, a user made through the REST API, one from before SSO) is
    refused unless ``adopt_existing`` says the provider's names are this hub's names; an
    admin is never adopted, since the provider would otherwise decide who is admin.
    """
    if not exists or bound is True:
        return
    if bound is False:
        raise Refused(
            f"The username {username!r} already belongs to another account of the identity "
            "provider. Ask an administrator."
        )
    if admin:
        raise Refused(
            f"The username {username!r} is an administrator account of this hub that is not "
            "linked to the identity provider, so single sign-on cannot use it. An "
            "administrator must link the account (or remove it and grant admin rights "
            "through the provider's admin groups)."
        )
    if not adopt_existing:
        raise Refused(
            f"The username {username!r} already exists on this hub and is not linked to the "
            "identity provider. An administrator must link the account "
            "(auth.oidc.adopt_existing_users) or remove it before you sign in."
        )


def keep_groups(
    groups: tuple[str, ...], *, declared: frozenset[str], prefix: str = "", keep_all: bool = False
) -> tuple[str, ...]:
    """The provider's groups that become hub groups: those the platform declares (config
    ``groups``, the allowed and admin groups), those under ``prefix`` if one is set, or all
    of them with ``keep_all``. Hub groups drive data grants, budgets and profiles, so a
    multi-tenant provider's arbitrary groups must not turn into platform groups by name."""
    if keep_all:
        return groups
    return tuple(g for g in groups if g in declared or (prefix and g.startswith(prefix)))


def end_session_url(
    endpoint: str, *, client_id: str, post_logout_redirect_uri: str, id_token: str | None = None
) -> str:
    """The provider's ``end_session_endpoint`` with the RP-initiated logout parameters
    (OpenID Connect RP-Initiated Logout 1.0, section 2): ``client_id``, the
    ``post_logout_redirect_uri`` registered for the client, and the ID token as
    ``id_token_hint`` when the hub kept it (some providers require it, others then skip
    their confirmation). Parameters already in the endpoint's query (e.g. a policy) stay."""
    parts = urlsplit(endpoint)
    ours = {"client_id", "post_logout_redirect_uri", "id_token_hint"}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ours]
    query += [("client_id", client_id), ("post_logout_redirect_uri", post_logout_redirect_uri)]
    if id_token:
        query.append(("id_token_hint", id_token))
    return urlunsplit(parts._replace(query=urlencode(query)))
