"""Idle-guard state per pod, kept between polls (and across restarts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from daemon.adapters.store.base import StoreBase
from daemon.adapters.store.engine import aware
from daemon.adapters.store.schema import idle_t
from daemon.core.model import IdleState


def _opt(t: datetime | None, name: str) -> datetime | None:
    return None if t is None else aware(t, name)


class GuardMixin(StoreBase):
    """``GuardStore`` on SQL."""

    def idle_states(self, account: str) -> dict[str, IdleState]:
        """The saved state of each pod of ``account``, by pod id. Raises ``StoreError``."""
        with self._tx("reading idle states") as conn:
            rows = conn.execute(select(idle_t).where(idle_t.c.account == account)).all()
        return {
            r.pod_id: IdleState(
                pod_id=r.pod_id,
                run_start=r.run_start,
                idle_since=r.idle_since,
                last_sample_at=r.last_sample_at,
                last_util=float(r.last_util),
            )
            for r in rows
        }

    def save_idle_states(
        self, account: str, states: Sequence[IdleState], forget: Sequence[str]
    ) -> None:
        """Upsert ``states`` and delete the pods in ``forget`` (gone, stopped),
        in one transaction. Raises ``StoreError``."""
        rows = [
            {
                "account": account,
                "pod_id": s.pod_id,
                "run_start": _opt(s.run_start, "run_start"),
                "idle_since": _opt(s.idle_since, "idle_since"),
                "last_sample_at": aware(s.last_sample_at, "last_sample_at"),
                "last_util": float(s.last_util),
            }
            for s in {s.pod_id: s for s in states}.values()
        ]
        with self._tx("saving idle states") as conn:
            if forget:
                conn.execute(
                    idle_t.delete().where(
                        idle_t.c.account == account, idle_t.c.pod_id.in_(list(forget))
                    )
                )
            if rows:
                ins = self._insert(idle_t)
                x = ins.excluded
                conn.execute(
                    ins.on_conflict_do_update(
                        index_elements=["account", "pod_id"],
                        set_={
                            "run_start": x.run_start,
                            "idle_since": x.idle_since,
                            "last_sample_at": x.last_sample_at,
                            "last_util": x.last_util,
                        },
                    ),
                    rows,
                )
