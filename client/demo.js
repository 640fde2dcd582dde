// The demo page: one VoiceClient, its state, utterances, errors and audio statistics.
import { VoiceClient } from '/client/voice-client.js';

const MAX_EVENTS_SHOWN = 50;
const STATS_INTERVAL_MS = 1000;

const $ = (id) => document.getElementById(id);
const client = new VoiceClient();
window.voiceClient = client; // for the console and for tests

let statsTimer = null;

client.addEventListener('state', ({ detail: state }) => {
  $('state').textContent = state;
  $('state').dataset.state = state;
  $('speak').disabled = state === 'connecting';
  $('stop').disabled = !isLive(state);
  clearInterval(statsTimer);
  if (isLive(state)) statsTimer = setInterval(showStats, STATS_INTERVAL_MS);
});

client.addEventListener('utterance', ({ detail: event }) => {
  const name = `Utterance ${event.utterance_id}`;
  showEvent(
    event.type === 'utterance_started'
      ? `${name} started`
      : `${name} ended: ${event.reason} (${event.frames} frames)`,
  );
});

client.addEventListener('error', ({ detail: body }) => showError(body));

$('speak-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  hideError();
  const text = $('text').value;
  try {
    // The first Speak connects: a click is the user gesture browsers want before playing audio.
    if (!isLive(client.state)) await client.connect();
    showEvent(`Utterance ${await client.speak(text)} queued: “${text}”`);
  } catch (error) {
    showError(error.body ?? { code: 'CONNECTION_FAILED', message: error.message });
  }
});

$('stop').addEventListener('click', () => client.cancel());

/** Connected, or connected a moment ago with signaling still up: requests still work. */
function isLive(state) {
  return state === 'connected' || state === 'disconnected';
}

async function showStats() {
  const stats = await client.stats();
  const ms = (seconds) => (seconds === undefined ? '–' : `${(seconds * 1000).toFixed(1)} ms`);
  $('stat-packets-received').textContent = stats.packetsReceived ?? '–';
  $('stat-packets-lost').textContent = stats.packetsLost ?? '–';
  $('stat-jitter').textContent = ms(stats.jitter);
  $('stat-jitter-buffer').textContent = ms(stats.averageJitterBufferDelay);
  $('stat-rtt').textContent = ms(stats.currentRoundTripTime);
  $('stat-audio-level').textContent = stats.audioLevel?.toFixed(3) ?? '–';
  $('stat-codec').textContent = stats.codec ?? '–';
}

function showEvent(text) {
  const item = document.createElement('li');
  item.textContent = text;
  const list = $('events');
  list.append(item);
  while (list.children.length > MAX_EVENTS_SHOWN) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

function showError({ code, message, detail }) {
  $('error-code').textContent = code;
  $('error-message').textContent = message;
  $('error-detail').textContent = detail ?? '';
  $('error').hidden = false;
}

function hideError() {
  $('error').hidden = true;
}
