"""The state store's lifecycle, schema versions, meta, enforcement audit, pod and
resource registry and idle-guard state, on a real SQLite file and on the real
PostgreSQL server (see ``test_store_common``)."""

from __future__ import annotations

import os
import random
import threading
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from daemon.adapters.store import (
    SCHEMA_VERSION,
    SqlStore,
    make_engine,
    mask_url,
    migrate,
    open_store,
)
from daemon.core.model import Pod, PodInfo, PodStatus, Resource, SpendPoint
from daemon.core.ports import Coverage, StoreError
from tests.adapters.test_store_common import (
    PG_CONNINFO,
    PG_URL,
    PODS,
    T0,
    Backend,
    H,
    alert,
    backend,
    claim_all,
    pg_schema,
    store,
)

__all__ = ["backend", "pg_schema", "store"]  # fixtures, used by name

# --------------------------------------------------------------------------- lifecycle


def test_fresh_store_is_created_and_reopen_keeps_everything(backend: Backend) -> None:
    s1 = backend.open()
    assert s1.get_meta("schema_version") == str(SCHEMA_VERSION)
    assert s1.coverage(PODS) == []
    s1.replace_points(PODS, T0, T0 + 2 * H, 1, [SpendPoint(T0, "pod-a", 1.25)])
    assert s1.enqueue([alert("a1")], T0) == ["a1"]
    s1.set_meta("digest.last", "2026-11-24")
    assert s1.record_intent("inst", "pod-a", T0, {"why": "120%"})
    s1.close()

    s2 = backend.open()
    assert s2.points(PODS, T0, T0 + 2 * H) == [SpendPoint(T0, "pod-a", 1.25)]
    assert s2.coverage(PODS) == [Coverage(T0, T0 + 2 * H, 1)]
    assert [e.id for e in s2.ledger("research", T0)] == ["a1"]
    assert s2.get_meta("digest.last") == "2026-11-24"
    assert not s2.record_intent("inst", "pod-a", T0 + H, {})
    assert claim_all(s2, T0) == [("a1", "ops")]


def test_sqlite_creates_parent_directories_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "state.db"
    store = open_store(f"sqlite:///{path}")
    try:
        assert path.exists()
        engine = make_engine(f"sqlite:///{path}")
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        engine.dispose()
    finally:
        store.close()


def test_meta_upserts_and_survives_restart(backend: Backend) -> None:
    s1 = backend.open()
    assert s1.get_meta("health.notice") is None
    s1.set_meta("health.notice", "2026-11-24T00:00:00Z")
    s1.set_meta("health.notice", "")
    s1.set_meta("config.hash", "abc")
    s1.close()
    s2 = backend.open()
    assert (s2.get_meta("health.notice"), s2.get_meta("config.hash")) == ("", "abc")
    with pytest.raises(ValueError, match="schema_version"):
        s2.set_meta("schema_version", "99")


def test_an_intent_is_recorded_once_across_restarts_and_replicas(backend: Backend) -> None:
    s1, s2 = backend.open(), backend.open()
    assert s1.record_intent(
        "research:pod-daily:pod=p1:2026-11-24T00:00:00Z", "p1", T0, {"pct": 121}
    )
    # Crash between intent and result: the restarted daemon and a replica do not stop again.
    assert not s2.record_intent("research:pod-daily:pod=p1:2026-11-24T00:00:00Z", "p1", T0 + H, {})
    assert s2.record_intent("research:pod-daily:pod=p1:2026-11-25T00:00:00Z", "p1", T0 + H, {})
    s1.record_result(
        "research:pod-daily:pod=p1:2026-11-24T00:00:00Z", "p1", T0 + 2 * H, "stopped", {"http": 200}
    )
    s2.record_audit(T0 + 3 * H, "refused", {"pod_id": "p2", "reason": "dry_run"})

    log = s1.audit()
    assert [(e["event"], e["at"]) for e in log] == [
        ("refused", T0 + 3 * H),
        ("stop", T0 + 2 * H),
        ("stop", T0 + H),
    ]
    assert log[0]["detail"] == {"pod_id": "p2", "reason": "dry_run"}
    stopped = log[1]
    assert (stopped["pod_id"], stopped["result"], stopped["intent_at"]) == ("p1", "stopped", T0)
    assert stopped["detail"] == {"pct": 121, "http": 200}
    assert log[2]["result"] is None  # intent only: shown as such
    assert s2.enforcement_row("research:pod-daily:pod=p1:2026-11-24T00:00:00Z", "p1") == stopped
    assert s2.enforcement_row("research:pod-daily:pod=p1:2026-11-24T00:00:00Z", "p2") is None
    assert len(s1.audit(limit=2)) == 2




# --------------------------------------------------------------------------- enforcement


