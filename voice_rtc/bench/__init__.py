"""Load benchmark: N WebRTC listeners on loopback, all hearing speech, for T seconds.

    python -m voice_rtc.bench --sessions 10 --seconds 20          # starts its own server
    python -m voice_rtc.bench --url http://127.0.0.1:8080 --server-pid 1234 --json

Each listener is a `VoiceClient` (a real aiortc peer that decodes every packet). The clients run
in worker processes (`python -m voice_rtc.bench --worker ...`, one asyncio loop each) so that the
load client is less likely to be the bottleneck; the report shows the clients' CPU and event-loop
lag next to the server's so a reader can tell which side saturated. After every session has
connected and a warm-up, one measuring window of T seconds yields:

- frames delivered to the clients in the window vs T / 20 ms per session;
- the server's pacing lateness, from the delta of its `voice_rtc_pacing_lateness_seconds`
  histogram between a scrape at each end of the window (bucket resolution);
- the inter-arrival jitter at the clients, |gap between consecutive frames - 20 ms|;
- the server's CPU per session per second of audio, its RSS, and the clients' CPU.

The modules: `run` (the orchestration: `Options`, `run_bench`), `worker` (the worker processes,
both ends of their pipe), `processes` (starting the server, stopping child processes), `measure`
(the server's metrics, CPU usage, quantiles), `report` (the `Report` and its text form) and
`__main__` (the command line).
"""


class BenchError(Exception):
    pass
