from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from roost.delivery.outbox import (
    EntryState,
    Outbox,
    OutboxCorruptError,
    OutboxError,
)

URL = "http://127.0.0.1:9"
T0 = 1_800_000_000.0


def add(
    outbox: Outbox,
    result: str = "r1",
    *,
    now: float = T0,
    fp: str | None = None,
    base_url: str = URL,
) -> str:
    body = b'{"simulation_result_id":"%s"}' % result.encode()
    return outbox.add(
        body=body, simulation_result_id=result, base_url=base_url, key_fingerprint=fp, now=now
    ).id


@pytest.fixture
def outbox(tmp_path: Path):
    with Outbox(tmp_path / "sub" / "outbox.sqlite3") as box:
        yield box


def test_add_is_committed_and_readable_from_another_connection(outbox: Outbox) -> None:
    entry_id = add(outbox)
    with Outbox(outbox.path) as other:
        entry = other.find(entry_id)
        assert entry.state is EntryState.PENDING
        assert entry.attempts == 0 and entry.next_attempt_at == T0 == entry.created_at
        assert other.body(entry_id) == b'{"simulation_result_id":"r1"}'
        assert entry.body_size == len(other.body(entry_id))


def test_file_is_private_and_in_wal_mode(outbox: Outbox) -> None:
    add(outbox)
    assert stat.S_IMODE(outbox.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(outbox.path.parent.stat().st_mode) == 0o700
    with sqlite3.connect(outbox.path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_each_entry_gets_its_own_uuid_idempotency_key(outbox: Outbox) -> None:
    keys = {outbox.find(add(outbox, f"r{i}")).idempotency_key for i in range(20)}
    assert len(keys) == 20
    assert all(len(k) == 36 and k.count("-") == 4 for k in keys)


def test_find_by_prefix_and_clear_errors(outbox: Outbox) -> None:
    entry_id = add(outbox)
    assert outbox.find(entry_id[:8]).id == entry_id
    assert outbox.find(entry_id.upper()).id == entry_id
    with pytest.raises(KeyError, match="not an outbox id"):
        outbox.find("ab")
    with pytest.raises(KeyError, match="not an outbox id"):
        outbox.find("zzzzzz")
    missing = "0" * 32 if not entry_id.startswith("0") else "f" * 32
    with pytest.raises(KeyError, match="no outbox entry"):
        outbox.find(missing)


def test_ambiguous_prefix(outbox: Outbox) -> None:
    entry_id = add(outbox)
    twin = entry_id[:4] + ("0" * 28 if entry_id[4:] != "0" * 28 else "1" * 28)
    with sqlite3.connect(outbox.path) as raw:
        raw.execute(
            "INSERT INTO outbox SELECT ?, simulation_result_id, base_url, key_fingerprint, ?, "
            "body, created_at, retry_since, attempts, next_attempt_at, state, last_status, "
            "last_error, last_attempt_at, delivered_at, claimed_until, claim_token, claim_pid, "
            "claim_host FROM outbox WHERE id = ?",
            (twin, "other-key", entry_id),
        )
    with pytest.raises(KeyError, match="several entries"):
        outbox.find(entry_id[:4])
    assert outbox.find(entry_id).id == entry_id


def test_claim_takes_due_rows_once_and_counts_the_attempt(outbox: Outbox) -> None:
    first = add(outbox, "a", now=T0)
    add(outbox, "b", now=T0 + 100)  # not due yet at T0 + 1
    claims = outbox.claim(now=T0 + 1, base_url=URL, key_fingerprint="fp", lease=60, limit=5)
    assert [c.entry.id for c in claims] == [first]
    assert claims[0].entry.attempts == 1
    assert claims[0].entry.claimed_until == T0 + 61
    assert claims[0].body == b'{"simulation_result_id":"a"}'
    # Under a live lease (held by this process) nobody claims it again.
    assert outbox.claim(now=T0 + 2, base_url=URL, key_fingerprint="fp", lease=60) == []
    # Once the lease runs out it is claimable again.
    again = outbox.claim(now=T0 + 62, base_url=URL, key_fingerprint="fp", lease=60)
    assert [c.entry.id for c in again] == [first]
    assert again[0].entry.attempts == 2


def test_claim_filters_by_target_and_key(outbox: Outbox) -> None:
    mine = add(outbox, "mine", fp="aaaa")
    keyless = add(outbox, "keyless", fp=None)
    add(outbox, "other-key", fp="bbbb")
    add(outbox, "other-url", fp="aaaa", base_url="https://elsewhere.example")
    claims = outbox.claim(now=T0, base_url=URL, key_fingerprint="aaaa", lease=60, limit=10)
    assert {c.entry.id for c in claims} == {mine, keyless}


def test_outcomes_need_the_lease_except_delivery(outbox: Outbox) -> None:
    add(outbox)
    [old] = outbox.claim(now=T0, base_url=URL, key_fingerprint=None, lease=10)
    [new] = outbox.claim(now=T0 + 11, base_url=URL, key_fingerprint=None, lease=10)
    # The first holder lost its lease: its retry/failure must not clobber the row.
    assert not outbox.record_retry(old, deadline=T0 + 99, error="x", status=503)
    assert not outbox.record_failed(old, error="x", status=400)
    assert outbox.find(old.entry.id).state is EntryState.PENDING
    # A 2xx is a fact whoever holds the lease.
    assert outbox.record_delivered(old, now=T0 + 12, status=200, message="ok")
    entry = outbox.find(old.entry.id)
    assert entry.state is EntryState.DELIVERED and entry.delivered_at == T0 + 12
    assert entry.claimed_until is None
    # ...and the later holder's outcome cannot undo it.
    assert not outbox.record_failed(new, error="late", status=500)
    assert outbox.find(old.entry.id).state is EntryState.DELIVERED


def test_retry_schedules_and_releases(outbox: Outbox) -> None:
    add(outbox)
    [claim] = outbox.claim(now=T0, base_url=URL, key_fingerprint=None, lease=10)
    assert outbox.record_retry(claim, deadline=T0 + 30, error="HTTP 503", status=503)
    entry = outbox.find(claim.entry.id)
    assert (entry.next_attempt_at, entry.last_error, entry.last_status) == (
        T0 + 30,
        "HTTP 503",
        503,
    )
    assert entry.claimed_until is None
    assert outbox.claim(now=T0 + 29, base_url=URL, key_fingerprint=None, lease=10) == []
    assert len(outbox.claim(now=T0 + 30, base_url=URL, key_fingerprint=None, lease=10)) == 1


def test_release_gives_back_without_counting(outbox: Outbox) -> None:
    add(outbox)
    [claim] = outbox.claim(now=T0, base_url=URL, key_fingerprint=None, lease=10)
    outbox.release(claim)
    entry = outbox.find(claim.entry.id)
    assert entry.attempts == 0 and entry.claimed_until is None


def test_delivered_without_keep_deletes(outbox: Outbox) -> None:
    add(outbox)
    [claim] = outbox.claim(now=T0, base_url=URL, key_fingerprint=None, lease=10)
    assert outbox.record_delivered(claim, now=T0, status=200, message="", keep=False)
    assert outbox.counts() == {"pending": 0, "delivered": 0, "failed": 0}


def test_failed_rows_are_kept_and_can_be_requeued(outbox: Outbox) -> None:
    add(outbox)
    [claim] = outbox.claim(now=T0, base_url=URL, key_fingerprint=None, lease=10)
    assert outbox.record_failed(claim, error="HTTP 401: bad key", status=401)
    entry = outbox.find(claim.entry.id)
    assert entry.state is EntryState.FAILED and entry.last_error == "HTTP 401: bad key"
    assert outbox.purge() == 0  # the default purge never touches failed rows
    assert outbox.requeue_failed(now=T0 + 500) == 1
    entry = outbox.find(claim.entry.id)
    assert entry.state is EntryState.PENDING
    assert (entry.attempts, entry.retry_since, entry.next_attempt_at) == (0, T0 + 500, T0 + 500)
    assert entry.created_at == T0 and entry.idempotency_key == claim.entry.idempotency_key


def test_requeue_selected_ids(outbox: Outbox) -> None:
    ids = []
    for result in ("a", "b"):
        add(outbox, result)
        [claim] = outbox.claim(now=T0, base_url=URL, key_fingerprint=None, lease=10)
        outbox.record_failed(claim, error="x", status=400)
        ids.append(claim.entry.id)
    assert outbox.requeue_failed(now=T0, ids=[ids[1]]) == 1
    assert outbox.requeue_failed(now=T0, ids=[]) == 0
    assert outbox.counts() == {"pending": 1, "delivered": 0, "failed": 1}


def test_purge_by_state_and_age(outbox: Outbox) -> None:
    for i, when in enumerate((T0, T0 + 10)):
        add(outbox, f"d{i}")
        [claim] = outbox.claim(now=when, base_url=URL, key_fingerprint=None, lease=10)
        outbox.record_delivered(claim, now=when, status=200, message="")
    add(outbox, "pending")
    assert outbox.purge(before=T0 + 5) == 1
    assert outbox.counts() == {"pending": 1, "delivered": 1, "failed": 0}
    assert outbox.purge(states=[EntryState.PENDING, EntryState.DELIVERED]) == 2
    assert outbox.purge(states=[]) == 0


def test_make_due_and_summary(outbox: Outbox) -> None:
    add(outbox, "a", now=T0 + 1000)
    add(outbox, "b", now=T0 + 2000, base_url="https://other.example")
    assert outbox.pending_summary(base_url=URL, key_fingerprint=None, now=T0) == (1, 0, T0 + 1000)
    assert outbox.next_due(base_url=URL, key_fingerprint=None) == T0 + 1000
    assert outbox.make_due(now=T0, base_url=URL) == 1
    assert outbox.pending_summary(base_url=URL, key_fingerprint=None, now=T0) == (1, 0, T0)
    outbox.claim(now=T0, base_url=URL, key_fingerprint=None, lease=10)
    assert outbox.pending_summary(base_url=URL, key_fingerprint=None, now=T0) == (1, 1, None)
    assert outbox.next_due(base_url=URL, key_fingerprint=None) == T0 + 10
    assert outbox.pending_for(base_url=URL, key_fingerprint="zz") == 1
    assert outbox.counts(base_url="https://other.example")["pending"] == 1


def test_entries_newest_first(outbox: Outbox) -> None:
    for i in range(5):
        add(outbox, f"r{i}", now=T0 + i)
    listed = outbox.entries(limit=3)
    assert [e.simulation_result_id for e in listed] == ["r4", "r3", "r2"]
    assert outbox.entries(state=EntryState.FAILED) == []


def test_garbage_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    garbage = b"this is not a database, it is a grocery list\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(OutboxCorruptError) as info:
        Outbox(path)
    assert str(path) in str(info.value)
    assert "left untouched" in str(info.value)
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outbox.sqlite3"]


def test_truncated_outbox_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path) as box:
        for i in range(200):
            add(box, f"r{i}" * 50)
    # Checkpoint the WAL into the main file, then cut it in half.
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(OutboxCorruptError, match=str(path)), Outbox(path) as box:
        box.entries()
        box.pending_for(base_url=URL, key_fingerprint=None)
        for entry in box.entries():
            box.body(entry.id)


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE users (id INTEGER)")
    before = path.read_bytes()
    with pytest.raises(OutboxCorruptError, match="another application"):
        Outbox(path)
    assert path.read_bytes() == before


def test_a_new_outbox_created_by_another_process_meanwhile_is_taken_as_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Several agent processes may open one new outbox at once. Here another
    # one creates the schema right after this one read the empty header; its
    # tables must not make this one take the file for another application's.
    path = tmp_path / "shared.sqlite3"
    connect = sqlite3.connect
    other: list[BaseException | None] = []
    hooked: list[Racing] = []

    class Racing(sqlite3.Connection):
        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
            cursor = super().execute(sql, *args)
            if sql == "PRAGMA application_id" and not other:
                # Read to the end, so that this statement holds no lock.
                [(app_id,)] = cursor.fetchall()
                # Never waits for this connection's locks: if the header is
                # read in one transaction, the other process is refused and
                # this one creates the schema; if not, its schema lands
                # between the reads.
                try:
                    Outbox(path, busy_timeout=0).close()
                    other.append(None)
                except OutboxError as exc:
                    other.append(exc)
                return super().execute("SELECT ?", (app_id,))
            return cursor

    def racing_connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        if hooked:  # the other process, and anything after
            return connect(*args, **kwargs)  # type: ignore[arg-type]
        conn = connect(*args, factory=Racing, **kwargs)  # type: ignore[arg-type, misc]
        hooked.append(conn)
        return conn

    monkeypatch.setattr(sqlite3, "connect", racing_connect)
    box = Outbox(path)
    box.close()
    assert len(other) == 1
    monkeypatch.undo()
    Outbox(path).close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    Outbox(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version=99")
    with pytest.raises(OutboxError, match="newer Roost"):
        Outbox(path)


def test_directory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="is a directory"):
        Outbox(tmp_path)


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutboxError, match="cannot create outbox file"):
        Outbox(blocker / "outbox.sqlite3")


