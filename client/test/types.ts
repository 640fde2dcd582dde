// How an app written in TypeScript uses the library: tsc checks this file against the JSDoc
// types (scripts/test); a line marked @ts-expect-error must stay an error.
import { ServerError, VoiceClient } from '../voice-client.js';
import type { ClientStats, StateDetail, VoiceClientOptions, Word } from '../voice-client.js';

const options: VoiceClientOptions = {
  url: 'wss://voice.example/ws',
  token: async (signal: AbortSignal) => (await fetch('/token', { signal })).text(),
  transport: 'auto',
  codec: 'auto',
  iceTransportPolicy: 'relay',
  telemetry: false,
};
const client = new VoiceClient(options);

client.addEventListener('state', (event) => {
  const detail: StateDetail = event.detail;
  if (detail.state === 'reconnecting') console.log(detail.attempt, detail.maxAttempts);
  if (detail.state === 'degraded') console.log(detail.transport);
});
client.addEventListener('transport', ({ detail }) => console.log(detail.transport, detail.reason));
client.addEventListener('utterance', ({ detail }) => {
  if (detail.type === 'utterance_ended') console.log(detail.utterance_id, detail.reason);
});
client.addEventListener('word', ({ detail: word }) => {
  // null: no word plays now
  if (word) console.log(word.utterance_id, word.index, word.text, word.start, word.end);
});
client.addEventListener('error', ({ detail }) => {
  if (detail.action === 'enable_audio') void client.resumeAudio();
  if (detail.action === 'retry_later') console.log(detail.retry_after_s);
});

async function talk(): Promise<void> {
  await client.connect();
  try {
    const id: number = await client.speak('Hello there.');
    console.log(id, client.sessionId, client.transport, client.rtt);
    const word: Word | null = client.currentWord;
    if (client.hasAgent) client.sendInput(`I heard ${word?.text ?? 'nothing'}`);
  } catch (error) {
    if (error instanceof ServerError) console.log(error.code, error.body.message);
  }
  const stats: ClientStats = await client.stats();
  console.log(stats.packetsReceived, stats.framesPlayed, stats.audioLevel);
  client.cancel();
  client.close();
}
void talk();

// @ts-expect-error: not a transport
new VoiceClient({ transport: 'carrier-pigeon' });
// @ts-expect-error: not a codec
new VoiceClient({ codec: 'mp3' });
// @ts-expect-error: speak() takes text
void client.speak(42);
client.addEventListener('state', ({ detail }) => {
  // @ts-expect-error: not a state
  if (detail.state === 'sleeping') return;
});
