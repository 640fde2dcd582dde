// The demo page: one VoiceClient; its state, captions (the word being heard marked), utterances,
// errors and audio statistics. `?transport=websocket` (or webrtc) in the page's URL forces a
// transport; `?codec=pcm_s16le` (or mulaw, opus) chooses WebSocket audio's codec, which is
// otherwise the lightest available. `?token=<listener token>` joins the session an app made
// (POST /api/sessions): Connect joins it, and when an agent drives it, what the listener types
// goes to the agent; without it, the page opens a session of its own and speaks what is typed.
import { VoiceClient } from '/client/voice-client.js';

const MAX_LOG_ENTRIES = 50;
const MAX_CAPTIONS = 20; // utterance texts kept for captions
const STATS_INTERVAL_MS = 1000;
const TRANSPORT_NAMES = {
  webrtc: 'WebRTC',
  websocket: 'WebSocket audio',
  captions: 'captions only',
};

// What the listener can do about an error, by its `action` (GET /api/errors): a hint, and a
// button for what takes a click.
const ACTION_HINTS = {
  reconnect: 'Reconnecting automatically.',
  retry: 'Try again.',
  new_session: 'Your queued speech is gone; say it again.',
  switch_transport: 'Switching to another way of streaming.',
};
const ACTION_BUTTONS = {
  enable_audio: { label: 'Enable sound', onClick: () => client.resumeAudio() },
  sign_in: { label: 'Reload to sign in', onClick: () => location.reload() },
  upgrade: { label: 'Reload the page', onClick: () => location.reload() },
};

const $ = (id) => document.getElementById(id);

const query = new URLSearchParams(location.search);
const transport = query.get('transport');
const codec = query.get('codec');
// No token: the demo runs against a server in dev mode, which hands them out.
const token = query.get('token') || undefined;
const client = new VoiceClient({
  transport: ['webrtc', 'websocket'].includes(transport) ? transport : 'auto',
  codec: ['pcm_s16le', 'mulaw', 'opus'].includes(codec) ? codec : 'auto',
  token,
});
window.voiceClient = client; // for the console and for tests

let statsTimer = null;
const captionTexts = new Map(); // utterance id -> its text (all of it once ended)
let captionOf = null; // the utterance whose text the captions show
let shownError = null;

// An app's session: joined with a click (browsers play audio only after one); the speak box
// waits to know whether an agent speaks there.
$('join').hidden = !token;
$('speak-form').hidden = Boolean(token);

client.addEventListener('state', ({ detail }) => {
  const { state } = detail;
  $('state').textContent = state;
  $('state-detail').textContent = describe(detail);
  $('status').dataset.state = state;
  $('speak').disabled = state === 'connecting';
  $('stop').disabled = !isLive(state);
  $('connect').disabled = state !== 'new' && state !== 'failed' && state !== 'closed';
  $('send').disabled = !isUp(state);
  if (token && state === 'failed') $('join').hidden = false; // to try again
  if (isUp(state)) {
    $('join').hidden = true;
    $('input-form').hidden = !client.hasAgent;
    $('speak-form').hidden = client.hasAgent;
  }
  log('connection-log', [state, describe(detail)].filter(Boolean).join(': '));
  // "Lost; retrying" is over once it is back.
  if (shownError?.action === 'reconnect' && isUp(state)) hideError();
  clearInterval(statsTimer);
  if (isLive(state)) statsTimer = setInterval(showStats, STATS_INTERVAL_MS);
  showStats();
});

client.addEventListener('transport', ({ detail: { transport, detail } }) => {
  const name = TRANSPORT_NAMES[transport];
  log('connection-log', detail ? `transport: ${name} (${detail})` : `transport: ${name}`);
  $('captions').classList.toggle('only', transport === 'captions');
});

client.addEventListener('utterance', ({ detail: event }) => {
  const id = event.utterance_id;
  const name = `Utterance ${id}`;
  captionTexts.set(id, event.text);
  while (captionTexts.size > MAX_CAPTIONS) captionTexts.delete(captionTexts.keys().next().value);
  if (event.type === 'utterance_started') {
    log('events', `${name} started`);
    $('captions-spoken').textContent = event.text;
    // Speech is sent ahead: while a word of an earlier utterance is heard, it stays up (`word`
    // events move the captions on).
    if (!client.currentWord) showCaption(id);
  } else {
    log('events', `${name} ended: ${event.reason} (${event.frames} frames)`);
    if (id === captionOf) showCaption(id); // all of its text
  }
});

