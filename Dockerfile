# voice-rtc: the media server, with the embedded eSpeak NG voice (Cartesia when configured).
#   docker build -t voice-rtc . && docker run -p 8080:8080 -e VOICE_RTC_JWT_SECRET=... voice-rtc
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first: a change to the code does not reinstall them.
COPY pyproject.toml README.md constraints.txt ./
COPY voice_rtc ./voice_rtc
COPY signaling ./signaling
COPY server.py ./
RUN pip install -c constraints.txt . && useradd --system --uid 10001 --no-create-home voice
COPY client ./client

USER voice
# Beyond loopback the server requires VOICE_RTC_JWT_SECRET (or a public key): it will not start
# without one, by design.
ENV VOICE_RTC_HOST=0.0.0.0 \
    VOICE_RTC_PORT=8080
EXPOSE 8080/tcp
HEALTHCHECK --interval=10s --timeout=3s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"
# SIGTERM drains (VOICE_RTC_DRAIN_TIMEOUT_S): give the container longer than that to stop.
STOPSIGNAL SIGTERM
CMD ["python", "server.py"]
