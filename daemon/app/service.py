"""``runpod-budget run``: the long-running daemon.

APScheduler 3 (BackgroundScheduler, UTC) runs three jobs, each with
``max_instances=1`` and ``coalesce=True`` so a slow cycle never piles up:
the poll cycle every ``poll_interval`` (with jitter), outbox retries every
15 s, and the digest on its cron in the config's time zone. The main thread
only waits for signals:

- SIGTERM / SIGINT: finish the running cycle, shut down, exit 0.
- SIGHUP: reload the config. A bad new config is logged with every problem
  and the old one stays in force.

systemd: READY=1 after the first cycle (successful or a clear failure),
WATCHDOG=1 only after a successful tick, STATUS= with the last result.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TextIO

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from daemon.app import heap, systemd
from daemon.app.http import HealthServer, HealthState
from daemon.app.metrics import Metrics
from daemon.app.runtime import Runtime, build_runtime, utcnow
from daemon.app.schedule import cron_trigger
from daemon.config.loader import ConfigError, load_config
from daemon.config.models import Config, format_duration
from daemon.core.ports import StoreError
from daemon.pipeline.cycle import run_cycle
from daemon.pipeline.digest import send_digest
from daemon.pipeline.outbox import deliver_due

log = structlog.get_logger("daemon.service")

OUTBOX_EVERY = timedelta(seconds=15)
EXIT_LISTEN = 4  # the health/metrics endpoint could not listen (documented in README)


class ListenError(Exception):
    """``http.listen`` could not be bound; the message names the address and key."""


class Service:
    """The daemon. ``start()`` builds everything and schedules the jobs;
    ``wait()`` blocks until a stop signal; ``stop()`` shuts down cleanly."""

    def __init__(
        self,
        config_path: Path,
        env: Mapping[str, str],
        *,
        config: Config | None = None,
        console: TextIO | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config_path = config_path
        self.env = env
        self.console = console
        self.clock = clock
        self.metrics = Metrics()
        self.stop_event = threading.Event()
        self.rt: Runtime = build_runtime(
            config_path,
            env,
            console=console,
            observer=self.metrics,
            clock=clock,
            config=config,
            cancel=self.stop_event,  # SIGTERM ends RunPod retries, so stop is prompt
        )
        self.health = HealthState(
            started_at=clock(), poll_interval_seconds=self.rt.config.poll.total_seconds()
        )
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.lock = threading.Lock()  # swaps of self.rt vs. running jobs
        self.reload_event = threading.Event()
        self.http: HealthServer | None = None
        self.first_cycle_done = threading.Event()
        self.cycles = 0

    # ------------------------------------------------------------------ jobs

    def poll(self) -> None:
        started = time.monotonic()
        with self.lock:
            rt = self.rt
            try:
                result = run_cycle(rt.deps())
            except StoreError as e:
                self._cycle_failed(f"state: {e}")
                return
            except Exception as e:
                log.exception("job.failed", job="poll")
                self.metrics.job_error("poll")
                self._cycle_failed(f"{type(e).__name__}")
                return
        self.metrics.observe_cycle(time.monotonic() - started)
        now = self.clock()
        self.cycles += 1
        # The watchdog guards the daemon, not RunPod: a tick that completed (even
        # one that found the API down and said so) pings it; a crashed or hung
        # tick does not. RunPod's state is /readyz's and the health notices' job.
        systemd.watchdog()
        if result.billing_ok:
            self.health.record(now, ok=True, error=None)
            self.metrics.poll(ok=True, at=now.timestamp())
            text = (
                f"ok at {now:%H:%M:%S}Z: {len(result.evaluation.statuses)} budget instances, "
                f"{len(result.alerts)} new alerts, {len(result.delivery.failed)} delivery failures"
            )
        else:
            err = "; ".join(f"{a}: {e.reason or e}" for a, e in result.fetch_errors.items())
            self.health.record(now, ok=False, error=err)
            self.metrics.poll(ok=False, at=now.timestamp())
            text = f"billing API unusable at {now:%H:%M:%S}Z ({err})"
        systemd.status(text)
        log.info(
            "cycle.done",
            ok=result.billing_ok,
            instances=len(result.evaluation.statuses),
            alerts=len(result.alerts),
            requests=result.requests,
            delivered=len(result.delivery.delivered),
            delivery_failures=len(result.delivery.failed),
        )
        self._first_cycle()

    def _cycle_failed(self, error: str) -> None:
        now = self.clock()
        self.health.record(now, ok=False, error=error)
        self.metrics.poll(ok=False, at=now.timestamp())
        systemd.status(f"cycle failed at {now:%H:%M:%S}Z: {error}")
        self._first_cycle()

    def _first_cycle(self) -> None:
        if not self.first_cycle_done.is_set():
            self.first_cycle_done.set()
            systemd.ready()

    def outbox(self) -> None:
        with self.lock:
            rt = self.rt
            try:
                deliver_due(
                    rt.store,
                    rt.notifiers,
                    rt.clock,
                    observer=self.metrics,
                    max_individual=rt.config.grouping.max_individual,
                )
            except Exception:
                log.exception("job.failed", job="outbox")
                self.metrics.job_error("outbox")

    def digest(self) -> None:
        with self.lock:
            rt = self.rt
            try:
                send_digest(rt.deps())
            except Exception:
                log.exception("job.failed", job="digest")
                self.metrics.job_error("digest")

    # ------------------------------------------------------------------ lifecycle

    def _schedule(self) -> None:
        cfg = self.rt.config
        poll = cfg.poll.total_seconds()
        # jitter spreads replicas and restarts; capped so short demo polls stay short
        jitter = min(poll * 0.1, 30.0)
        self.scheduler.add_job(
            self.poll,
            IntervalTrigger(seconds=poll, timezone=UTC, jitter=jitter or None),
            id="poll",
            name="poll",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(poll)),
            next_run_time=datetime.now(UTC),
            replace_existing=True,
        )
        self.scheduler.add_job(
            self.outbox,
            IntervalTrigger(seconds=OUTBOX_EVERY.total_seconds(), timezone=UTC),
            id="outbox",
            name="outbox",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=int(OUTBOX_EVERY.total_seconds()),
            replace_existing=True,
        )
        if self.scheduler.get_job("digest") is not None:
            self.scheduler.remove_job("digest")
        if cfg.digest is not None:
            self.scheduler.add_job(
                self.digest,
                cron_trigger(cfg.digest.cron, cfg.zone),
                id="digest",
                name="digest",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=3600,
                replace_existing=True,
            )

    def start(self) -> None:
        http_cfg = self.rt.config.http
        if http_cfg.enabled:
            self.http = HealthServer(self.metrics, lambda: self.health, listen=http_cfg.listen)
            try:
                self.http.start()
            except OSError as e:
                self.http = None
                raise ListenError(
                    f"cannot listen on {http_cfg.listen} (config http.listen): "
                    f"{e.strerror or e}; choose a free port or set http.enabled: false"
                ) from None
            log.info(
                "http.listening", listen=f"{http_cfg.listen.rpartition(':')[0]}:{self.http.port}"
            )
        self.metrics.init_notifiers(self.rt.notifiers)
        heap.settle()
        self._schedule()
        self.scheduler.start()
        log.info(
            "daemon.started",
            config=str(self.config_path),
            poll_interval=format_duration(self.rt.config.poll_interval),
            budgets=len(self.rt.config.budgets),
            accounts=len(self.rt.config.accounts),
        )

    def reload(self) -> None:
        """Load the config again; keep the old one if the new one is bad."""
        systemd.reloading()
        try:
            new_cfg = load_config(self.config_path, self.env)
            new_rt = build_runtime(
                self.config_path,
                self.env,
                console=self.console,
                observer=self.metrics,
                clock=self.clock,
                config=new_cfg,
                cancel=self.stop_event,
            )
        except ConfigError as e:
            log.error(
                "config.reload_failed",
                problems=[str(p) for p in e.problems],
                keeping="previous config",
            )
            self.metrics.config_reload(ok=False)
            systemd.ready()
            return
        except StoreError as e:
            log.error("config.reload_failed", error=str(e), keeping="previous config")
            self.metrics.config_reload(ok=False)
            systemd.ready()
            return
        with self.lock:
            old, self.rt = self.rt, new_rt
            self.health.poll_interval_seconds = new_cfg.poll.total_seconds()
        old.close()
        self.metrics.init_notifiers(new_rt.notifiers)
        self._schedule()
        self.metrics.config_reload(ok=True)
        log.info("config.reloaded", budgets=len(new_cfg.budgets))
        systemd.ready()

    def wait(self) -> None:
        """Block until SIGTERM/SIGINT; handle SIGHUP reloads in this thread."""
        while not self.stop_event.is_set():
            self.stop_event.wait(0.5)
            if self.reload_event.is_set():
                self.reload_event.clear()
                self.reload()

    def stop(self) -> None:
        systemd.stopping()
        log.info("daemon.stopping")
        # wait=True lets the running cycle finish; jobs not yet started are dropped
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self.http is not None:
            self.http.stop()
        self.rt.close()
        log.info("daemon.stopped", cycles=self.cycles)

    def install_signals(self) -> None:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            log.info("signal.received", signal=signal.Signals(signum).name)
            self.stop_event.set()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            log.info("signal.received", signal="SIGHUP")
            self.reload_event.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, on_hup)


def run_service(path: Path, env: Mapping[str, str] | None = None) -> int:
    """Entry point of ``run``: 0 after a clean shutdown."""
    svc = Service(path, dict(os.environ) if env is None else env)
    svc.install_signals()
    shared = sqlite_shared_warning(svc.rt)
    try:
        svc.start()
    except ListenError as e:
        svc.stop()
        print(f"runpod-budget: {e}", file=sys.stderr)
        return EXIT_LISTEN
    try:
        svc.wait()
    finally:
        svc.stop()
        if shared is not None:
            shared.close()
    return 0


def sqlite_shared_warning(rt: Runtime) -> TextIO | None:
    """Hold an advisory lock beside a SQLite state file and warn when another
    daemon holds it already: two daemons on one file work (the outbox and
    enforcement are replica-safe) but contend for the file; PostgreSQL is the
    state for replicas. Returns the lock file to keep open (None: not SQLite)."""
    path = sqlite_path(rt.store)
    if path is None:
        return None
    try:
        fh = open(f"{path}.lock", "a")  # noqa: SIM115 - held for the process lifetime
    except OSError:
        return None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log.warning(
            "state.shared",
            path=path,
            hint="another runpod-budget daemon uses this SQLite file; "
            "use PostgreSQL (state: postgresql://...) for several replicas",
        )
    return fh


def sqlite_path(store: object) -> str | None:
    url = str(getattr(store, "url", "") or "")
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return None
    return url[len("sqlite:///") :]
