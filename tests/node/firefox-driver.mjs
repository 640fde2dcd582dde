/**
 * Drives one headless Firefox for tests/firefox.py: launches it with puppeteer-core over
 * WebDriver BiDi, opens one page, then carries out commands read from stdin, one JSON object a
 * line ({id, cmd, ...}), answering each on stdout ({id, result} or {id, error}). The page's
 * console and uncaught errors come on stdout too, as {event, type, text}.
 *
 * argv[2] is a JSON object: {executablePath, prefs}. The environment goes to Firefox as it is
 * (XDG_RUNTIME_DIR: the PulseAudio it plays to).
 *
 * Evaluations run without user activation (puppeteer's own page.evaluate() grants it, which
 * would let a page autoplay): only `click` and `type` are user gestures, as for a real user.
 */
import readline from 'node:readline';

import puppeteer from 'puppeteer-core';

const { executablePath, prefs } = JSON.parse(process.argv[2]);

function emit(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

const browser = await puppeteer.launch({
  browser: 'firefox',
  executablePath,
  headless: true,
  extraPrefsFirefox: prefs,
  env: process.env,
});
const page = await browser.newPage();
page.setDefaultTimeout(10000);
page.on('console', (message) => emit({ event: 'console', type: message.type(), text: message.text() }));
page.on('pageerror', (error) => emit({ event: 'pageerror', text: String(error) }));

/**
 * `source` evaluated in the page without user activation: an expression, or a function called
 * with `arg`; the (awaited) value comes back through JSON.
 */
async function evaluate(source, arg) {
  const realm = page.mainFrame().mainRealm().realm; // puppeteer's BiDi realm, pinned version
  const expression = `(async () => {
    let value = (${source});
    if (typeof value === 'function') value = value(${JSON.stringify(arg ?? null)});
    return JSON.stringify((await value) ?? null);
  })()`;
  const outcome = await realm.evaluate(expression, true, {
    resultOwnership: 'none',
    userActivation: false,
  });
  if (outcome.type === 'exception') throw new Error(outcome.exceptionDetails.text);
  return JSON.parse(outcome.result.value);
}

const commands = {
  goto: ({ url }) => page.goto(url).then(() => null),
  initScript: ({ source }) => page.evaluateOnNewDocument(source).then(() => null),
  click: ({ selector }) => page.click(selector).then(() => null),
  type: async ({ selector, text }) => {
    await evaluate(`(s) => { document.querySelector(s).value = ''; }`, selector);
    await page.type(selector, text);
    return null;
  },
  evaluate: ({ source, arg }) => evaluate(source, arg),
  close: async () => {
    await browser.close();
    return null;
  },
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const { id, cmd, ...args } = JSON.parse(line);
  try {
    emit({ id, result: await commands[cmd](args) });
  } catch (error) {
    emit({ id, error: String(error?.message ?? error) });
  }
  if (cmd === 'close') break;
}
await browser.close().catch(() => {});
process.exit(0);
