"""Backend parity: the journal's and the engine's tests, run again on the shared PostgreSQL journal.

Why re-run them rather than write twins: the journal promises the same behaviour on both stores,
and the existing tests (claims, retries with attempt ids, adoption, budgets, resume after a crash)
are the description of that behaviour. Each test imported here runs once in its own module on
SQLite and once here with ``STORYBOARD_JOURNAL`` pointing at a fresh PostgreSQL schema, so every
``Journal.open(project)`` (the engine's, the test's) opens the shared store. Tests about the SQLite
file itself (WAL, ``PRAGMA user_version``, its path) are not imported, nor those that delete it.
"""

from __future__ import annotations

import pytest

from storyboard.render.journal import JOURNAL_URL_VARIABLE, Journal
from tests.test_avatar_speech import (  # noqa: F401
    avatar_project,
    test_a_lost_tts_answer_loses_at_most_one_call_and_the_next_run_makes_it_again,
    test_an_audio_id_past_the_reuse_window_is_made_again_and_a_finished_clip_is_not_rerendered,
    test_tts_then_avatar_bodies_are_exact_and_the_real_charge_is_journaled,
)
from tests.test_campaign import test_resume_after_a_kill_pays_nothing_twice  # noqa: F401
from tests.test_engine import *  # noqa: F403
from tests.test_journal import (  # noqa: F401
    test_a_second_claim_fails_even_from_another_connection,
    test_adopted_rows_start_submitted_and_replace_only_failed_rows_or_vanished_clip_notes,
    test_claim_from_another_process_is_refused,
    test_elements_and_runs,
    test_lifecycle_and_retry_attempt_ids,
    test_only_one_of_two_racing_reclaims_wins,
)
from tests.test_lip_sync import (  # noqa: F401
    media,
    project,
    test_a_face_kling_does_not_find_fails_before_the_paid_create_saying_what_was_paid,
    test_an_expired_face_session_is_identified_again_and_says_so,
    test_every_form_renders_charged_exactly_its_price_and_a_second_run_pays_nothing,
)
from tests.test_video_elements import test_a_cloned_voice_is_journaled_per_element_replaced_and_copied  # noqa: F401

# These delete ``.storyboard/`` to lose the journal; a shared journal does not live there (it keeps
# every row, which is the point), so the "journal deleted" story does not apply to it.
del test_a_deleted_journal_adopts_every_paid_task_and_creates_nothing  # noqa: F821
del test_adoption_skips_a_failed_earlier_attempt_and_takes_the_retry  # noqa: F821
del test_a_used_external_id_whose_task_cannot_be_found_is_never_paid_again  # noqa: F821


@pytest.fixture(autouse=True)
def shared_journal(postgres_url, monkeypatch):
    monkeypatch.setenv(JOURNAL_URL_VARIABLE, postgres_url)
    yield postgres_url


def test_the_store_in_use_is_postgresql(tmp_path):
    with Journal.open(tmp_path) as journal:
        assert journal.shared and type(journal.store).__name__ == "PostgresStore"
    assert not (tmp_path / ".storyboard" / "journal.sqlite").exists()