def test_open_intents_lists_stops_without_a_result(backend: Backend) -> None:
    s1 = backend.open()
    s1.record_intent("i1", "p1", T0, {"account": "research", "pct": 120})
    s1.record_intent("i2", "p2", T0 + H, {"pct": 130})
    s1.record_intent("i3", "p3", T0 + 2 * H, {"account": "lab"})
    s1.record_result("i3", "p3", T0 + 3 * H, "stopped", {})
    s1.close()
    s2 = backend.open()  # after a crash between the stop calls and their results
    got = s2.open_intents()
    assert [(g["instance_id"], g["pod_id"], g["account"]) for g in got] == [
        ("i1", "p1", "research"),
        ("i2", "p2", None),
    ]
    assert got[0]["intent_at"] == T0 and got[0]["detail"] == {"account": "research", "pct": 120}
    s2.record_result("i1", "p1", T0 + 4 * H, "failed", {"http": 500})
    assert [g["instance_id"] for g in s2.open_intents()] == ["i2"]


# --------------------------------------------------------------------------- registry


def _pod(i: int, **kw: object) -> Pod:
    base: dict[str, object] = {
        "id": f"pod-{i:04d}", "name": f"train-{i}", "desired_status": PodStatus.RUNNING,
        "cost_per_hr": 1.0, "gpu_type": "NVIDIA H100 80GB HBM3", "gpu_count": 1 + i % 8,
        "started_at": T0,
    }
    base.update(kw)
    return Pod(**base)  # type: ignore[arg-type]


def test_registry_upserts_2000_pods_and_keeps_first_seen(backend: Backend) -> None:
    s1 = backend.open()
    s1.upsert_pods("research", [_pod(i) for i in range(2000)], T0)
    s1.upsert_pods("lab", [_pod(1, name="other-account")], T0)
    # An hour later 1,000 of them are still listed, one renamed and exited.
    later = [_pod(i) for i in range(1, 1000)]
    later.append(_pod(0, name="renamed", desired_status=PodStatus.EXITED, started_at=None))
    s1.upsert_pods("research", later, T0 + H)
    s1.close()

    reg = backend.open().pod_registry("research")
    assert len(reg) == 2000
    p0 = reg["pod-0000"]
    assert (p0.name, p0.last_status, p0.first_seen, p0.last_seen) == (
        "renamed", "EXITED", T0, T0 + H)
    assert p0.started_at == T0  # unknown now: the last known run start stays
    p5 = reg["pod-0005"]
    assert (p5.gpu_type, p5.gpu_count, p5.last_seen) == ("NVIDIA H100 80GB HBM3", 6, T0 + H)
    gone = reg["pod-1999"]  # no longer listed: still named, last seen at the first poll
    assert (gone.name, gone.last_seen, gone.last_status) == ("train-1999", T0, "RUNNING")
    assert backend.open().pod_registry("lab")["pod-0001"].name == "other-account"
    assert backend.open().pod_registry("nobody") == {}


def test_registry_last_seen_follows_each_listing(backend: Backend) -> None:
    s = backend.open()
    s.upsert_pods("research", [_pod(i) for i in range(4)], T0)
    s.upsert_pods("lab", [_pod(0, name="lab-0")], T0)
    # pod 3 is not listed for two polls, then comes back; pod 2 leaves for good
    s.upsert_pods("research", [_pod(0), _pod(1), _pod(2)], T0 + H)
    s.upsert_pods("research", [_pod(0), _pod(1, started_at=T0 + H)], T0 + 2 * H)
    s.upsert_pods("research", [_pod(0), _pod(1, started_at=None), _pod(3)], T0 + 3 * H)
    s.upsert_pods("research", [_pod(0), _pod(1, started_at=None), _pod(3)], T0 + 3 * H)

    reg = backend.open().pod_registry("research")
    seen = {pid: (p.first_seen, p.last_seen) for pid, p in reg.items()}
    assert seen == {
        "pod-0000": (T0, T0 + 3 * H),
        "pod-0001": (T0, T0 + 3 * H),
        "pod-0002": (T0, T0 + H),
        "pod-0003": (T0, T0 + 3 * H),
    }
    assert reg["pod-0001"].started_at == T0 + H  # a restart is recorded, None keeps it
    assert backend.open().pod_registry("lab")["pod-0000"].last_seen == T0


def test_registry_last_seen_moves_whatever_form_the_stored_time_has(backend: Backend) -> None:
    s = backend.open()
    s.upsert_pods("research", [_pod(0), _pod(1)], T0)
    # an operator's edit, or an older writer: the same instant, written differently
    backend.sql("UPDATE pods SET last_seen = '2026-11-24T00:00:00+00:00' WHERE pod_id = 'pod-0000'")
    s.upsert_pods("research", [_pod(0), _pod(1)], T0 + H)
    assert {p.last_seen for p in s.pod_registry("research").values()} == {T0 + H}


