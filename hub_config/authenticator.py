"""mlfactory's local-account authenticator: scrypt passwords in its own database, persistent
lockout, self-service signup that an admin approves, and password change.

Select it with ``c.JupyterHub.authenticator_class = "mlfactory"``.
"""

from __future__ import annotations

import asyncio
import enum
import os
import re
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from jupyterhub import orm
from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.utils import new_token
from tornado import web
from traitlets import Bool, Callable, Dict, Integer, Unicode, default, validate

from . import accounts
from .account_store import AccountExists, AccountStore, utcnow
from .platform_config import data_dir

_EMAIL_PATTERN = r"[^@\s]{1,64}@[^@\s]{1,255}"
# One answer for every name that cannot be signed up for, so the reason is not revealed.
_NAME_NOT_AVAILABLE = "This username is not available. Choose another."
_TOO_MANY_PENDING = "Too many sign-ups are waiting for approval; try again later or ask an admin."


class _Outcome(enum.Enum):
    OK = "ok"
    INVALID = "invalid"
    LOCKED = "locked"
    PENDING = "pending"


@dataclass(frozen=True)
class _Check:
    outcome: _Outcome
    retry_after_seconds: int = 0


class MLFactoryAuthenticator(Authenticator):
    """Username/password accounts stored by mlfactory, outside the hub database.

    Only *authorized* accounts can log in: ``authenticate`` returns a name for nothing else,
    so the account store is the allow list. ``allow_all`` therefore defaults to True; set
    ``allowed_users`` (or ``allow_all = False``) to narrow access further.
    """

    accounts_db_url = Unicode(
        config=True,
        help="""SQLAlchemy URL of the local-account database (mlfactory's own, not the hub's).

        Default: ``sqlite:///$MLFACTORY_DATA/accounts.sqlite``, where the ``MLFACTORY_DATA``
        environment variable defaults to ``.mlfactory`` in the hub's working directory.
        A missing folder is created with mode 0700 (an existing one open to other users is
        warned about); the SQLite file and its -wal/-shm files are owner-readable only.

        Example: ``c.MLFactoryAuthenticator.accounts_db_url = "sqlite:////srv/mlfactory/accounts.sqlite"``
        """,
    )

    @default("accounts_db_url")
    def _default_accounts_db_url(self) -> str:
        return f"sqlite:///{data_dir() / 'accounts.sqlite'}"

    minimum_password_length = Integer(
        accounts.MINIMUM_PASSWORD_LENGTH,
        config=True,
        help="""Fewest characters a new password may have (signup, password change).

        Existing passwords keep working when this is raised. Must be at least 1; values below
        8 are allowed but weaken every account.

        Example: ``c.MLFactoryAuthenticator.minimum_password_length = 12``
        """,
    )

    @validate("minimum_password_length")
    def _check_minimum_password_length(self, proposal):
        if proposal.value < 1:
            raise ValueError(f"minimum_password_length must be >= 1, got {proposal.value}")
        return proposal.value

    allowed_failed_logins = Integer(
        5,
        config=True,
        help="""Wrong passwords in a row after which an account is locked for
        ``lockout_seconds``.

        Failures are stored in the account database, so a hub restart does not reset them.
        A failure more than ``lockout_seconds`` after the previous one starts the count afresh.
        0 disables lockout.

        Example: ``c.MLFactoryAuthenticator.allowed_failed_logins = 3``
        """,
    )

    lockout_seconds = Integer(
        600,
        config=True,
        help="""Seconds an account stays locked, counted from its last failed login.

        While locked, even the right password is refused, with "Too many failed attempts;
        try again in N minutes". Attempts during a lockout are not counted and do not extend
        it. 0 disables lockout.

        Example: ``c.MLFactoryAuthenticator.lockout_seconds = 900``
        """,
    )

    @validate("allowed_failed_logins", "lockout_seconds", "max_pending_signups")
    def _check_not_negative(self, proposal):
        if proposal.value < 0:
            raise ValueError(f"{proposal.trait.name} must be >= 0, got {proposal.value}")
        return proposal.value

    enable_signup = Bool(
        True,
        config=True,
        help="""Let visitors create accounts at ``/hub/signup``.

        A new account is *pending*: it cannot log in until an admin approves it at
        ``/hub/authorize``. Names in ``admin_users`` or ``blocked_users``, and names the hub
        already has a user for, cannot be signed up for. When False, ``/hub/signup`` answers
        404 and the login page hides its link.

        Example: ``c.MLFactoryAuthenticator.enable_signup = False``
        """,
    )

    max_pending_signups = Integer(
        100,
        config=True,
        help="""Most sign-ups that may wait for approval at once.

        While this many accounts are pending, ``/hub/signup`` refuses new ones (HTTP 429,
        "Too many sign-ups are waiting for approval"), before doing any password hashing, so
        a script cannot fill the database or the approval page. Approving or discarding
        pending accounts at ``/hub/authorize`` makes room again. 0 removes the limit.

        Example: ``c.MLFactoryAuthenticator.max_pending_signups = 20``
        """,
    )

    password_hash_cost = Dict(
        per_key_traits={"n": Integer(), "r": Integer(), "p": Integer()},
        config=True,
        help="""scrypt parameters for new password hashes: ``n`` (power of two), ``r``, ``p``.

        Memory per hash is about 128 * n * r bytes; time grows with n * r * p. The default
        ``{"n": 16384, "r": 8, "p": 5}`` is an OWASP-recommended strength (16 MiB). Hashes made
        with other parameters still verify and are upgraded at the user's next login.

        Example: ``c.MLFactoryAuthenticator.password_hash_cost = {"n": 131072, "r": 8, "p": 1}``
        """,
    )

    @default("password_hash_cost")
    def _default_password_hash_cost(self) -> dict:
        d = accounts.DEFAULT_SCRYPT
        return {"n": d.n, "r": d.r, "p": d.p}

    @validate("password_hash_cost")
    def _check_password_hash_cost(self, proposal):
        accounts.ScryptParams(**proposal.value)  # raises ValueError naming the bad value
        return proposal.value

    clock = Callable(
        help="Returns the current time as an aware UTC datetime; replaced in tests.",
    )

    @default("clock")
    def _default_clock(self):
        return utcnow

    @default("allow_all")
    def _default_allow_all(self) -> bool:
        # authenticate() only accepts authorized accounts, so approval is the allow list.
        return not (self.allowed_users or self.allow_existing_users)

    # How many unknown usernames the lockout remembers (see _check_unknown_name).
    unknown_names_tracked = 10_000

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._store: AccountStore | None = None
        self._store_lock = threading.Lock()
        # Failure records of valid-looking names that have no account: name -> (count, last).
        self._unknown_failures: OrderedDict[str, tuple[int, datetime]] = OrderedDict()
        self._unknown_failures_lock = threading.Lock()
        self._dummy_hashes: dict[accounts.ScryptParams, str] = {}
        # One login attempt per username at a time: concurrent guesses must not all read
        # "not locked yet" before any of them records its failure.
        self._user_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        # Each scrypt hash holds ~128*n*r bytes: cap how many run at once.
        self._hash_slots = asyncio.Semaphore(max(1, (os.cpu_count() or 2) // 2))

    # --- plumbing ------------------------------------------------------------------------------

    @property
    def store(self) -> AccountStore:
        """The account store, opened on first use.

        Opening does file and database I/O: in async code, reach the store only from a worker
        thread (:meth:`in_store`). The lock makes two threads that race here share one store.
        """
        with self._store_lock:
            if self._store is None:
                self._store = AccountStore(self.accounts_db_url, log=self.log)
            return self._store

    async def in_store(self, call):
        """``call(store)`` in a worker thread, where the store is also opened on first use."""
        return await asyncio.to_thread(lambda: call(self.store))

    @property
    def scrypt_params(self) -> accounts.ScryptParams:
        return accounts.ScryptParams(**self.password_hash_cost)

    def _lock_for(self, username: str) -> asyncio.Lock:
        lock = self._user_locks.get(username)
        if lock is None:
            lock = asyncio.Lock()
            self._user_locks[username] = lock
        return lock

    def _dummy_hash(self) -> str:
        params = self.scrypt_params
        if params not in self._dummy_hashes:
            self._dummy_hashes[params] = accounts.hash_password("not a real password", params)
        return self._dummy_hashes[params]

    async def _in_thread(self, func, *args, **kwargs):
        async with self._hash_slots:
            return await asyncio.to_thread(func, *args, **kwargs)

    async def hash_password(self, password: str) -> str:
        """Hash ``password`` with the configured cost, off the event loop."""
        return await self._in_thread(accounts.hash_password, password, self.scrypt_params)

    def password_problems(self, password: str, username: str) -> list[str]:
        return accounts.check_password(password, username, self.minimum_password_length)

    # --- login ---------------------------------------------------------------------------------

    def _locked(
        self, failed_count: int, last_failure: datetime | None, now: datetime
    ) -> _Check | None:
        """A LOCKED answer if this failure record is locked out at ``now``, else None."""
        verdict = accounts.lockout_verdict(
            failed_count, last_failure, now, self.allowed_failed_logins, self.lockout_seconds
        )
        return _Check(_Outcome.LOCKED, verdict.retry_after_seconds) if verdict.locked else None

    def _check_unknown_name(self, username: str, password: str, now: datetime) -> _Check:
        """Refuse a valid-looking name that has no account exactly as a real account that gets
        a wrong password: same time, and the same lockout after the same number of failures.

        The failure records live in memory only: there is nothing to protect for these names,
        the answers just have to look the same as for a real account. The least recently
        tried names are forgotten beyond ``unknown_names_tracked``, which bounds the memory
        a flood of made-up names can take.
        """
        with self._unknown_failures_lock:
            failed_count, last_failure = self._unknown_failures.get(username, (0, None))
        locked = self._locked(failed_count, last_failure, now)
        if locked:
            return locked
        # spend the same time as for a real account, so timing does not reveal names
        accounts.verify_password(password, self._dummy_hash())
        failed_count = accounts.next_failed_count(
            failed_count, last_failure, now, self.lockout_seconds
        )
        with self._unknown_failures_lock:
            self._unknown_failures[username] = (failed_count, now)
            self._unknown_failures.move_to_end(username)
            while len(self._unknown_failures) > self.unknown_names_tracked:
                self._unknown_failures.popitem(last=False)
        return self._locked(failed_count, now, now) or _Check(_Outcome.INVALID)

    def _check_credentials(self, username: str, password: str, now: datetime) -> _Check:
        """Verify a login attempt and record its result. Blocking: runs in a worker thread."""
        if len(password) > accounts.MAXIMUM_PASSWORD_LENGTH:
            return _Check(_Outcome.INVALID)
        if not accounts.is_valid_username(username):
            # no account can have this name, so refusing it reveals nothing
            accounts.verify_password(password, self._dummy_hash())
            return _Check(_Outcome.INVALID)
        account = self.store.get(username)
        if account is None:
            return self._check_unknown_name(username, password, now)

        locked = self._locked(account.failed_logins, account.last_failed_at, now)
        if locked:
            # refused without looking at the password: a lockout is not a guessing oracle
            return locked

        if not accounts.verify_password(password, account.password_hash):
            updated = self.store.record_failure(
                username, now=now, lockout_seconds=self.lockout_seconds
            )
            if updated is not None:
                locked = self._locked(updated.failed_logins, updated.last_failed_at, now)
            return locked or _Check(_Outcome.INVALID)

        if account.failed_logins:
            self.store.record_success(username)
        if accounts.needs_rehash(account.password_hash, self.scrypt_params):
            self.store.set_password(username, accounts.hash_password(password, self.scrypt_params))
        if not account.is_authorized:
            return _Check(_Outcome.PENDING)
        return _Check(_Outcome.OK)

    async def check_credentials(self, username: str, password: str) -> _Check:
        """Verify ``password`` for the normalised ``username``, with lockout bookkeeping."""
        now = self.clock()
        async with self._lock_for(username):
            return await self._in_thread(self._check_credentials, username, password, now)

    @staticmethod
    def _locked_error(retry_after_seconds: int) -> web.HTTPError:
        error = web.HTTPError(429, accounts.lockout_message(retry_after_seconds))
        # BaseHandler.write_error copies `headers` from the exception onto the response
        error.headers = {"Retry-After": str(retry_after_seconds)}
        return error

    async def authenticate(self, handler, data):
        """Return the username for an authorized account with the right password.

        Wrong password or unknown user: None (the hub shows "Invalid username or password").
        Locked account, or a name without an account tried as often: HTTP 429 with the wait
        time. Right password but not yet approved: HTTP 403 "awaiting admin approval".
        JupyterHub's login handler renders these messages inside the login form.
        """
        data = data or {}
        username = self.normalize_username(str(data.get("username", "")).strip())
        password = str(data.get("password", ""))
        result = await self.check_credentials(username, password)
        if result.outcome is _Outcome.LOCKED:
            self.log.warning("Login refused for locked account %r", username)
            raise self._locked_error(result.retry_after_seconds)
        if result.outcome is _Outcome.PENDING:
            raise web.HTTPError(
                403, "Your account is awaiting admin approval. Try again once it is approved."
            )
        if result.outcome is _Outcome.OK:
            return username
        return None

    async def refresh_user(self, user, handler=None):
        """Sessions of accounts that were deleted or are no longer authorized must log in again."""
        account = await self.in_store(lambda store: store.get(user.name))
        return account is not None and account.is_authorized

    async def delete_user(self, user):
        """Deleting a user in the hub (admin page, REST API) also deletes the local account,
        so the name cannot simply log in again."""
        super().delete_user(user)
        await self.in_store(lambda store: store.delete(user.name))

    def get_handlers(self, app):
        return super().get_handlers(app) + [
            (r"/signup", SignupHandler),
            (r"/authorize", AuthorizeHandler),
            (r"/change-password", ChangePasswordHandler),
        ]


# --- pages -------------------------------------------------------------------------------------


class _AccountPage(BaseHandler):
    template: str = ""

    @property
    def accounts_auth(self) -> MLFactoryAuthenticator:
        if not isinstance(self.authenticator, MLFactoryAuthenticator):
            raise web.HTTPError(404)
        return self.authenticator

    async def render_page(self, status: int = 200, **ns) -> None:
        self.set_status(status)
        html = await self.render_template(self.template, **ns)
        self.finish(html)


class SignupHandler(_AccountPage):
    """``/hub/signup``: create a pending account that an admin must approve."""

    template = "signup.html"

    async def prepare(self):
        await super().prepare()
        if not self.accounts_auth.enable_signup:
            raise web.HTTPError(404)

    async def _render_form(self, status: int = 200, **ns) -> None:
        await self.render_page(
            status, minimum_password_length=self.accounts_auth.minimum_password_length, **ns
        )

    async def get(self):
        await self._render_form()

    def _problems(self, username: str, password: str, confirm: str, email: str) -> list[str]:
        auth = self.accounts_auth
        problem = accounts.username_problem(username)
        if problem:
            return [problem]
        problems = []
        # A hub user without a local account (made on the admin page or the REST API, or by
        # an earlier authenticator) must not be claimable: approval would hand over its
        # server and files.
        reserved = username in auth.admin_users or username in auth.blocked_users
        if reserved or self.find_user(username) is not None:
            problems.append(_NAME_NOT_AVAILABLE)
        problems += auth.password_problems(password, username)
        if password != confirm:
            problems.append("The two passwords do not match.")
        if email and not re.fullmatch(_EMAIL_PATTERN, email):
            problems.append("The email address does not look valid.")
        return problems

    async def _too_many_pending(self) -> bool:
        limit = self.accounts_auth.max_pending_signups
        # Concurrent sign-ups may overshoot by the few in flight: a bound, not an exact count.
        return limit > 0 and await self.accounts_auth.in_store(AccountStore.count_pending) >= limit

    async def post(self):
        auth = self.accounts_auth
        raw_username = self.get_body_argument("username", "", strip=True)
        username = auth.normalize_username(raw_username)
        password = self.get_body_argument("password", "", strip=False)
        confirm = self.get_body_argument("password_confirm", "", strip=False)
        email = self.get_body_argument("email", "", strip=True)
        # checked before any hashing: a full queue must cost the hub next to nothing
        if await self._too_many_pending():
            self.log.warning("Signup refused: %d pending sign-ups", auth.max_pending_signups)
            await self._render_form(
                429, problems=[_TOO_MANY_PENDING], username=raw_username, email=email
            )
            return
        problems = self._problems(username, password, confirm, email)
        if not problems:
            password_hash = await auth.hash_password(password)
            try:
                await auth.in_store(
                    lambda store: store.create_account(
                        username,
                        password_hash,
                        authorized=False,
                        email=email or None,
                        now=auth.clock(),
                    )
                )
            except AccountExists:
                problems.append(_NAME_NOT_AVAILABLE)
        if problems:
            await self._render_form(400, problems=problems, username=raw_username, email=email)
            return
        self.log.info("Signup: pending account %r created", username)
        await self._render_form(created=username)


class AuthorizeHandler(_AccountPage):
    """``/hub/authorize``: admins approve or discard pending accounts."""

    template = "authorize.html"

    async def _render_list(self, status: int = 200, **ns) -> None:
        pending = await self.accounts_auth.in_store(AccountStore.list_pending)
        await self.render_page(status, pending=pending, **ns)

    @web.authenticated
    @needs_scope("admin:users")
    async def get(self):
        await self._render_list()

    @web.authenticated
    @needs_scope("admin:users")
    async def post(self):
        auth = self.accounts_auth
        username = self.get_body_argument("username", "", strip=True)
        action = self.get_body_argument("action", "")
        if action == "approve":
            done = await auth.in_store(lambda store: store.authorize(username))
            message = f"Approved {username}." if done else None
        elif action == "discard":
            done = await auth.in_store(lambda store: store.deny(username))
            message = f"Discarded {username}." if done else None
        else:
            raise web.HTTPError(400, "action must be 'approve' or 'discard'.")
        if not done:
            await self._render_list(404, error=f"No pending account named {username!r}.")
            return
        self.log.info("%s: %s by %s", action, username, self.current_user.name)
        await self._render_list(message=message)


class ChangePasswordHandler(_AccountPage):
    """``/hub/change-password``: a logged-in user replaces their own password."""

    template = "change-password.html"

    async def _render_form(self, status: int = 200, **ns) -> None:
        await self.render_page(
            status, minimum_password_length=self.accounts_auth.minimum_password_length, **ns
        )

    @web.authenticated
    async def get(self):
        await self._render_form()

    @web.authenticated
    async def post(self):
        auth = self.accounts_auth
        username = self.current_user.name
        old = self.get_body_argument("old_password", "", strip=False)
        new = self.get_body_argument("new_password", "", strip=False)
        confirm = self.get_body_argument("new_password_confirm", "", strip=False)

        problems = auth.password_problems(new, username)
        if new != confirm:
            problems.append("The two new passwords do not match.")
        if new and new == old:
            problems.append("The new password must differ from the current one.")
        if problems:
            await self._render_form(400, problems=problems)
            return

        result = await auth.check_credentials(username, old)
        if result.outcome is _Outcome.LOCKED:
            raise auth._locked_error(result.retry_after_seconds)
        if result.outcome is _Outcome.INVALID:
            await self._render_form(403, problems=["The current password is not correct."])
            return
        password_hash = await auth.hash_password(new)
        await auth.in_store(lambda store: store.set_password(username, password_hash))
        self._end_other_sessions()
        self.log.info("Password changed for %r; other sessions ended", username)
        await self._render_form(changed=True)

    def _end_other_sessions(self) -> None:
        """Log the user out everywhere but in this browser (a changed password is often a
        reaction to a leak).

        Hub login cookies carry the user's ``cookie_id``: a new one invalidates all of them,
        then this browser gets a fresh cookie. Tokens that other browser sessions got for the
        user's servers (OAuth tokens, tagged with their session id) are deleted too; this
        session's, and API tokens made outside any session, stay.
        """
        user = self.current_user
        session_id = self.get_session_cookie() or ""
        user.orm_user.cookie_id = new_token()
        other_sessions_tokens = self.db.query(orm.APIToken).filter(
            orm.APIToken.user_id == user.id,
            orm.APIToken.session_id.isnot(None),
            orm.APIToken.session_id != session_id,
        )
        for token in other_sessions_tokens:
            self.db.delete(token)
        self.db.commit()
        # JupyterHub logs "Invalid cookie token" once here: this request still has the old one.
        self.set_login_cookie(user)
        # The xsrf token is tied to the cookie_id. This request cached the old one (tornado's
        # attribute); drop it so the form on the page rendered next carries a valid token.
        self.__dict__.pop("_xsrf_token", None)