client.addEventListener('word', ({ detail: word }) => {
  if (word && captionTexts.has(word.utterance_id)) captionOf = word.utterance_id;
  showCaption(captionOf);
});

client.addEventListener('error', ({ detail: body }) => showError(body));

$('speak-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  hideError();
  const text = $('text').value;
  try {
    // A click is the user gesture browsers want before they play audio: the first Speak
    // connects, and one on captions only brings the audio back.
    if (client.transport === 'captions') client.resumeAudio();
    if (!isLive(client.state)) await client.connect();
    log('events', `Utterance ${await client.speak(text)} queued: “${text}”`);
  } catch (error) {
    showError(
      error.body ?? client.describeError('WEBSOCKET_CONNECTION_FAILED', { detail: error.message }),
    );
  }
});

$('stop').addEventListener('click', () => client.cancel());

$('connect').addEventListener('click', () => {
  hideError();
  client.connect().catch(() => {}); // a `failed` state says why
});

$('input-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('input-text').value.trim();
  if (!text) return;
  try {
    client.sendInput(text);
    log('events', `You said: “${text}”`);
    $('input-text').value = '';
  } catch (error) {
    showError(client.describeError('WEBSOCKET_CONNECTION_FAILED', { detail: error.message }));
  }
});

/**
 * Show utterance `id`'s text, the word being heard in it marked. Text between words stays as
 * it is; a word beyond the text known (text still arriving) is not marked.
 */
function showCaption(id) {
  captionOf = id;
  const text = captionTexts.get(id) ?? '';
  const word = client.currentWord;
  const captions = $('captions');
  if (word?.utterance_id !== id || word.end > text.length) {
    captions.textContent = text;
    return;
  }
  const mark = document.createElement('mark');
  mark.textContent = text.slice(word.start, word.end);
  mark.dataset.index = word.index;
  captions.replaceChildren(text.slice(0, word.start), mark, text.slice(word.end));
}

/** Speech can play. */
function isUp(state) {
  return state === 'connected' || state === 'degraded';
}

/** A session is on: requests work now, or once reconnected. */
function isLive(state) {
  return isUp(state) || state === 'reconnecting';
}

function describe({ state, transport, attempt, maxAttempts, error }) {
  if (state === 'reconnecting') return `attempt ${attempt} of ${maxAttempts}`;
  if (state === 'degraded') return TRANSPORT_NAMES[transport];
  if (state === 'failed') return error?.message ?? '';
  return '';
}

async function showStats() {
  const stats = await client.stats();
  const ms = (seconds) => (seconds == null ? '–' : `${(seconds * 1000).toFixed(1)} ms`);
  $('transport').textContent = TRANSPORT_NAMES[stats.transport] ?? '–';
  $('rtt').textContent = ms(stats.rtt);
  $('underruns').textContent = stats.underruns ?? '–';
  $('stat-packets-received').textContent = stats.packetsReceived ?? '–';
  $('stat-packets-lost').textContent = stats.packetsLost ?? '–';
  $('stat-jitter').textContent = ms(stats.jitter);
  $('stat-jitter-buffer').textContent = ms(
    stats.averageJitterBufferDelay ?? stats.jitterBufferTarget,
  );
  $('stat-rtt').textContent = ms(stats.currentRoundTripTime);
  $('stat-audio-level').textContent = stats.audioLevel?.toFixed(3) ?? '–';
  $('stat-codec').textContent = stats.codec ?? '–';
  $('stat-session').textContent = client.sessionId ?? '–';
}

function log(listId, text) {
  const item = document.createElement('li');
  item.textContent = text;
  const list = $(listId);
  list.append(item);
  while (list.children.length > MAX_LOG_ENTRIES) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

function showError(body) {
  const { code, message, detail, action } = body;
  console.warn(`${code}: ${message}`, detail ?? '');
  shownError = body;
  $('error-code').textContent = code;
  $('error-message').textContent = message ?? '';
  $('error-action').textContent = actionHint(body);
  const button = ACTION_BUTTONS[action];
  $('error-button').hidden = !button;
  $('error-button').textContent = button?.label ?? '';
  $('error-detail').textContent = detail ?? '';
  $('error').hidden = false;
}

function actionHint({ action, retry_after_s: retryAfterS }) {
  if (action !== 'retry_later') return ACTION_HINTS[action] ?? '';
  return retryAfterS ? `Try again in ${Math.ceil(retryAfterS)} s.` : 'Try again in a moment.';
}

$('error-button').addEventListener('click', () => {
  ACTION_BUTTONS[shownError?.action]?.onClick();
  hideError();
});

function hideError() {
  shownError = null;
  $('error').hidden = true;
}