def test_registry_matches_its_contract_over_random_polls(backend: Backend) -> None:
    """Pods come, go, come back, get renamed, restart; after every poll the
    registry is exactly what the contract of ``upsert_pods`` says."""
    rng = random.Random(7)
    s = backend.open()
    model: dict[str, PodInfo] = {}
    for poll in range(40):
        now = T0 + poll * H
        listed = [
            _pod(i, name=rng.choice(["a", "b"]), gpu_count=rng.choice([1, 1, 1, 2]),
                 desired_status=rng.choice([PodStatus.RUNNING] * 3 + [PodStatus.EXITED]),
                 started_at=rng.choice([None, T0, T0, now]))
            for i in range(12) if rng.random() < 0.7
        ]
        s.upsert_pods("research", listed, now)
        for p in listed:
            old = model.get(p.id)
            model[p.id] = PodInfo(
                p.id, p.name, p.gpu_type, p.gpu_count, old.first_seen if old else now, now,
                str(p.desired_status), p.started_at or (old.started_at if old else None))
        assert s.pod_registry("research") == model, f"poll {poll}"


def test_resource_names_by_account_and_family(store: SqlStore) -> None:
    store.upsert_resources("research", [
        Resource("serverless", "ep1", "infer"), Resource("storage", "vol1", "datasets"),
        Resource("serverless", "ep2", "embed"),
    ], T0)
    store.upsert_resources("research", [Resource("serverless", "ep1", "infer-v2")], T0 + H)
    assert store.resource_names("research", "serverless") == {"ep1": "infer-v2", "ep2": "embed"}
    assert store.resource_names("research", "storage") == {"vol1": "datasets"}
    assert store.resource_names("lab", "serverless") == {}


# --------------------------------------------------------------------------- guard state


def test_a_newer_schema_is_refused(backend: Backend) -> None:
    backend.open().close()
    backend.sql("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    with pytest.raises(StoreError) as info:
        backend.open()
    assert info.value.permanent
    assert str(info.value) == (
        f"state database schema version 7 is newer than this runpod-budget understands "
        f"({SCHEMA_VERSION}); upgrade runpod-budget or point state at another database"
    )




def _main_schema_with_data(backend: Backend) -> None:
    """A database as main's store (schema 3) left it: cache, alerts, outbox, audit."""
    engine = make_engine(backend.url, schema=backend.schema)
    assert migrate(engine, target=3, create_schema=backend.schema) == 3

    def at(t: datetime) -> object:  # as main stored times: ISO text on SQLite
        return t.isoformat(timespec="microseconds") if backend.name == "sqlite" else t

    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO points (account, grouping, gpu_filter, time, grp, amount) "
            "VALUES ('research', 'podId', '', :t, 'p1', 2.5)"), {"t": at(T0)})
        conn.execute(text(
            "INSERT INTO coverage (account, grouping, gpu_filter, start_at, end_at) "
            "VALUES ('research', 'podId', '', :s, :e)"), {"s": at(T0), "e": at(T0 + H)})
        conn.execute(text(
            "INSERT INTO alerts (id, kind, account, budget, group_key, threshold, "
            "window_start, created_at, payload) VALUES ('old', 'threshold', 'research', "
            "'team', 'all', '80', :t, :t, :p)"), {"t": at(T0), "p": '{"id": "old"}'})
        conn.execute(text(
            "INSERT INTO outbox (alert_id, notifier, status, attempts, next_attempt_at) "
            "VALUES ('old', 'ops', 'pending', 2, :t)"), {"t": at(T0)})
        conn.execute(text(
            "INSERT INTO enforcement (instance_id, pod_id, intent_at, detail) "
            "VALUES ('inst', 'p1', :t, '{\"account\": \"research\"}')"), {"t": at(T0)})
        conn.execute(text(
            "INSERT INTO meta (key, value) VALUES ('config.hash', 'abc')"))
    engine.dispose()


def test_mains_schema_is_migrated_keeping_alerts_outbox_audit_and_meta(
    backend: Backend,
) -> None:
    _main_schema_with_data(backend)
    store = backend.open()
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
    assert store.get_meta("config.hash") == "abc"
    assert [e.id for e in store.ledger("research", T0)] == ["old"]
    (item,) = store.claim_due("me", T0, 60)
    assert (item.alert.id, item.notifier, item.attempts) == ("old", "ops", 2)
    assert item.retry_after_at is None
    (intent,) = store.open_intents()
    assert (intent["instance_id"], intent["pod_id"], intent["account"]) == (
        "inst", "p1", "research")
    # The old cache is gone (the daemon refetches); the new one works.
    assert store.coverage(PODS) == []
    assert store.points(PODS, T0, T0 + H) == []
    tables = {t.lower() for t in _tables(backend)}
    assert "points" not in tables and "coverage" not in tables
    store.replace_points(PODS, T0, T0 + H, 1, [SpendPoint(T0, "p1", 2.5)])
    assert store.points(PODS, T0, T0 + H) == [SpendPoint(T0, "p1", 2.5)]


