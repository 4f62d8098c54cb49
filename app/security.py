"""Pure security code: password hashing, the CSRF rules' constants, session-id hashing and a
rate limiter. No request dependencies here (those are in app.accounts.deps) and no domain
imports: every module may use this one."""

import hashlib
import threading
import time

from pwdlib import PasswordHash


def production_hasher() -> PasswordHash:
    """argon2id at pwdlib's recommended cost (64 MiB, 3 passes, 4 lanes)."""
    return PasswordHash.recommended()


password_hasher = production_hasher()  # the test suite swaps in a cheap one (tests/conftest.py)

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Stateless endpoints that store nothing and act for no one may skip the token.
CSRF_EXEMPT_PATHS: set[str] = set()


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return password_hasher.hash(password)


def verify_password(password: str, password_hash: str) -> tuple[bool, str | None]:
    """Check a password; also returns a new hash when the stored one uses old parameters."""
    try:
        return password_hasher.verify_and_update(password, password_hash)
    except Exception:  # a malformed stored hash is a failed check, not a crash
        return False, None


def session_key(sid: str) -> str:
    """What the server stores of a session id (its hash: a database copy signs no one in)."""
    return hashlib.sha256(sid.encode()).hexdigest()


class RateLimiter:
    """A sliding-window limit per client address, kept in this process's memory.

    For public, stateless endpoints (the agreement calculator) where a limit per server
    process is enough; sign-in throttling, which must hold across servers, lives in the
    database instead.
    """

    def __init__(self, limit: int, window_seconds: float) -> None:
        self.limit, self.window = limit, window_seconds
        self._hits: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> int | None:
        """None if allowed (and counted); else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            if len(self._hits) > 10_000:  # forget idle clients rather than grow without end
                self._hits = {
                    k: v for k, v in self._hits.items() if v and v[-1] > now - self.window
                }
            hits = [t for t in self._hits.get(key, []) if t > now - self.window]
            if len(hits) >= self.limit:
                self._hits[key] = hits
                return max(1, int(hits[0] + self.window - now) + 1)
            hits.append(now)
            self._hits[key] = hits
            return None
