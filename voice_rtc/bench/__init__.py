"""Load benchmark: N listeners on loopback hearing speech for T seconds, voice-rtc side by side
with a plain-aiortc reference under the same load.

    python -m voice_rtc.bench --sessions 20 --seconds 10 --reference         # WebRTC
    python -m voice_rtc.bench --transport websocket --sessions 500 --reference
    python -m voice_rtc.bench --sweep 20,50,100,150 --reference --plot sweep.png
    python -m voice_rtc.bench --quality                                       # PESQ-WB
    python -m voice_rtc.bench --url http://127.0.0.1:8080 --server-pid 1234 --json

The bench starts each server itself (voice-rtc's `server.py`, or `reference.py`), pinned to the
least busy core, and its load clients in worker processes pinned to the other cores (`--nice
-10`, as root, puts both ahead of other work on a shared machine). The clients are lean
(`listener.py`): real aiortc peers whose SRTP packets are counted from the UDP callback with the
kernel's receive timestamps (no decryption, jitter buffer or decoding), or raw WebSocket
clients counting binary messages (`rawws.py`). After a warm-up, one window of T seconds
yields, for each target: frames on time at the listeners, the
server's pacing lateness (its /metrics histogram), client-side lateness, jitter and gaps, time
to first audio at probe sessions, bandwidth per listener, server CPU per session-second and RSS
per session, and the clients' own CPU and event-loop lag — said to be the bottleneck when they
were.

Modules: `options` (what a run is asked), `run` (one run, and targets back to back), `sweep`
(loads, and the largest held), `worker` (worker processes, both ends of their pipe),
`listener` (one lean client), `signaling` (the protocol subset it speaks), `rawws` (the
WebSocket wire), `packets` (what is logged per packet, and the figures made of it), `audible`
(decoding only for time to first audio), `speech` (what is said), `reference` (the plain
server), `processes` (starting and pinning servers), `measure` (the server's metrics, CPU),
`report` (the report and its text), `plot` (matplotlib), `quality` (PESQ), `__main__`.
"""


class BenchError(Exception):
    pass