def test_closed_outbox_says_so(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o")
    box.close()
    box.close()
    with pytest.raises(OutboxError, match="closed"):
        box.counts()


_CLAIMER = textwrap.dedent(
    """
    import sys
    from roost.delivery.outbox import Outbox
    box = Outbox(sys.argv[1])
    taken = []
    while True:
        claims = box.claim(now=2e9, base_url=sys.argv[2], key_fingerprint=None, lease=600)
        if not claims:
            break
        taken.extend(c.entry.id for c in claims)
    print(" ".join(taken), flush=True)
    # Stay alive until every claimer is done: the claims of a process that has
    # exited are void by design (crash recovery), so a slower claimer would
    # rightly take this one's rows again.
    sys.stdin.read()
    """
)


def test_processes_sharing_the_file_never_claim_the_same_row(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    with Outbox(path) as box:
        ids = {add(box, f"r{i}") for i in range(150)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, str(path), URL],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    taken: list[str] = []
    try:
        for proc in procs:
            assert proc.stdout is not None
            taken.extend(proc.stdout.readline().split())
        for proc in procs:
            out, _ = proc.communicate(timeout=120)  # closes stdin: the claimers exit
            assert proc.returncode == 0
            assert out == ""
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert len(taken) == len(set(taken)) == 150
    assert set(taken) == ids


def test_lease_of_a_dead_process_is_void(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    with Outbox(path) as box:
        entry_id = add(box)
        script = (
            "import sys, os; from roost.delivery.outbox import Outbox;"
            "box = Outbox(sys.argv[1]);"
            f"assert box.claim(now={T0}, base_url=sys.argv[2], key_fingerprint=None, lease=1e6);"
            "os._exit(0)"
        )
        subprocess.run([sys.executable, "-c", script, str(path), URL], check=True, timeout=60)
        entry = box.find(entry_id)
        assert entry.claimed_until == T0 + 1e6  # the dead process still "holds" it...
        [claim] = box.claim(now=T0 + 1, base_url=URL, key_fingerprint=None, lease=10)
        assert claim.entry.id == entry_id  # ...but its lease is void
        assert claim.entry.attempts == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_reopens_its_own_connection(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as box:
        add(box, "parent")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                add(box, "child")
                code = 0 if box.counts()["pending"] == 2 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert box.counts()["pending"] == 2


def test_add_is_fsynced_even_after_bookkeeping(outbox: Outbox) -> None:
    add(outbox, "a")
    [claim] = outbox.claim(now=T0, base_url=URL, key_fingerprint=None, lease=10)
    outbox.record_retry(claim, deadline=T0 + 1, error="x", status=503)
    assert outbox._conn is not None
    assert outbox._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    add(outbox, "b")
    assert outbox._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_locked_file_is_not_called_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # a fresh file, locked before we set it up
    try:
        with pytest.raises(OutboxError) as info:
            Outbox(path, busy_timeout=0.05)
        assert not isinstance(info.value, OutboxCorruptError)
        assert "locked" in str(info.value) and str(path) in str(info.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    Outbox(path).close()  # usable once the lock is gone
