// End-to-end scenario for the dashboard in headless Chromium (playwright-core + Debian's /usr/bin/chromium).
//
// Starts target/debug/mock-provider and target/debug/freellmapi on free ports with a temporary DATA_DIR, logs in,
// adds a custom key pointing at the mock, mints a gateway key, chats in the playground, watches the live dashboard,
// checks analytics and the planned pages, drives the Proxies page (proxies at closed loopback ports only), the routing
// inspector (a key cooling after the mock's 429ra30) and a failover profile in the playground, gateway-key limits and
// allow-lists and provider-key states (e2e/limits.mjs), looks for console
// errors, and takes screenshots (1280 and 390 px, light and dark) into e2e/out/. Every step reports on its own. Steps that depend on planned server routes do not fail the
// run unless E2E_STRICT=1. Both servers are always stopped.
//
// If the gateway does not serve the dashboard yet (no embedded web/dist), the script serves web/dist itself from a
// small same-origin front server that forwards /api, /v1 and /ws to the gateway.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, createWriteStream } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { createShim } from './shim.mjs';
import { gatewayKeyLimitSteps, keyStateSteps } from './limits.mjs';

const WEB = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ROOT = resolve(WEB, '..');
const OUT = join(WEB, 'e2e', 'out');
// Cargo's output directory: CARGO_TARGET_DIR when set (one per worktree), else <repo>/target.
const TARGET = process.env.CARGO_TARGET_DIR ? resolve(ROOT, process.env.CARGO_TARGET_DIR) : join(ROOT, 'target');
const DIST = join(WEB, 'dist');
const STRICT = process.env.E2E_STRICT === '1';
// E2E_SHIM=1: a contract shim stands in for the planned /ws and playground routes (see shim.mjs).
const SHIM = process.env.E2E_SHIM === '1';
mkdirSync(OUT, { recursive: true });

const children = [];
const closers = [];
let tmpDir;

function log(...a) {
  console.log('[e2e]', ...a);
}

async function cleanup() {
  for (const c of closers.splice(0)) {
    try {
      await c();
    } catch {
      /* ignore */
    }
  }
  for (const child of children.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    child.kill('SIGTERM');
    const exited = await Promise.race([
      new Promise((r) => child.once('exit', () => r(true))),
      new Promise((r) => setTimeout(() => r(false), 4000)),
    ]);
    if (!exited) child.kill('SIGKILL');
  }
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    await cleanup();
    process.exit(130);
  });
}

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function startMock() {
  return new Promise((res, rej) => {
    const bin = join(TARGET, 'debug/mock-provider');
    const child = spawn(bin, ['--listen', '127.0.0.1:0', '--chunks', '20'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let buf = '';
    const timer = setTimeout(() => rej(new Error('mock-provider did not print its address within 15 s')), 15000);
    child.stdout.on('data', (d) => {
      buf += d.toString();
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    });
    child.stderr.on('data', (d) => process.stderr.write(`[mock] ${d}`));
    child.on('exit', (code) => rej(new Error(`mock-provider exited early (code ${code})`)));
  });
}

async function startGateway(port, password, mock) {
  tmpDir = mkdtempSync(join(tmpdir(), 'freellmapi-e2e-'));
  const logFile = createWriteStream(join(OUT, 'gateway.log'));
  const child = spawn(join(TARGET, 'debug/freellmapi'), [], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST_BIND: '127.0.0.1',
      DATA_DIR: join(tmpDir, 'data'),
      ADMIN_USERNAME: 'admin',
      ADMIN_PASSWORD: password,
      LOG_LEVEL: 'info',
      PROXY_RATE_LIMIT_RPM: '0',
      // Proxy health probes stay on this machine: no periodic checker, and a manual test fetches the mock.
      PROXY_HEALTH_INTERVAL_SECONDS: '0',
      PROXY_HEALTH_TARGET: `${mock}/ok/v1/models`,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  child.stdout.pipe(logFile);
  child.stderr.pipe(logFile);
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`freellmapi exited early (code ${child.exitCode}); see e2e/out/gateway.log`);
    try {
      const r = await fetch(`${base}/api/ping`);
      if (r.ok) return base;
    } catch {
      /* not up yet */
    }
    await sleep(200);
  }
  throw new Error('freellmapi did not answer /api/ping within 60 s');
}

/** Does the gateway serve this build of the dashboard (index.html and its hashed script)? */
async function gatewayServesDashboard(base) {
  try {
    const html = await (await fetch(`${base}/`)).text();
    const m = /src="(\/assets\/[^"]+\.js)"/.exec(html);
    if (!m || !html.includes('id="app"')) return false;
    const js = await fetch(`${base}${m[1]}`);
    const spa = await fetch(`${base}/keys`);
    return js.ok && spa.ok && (await spa.text()).includes('id="app"');
  } catch {
    return false;
  }
}

