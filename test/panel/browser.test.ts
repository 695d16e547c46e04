// The control panel in a real browser: Debian's chromium driven by playwright-core (no browser download),
// against `node run` as an operator starts it, with real services on loopback. Log in with the token;
// switch serve on and see its port answer, off and see it refused; a wrong token, a bad setting, a POST
// without the CSRF token and a cross-site POST are refused. A screenshot of every page is saved under the
// test's temp folder (SOURCEMESH_KEEP_SCREENSHOTS=DIR copies them there) and checked for size.
import assert from 'node:assert/strict';
import { cp, mkdir, readFile, stat } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { chromium, type BrowserContext } from 'playwright-core';
import { request } from 'undici';
import { loadConfig } from '../../src/node/config.ts';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { tempDir, waitFor } from '../helpers/run.ts';
import { httpGet, makeNode, startNode } from '../node/node-process.ts';

const CHROMIUM = '/usr/bin/chromium';

/** A fresh profile (playwright passes it as --user-data-dir). */
async function launch(profile: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    // Nothing leaves loopback: no QUIC, no background networking, updates, sync or first-run pages.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
  });
}

test('the panel in chromium: login, serve on and off, refusals, a screenshot of every page', { timeout: 240_000 }, async (t) => {
  const dir = await tempDir(t, 'sourcemesh-panel-');
  const shots = path.join(dir, 'screenshots');
  await mkdir(shots);

  // Something for the status pages to show: a manifest of three files on a loopback origin.
  const files = [bytes(300_000, 1), bytes(1_200_000, 2), bytes(40_000, 3)];
  const origin = await startOrigin(Object.fromEntries(files.map((b, i) => [`/f${i}.tar.gz`, { body: b }])));
  const manifest = await writeManifest(dir, files.map((b, i) => distfile(`f${i}.tar.gz`, b, [`${origin.url}/f${i}.tar.gz`])));
  const node = await makeNode(path.join(dir, 'node'), (c) => {
    c.services.mirrorSync.enabled = true;
    c.services.mirrorSync.manifest = manifest;
    c.services.mirrorSync.maxBytes = 4_000_000;
    c.services.logServe.enabled = true;
  });
  // The witness witnesses this node's own log.
  const { editConfig } = await import('../node/node-process.ts');
  const logPub = (await readFile(path.join(node.dir, 'keys', 'log.key.pub'), 'utf8')).trim();
  await editConfig(node.dir, (c) => {
    c.services.witnessServe.enabled = true;
    c.services.witnessServe.logs = [logPub];
  });
  const n = await startNode(t, node);
  const panel = await n.panelUrl();
  assert.match(panel, /^http:\/\/127\.0\.0\.1:\d+$/, 'the panel is on loopback');
  // Wait for the first sync to be recorded, so the mirror page has something to show.
  await n.waitLine('the first sync report', (l) => l.service === 'mirrorSync' && l.line === '}', 60_000);

  const browser = await launch(path.join(dir, 'profile'));
  // Stopped in this order, whatever happens: the browser (its connections to the panel), the node, the
  // origin; the screenshots are kept first when asked for, failed run or not.
  try {
    await browserSteps();
  } finally {
    if (process.env.SOURCEMESH_KEEP_SCREENSHOTS) await cp(shots, process.env.SOURCEMESH_KEEP_SCREENSHOTS, { recursive: true });
    await browser.close();
    await n.stop();
    await origin.close();
  }

  async function browserSteps() {
  const page = await browser.newPage();
  const shot = async (name: string) => {
    const file = path.join(shots, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  };

  // Not logged in: every page leads to the login form.
  await page.goto(`${panel}/services/serve`);
  assert.equal(new URL(page.url()).pathname, '/login');
  await shot('login');

  // A wrong token: refused, still at the login.
  await page.fill('#token', 'not-the-token');
  const wrong = await Promise.all([page.waitForNavigation(), page.click('button.primary')]);
  assert.equal(wrong[0]?.status(), 403);
  assert.match(await page.textContent('.flash') ?? '', /Wrong token/);
  await shot('login-wrong-token');
  assert.equal((await httpGet(`${panel}/api/config`) as { status: number }).status, 401, 'no session, no token: no config');

  // The right token.
  await page.fill('#token', node.token);
  await Promise.all([page.waitForNavigation(), page.click('button.primary')]);
  assert.equal(new URL(page.url()).pathname, '/');
  assert.match(await page.textContent('h1') ?? '', /Overview/);

  // Serve on, from its page: its port answers.
  await page.goto(`${panel}/services/serve`);
  assert.equal(await page.textContent('[data-state]'), 'off');
  await Promise.all([page.waitForNavigation(), page.click('button[value="on"]')]);
  assert.match(await page.textContent('.flash') ?? '', /switched on/);
  assert.equal((await loadConfig(node.dir)).services.serve.enabled, true, 'saved to node.json');
  let serveUrl = '';
  await waitFor('serve running on the page', async () => {
    await page.reload();
    if ((await page.textContent('h1 [data-state]')) !== 'running') return false;
    serveUrl = (await page.getAttribute('a.listening', 'href', { timeout: 1000 })) ?? '';
    return serveUrl !== '';
  }, { timeoutMs: 30_000, everyMs: 200 }).catch(async (err) => {
    await shot('debug-serve');
    throw new Error(`${err.message}; serve said: ${JSON.stringify(n.lines().filter((l) => l.service === 'serve')).slice(0, 3000)}`);
  });
  const served = await httpGet(`${serveUrl}/f1.tar.gz`);
  assert.ok('status' in served && served.status === 200 && served.body.length > 0, JSON.stringify(served).slice(0, 200));
  // serve is configured with port 0: its page says the port it really listens on, and that port answers.
  const exposes = await page.textContent('h3 + p') ?? '';
  const shown = /HTTP on (127\.0\.0\.1:(\d+)):/.exec(exposes);
  assert.ok(shown, `the exposes line names an address: ${exposes}`);
  assert.notEqual(shown[2], '0', `the real port, not the configured 0: ${exposes}`);
  assert.equal(`http://${shown[1]}`, serveUrl, 'the address the service announced');
  const atShown = await httpGet(`http://${shown[1]}/f1.tar.gz`);
  assert.ok('status' in atShown && atShown.status === 200 && atShown.body.length > 0, `the shown port answers: ${JSON.stringify(atShown).slice(0, 200)}`);
  await shot('service-serve');

  // A bad setting: refused whole, the field named on the page; nothing saved.
  await page.fill('#f-port', 'eighty');
  const bad = await Promise.all([page.waitForNavigation(), page.click('button[value="save"]')]);
  assert.equal(bad[0]?.status(), 400);
  assert.match(await page.textContent('.flash.error') ?? '', /services\.serve\.port/);
  await shot('service-serve-refused');
  assert.equal((await loadConfig(node.dir)).services.serve.port, 0);

  // Serve off: its port refuses.
  await page.goto(`${panel}/services/serve`);
  await Promise.all([page.waitForNavigation(), page.click('button[value="off"]')]);
  await waitFor('serve stopped', () => n.lines().some((l) => l.msg === 'service stopped' && l.service === 'serve'), { timeoutMs: 40_000 });
  assert.deepEqual(await httpGet(`${serveUrl}/f1.tar.gz`), { error: 'ECONNREFUSED' });
  assert.equal((await loadConfig(node.dir)).services.serve.enabled, false);
  // Off, the page does not pretend to know the port.
  await page.goto(`${panel}/services/serve`);
  assert.match(await page.textContent('h3 + p') ?? '', /HTTP on 127\.0\.0\.1, on a port the system picks when it starts \(port 0\)/);

  // A boolean setting is a checkbox (from the schema's type), turned on and off again; node.json follows
  // both ways. serve is off, so announcing starts nothing on the network.
  assert.equal(await page.getAttribute('#f-announce', 'type'), 'checkbox');
  assert.equal(await page.isChecked('#f-announce'), false);
  await page.check('#f-announce');
  await Promise.all([page.waitForNavigation(), page.click('button[value="save"]')]);
  assert.match(await page.textContent('.flash') ?? '', /Settings saved/);
  assert.equal((await loadConfig(node.dir)).services.serve.announce, true, 'checked: announce true in node.json');
  assert.equal(await page.isChecked('#f-announce'), true, 'the page shows it checked');
  await shot('service-serve-announce');
  await page.uncheck('#f-announce');
  await Promise.all([page.waitForNavigation(), page.click('button[value="save"]')]);
  assert.match(await page.textContent('.flash') ?? '', /Settings saved/);
  assert.equal((await loadConfig(node.dir)).services.serve.announce, false, 'unchecked (the browser sends nothing): announce false in node.json');
  assert.equal(await page.isChecked('#f-announce'), false);
  // The switch itself is still behind the CSRF token.
  const noCsrfSave = await page.evaluate(async () => (await fetch('/services/serve', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'action=save&announce=true' })).status);
  assert.equal(noCsrfSave, 403);
  assert.equal((await loadConfig(node.dir)).services.serve.announce, false, 'the POST without CSRF token changed nothing');

  // A POST from the panel's own page without the CSRF token: refused.
  const noCsrf = await page.evaluate(async () => (await fetch('/services/serve', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'action=on' })).status);
  assert.equal(noCsrf, 403);

  // A cross-site POST: a page on another origin submits a form to the panel, with the session cookie
  // the browser holds. Refused; serve stays off.
  const evil = http.createServer((_req, res) => {
    res.setHeader('content-type', 'text/html');
    res.end(`<form id="f" method="post" action="${panel}/services/serve"><input name="action" value="on"><input name="csrf" value="guess"></form><script>document.getElementById('f').submit()</script>`);
  });
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => evil.close(() => r())));
  evil.unref();
  const evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;
  const attack = await browser.newPage();
  const answered = attack.waitForResponse((r) => r.url().startsWith(`${panel}/services/serve`));
  await attack.goto(evilUrl);
  const resp = await answered;
  assert.equal(resp.status(), 403);
  assert.match(await resp.text(), /cross-site/);
  await attack.close();
  assert.equal((await loadConfig(node.dir)).services.serve.enabled, false, 'the cross-site POST changed nothing');

  // The API takes the token as a bearer (node clone's way in).
  const api = await request(`${panel}/api/config`, { headers: { authorization: `Bearer ${node.token}` } });
  assert.equal(api.statusCode, 200);
  assert.equal((await api.body.json() as { name: string }).name, 'test-node');

  // Every page, once more, for the screenshots.
  for (const [name, p] of [['overview', '/'], ['service-mirrorSync', '/services/mirrorSync'], ['service-seed', '/services/seed'], ['service-logServe', '/services/logServe'],
    ['service-witnessServe', '/services/witnessServe'], ['mirror', '/mirror'], ['trust', '/trust']] as const) {
    const r = await page.goto(`${panel}${p}`);
    assert.equal(r?.status(), 200, p);
    if (name === 'service-seed') assert.match(await page.textContent('main') ?? '', /BitTorrent peer wire/, 'the seed page says what it exposes');
    await shot(name);
  }
  const mirrorText = await (await page.goto(`${panel}/mirror`), page.textContent('main')) ?? '';
  assert.match(mirrorText, /Files\s*3/, 'the mirror page shows the three synced files');
  for (const f of ['login', 'login-wrong-token', 'service-serve', 'service-serve-refused', 'service-serve-announce', 'overview', 'service-mirrorSync', 'service-seed', 'service-logServe', 'service-witnessServe', 'mirror', 'trust']) {
    const file = path.join(shots, `${f}.png`);
    const head = (await readFile(file)).subarray(0, 8);
    assert.deepEqual([...head], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${f}.png is a PNG`);
    const size = (await stat(file)).size;
    assert.ok(size > 15_000 && size < 5_000_000, `${f}.png: ${size} bytes`);
  }
  }
});