def _tables(backend: Backend) -> list[str]:
    if backend.name == "sqlite":
        return [r[0] for r in backend.sql("SELECT name FROM sqlite_master WHERE type='table'")]
    return [r[0] for r in backend.sql(
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{backend.schema}'"
    )]


def test_two_replicas_creating_the_schema_at_once_both_start(backend: Backend) -> None:
    results: list[object] = []
    barrier = threading.Barrier(3)

    def start() -> None:
        barrier.wait()
        try:
            results.append(backend.open())
        except Exception as e:
            results.append(e)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, SqlStore) for r in results), results
    assert backend.sql("SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]


# --------------------------------------------------------------------------- bad state


def test_a_corrupt_sqlite_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is no database, " + os.urandom(8192))
    with pytest.raises(StoreError) as info:
        open_store(f"sqlite:///{path}")
    assert info.value.permanent
    assert f"state file {path} is not a valid SQLite database" in str(info.value)


def test_an_unwritable_sqlite_location_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError) as info:
        open_store(f"sqlite:///{blocker}/state.db")
    assert info.value.permanent
    assert str(blocker) in str(info.value)


def test_unreachable_postgres_is_a_transient_error_without_the_password() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql://budget:hunter2-secret@127.0.0.1:1/state?connect_timeout=2")
    assert not info.value.permanent
    assert "hunter2-secret" not in str(info.value)
    assert "127.0.0.1:1/state" in str(info.value)


@pytest.mark.postgres
def test_password_never_in_repr_or_url(pg_schema: str) -> None:
    # Trust auth ignores the password, so this connects for real.
    store = open_store("postgres://postgres:hunter2-secret@127.0.0.1:5432/test", schema=pg_schema)
    try:
        assert "hunter2-secret" not in repr(store)
        assert "hunter2-secret" not in store.url
        assert "***" in repr(store)
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
    finally:
        store.close()
    assert "s3cr3t" not in mask_url("postgresql://u@h/db?password=s3cr3t&sslmode=require")


@pytest.mark.postgres
def test_search_path_from_url_options(pg_schema: str) -> None:
    with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{pg_schema}"')
    store = open_store(
        f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{pg_schema}"
    )
    try:
        store.set_meta("where", "here")
    finally:
        store.close()
    with psycopg.connect(PG_CONNINFO) as conn:
        row = conn.execute(f"SELECT value FROM \"{pg_schema}\".meta WHERE key = 'where'").fetchone()
    assert row == ("here",)


def test_a_bad_schema_name_is_refused() -> None:
    with pytest.raises(StoreError, match="identifier") as info:
        open_store(PG_URL, schema='x"; DROP TABLE meta; --')
    assert info.value.permanent


def test_an_unknown_url_scheme_is_refused() -> None:
    with pytest.raises(StoreError) as info:
        open_store("mysql://root:pw@localhost/db")
    assert info.value.permanent
    assert "pw@" not in str(info.value)
    with pytest.raises(StoreError) as info:
        open_store("postgresql//budget:hunter2-secret@db/state")  # a typo: no colon
    assert info.value.permanent
    assert "hunter2-secret" not in str(info.value)




def test_state_directory_not_writable_says_which_uid_must_own_it() -> None:
    """Deployment: a bind-mounted state directory owned by root makes the
    daemon exit 3; the message names the uid that must own it and how."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    # under /tmp itself: pytest's own tmp_path is private to its user
    base = Path(tempfile.mkdtemp(prefix="rpb-state-"))
    base.chmod(0o755)
    state = base / "state"
    state.mkdir()
    state.chmod(0o755)
    code = (
        "import sys\n"
        "from daemon.adapters.store import open_store\n"
        "from daemon.core.ports import StoreError\n"
        f"try:\n    open_store('sqlite:///{state}/state.db')\n"
        "except StoreError as e:\n    print(e); sys.exit(3)\n"
    )
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:  # root may write anywhere: run as nobody
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop privileges")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    else:
        state.chmod(0o555)
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=60, cwd=root, check=False,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert out.returncode == 3, out.stderr
    uid = 65534 if os.geteuid() == 0 else os.geteuid()
    assert f"not writable by this process (uid {uid}); make uid {uid} own it" in out.stdout
    assert f"install -d -o {uid}" in out.stdout
    shutil.rmtree(base)
