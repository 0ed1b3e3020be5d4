"""One health signal for a whole render: is the provider's host answering at all?

Why one for the run and not per request: with the host refusing connections, or accepting them
and never answering, each request used to wait out its own connect and read timeouts and back-offs,
one after another (issue 16: 12 requests, 430 s and 132 connection attempts refused; 1,344 s on
a black hole). The engine makes one ``HostHealth`` per run and hands it to the provider, whose
exchange path reports each attempt's outcome here and asks before each send:

- ``failed`` counts consecutive transport failures that say nothing came back from the host (a
  refused or timed-out connect, a read that timed out); any answer from the host (``answered``,
  even an error envelope) resets the count. Failures also come in rounds: a failure whose exchange
  was sent after the previous round's failure starts a new round, so twenty concurrent creates that
  time out together are one round (a busy host that answers the retries is not "down"). After
  ``max_failures`` in a row spread over at least ``MIN_ROUNDS`` rounds the signal trips:
  ``before_send`` raises ``HostUnreachable`` naming the host, once for the run, so no new request
  is sent; what is in flight stays as the journal left it (a create whose answer was lost is
  ``claimed``/``unknown`` and is looked up by its external id on the next run).
- Until the host has answered once in this run, an exchange waits at most
  ``first_answer_timeout`` seconds for its answer, plus the time its body takes to upload at a slow
  uplink's ``MIN_UPLOAD_RATE`` (``answer_timeout``; a create carrying a 10 MB image is not cut off
  while it uploads): a black hole then costs seconds, not a minute per try. Once the host has
  answered, the client's own timeouts apply.

A dropped connection after an answer started (a protocol error) is not counted: the host is
there, and the existing ambiguous-create handling owns that case.
"""

from __future__ import annotations

import time

from storyboard.errors import HostUnreachable

MAX_FAILURES = 3
"""Consecutive no-answer failures (across every request of the run) that mean the host is down."""
FIRST_ANSWER_TIMEOUT = 10.0
"""Seconds an exchange waits for the host's answer before the host has answered once this run."""
MIN_ROUNDS = 2
"""Rounds of failures (exchanges sent after the previous failure) before the host is called down."""
MIN_UPLOAD_RATE = 256_000
"""Bytes a second a slow uplink still sends: the upload time allowed on top of the first-answer wait."""


class HostHealth:
    """Counts no-answer failures across a run and trips after ``max_failures`` in a row."""

    def __init__(self, *, max_failures: int = MAX_FAILURES, first_answer_timeout: float = FIRST_ANSWER_TIMEOUT) -> None:
        self.max_failures = max(1, max_failures)
        self.first_answer_timeout = first_answer_timeout
        self.has_answered = False
        self.consecutive_failures = 0
        self.sent = 0
        """Exchanges started (for reports and benchmarks)."""
        self.tripped: HostUnreachable | None = None
        self.rounds = 0
        self._round_failed_at = float("-inf")
        """When the current round's first failure happened (``time.monotonic``)."""

    def before_send(self) -> None:
        """Raise ``HostUnreachable`` when the host was found down; otherwise count the send."""
        if self.tripped is not None:
            raise self.tripped
        self.sent += 1

    def answer_timeout(self, upload_bytes: int = 0) -> float | None:
        """Seconds to wait for this exchange's answer, or None for the client's own timeouts."""
        if self.has_answered:
            return None
        return self.first_answer_timeout + upload_bytes / MIN_UPLOAD_RATE

    def answered(self) -> None:
        self.has_answered = True
        self.consecutive_failures = 0
        self.rounds = 0

    def failed(self, host: str, what: str, started_at: float | None = None) -> None:
        """One exchange got nothing back from ``host`` (``what``: "refused the connection", …).

        ``started_at`` (``time.monotonic`` when the exchange was sent): an exchange sent before the
        current round's first failure belongs to that round; one sent after it starts the next.
        """
        self.consecutive_failures += 1
        if started_at is None or started_at >= self._round_failed_at:
            self.rounds += 1
            self._round_failed_at = time.monotonic()
        if self.tripped is None and self.consecutive_failures >= self.max_failures and self.rounds >= MIN_ROUNDS:
            self.tripped = HostUnreachable(
                f"the Kling host {host} {what} {self.consecutive_failures} times in a row; "
                "the run stopped sending to it (nothing more was sent or charged)",
                hint="check the network and KLINGAI_BASE_URL, then run again: finished clips are kept and a "
                     "submission whose answer was lost is looked up by its external id before anything is re-sent",
                host=host,
            )