/** Is the gateway's embedded index.html the same build as web/dist? */
async function gatewayServesThisBuild(base) {
  const local = readFileSync(join(DIST, 'index.html'), 'utf8');
  const served = await (await fetch(`${base}/`)).text();
  const script = (html) => /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
  return script(local) !== undefined && script(local) === script(served);
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.json': 'application/json' };

/** Same-origin front server: web/dist with SPA fallback; /api, /v1 and /ws forwarded to the gateway. */
async function startFront(gatewayPort, password) {
  const port = await freePort();
  const forward = (p) => /^\/(api|v1|ws)(\/|$|\?)/.test(p);
  const shim = SHIM ? createShim(gatewayPort, { password }) : null;
  const server = http.createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (shim && shim.http(req, res)) return;
    if (forward(path)) {
      const up = http.request({ host: '127.0.0.1', port: gatewayPort, method: req.method, path: req.url, headers: req.headers }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => {
        res.writeHead(502).end();
      });
      res.on('close', () => up.destroy());
      req.pipe(up);
      return;
    }
    let file = normalize(join(DIST, decodeURIComponent(path)));
    if (!file.startsWith(DIST) || !existsSync(file) || !statSync(file).isFile()) file = join(DIST, 'index.html');
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  server.on('upgrade', (req, socket, head) => {
    if (shim && new URL(req.url, 'http://x').pathname === '/ws') return shim.upgrade(req, socket);
    const up = net.connect(gatewayPort, '127.0.0.1', () => {
      let raw = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(`${raw}\r\n`);
      if (head?.length) up.write(head);
      socket.pipe(up).pipe(socket);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  closers.push(() => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }));
  return `http://127.0.0.1:${port}`;
}

// ---------------------------------------------------------------- scenario

const results = [];
async function step(name, fn, { planned = false } = {}) {
  const t0 = Date.now();
  try {
    const detail = await fn();
    results.push({ name, ok: true, planned, ms: Date.now() - t0, detail: detail ?? '' });
    log(`PASS ${name}${detail ? ` — ${detail}` : ''}`);
    return true;
  } catch (e) {
    // First line of the error, plus the locator Playwright was waiting for when it timed out.
    const lines = String(e?.message ?? e).split('\n');
    const waiting = lines.find((l) => /waiting for /.test(l));
    const detail = `${lines[0]}${waiting && waiting !== lines[0] ? ` (${waiting.trim()})` : ''}`;
    results.push({ name, ok: false, planned, ms: Date.now() - t0, detail });
    log(`FAIL ${name}${planned ? ' (needs a planned server route)' : ''} — ${detail}`);
    return false;
  }
}

async function shoot(page, name, { width = 1280, scheme = 'light' } = {}) {
  await page.setViewportSize({ width, height: width < 500 ? 844 : 900 });
  await page.emulateMedia({ colorScheme: scheme });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(150);
  const file = join(OUT, `${name}-${width}-${scheme}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function main() {
  if (!existsSync(join(DIST, 'index.html'))) throw new Error('web/dist/index.html is missing: run `npm run build` first');
  const password = randomBytes(12).toString('hex');
  const mock = await startMock();
  log('mock provider at', mock);
  const gwPort = await freePort();
  const gateway = await startGateway(gwPort, password, mock);
  log('gateway at', gateway);
  let base = gateway;
  let servedBy = 'gateway';
  if (SHIM) {
    base = await startFront(gwPort, password);
    servedBy = 'node front server WITH THE CONTRACT SHIM (E2E_SHIM=1): /ws and the playground route are simulated';
  } else if (!(await gatewayServesDashboard(gateway))) {
    base = await startFront(gwPort, password);
    servedBy = 'node front server (the gateway does not embed web/dist yet)';
  } else if (!(await gatewayServesThisBuild(gateway))) {
    base = await startFront(gwPort, password);
    servedBy = 'node front server (the gateway embeds an older build than web/dist; rebuild with cargo to test the embedded copy)';
  }
  log('dashboard served by', servedBy, 'at', base);

  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  closers.unshift(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const consoleErrors = [];
  const watch = (page, tag) => {
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push({ tag, text: msg.text(), url: msg.location()?.url ?? '', page: page.url() });
    });
    page.on('pageerror', (err) => consoleErrors.push({ tag, text: `uncaught: ${err.message}`, url: '' }));
    page.on('requestfailed', (req) => {
      if (!/ERR_ABORTED/.test(req.failure()?.errorText ?? '')) consoleErrors.push({ tag, text: `request failed: ${req.method()} ${req.failure()?.errorText}`, url: req.url() });
    });
    if (process.env.E2E_TRACE) page.on('response', (r) => log('  ', r.request().method(), r.status(), r.url()));
  };
  const page = await context.newPage();
  watch(page, 'main');
  page.setDefaultTimeout(15000);

  const nav = async (label) => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
    await page.waitForLoadState('networkidle').catch(() => {});
  };

  let gatewayKey = '';

  await step('login page renders and rejects a wrong password', async () => {
    await page.goto(`${base}/`);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('wrong-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong username or password' }).waitFor();
    await shoot(page, 'login', { width: 1280, scheme: 'light' });
    await shoot(page, 'login', { width: 390, scheme: 'dark' });
  });

  await step('log in', async () => {
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    await page.getByRole('heading', { name: 'Live' }).waitFor();
    return `as admin`;
  });

  await step('empty states on a fresh install', async () => {
    await nav('Provider keys');
    await page.getByText('No provider keys yet — add one to start routing').waitFor();
    const title = await page.getByRole('heading', { level: 2 }).first().textContent();
    if (!/of \d+ providers configured/.test(title ?? '')) throw new Error(`checklist heading missing (got "${title}")`);
    await page.getByText('no key needed').first().waitFor();
    await shoot(page, 'keys-empty', { width: 1280, scheme: 'light' });
    return title;
  });

  await step('add a custom-endpoint key pointing at the mock (models discovered)', async () => {
    await page.getByLabel('Platform').selectOption('custom');
    await page.getByLabel('Base URL').fill(`${mock}/drip40+chunks30/v1`);
    await page.getByLabel('Label (optional)').fill('Mock upstream');
    await page.getByRole('button', { name: 'Add key' }).click();
    await page.locator('[data-testid=key-row]').filter({ hasText: 'Mock upstream' }).waitFor();
    const notice = await page.locator('.note-ok').first().textContent();
    await page.getByRole('button', { name: /2 models/ }).click();
    await page.locator('.chip', { hasText: 'mock-model' }).waitFor();
    await page.getByText(/1 of \d+ providers configured|0 of \d+ providers configured/).first().waitFor().catch(() => {});
    return notice?.trim();
  });

  await step('edit a key label inline', async () => {
    await page.getByRole('button', { name: /Edit label: Mock upstream/ }).click();
    await page.getByRole('textbox', { name: 'label', exact: true }).fill('Mock (e2e)');
    await page.getByRole('textbox', { name: 'label', exact: true }).press('Enter');
    await page.getByRole('button', { name: /Edit label: Mock \(e2e\)/ }).waitFor();
  });

  await step('set an RPM cap (PATCH rpm_limit)', async () => {
    await page.getByRole('button', { name: /Edit requests-per-minute cap/ }).click();
    await page.getByRole('spinbutton', { name: 'requests-per-minute cap' }).fill('60');
    await page.getByRole('spinbutton', { name: 'requests-per-minute cap' }).press('Enter');
    const result = await Promise.race([
      page.getByRole('button', { name: /Edit requests-per-minute cap: 60/ }).waitFor().then(() => 'saved'),
      page.locator('.inline-error').waitFor().then(async () => `error shown: ${await page.locator('.inline-error').textContent()}`),
    ]);
    if (result !== 'saved') {
      await page.getByRole('button', { name: 'Cancel' }).first().click();
      throw new Error(result);
    }
    return result;
  }, { planned: true });

  await step('edit a key\'s model list', async () => {
    const row = page.locator('[data-testid=key-row]').filter({ hasText: 'Mock (e2e)' });
    await row.getByRole('button', { name: 'Edit list' }).click();
    const box = row.getByLabel('Models served by Mock (e2e)');
    await box.fill('mock-model\nmock-embed\nextra-model');
    await row.getByRole('button', { name: 'Save models' }).click();
    await row.locator('.chip', { hasText: 'extra-model' }).waitFor();
    await row.getByRole('button', { name: '3 models' }).waitFor();
    await row.getByRole('button', { name: 'Edit list' }).click();
    await row.getByLabel('Models served by Mock (e2e)').fill('mock-model, mock-embed');
    await row.getByRole('button', { name: 'Save models' }).click();
    await row.getByRole('button', { name: '2 models' }).waitFor();
  });

  await step('per-key stats panel', async () => {
    await page.getByRole('button', { name: 'Stats' }).first().click();
    const t = await Promise.race([
      page.locator('.stats-panel').waitFor().then(() => 'panel'),
      page.getByText('is not available in this server version').waitFor().then(() => 'unavailable'),
    ]);
    await page.getByRole('button', { name: 'Hide stats' }).click();
    if (t !== 'panel') throw new Error('GET /api/keys/{id}/stats is not available yet (the page shows the "not available" state)');
  }, { planned: true });

  await shoot(page, 'keys', { width: 1280, scheme: 'light' }).catch(() => {});
  await shoot(page, 'keys', { width: 390, scheme: 'dark' }).catch(() => {});
  await page.setViewportSize({ width: 1280, height: 900 });

  await step('mint a gateway key: shown once, with a copy button', async () => {
    await nav('Gateway keys');
    await page.getByText('No gateway keys yet').waitFor();
    await page.getByLabel('Name').fill('e2e');
    await page.getByRole('button', { name: 'Create key' }).click();
    const value = page.locator('[data-testid=minted-key-value]');
    await value.waitFor();
    gatewayKey = (await value.textContent())?.trim() ?? '';
    if (!gatewayKey.startsWith('freellmapi-')) throw new Error(`unexpected key "${gatewayKey.slice(0, 14)}…"`);
    await page.getByRole('button', { name: 'Copy key' }).waitFor();
    await page.locator('[data-testid=gateway-keys]').getByText('e2e').waitFor();
    await shoot(page, 'gateway-keys', { width: 1280, scheme: 'light' });
    await shoot(page, 'gateway-keys', { width: 390, scheme: 'dark' });
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.reload();
    await page.locator('[data-testid=gateway-keys]').waitFor();
    if (await page.locator('[data-testid=minted-key]').count()) throw new Error('the full key is still shown after a reload');
    const html = await page.content();
    if (html.includes(gatewayKey)) throw new Error('the full key is still in the page after a reload');
    return `${gatewayKey.slice(0, 14)}… shown once; base URL snippet present: ${html.includes(`${base}/v1`)}`;
  });

  await step('a refused request shows on its gateway key, with the reason', async () => {
    const r = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${gatewayKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
    });
    if (r.status !== 404) throw new Error(`expected 404 for an unknown model, got ${r.status}`);
    const refused = page.locator('[data-testid=gk-refused]');
    for (let i = 0; i < 20 && !(await refused.count()); i++) {
      await page.waitForTimeout(250);
      await page.getByRole('button', { name: 'Refresh usage' }).click();
    }
    const text = (await refused.textContent()) ?? '';
    if (!text.includes('1 refused in 24 h') || !text.includes('model_not_found')) throw new Error(`refusal line: "${text}"`);
    return text.trim();
  });

  await gatewayKeyLimitSteps({ step, page, nav, base, shoot });

  // Live dashboard in a second tab, open before any request is sent.
  const livePage = await context.newPage();
  watch(livePage, 'live');
  await livePage.goto(`${base}/`);
  await livePage.getByRole('heading', { name: 'Live' }).waitFor().catch(() => {});

  await step('live badge connects over /ws', async () => {
    await livePage.locator('[data-testid=live-badge]', { hasText: 'live: connected' }).waitFor({ timeout: 8000 });
  }, { planned: true });

  await step('playground: streamed answer rendered, with routing indicator', async () => {
    await nav('Playground');
    await page.locator('[data-models]:not([data-models=loading])').waitFor();
    const modelField = page.getByLabel('Model');
    const tag = await modelField.evaluate((el) => el.tagName);
    if (tag === 'SELECT') await modelField.selectOption('mock-model');
    else await modelField.fill('mock-model');
    await page.getByLabel('System prompt').fill('Answer briefly.');
    await page.getByLabel('Message').fill('Hello from the e2e test');
    await page.getByLabel('Message').press('Enter');
    const msg = page.locator('[data-testid=assistant-msg]').last();
    // While streaming, a Stop button replaces Send.
    const sawStop = await page.getByRole('button', { name: 'Stop' }).waitFor({ timeout: 5000 }).then(() => true, () => false);
    await page.waitForFunction(() => {
      const el = [...document.querySelectorAll('[data-testid=assistant-msg]')].pop();
      return el && !el.querySelector('.spinner');
    }, null, { timeout: 30000 });
    await shoot(page, 'playground', { width: 1280, scheme: 'light' });
    await shoot(page, 'playground', { width: 390, scheme: 'dark' });
    await page.setViewportSize({ width: 1280, height: 900 });
    const err = await msg.locator('.note-error').textContent().catch(() => null);
    if (await msg.locator('.note-error').count()) throw new Error(`the playground showed an error: ${err}`);
    const body = (await msg.locator('.msg-body').textContent()) ?? '';
    const route = (await msg.locator('[data-testid=route-line]').textContent()) ?? '';
    if (!body.trim()) throw new Error('no answer text');
    if (!/Answered by/.test(route)) throw new Error(`no routing indicator (route line: "${route}")`);
    return `${body.trim().length} chars; "${route.trim()}"; stop button shown while streaming: ${sawStop}`;
  }, { planned: true });

  await step('playground: Stop aborts a slow stream and keeps the partial answer', async () => {
    // A second key whose upstream drips slowly, serving only `slow-model`.
    const status = await page.evaluate(async (url) => {
      const r = await fetch('/api/keys', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ platform: 'custom', label: 'Slow mock', base_url: url, models: ['slow-model'] }),
      });
      return r.status;
    }, `${mock}/drip150+chunks200/v1`);
    if (status !== 201) throw new Error(`could not add the slow key (${status})`);
    await page.reload();
    await page.locator('[data-models]:not([data-models=loading])').waitFor();
    const modelField = page.getByLabel('Model');
    const tag = await modelField.evaluate((el) => el.tagName);
    if (tag === 'SELECT') await modelField.selectOption('slow-model');
    else await modelField.fill('slow-model');
    await page.getByLabel('Message').fill('Tell me a long story');
    await page.getByLabel('Message').press('Enter');
    const msg = page.locator('[data-testid=assistant-msg]').last();
    await msg.locator('.msg-body').waitFor({ timeout: 15000 });
    await page.getByRole('button', { name: 'Stop' }).click();
    await msg.getByText('stopped').waitFor({ timeout: 5000 });
    if (await msg.locator('.note-error').count()) throw new Error(`error after stop: ${await msg.locator('.note-error').textContent()}`);
    await page.getByRole('button', { name: 'Send' }).waitFor();
    const text = ((await msg.locator('.msg-body').textContent()) ?? '').trim();
    return `${text.split(/\s+/).length} words kept after Stop`;
  }, { planned: true });

  // Send a streamed /v1 request with the gateway key (works whatever the playground's state) and watch the live tab.
  await step('live dashboard: in-flight row with growing tokens, then finished', async () => {
    if (!gatewayKey) throw new Error('no gateway key');
    const req = fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${gatewayKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'mock-model', stream: true, messages: [{ role: 'user', content: 'live dashboard check' }] }),
    }).then(async (r) => {
      const text = await r.text();
      if (!r.ok) throw new Error(`/v1 answered ${r.status}: ${text.slice(0, 200)}`);
      return text;
    });
    const sawRow = await livePage.locator('[data-testid=inflight-table] tbody tr').first().waitFor({ timeout: 5000 }).then(() => true, () => false);
    if (sawRow) await shoot(livePage, 'live-inflight', { width: 1280, scheme: 'dark' }).catch(() => {});
    await req;
    await livePage.setViewportSize({ width: 1280, height: 900 });
    await livePage.locator('[data-testid=recent-list] li', { hasText: 'mock-model' }).first().waitFor({ timeout: 8000 });
    const requests = await livePage.locator('.kpi', { hasText: 'Requests' }).first().locator('.kpi-value').textContent();
    if (!sawRow) throw new Error('the request finished but no in-flight row was seen while it streamed');
    return `in-flight row seen; requests counter ${requests}`;
  }, { planned: true });

  await shoot(livePage, 'live', { width: 1280, scheme: 'light' }).catch(() => {});
  await shoot(livePage, 'live', { width: 390, scheme: 'dark' }).catch(() => {});
  await livePage.close();

  await step('analytics: history lists the requests; CSV export', async () => {
    await nav('Analytics');
    await page.locator('[data-testid=history-table]').getByText('mock-model').first().waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: /Export CSV/ }).click()]);
    const file = join(OUT, 'export.csv');
    await download.saveAs(file);
    const csv = readFileSync(file, 'utf8');
    if (!csv.startsWith('id,time,endpoint,requested_model')) throw new Error('unexpected CSV header');
    const rows = csv.trim().split('\r\n').length - 1;
    const fallback = await page.getByText('computed in the browser').count();
    await shoot(page, 'analytics', { width: 1280, scheme: 'light' });
    await shoot(page, 'analytics', { width: 390, scheme: 'dark' });
    await page.setViewportSize({ width: 1280, height: 900 });
    return `${rows} CSV rows; summary ${fallback ? 'computed client-side (no /api/analytics yet)' : 'from /api/analytics'}`;
  });

  await step('per-key stats after traffic', async () => {
    await nav('Provider keys');
    const row = page.locator('[data-testid=key-row]').filter({ hasText: 'Mock (e2e)' });
    await row.getByRole('button', { name: 'Stats' }).click();
    await row.locator('.stats-panel').waitFor();
    await row.locator('.stat-grid').waitFor({ timeout: 5000 });
    const requests = await row.locator('.stat-grid dd').first().textContent();
    await row.scrollIntoViewIfNeeded();
    await shoot(page, 'key-stats', { width: 1280, scheme: 'dark' });
    await shoot(page, 'key-stats', { width: 390, scheme: 'light' });
    await page.setViewportSize({ width: 1280, height: 900 });
    await nav('Analytics');
    return `${requests} requests on the key`;
  }, { planned: true });

  await step('analytics summary from GET /api/analytics', async () => {
    if (await page.getByText('computed in the browser').count()) throw new Error('GET /api/analytics is not available yet');
  }, { planned: true });

  for (const [label, what, heading] of [
    ['Profiles', 'AI profiles', 'Profiles'],
    ['Users', 'User management', 'Users'],
    ['Settings', 'Server settings', 'Settings'],
  ]) {
    await step(`${label} page renders (or says "not available")`, async () => {
      await nav(label);
      await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
      const unavailable = await page.getByText(`${what} is not available in this server version`).count();
      await shoot(page, label.toLowerCase(), { width: 1280, scheme: 'light' });
      await shoot(page, label.toLowerCase(), { width: 390, scheme: 'dark' });
      await page.setViewportSize({ width: 1280, height: 900 });
      return unavailable ? 'shows the "not available in this server version" state' : 'backed by the server';
    });
  }

  /** Waits until the page shows either `ready` or its "not available" state; true when ready. */
  const available = (what, ready) =>
    Promise.race([
      ready.waitFor().then(() => true),
      page.getByText(`${what} is not available in this server version`).waitFor().then(() => false),
    ]);

  await step('profiles: create, edit and delete a profile', async () => {
    await nav('Profiles');
    await page.getByRole('heading', { name: 'Profiles', level: 1 }).waitFor();
    if (!(await available('AI profiles', page.getByText('No profiles yet').or(page.locator('.profile-row').first())))) throw new Error('GET /api/profiles is not available yet');
    await page.getByRole('button', { name: 'New profile' }).click();
    await page.getByLabel('Name').fill('e2e-profile');
    await page.getByLabel(/Round-robin/).check();
    // Submitting without models is refused client-side with a message.
    await page.getByRole('button', { name: 'Create profile' }).click();
    await page.getByRole('alert').filter({ hasText: 'at least one model' }).waitFor();
    await page.getByLabel('Or type a model id').fill('mock-model');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await page.getByRole('button', { name: 'Create profile' }).click();
    const row = page.locator('.profile-row', { hasText: 'e2e-profile' });
    await row.getByText('Round-robin · 1 model').waitFor();
    await row.getByRole('button', { name: 'Edit' }).click();
    await page.getByLabel(/Least latency/).check();
    await page.getByRole('button', { name: 'Save profile' }).click();
    await row.getByText('Least latency · 1 model').waitFor();
    await shoot(page, 'profiles-filled', { width: 1280, scheme: 'light' });
    await page.setViewportSize({ width: 1280, height: 900 });
    await row.getByRole('button', { name: 'Delete' }).click();
    await row.getByRole('button', { name: 'Delete e2e-profile' }).click();
    await row.waitFor({ state: 'detached' });
  }, { planned: true });

  // ---- Proxies page. Every proxy points at a closed port on 127.0.0.1, so nothing leaves this machine (the mock
  // upstream is plain HTTP on loopback, which never goes through a proxy anyway).
  const closedPorts = [await freePort(), await freePort(), await freePort()];
  const rowOf = (label) => page.locator('[data-testid=proxy-row]').filter({ has: page.getByRole('button', { name: `Edit label: ${label}`, exact: true }) });

  await step('proxies: warning shown; add a proxy at a closed port; its test says it fails, in words', async () => {
    await nav('Proxies');
    await page.getByRole('heading', { name: 'Proxies', level: 1 }).waitFor();
    if (!(await available('The outbound proxy pool', page.getByText('No proxies yet').or(page.locator('[data-testid=proxy-row]').first())))) throw new Error('GET /api/proxies is not available');
    const warning = (await page.locator('[data-testid=proxy-warning]').textContent()) ?? '';
    if (!/which provider you call/.test(warning) || !/read and change anything unencrypted/.test(warning)) throw new Error(`warning text incomplete: "${warning.slice(0, 120)}"`);
    await page.getByLabel('Address', { exact: true }).fill(`127.0.0.1:${closedPorts[0]}`);
    await page.getByLabel('Username (optional)', { exact: true }).fill('e2e-user');
    await page.getByLabel('Password (optional)', { exact: true }).fill('e2e-secret');
    await page.getByLabel('Label (optional)', { exact: true }).fill('closed-port');
    await page.getByLabel('Country (optional)', { exact: true }).fill('fr');
    await page.getByRole('button', { name: 'Add proxy' }).click();
    const row = rowOf('closed-port');
    await row.waitFor();
    const rowText = (await row.textContent()) ?? '';
    if (rowText.includes('e2e-secret')) throw new Error('the password is shown in the list');
    if (!rowText.includes('****')) throw new Error('credentials are not shown masked');
    await row.getByRole('button', { name: 'Test closed-port' }).click();
    const result = row.locator('[data-testid=proxy-test-result]');
    await result.waitFor({ timeout: 20000 });
    const text = ((await result.textContent()) ?? '').trim();
    if (!/Failing/.test(text)) throw new Error(`test result does not say it fails: "${text}"`);
    await row.locator('[data-testid=proxy-health]', { hasText: /failing/ }).waitFor({ timeout: 5000 });
    const health = ((await row.locator('[data-testid=proxy-health]').textContent()) ?? '').trim();
    return `"${text}"; health: "${health}"`;
  });

  await step('proxies: import two lines (a file read into the list, then sent as text)', async () => {
    const list = `# two test proxies\nsocks5://127.0.0.1:${closedPorts[1]} DE\nhttp://127.0.0.1:${closedPorts[2]}\n`;
    await page.getByLabel('Or read a file', { exact: true }).setInputFiles({ name: 'proxies.txt', mimeType: 'text/plain', buffer: Buffer.from(list) });
    await page.getByText('2 proxies to import').waitFor();
    const shown = await page.getByLabel('Proxy list', { exact: true }).inputValue();
    if (shown !== list) throw new Error('the file was not read into the list');
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    const res = page.locator('[data-testid=import-result]');
    await res.waitFor();
    const text = ((await res.textContent()) ?? '').trim();
    if (!/Added 2/.test(text)) throw new Error(`import result: "${text}"`);
    await page.locator('[data-testid=proxy-row]').nth(2).waitFor();
    const rows = await page.locator('[data-testid=proxy-row]').count();
    if (rows !== 3) throw new Error(`${rows} rows after the import, expected 3`);
    return `"${text}"; ${rows} rows`;
  });

  await step('proxies: bulk select all, test, then disable', async () => {
    await page.getByRole('group', { name: 'Bulk actions on the selected proxies' }).getByLabel('Select all').check();
    await page.getByText('3 selected').waitFor();
    const bar = page.getByRole('group', { name: 'Bulk actions on the selected proxies' });
    await bar.getByRole('button', { name: 'Test', exact: true }).click();
    const note = page.locator('[data-testid=bulk-note]');
    await note.filter({ hasText: 'Tested' }).waitFor({ timeout: 30000 });
    const tested = ((await note.textContent()) ?? '').trim();
    if (!/Tested 3: 0 working, 3 failing/.test(tested)) throw new Error(`bulk test said "${tested}"`);
    await bar.getByRole('button', { name: 'Disable', exact: true }).click();
    await note.filter({ hasText: 'Disabled 3' }).waitFor();
    for (const label of ['closed-port', `127.0.0.1:${closedPorts[1]}`, `127.0.0.1:${closedPorts[2]}`]) {
      await rowOf(label).getByRole('switch', { name: `Enable ${label}` }).waitFor();
    }
    await shoot(page, 'proxies', { width: 1280, scheme: 'light' });
    await shoot(page, 'proxies', { width: 1280, scheme: 'dark' });
    await shoot(page, 'proxies', { width: 390, scheme: 'light' });
    await shoot(page, 'proxies', { width: 390, scheme: 'dark' });
    await page.setViewportSize({ width: 1280, height: 900 });
    return `"${tested}"; all 3 disabled`;
  });

  await step('proxies: pool settings saved by the admin and read back', async () => {
    const form = page.locator('[data-testid=pool-settings]');
    await form.getByLabel(/Round-robin/).check();
    await form.getByLabel(/Direct fallback/).check();
    await form.getByRole('button', { name: 'Save settings' }).click();
    await form.getByText('Settings saved.').waitFor();
    const s = await page.evaluate(() => fetch('/api/proxies/settings', { credentials: 'same-origin' }).then((r) => r.json()));
    if (s.strategy !== 'round-robin' || s.direct_fallback !== true) throw new Error(`server has ${JSON.stringify(s)}`);
    await page.reload();
    await page.locator('[data-testid=pool-settings]').getByLabel(/Round-robin/).waitFor();
    if (!(await page.locator('[data-testid=pool-settings]').getByLabel(/Round-robin/).isChecked())) throw new Error('the saved strategy is not shown after a reload');
    // Back to the default so the rest of the run goes direct.
    await page.locator('[data-testid=pool-settings]').getByLabel(/^Off/).check();
    await page.locator('[data-testid=pool-settings]').getByLabel(/Direct fallback/).uncheck();
    await page.locator('[data-testid=pool-settings]').getByRole('button', { name: 'Save settings' }).click();
    await page.locator('[data-testid=pool-settings]').getByText('Settings saved.').waitFor();
    return 'round-robin + direct fallback saved, shown after reload, then reset to off';
  });

  await step('proxies: a non-admin is told in words that only an admin changes the pool settings', async () => {
    const made = await page.evaluate(async () => {
      const r = await fetch('/api/users', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ username: 'e2e-plain', password: 'e2e-plain-password', role: 'user' }),
      });
      return r.status;
    });
    if (made === 404) throw new Error('POST /api/users is not available yet: no second user to try with');
    if (made !== 200 && made !== 201) throw new Error(`could not create a plain user (${made})`);
    const ctx2 = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const p2 = await ctx2.newPage();
      p2.setDefaultTimeout(15000);
      await p2.goto(`${base}/proxies`);
      await p2.getByLabel('Username').fill('e2e-plain');
      await p2.getByLabel('Password').fill('e2e-plain-password');
      await p2.getByRole('button', { name: 'Log in' }).click();
      await p2.getByRole('heading', { name: 'Proxies', level: 1 }).waitFor();
      const form = p2.locator('[data-testid=pool-settings]');
      await form.getByRole('button', { name: 'Save settings' }).click();
      const alert = form.getByRole('alert');
      await alert.waitFor();
      const text = ((await alert.textContent()) ?? '').trim();
      if (!/admin/i.test(text)) throw new Error(`unexpected message "${text}"`);
      // The plain user has no proxies of their own: the admin's are not listed.
      if (await p2.locator('[data-testid=proxy-row]').count()) throw new Error("the admin's proxies are listed for another user");
      return `"${text}"`;
    } finally {
      await ctx2.close();
    }
  }, { planned: true });

  // ---- Routing inspector: a key whose upstream answers 429 with Retry-After: 30 cools down for 30 s.
  await step('routing inspector: a key cooling after the mock\'s 429ra30 shows as cooling', async () => {
    if (!gatewayKey) throw new Error('no gateway key');
    const status = await page.evaluate(async (url) => {
      const r = await fetch('/api/keys', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ platform: 'custom', label: 'Cooling mock', base_url: url, models: ['cool-model'] }),
      });
      return r.status;
    }, `${mock}/429ra30/v1`);
    if (status !== 201) throw new Error(`could not add the 429 key (${status})`);
    await nav('Provider keys');
    await page.getByRole('navigation', { name: 'Provider keys sections' }).getByRole('link', { name: 'Routing' }).click();
    await page.getByRole('heading', { name: 'Routing inspector' }).waitFor();
    await page.locator('#rt-model[data-loaded=yes]').waitFor();
    await page.getByLabel('Model, profile or auto').selectOption('cool-model');
    const cand = page.locator('[data-testid=routing-candidate]').filter({ hasText: 'Cooling mock' });
    await cand.and(page.locator('[data-state=ready]')).waitFor();
    // The request waits in the queue while the only candidate cools; it is aborted once the page has seen it.
    const ctrl = new AbortController();
    const req = fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      signal: ctrl.signal,
      headers: { Authorization: `Bearer ${gatewayKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'cool-model', messages: [{ role: 'user', content: 'cool down' }] }),
    }).then((r) => r.status, (e) => (e.name === 'AbortError' ? 'aborted' : String(e)));
    let how = 'refreshed by the key.status event';
    try {
      const seen = await cand.and(page.locator('[data-state=cooling]')).waitFor({ timeout: 8000 }).then(() => true, () => false);
      if (!seen) {
        how = 'after pressing Refresh (no key.status refresh within 8 s)';
        await page.getByRole('button', { name: 'Refresh' }).click();
        await cand.and(page.locator('[data-state=cooling]')).waitFor({ timeout: 5000 });
      }
    } finally {
      ctrl.abort();
    }
    const detail = ((await cand.locator('.cand-detail').textContent()) ?? '').trim();
    if (!/left/.test(detail)) throw new Error(`no time left shown ("${detail}")`);
    await shoot(page, 'routing', { width: 1280, scheme: 'light' });
    await shoot(page, 'routing', { width: 1280, scheme: 'dark' });
    await shoot(page, 'routing', { width: 390, scheme: 'light' });
    await shoot(page, 'routing', { width: 390, scheme: 'dark' });
    await page.setViewportSize({ width: 1280, height: 900 });
    return `cooling, ${detail} (${how}); request ${await req}`;
  });

  // ---- The key the mock answered 429 for: amber on the Keys page, and the request counted by analytics.
  await step('keys: the key that got a 429 turns amber; analytics counts the request', async () => {
    await nav('Provider keys');
    const row = page.locator('[data-testid=key-row]').filter({ hasText: 'Cooling mock' });
    await row.locator('.dot-amber').first().waitFor({ timeout: 10000 });
    const label = (await row.locator('.dot').first().getAttribute('aria-label')) ?? '';
    await shoot(page, 'keys-amber', { width: 1280, scheme: 'light' });
    await nav('Analytics');
    const history = page.locator('[data-testid=history-table]');
    // The request log is written in batches: reload until the row is there (bounded).
    let found = false;
    for (let i = 0; i < 10 && !found; i++) {
      found = (await history.getByText('cool-model').count()) > 0;
      if (!found) {
        await page.waitForTimeout(500);
        await nav('Provider keys');
        await nav('Analytics');
      }
    }
    if (!found) throw new Error('the request to cool-model is not in the analytics history');
    return `dot "${label}"; the request is in the history`;
  });

  await keyStateSteps({ step, page, nav, mock, shoot });

  await step('profiles: a failover profile over the mock models answers in the playground and is listed with its traffic', async () => {
    await nav('Profiles');
    if (!(await available('AI profiles', page.getByText('No profiles yet').or(page.locator('.profile-row').first())))) throw new Error('GET /api/profiles is not available');
    await page.getByRole('button', { name: 'New profile' }).click();
    await page.getByLabel('Name').fill('e2e-failover');
    await page.getByLabel(/Failover/).check();
    await page.getByLabel('Find a model').fill('mock');
    const picker = page.getByRole('list', { name: 'Available models' });
    await picker.getByRole('button', { name: 'mock-model' }).click();
    await page.getByLabel('Find a model').fill('slow');
    await picker.getByRole('button', { name: 'slow-model' }).click();
    await page.getByRole('button', { name: 'Create profile' }).click();
    const row = page.locator('.profile-row', { hasText: 'e2e-failover' });
    await row.getByText(/Failover · 2 models/).waitFor();
    await row.getByRole('button', { name: 'Try e2e-failover in the playground' }).click();
    await page.getByRole('heading', { name: 'Playground', level: 1 }).waitFor();
    await page.locator('[data-models]:not([data-models=loading])').waitFor();
    const selected = await page.getByLabel('Model').inputValue();
    if (selected !== 'e2e-failover') throw new Error(`the playground selected "${selected}"`);
    await page.getByLabel('Message').fill('Hello, profile');
    await page.getByLabel('Message').press('Enter');
    await page.waitForFunction(() => {
      const el = [...document.querySelectorAll('[data-testid=assistant-msg]')].pop();
      return el && !el.querySelector('.spinner');
    }, null, { timeout: 30000 });
    const msg = page.locator('[data-testid=assistant-msg]').last();
    if (await msg.locator('.note-error').count()) throw new Error(`the playground showed an error: ${await msg.locator('.note-error').textContent()}`);
    const route = ((await msg.locator('[data-testid=route-line]').textContent()) ?? '').trim();
    if (!/mock-model/.test(route)) throw new Error(`failover did not answer with the first member (route line: "${route}")`);
    await nav('Profiles');
    // The request log is written when the request ends: look a few times.
    let line = '';
    for (let i = 0; i < 6; i++) {
      await row.waitFor();
      line = ((await row.locator('.muted.small').first().textContent()) ?? '').trim();
      if (/[1-9]\d* requests?, 0 errors in 24 h/.test(line)) break;
      await sleep(1000);
      await page.reload();
    }
    if (!/[1-9]\d* requests?, 0 errors in 24 h/.test(line)) throw new Error(`the profile's 24 h counters do not show the request: "${line}"`);
    await shoot(page, 'profiles-real', { width: 1280, scheme: 'dark' });
    await shoot(page, 'profiles-real', { width: 390, scheme: 'light' });
    await page.setViewportSize({ width: 1280, height: 900 });
    return `"${route}"; listed as "${line}"`;
  });

  await step('routing inspector: the profile\'s members in failover order, with limit usage bars', async () => {
    await nav('Profiles');
    const row = page.locator('.profile-row', { hasText: 'e2e-failover' });
    await row.getByRole('link', { name: 'Routing of e2e-failover' }).click();
    await page.getByRole('heading', { name: 'Routing inspector' }).waitFor();
    const cands = page.locator('[data-testid=routing-candidate]');
    await cands.nth(1).waitFor();
    const states = await cands.evaluateAll((els) => els.map((e) => `${e.getAttribute('data-state')}:${e.querySelector('.mono')?.textContent}`));
    if (states[0] !== 'ready:mock-model') throw new Error(`first candidate is ${states[0]} (all: ${states.join(', ')})`);
    const summary = ((await page.locator('[data-testid=routing-summary]').textContent()) ?? '').trim();
    if (!/failover/.test(summary)) throw new Error(`strategy not shown as failover: "${summary}"`);
    // The e2e key has an RPM cap of 60 (set earlier): its usage is drawn as a bar.
    const meter = cands.first().getByRole('meter', { name: 'Requests / min' });
    const hasMeter = (await meter.count()) > 0;
    await shoot(page, 'routing-profile', { width: 1280, scheme: 'light' });
    await shoot(page, 'routing-profile', { width: 390, scheme: 'dark' });
    await page.setViewportSize({ width: 1280, height: 900 });
    if (!hasMeter) throw new Error('no "Requests / min" bar on the capped key');
    return `${states.join(', ')}; rpm bar ${await meter.getAttribute('aria-valuenow')}/${await meter.getAttribute('aria-valuemax')}`;
  });

  await step('users: add, disable and delete a user', async () => {
    await nav('Users');
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
    if (!(await available('User management', page.getByRole('columnheader', { name: 'Role' })))) throw new Error('GET /api/users is not available yet');
    await page.getByLabel('Username').fill('e2e-user');
    await page.getByLabel('Password', { exact: true }).fill('short');
    await page.getByRole('button', { name: 'Add user' }).click();
    // The browser's own validation (minlength) keeps the form from being sent.
    if (await page.locator('tr', { hasText: 'e2e-user' }).count()) throw new Error('a 5-character password was accepted');
    await page.getByLabel('Password', { exact: true }).fill('e2e-password-1');
    await page.getByRole('button', { name: 'Add user' }).click();
    const row = page.locator('tr', { hasText: 'e2e-user' });
    await row.waitFor();
    await row.getByRole('switch', { name: 'Disable e2e-user' }).click();
    await row.getByRole('switch', { name: 'Enable e2e-user' }).waitFor();
    await shoot(page, 'users-filled', { width: 390, scheme: 'dark' });
    await page.setViewportSize({ width: 1280, height: 900 });
    await row.getByRole('button', { name: 'Delete' }).click();
    await row.getByRole('button', { name: 'Delete e2e-user' }).click();
    await row.waitFor({ state: 'detached' });
  }, { planned: true });

  await step('settings: a wrong current password is reported in words', async () => {
    await nav('Settings');
    await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
    await page.waitForLoadState('networkidle').catch(() => {});
    await page.getByLabel('Current password').fill('not-the-password');
    await page.getByLabel('New password', { exact: true }).fill('another-password-1');
    await page.getByLabel('Repeat new password').fill('another-password-1');
    await page.getByRole('button', { name: 'Change password' }).click();
    const outcome = await Promise.race([
      page.getByText('Changing your password is not available in this server version').waitFor().then(() => 'unavailable'),
      page.locator('section', { has: page.locator('#password-title') }).getByRole('alert').waitFor().then(() => 'error shown'),
      page.getByText('Password changed.').waitFor().then(() => 'changed'),
    ]);
    if (outcome === 'unavailable') throw new Error('POST /api/auth/password is not available yet');
    if (outcome !== 'error shown') throw new Error(`a wrong current password was accepted (${outcome})`);
    return (await page.locator('section', { has: page.locator('#password-title') }).getByRole('alert').textContent())?.trim();
  }, { planned: true });

  await step('theme toggle persists in localStorage', async () => {
    await page.emulateMedia({ colorScheme: 'light' });
    await page.getByRole('button', { name: 'Switch to dark theme' }).click();
    const stored = await page.evaluate(() => localStorage.getItem('freellmapi.theme'));
    const attr = await page.evaluate(() => document.documentElement.getAttribute('data-theme'));
    if (stored !== 'dark' || attr !== 'dark') throw new Error(`stored=${stored} attr=${attr}`);
    await page.reload();
    const after = await page.evaluate(() => document.documentElement.getAttribute('data-theme'));
    if (after !== 'dark') throw new Error('theme lost on reload');
    await page.getByRole('button', { name: 'Switch to light theme' }).click();
  });

  await step('keyboard: skip link and focus ring', async () => {
    await page.goto(`${base}/keys`);
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    await page.keyboard.press('Tab');
    const first = await page.evaluate(() => document.activeElement?.textContent);
    if (first !== 'Skip to content') throw new Error(`first tab stop is "${first}"`);
    await page.keyboard.press('Tab');
    const shadow = await page.evaluate(() => getComputedStyle(document.activeElement).boxShadow);
    if (!shadow || shadow === 'none') throw new Error('no visible focus style');
  });

  await step('log out', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Log in' }).waitFor();
    const me = await page.evaluate(() => fetch('/api/auth/me', { credentials: 'same-origin' }).then((r) => r.status));
    if (me !== 401) throw new Error(`/api/auth/me answered ${me} after logout`);
  });

  await step('no unexpected console errors', async () => {
    // Until the server has the planned routes, the browser logs their failed loads (404, or 400 for the PATCH
    // fields rpm_limit/tpm_limit) and the refused /ws upgrade; 401 is the session probe before login.
    const planned = /\/api\/(models|analytics|profiles|users|settings|playground\/|auth\/password|keys\/[^/]+(\/stats.*)?$)/;
    const expected = (e) =>
      (/status of (400|404)/.test(e.text) && planned.test(e.url)) ||
      (/status of 401/.test(e.text) && /\/api\/auth\/(me|login)/.test(e.url)) ||
      // The settings step sends a wrong current password on purpose: the server refuses it with 403.
      (/status of 403/.test(e.text) && /\/api\/auth\/password$/.test(e.url)) ||
      /WebSocket connection to .*\/ws.* failed/.test(e.text);
    const unexpected = consoleErrors.filter((e) => !expected(e));
    writeFileSync(join(OUT, 'console.json'), JSON.stringify(consoleErrors, null, 2));
    if (unexpected.length) throw new Error(unexpected.map((e) => `${e.tag}: ${e.text} (${e.url})`).join(' | '));
    return `${consoleErrors.length} expected (planned routes / 401 before login / ws)`;
  });

  return servedBy;
}

let servedBy = '';
let fatal = null;
try {
  servedBy = await main();
} catch (e) {
  fatal = e;
  console.error('[e2e] fatal:', e?.stack ?? e);
} finally {
  await cleanup();
}

writeFileSync(join(OUT, 'results.json'), JSON.stringify({ servedBy, results, fatal: fatal ? String(fatal) : null }, null, 2));
console.log('\n[e2e] summary (dashboard served by %s)', servedBy || '?');
for (const r of results) console.log(`  ${r.ok ? 'PASS' : r.planned ? 'WAIT' : 'FAIL'}  ${r.name}${r.ok ? '' : ` — ${r.detail}`}`);
const failed = results.filter((r) => !r.ok && (STRICT || !r.planned));
const waiting = results.filter((r) => !r.ok && r.planned && !STRICT);
console.log(`[e2e] ${results.filter((r) => r.ok).length} passed, ${failed.length} failed, ${waiting.length} waiting on planned server routes`);
process.exit(fatal || failed.length ? 1 : 0);
