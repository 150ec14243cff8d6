"""The verifier's worker pool: one per process, shared by its threads, capped by
``verify.max_workers`` (``RLBOUNDARY_VERIFY_WORKERS``; default the usable cores), calls beyond
the cap queued; a worker outlives the thread it was first started for."""

from __future__ import annotations

import os
import threading

import pytest

from rlboundary.tasks import verify as V
from rlboundary.tasks import verify_worker as W
from rlboundary.tasks.verify import Verdict


@pytest.fixture(autouse=True)
def fresh_pool():
    W.shutdown()
    yield
    W.shutdown()


def _verify_in_threads(count: int) -> list[Verdict]:
    """``count`` threads at once, each with a pair only math-verify decides (a new one each, so
    the verdict cache cannot answer)."""
    out: list = [None] * count
    go = threading.Barrier(count)

    def work(i: int) -> None:
        go.wait()
        out[i] = V.verify(f"x^{{2}} + {i + 7}*x", f"{i + 7} x + x^2", timeout=30)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    return out


def test_eight_threads_share_two_workers(monkeypatch):
    """Eight concurrent callers with a cap of 2: two workers start, the other calls wait their
    turn, and every verdict is math-verify's."""
    monkeypatch.setenv(W.MAX_WORKERS_ENV, "2")
    started = len(W.start_times())
    assert _verify_in_threads(8) == [Verdict.CORRECT] * 8
    assert len(W.start_times()) - started == 2
    assert len(W.worker_pids()) == 2


def test_the_cap_defaults_to_the_usable_cores(monkeypatch):
    monkeypatch.delenv(W.MAX_WORKERS_ENV, raising=False)
    assert W.max_workers() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(W.MAX_WORKERS_ENV, "3")
    assert W.max_workers() == 3
    monkeypatch.setenv(W.MAX_WORKERS_ENV, "zero")   # not a whole number >= 1: the default
    assert W.max_workers() == len(os.sched_getaffinity(0))


def test_a_worker_outlives_the_thread_it_was_started_for():
    """Linux ends a child with the *thread* that forked it (PDEATHSIG): the pool launches from
    a thread of its own, so a worker first needed by a short-lived thread serves the next
    caller without a restart."""
    before = V.stats()["worker_restarts"]
    th = threading.Thread(target=lambda: V.verify("a+b", "b+a", timeout=30))
    th.start()
    th.join(120)
    (pid,) = W.worker_pids()
    assert V.verify("2a+b", "b+2a", timeout=30) is Verdict.CORRECT
    assert W.worker_pids() == [pid]
    assert V.stats()["worker_restarts"] == before


def test_the_setting_reaches_this_process_and_verls_reward_workers(monkeypatch, tmp_path):
    from rlboundary.commands import compose, plain
    from rlboundary.trainer.verl.launch import runtime_env

    monkeypatch.delenv(W.MAX_WORKERS_ENV, raising=False)
    cfg = compose(["verify.max_workers=3", f"run_dir={tmp_path}"])
    assert os.environ[W.MAX_WORKERS_ENV] == "3" and W.max_workers() == 3
    assert runtime_env(plain(cfg), create=False)[W.MAX_WORKERS_ENV] == "3"
    monkeypatch.delenv(W.MAX_WORKERS_ENV)
    auto = plain(compose([f"run_dir={tmp_path}"]))
    assert W.MAX_WORKERS_ENV not in runtime_env(auto, create=False)
    from rlboundary.errors import UserError

    with pytest.raises(UserError, match="verify.max_workers=0: expected auto or a whole"):
        compose(["verify.max_workers=0"])


def test_an_interrupted_call_gives_its_slot_back(monkeypatch):
    """Ctrl-C while a call holds a worker (here raised from its read): the worker is stopped
    and its slot freed, so with a cap of 1 the next call still gets a worker instead of
    waiting forever."""
    monkeypatch.setenv(W.MAX_WORKERS_ENV, "1")
    assert V.verify("q+1", "1+q", timeout=30) is Verdict.CORRECT
    real = W._Worker.recv
    calls = {"n": 0}

    def interrupted(self, timeout):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real(self, timeout)

    monkeypatch.setattr(W._Worker, "recv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        V.verify("q+2", "2+q", timeout=30)
    got = {}
    th = threading.Thread(target=lambda: got.update(v=V.verify("q+3", "3+q", timeout=30)))
    th.start()
    th.join(120)
    assert not th.is_alive(), "the next call waited for a slot nobody gives back"
    assert got["v"] is Verdict.CORRECT


def test_several_values_do_not_spend_their_time_waiting_for_a_worker(monkeypatch):
    """A several-value answer's items share one time limit. Another thread keeps the only
    worker busy with comparisons that each run their full 2.5 s limit; the answer waits for
    the worker once, then holds it for all its items, instead of queueing behind that thread
    before each item and running out of its 1 s."""
    monkeypatch.setenv(W.MAX_WORKERS_ENV, "1")
    assert V.verify("r+1", "1+r", timeout=30) is Verdict.CORRECT
    done = threading.Event()

    def hog() -> None:
        k = 0
        while not done.is_set():
            V.verify(r"\sum_{i=1}^{100000} i^{i}", str(44 + k), timeout=2.5)
            k += 1

    th = threading.Thread(target=hog)
    th.start()
    try:
        threading.Event().wait(0.5)
        assert V.verify("x+9, 2y", r"y \cdot 2, 9+x", timeout=1) is Verdict.CORRECT
    finally:
        done.set()
        th.join(60)
