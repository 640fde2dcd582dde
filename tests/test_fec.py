"""Loss-adaptive in-band FEC: speech carries FEC while the listener's receiver reports loss,
and full quality without it on a clean link."""

import time

import aiohttp
import pytest

from tests.conftest import StartServer
from tests.listener import Listener, spy_on_rtp
from tests.netns import Namespace
from tests.scrape import sample
from tests.test_opus import tone_frames
from tests.tokens import JWT_ENV, app_token
from voice_rtc import libopus, metrics
from voice_rtc.fec import DECAY_S, FEC_LOSS_PERCENT, LinkLoss
from voice_rtc.opus import OpusFrameEncoder, OpusSettings
from voice_rtc.transports.webrtc import use_host_addresses

pytestmark = pytest.mark.timeout(90)


def lossy_listeners() -> float:
    return metrics.LOSSY_LISTENERS._value.get()


def test_loss_turns_fec_on_at_once_and_a_clean_link_turns_it_off_slowly() -> None:
    link, before = LinkLoss(), lossy_listeners()
    link.report(0.0, now=0.0)
    assert link.coded_loss_percent == 0
    link.report(0.02, now=1.0)  # one packet in fifty
    assert link.coded_loss_percent == FEC_LOSS_PERCENT
    assert lossy_listeners() == before + 1
    now = 1.0
    while link.coded_loss_percent and now < 100:
        now += 1.0
        link.report(0.0, now)
    # Down from 2% with a time constant of DECAY_S, off below 0.4%: ln(5) of them, 16 s.
    assert 1.4 * DECAY_S < now - 1.0 < 1.8 * DECAY_S, now
    assert lossy_listeners() == before


def test_the_estimate_does_not_flap_around_the_threshold() -> None:
    link = LinkLoss()
    link.report(0.008, now=0.0)  # under the 1% that turns FEC on
    assert link.coded_loss_percent == 0
    link.report(0.012, now=1.0)
    assert link.coded_loss_percent == FEC_LOSS_PERCENT
    link.report(0.006, now=2.0)  # above the 0.4% that turns it off
    link.report(0.006, now=30.0)
    assert link.coded_loss_percent == FEC_LOSS_PERCENT
    link.reset()  # another transport: nothing known yet
    assert link.coded_loss_percent == 0 and link.estimate == 0


async def test_the_encoder_codes_fec_from_the_next_batch_while_its_link_loses_packets() -> None:
    frames = await tone_frames("440hz 3s")
    link = LinkLoss()
    encoder = OpusFrameEncoder(OpusSettings(), link)
    clean = encoder.encode(frames[:50])
    link.report(0.05, now=0.0)
    lossy = encoder.encode(frames[50:100])
    link.reset()
    clean_again = encoder.encode(frames[100:])
    # A packet carries the frame before's copy: FEC shows from the second packet on, and in
    # the first after it stops.
    assert not any(map(libopus.has_lbrr, clean + clean_again[1:]))
    assert all(map(libopus.has_lbrr, lossy[1:]))
    # With FEC off in the settings, a lossy link changes nothing.
    unprotected = OpusFrameEncoder(OpusSettings(fec=False), link)
    link.report(0.05, now=1.0)
    assert not any(map(libopus.has_lbrr, unprotected.encode(frames[:50])))
    link.reset()


async def test_a_lossy_link_gets_fec_and_a_clean_one_none(
    netns: Namespace, start_server: StartServer
) -> None:
    """The server in a network namespace whose veth drops the share of UDP we say; a real aiortc
    listener, whose receiver reports (RTCP) say how much it lost. Its packets are looked at as
    its receiver takes them: the Opus payloads, carrying LBRR or not."""
    server = await start_server(
        env=JWT_ENV,
        wrap=netns.exec_prefix(),
        host=netns.ip,
        lookahead_ms=1000,  # FEC starts with the next batch encoded: a second ahead at most
        fallback_loss_percent=50,  # the client keeps WebRTC through 10% loss
    )
    client = Listener(server.url, token=app_token())
    use_host_addresses([netns.host_ip])  # the Listener offers loopback only, for a loopback URL
    try:
        await client.connect()
        assert client.pc is not None
        received = spy_on_rtp(client.pc.getTransceivers()[0].receiver)

        await client.say("440hz 3s")
        clean = [p.payload for _, p in received if len(p.payload) > 2]
        assert len(clean) >= 140
        assert not any(map(libopus.has_lbrr, clean)), "FEC on a link that loses nothing"

        netns.set_udp_loss(10)
        received.clear()
        started = time.monotonic()
        await client.say("440hz 8s")
        late = [p.payload for at, p in received if at > started + 5 and len(p.payload) > 2]
        assert netns.dropped_packets() > 20
        assert len(late) > 100, len(late)
        protected = sum(map(libopus.has_lbrr, late))
        assert protected > 0.9 * len(late), f"{protected} of {len(late)} carry FEC"
        async with aiohttp.ClientSession() as http:
            assert await sample(http, server, "voice_rtc_lossy_listeners") == 1
    finally:
        await client.close()
        use_host_addresses(None)
