"""The server's session table: secret, rotating resume credentials; parking, TTL and global caps."""

import pytest

from relio.config import Config
from relio.binding.sessions import CREDENTIAL_BYTES, ResumeRefused, SessionTable


def table(**overrides):
    return SessionTable(Config(**overrides))


def test_credential_is_secret_long_and_not_the_sid():
    t = table()
    s = t.create("sid-1")
    assert s.credential != s.sid and len(s.credential) >= CREDENTIAL_BYTES
    assert s.credential not in repr(s)
    assert len({t.create(f"sid-{i}").credential for i in range(2, 200)}) == 198


def test_resume_rotates_the_credential():
    t = table()
    s = t.create("a")
    old = s.credential
    t.park("a", 0.0)
    assert t.resume("a", old, 1.0) is s
    assert s.connected and s.resumes == 1 and s.credential != old
    t.confirm("a")                       # the client spoke on the resumed connection
    t.park("a", 2.0)
    with pytest.raises(ResumeRefused):
        t.resume("a", old, 3.0)          # a captured credential no longer works
    assert t.resume("a", s.credential, 3.0) is s


def test_a_resume_whose_answer_was_lost_can_be_retried_once_confirmed_it_cannot():
    t = table()
    s = t.create("a")
    old = s.credential
    t.park("a", 0.0)
    t.resume("a", old, 1.0)              # the answer carrying the new credential is lost
    lost = s.credential
    t.park("a", 1.5)
    assert t.resume("a", old, 2.0) is s  # the client retries with what it has
    assert s.credential not in (old, lost)
    t.park("a", 2.5)
    with pytest.raises(ResumeRefused):
        t.resume("a", lost, 3.0)         # never reached the client: not accepted
    assert t.resume("a", old, 3.0) is s  # still the client's only credential
    t.confirm("a")
    t.park("a", 4.0)
    with pytest.raises(ResumeRefused):
        t.resume("a", old, 5.0)
    assert t.resume("a", s.credential, 5.0) is s


def test_credential_is_accepted_only_for_its_own_session():
    t = table()
    a, b = t.create("a"), t.create("b")
    t.park("a", 0.0)
    t.park("b", 0.0)
    for sid, cred in (("a", b.credential), ("b", a.credential), ("c", a.credential),
                      ("a", ""), ("a", a.credential[:-1]), ("a", None)):
        with pytest.raises(ResumeRefused):
            t.resume(sid, cred, 1.0)


def test_parked_sessions_expire_after_ttl():
    t = table(session_ttl=10.0)
    s = t.create("a")
    t.park("a", 0.0)
    assert t.next_expiry() == 10.0
    assert t.expire(9.9) == [] and "a" in t
    with pytest.raises(ResumeRefused, match="expired"):
        t.resume("a", s.credential, 10.0)
    assert "a" not in t and t.parked == 0
    t.create("b")
    t.park("b", 20.0)
    assert [x.sid for x in t.expire(30.0)] == ["b"] and len(t) == 0 and t.next_expiry() is None


def test_parked_sessions_are_capped_oldest_first():
    t = table(max_parked_sessions=3)
    for i in range(5):
        t.create(f"s{i}")
    evicted = []
    for i in range(5):
        evicted += t.park(f"s{i}", float(i))
    assert [s.sid for s in evicted] == ["s0", "s1"]
    assert t.parked == 3 and len(t) == 3


def test_resuming_a_connected_session_hands_it_over():
    t = table()
    s = t.create("a")
    cred = s.credential
    assert t.resume("a", cred, 0.0) is s and s.credential != cred
    assert t.parked == 0
