"""`server.py --workers 2`: real worker processes on one port under their supervisor, sharing a
real redis-server; the Python client as the listener. Which worker serves a session is read from
its lease in Redis (`<host>-<pid>-<random>/<epoch>`)."""

import asyncio
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis

from tests.conftest import REPO, RunningServer, StartServer
from tests.listener import Listener
from tests.test_resume import played_out
from tests.test_scale_out import LEASE_S, check_every_frame_heard
from voice_rtc.auth import dev_secret


@pytest.fixture
async def workers(start_server: StartServer, redis_url: str) -> RunningServer:
    env = {"VOICE_RTC_REDIS_URL": redis_url}
    return await start_server(env=env, workers=2, session_lease_s=LEASE_S)


async def get_json(url: str) -> dict[str, Any]:
    """On a connection of its own: the kernel may hand it to either worker."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        async with http.get(url) as response:
            body: dict[str, Any] = await response.json()
            return body


async def owner_pid(redis_url: str, session_id: str | None) -> int:
    store = redis.from_url(redis_url)
    try:
        lease = await store.get(f"vrtc:s:{session_id}:lease")
    finally:
        await store.aclose()
    assert lease, f"session {session_id} has no owner"
    return int(lease.decode().split("/")[0].rsplit("-", 2)[1])


async def speech_frames(url: str) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        async with http.get(url + "metrics") as response:
            text = await response.text()
    rows = [row for row in text.splitlines() if row.startswith("voice_rtc_audio_frames_sent_total")]
    return sum(float(row.split()[-1]) for row in rows if 'kind="speech"' in row)


@contextlib.asynccontextmanager
async def listeners_on_both(
    server: RunningServer, redis_url: str, at_most: int = 16, **options: Any
) -> AsyncIterator[dict[int, list[Listener]]]:
    """Listeners connected one by one until both workers serve some (by pid)."""
    by_pid: dict[int, list[Listener]] = {}
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(at_most):
            listener = await stack.enter_async_context(Listener(server.url, **options))
            by_pid.setdefault(await owner_pid(redis_url, listener.session_id), []).append(listener)
            if len(by_pid) == 2 and sum(map(len, by_pid.values())) >= 4:
                break
        assert len(by_pid) == 2, f"every listener landed on one worker: {by_pid.keys()}"
        yield by_pid


async def test_two_workers_serve_and_metrics_cover_both(
    workers: RunningServer, redis_url: str
) -> None:
    health = await get_json(workers.url + "health")
    assert health["workers_up"] == 2
    pids = {worker["pid"] for worker in health["workers"]}
    assert len(pids) == 2
    before = await speech_frames(workers.url)
    # Each listener's token comes from whichever worker answered /api/dev-token, and its
    # session from whichever took its socket: all of them work, so the secret is shared.
    async with listeners_on_both(workers, redis_url, transport="websocket") as by_pid:
        assert set(by_pid) == pids
        everyone = [listener for group in by_pid.values() for listener in group]
        await asyncio.gather(*(listener.say("440hz 1s") for listener in everyone))
        heard = sum(len(listener.recording.frame_ids) for listener in everyone)
        most_on_one = max(
            sum(len(listener.recording.frame_ids) for listener in group)
            for group in by_pid.values()
        )
        ready = await get_json(workers.url + "ready")
        assert ready["status"] == "ready" and ready["workers_down"] == []
        assert (await get_json(workers.url + "health"))["sessions_total"] == len(everyone)
    # Every worker folds its counts in at least once a second: any of them then reports all.
    for _ in range(30):
        answers = [await speech_frames(workers.url) - before for _ in range(4)]
        if min(answers) >= heard:
            break
        await asyncio.sleep(0.2)
    print(f"heard {heard} frames, {most_on_one} at most from one worker; /metrics: {answers}")
    assert min(answers) >= heard > most_on_one


async def test_a_killed_worker_is_restarted_and_its_listener_hears_on(
    workers: RunningServer, redis_url: str
) -> None:
    async with listeners_on_both(workers, redis_url, codec="opus") as by_pid:
        victim = min(by_pid)
        listener = by_pid[victim][0]
        utterance = await listener.speak("framecode 6s")
        await asyncio.sleep(2.0)
        os.kill(victim, signal.SIGKILL)
        await listener.wait_for_state("reconnecting", timeout=10)
        await listener.wait_until_up(timeout=20)
        assert listener.welcome["resumed"] is True
        await played_out(listener, utterance)
        assert await owner_pid(redis_url, listener.session_id) != victim
    check_every_frame_heard(listener, 300, max_repeat=25)
    for _ in range(100):  # the supervisor starts another in its place
        health = await get_json(workers.url + "health")
        pids = {worker.get("pid") for worker in health["workers"]}
        if health["workers_up"] == 2 and victim not in pids:
            break
        await asyncio.sleep(0.2)
    assert health["workers_up"] == 2 and victim not in pids, health
    assert '"event": "worker_died"' in workers.log()


async def test_sigterm_hands_off_on_every_worker_and_all_exit(
    workers: RunningServer, redis_url: str
) -> None:
    health = await get_json(workers.url + "health")
    pids = [worker["pid"] for worker in health["workers"]]
    async with listeners_on_both(workers, redis_url, transport="websocket") as by_pid:
        everyone = [listener for group in by_pid.values() for listener in group]
        await asyncio.gather(*(listener.speak("440hz 20s") for listener in everyone))
        await asyncio.sleep(1.0)
        assert await workers.stop(timeout=10) == 0  # not the 20 s of speech: handed off
        await asyncio.gather(*(listener.wait_for_state("reconnecting") for listener in everyone))
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert workers.log().count('"event": "handed_off"') == 2


def test_several_workers_without_redis_are_refused_with_what_to_set(tmp_path: Path) -> None:
    command = [sys.executable, str(REPO / "server.py"), "--port", "0", "--workers", "2"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "VOICE_RTC_REDIS_URL" in done.stderr and "VOICE_RTC_WORKERS" in done.stderr
    if (os.cpu_count() or 1) > 1:  # auto: one per core
        auto = [*command[:-1], "auto"]
        done = subprocess.run(auto, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and "VOICE_RTC_REDIS_URL" in done.stderr


def test_the_dev_secret_is_one_for_processes_making_it_at_once(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        secrets = pool.map(dev_secret, [tmp_path] * 12)
    assert len(set(secrets)) == 1 and len(secrets[0]) >= 32
    assert [p.name for p in tmp_path.iterdir()] == ["dev-jwt-secret"]  # no temp file left
