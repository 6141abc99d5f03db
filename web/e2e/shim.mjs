// Contract shim for E2E_SHIM=1 runs: stands in for the planned server parts that the dashboard codes against
// (API-CONTRACT.md), so the playground and live pages can be exercised in a browser before the server has them.
// It is NOT a test of the server: runs with the shim say so in their summary.
//
// - `GET /ws`: a minimal WebSocket server (RFC 6455 text frames) sending `snapshot` on connect and on `resync`, and
//   `request.*` events for every chat completion that passes through the front server.
// - `POST /api/playground/chat/completions`: forwarded to the gateway's `/v1/chat/completions` with a gateway key
//   minted once through the admin API with the caller's session cookie.
// - `/api/profiles`, `/api/users`, `/api/settings`, `POST /api/auth/password`: in-memory stand-ins following the
//   contract, so their forms can be exercised.

import { createHash } from 'node:crypto';
import http from 'node:http';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function frame(text) {
  const payload = Buffer.from(text, 'utf8');
  const len = payload.length;
  let header;
  if (len < 126) header = Buffer.from([0x81, len]);
  else if (len < 65536) header = Buffer.from([0x81, 126, len >> 8, len & 255]);
  else {
    header = Buffer.alloc(10);
    header[0] = 0x81;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([header, payload]);
}

/** Parses complete client frames from `buf`; returns [{opcode, text}], rest. Client frames are always masked. */
function parseFrames(buf) {
  const out = [];
  let off = 0;
  while (buf.length - off >= 2) {
    const opcode = buf[off] & 0x0f;
    let len = buf[off + 1] & 0x7f;
    let p = off + 2;
    if (len === 126) {
      if (buf.length - p < 2) break;
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      if (buf.length - p < 8) break;
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    if (buf.length - p < 4 + len) break;
    const mask = buf.subarray(p, p + 4);
    const data = Buffer.from(buf.subarray(p + 4, p + 4 + len));
    for (let i = 0; i < data.length; i++) data[i] ^= mask[i & 3];
    out.push({ opcode, text: data.toString('utf8') });
    off = p + 4 + len;
  }
  return [out, buf.subarray(off)];
}

function gatewayJson(port, method, path, cookie, body) {
  return new Promise((res, rej) => {
    const data = body ? JSON.stringify(body) : undefined;
    const req = http.request(
      { host: '127.0.0.1', port, method, path, headers: { cookie: cookie ?? '', 'content-type': 'application/json', ...(data ? { 'content-length': Buffer.byteLength(data) } : {}) } },
      (r) => {
        let text = '';
        r.on('data', (d) => (text += d));
        r.on('end', () => {
          try {
            res({ status: r.statusCode, body: text ? JSON.parse(text) : null });
          } catch (e) {
            rej(e);
          }
        });
      },
    );
    req.on('error', rej);
    if (data) req.write(data);
    req.end();
  });
}

function sendJson(res, status, body) {
  if (body === undefined) return res.writeHead(status).end();
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function apiError(res, status, code, message) {
  sendJson(res, status, { error: { message, type: status === 404 ? 'not_found_error' : 'invalid_request_error', code } });
}

const STRATEGIES = ['failover', 'round-robin', 'least-latency'];

export function createShim(gatewayPort, { password } = {}) {
  const sockets = new Set();
  const profiles = [];
  const users = [];
  let seq = 0;
  const nextId = () => `shim${++seq}`;

  /** In-memory planned admin routes. Returns true when handled. */
  async function admin(req, res, path, body) {
    const me = await gatewayJson(gatewayPort, 'GET', '/api/auth/me', req.headers.cookie);
    if (me.status !== 200) return sendJson(res, me.status, me.body), true;
    const m = req.method;
    let json = {};
    try {
      json = body.length ? JSON.parse(body.toString('utf8')) : {};
    } catch {
      return apiError(res, 400, 'invalid_body', 'invalid request body: not JSON'), true;
    }
    let match;
    if (path === '/api/settings' && m === 'GET') {
      return sendJson(res, 200, { data: { version: 'shim', provider_timeout_ms: 120000, fallback_max_retries: 20, session_ttl_hours: 168 } }), true;
    }
    if (path === '/api/auth/password' && m === 'POST') {
      if (json.current_password !== password) return apiError(res, 400, 'wrong_password', 'the current password is wrong'), true;
      return sendJson(res, 204), true;
    }
    if (path === '/api/profiles') {
      if (m === 'GET') return sendJson(res, 200, { data: profiles }), true;
      if (m === 'POST') {
        const err = checkProfile(json);
        if (err) return apiError(res, 400, 'invalid_profile', err), true;
        if (profiles.some((p) => p.name === json.name)) return apiError(res, 409, 'duplicate_name', `a profile named ${json.name} already exists`), true;
        const p = { id: nextId(), name: json.name, strategy: json.strategy, models: json.models };
        profiles.push(p);
        return sendJson(res, 201, p), true;
      }
    }
    if ((match = /^\/api\/profiles\/([^/]+)$/.exec(path))) {
      const i = profiles.findIndex((p) => p.id === decodeURIComponent(match[1]));
      if (i < 0) return apiError(res, 404, 'not_found', 'profile not found'), true;
      if (m === 'DELETE') return profiles.splice(i, 1), sendJson(res, 204), true;
      if (m === 'PATCH') {
        const merged = { ...profiles[i], ...json };
        const err = checkProfile(merged);
        if (err) return apiError(res, 400, 'invalid_profile', err), true;
        profiles[i] = merged;
        return sendJson(res, 200, merged), true;
      }
    }
    if (path === '/api/users') {
      if (me.body.role !== 'admin') return apiError(res, 403, 'forbidden', 'admins only'), true;
      if (!users.length) users.push({ ...me.body, disabled: false });
      if (m === 'GET') return sendJson(res, 200, { data: users }), true;
      if (m === 'POST') {
        if (!json.username || (json.password ?? '').length < 8) return apiError(res, 400, 'invalid_user', 'a username and a password of at least 8 characters are required'), true;
        if (users.some((u) => u.username === json.username)) return apiError(res, 409, 'duplicate_username', `user ${json.username} already exists`), true;
        const u = { id: nextId(), username: json.username, role: json.role === 'admin' ? 'admin' : 'user', disabled: false, created_at: Date.now() };
        users.push(u);
        return sendJson(res, 201, u), true;
      }
    }
    if ((match = /^\/api\/users\/([^/]+)$/.exec(path))) {
      const i = users.findIndex((u) => u.id === decodeURIComponent(match[1]));
      if (i < 0) return apiError(res, 404, 'not_found', 'user not found'), true;
      if (m === 'DELETE') return users.splice(i, 1), sendJson(res, 204), true;
      if (m === 'PATCH') {
        if (typeof json.disabled === 'boolean') users[i] = { ...users[i], disabled: json.disabled };
        return sendJson(res, 200, users[i]), true;
      }
    }
    return false;
  }

  function checkProfile(p) {
    if (!p.name || !/^[A-Za-z0-9_.-]{1,64}$/.test(p.name)) return 'name: 1 to 64 letters, digits, -, _ or .';
    if (!STRATEGIES.includes(p.strategy)) return `strategy must be one of ${STRATEGIES.join(', ')}`;
    if (!Array.isArray(p.models) || p.models.length === 0) return 'a profile needs at least one model';
    return null;
  }
  const totals = { requests: 0, success: 0, errors: 0, tokens_in: 0, tokens_out: 0 };
  const inFlight = new Map();
  let gatewayKey = null;

  const broadcast = (msg) => {
    const f = frame(JSON.stringify(msg));
    for (const s of sockets) s.write(f);
  };

  async function snapshot(cookie) {
    const keys = await gatewayJson(gatewayPort, 'GET', '/api/keys', cookie).catch(() => ({ body: { data: [] } }));
    return {
      type: 'snapshot',
      in_flight: [...inFlight.values()],
      totals,
      keys: (keys.body?.data ?? []).map((k) => ({
        id: k.id,
        platform: k.platform,
        label: k.label,
        status: k.enabled ? (k.status === 'unknown' ? 'healthy' : k.status) : 'disabled',
        rpm_used: 0,
        rpm_limit: 60,
        tpm_used: 0,
        tpm_limit: null,
      })),
    };
  }

  function upgrade(req, socket) {
    const key = req.headers['sec-websocket-key'];
    if (!key) return socket.destroy();
    const accept = createHash('sha1').update(key + GUID).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    sockets.add(socket);
    const cookie = req.headers.cookie;
    snapshot(cookie).then((s) => socket.write(frame(JSON.stringify(s))));
    let buf = Buffer.alloc(0);
    socket.on('data', (d) => {
      let frames;
      [frames, buf] = parseFrames(Buffer.concat([buf, d]));
      for (const f of frames) {
        if (f.opcode === 8) socket.end(Buffer.from([0x88, 0]));
        else if (f.opcode === 1 && f.text.includes('resync')) snapshot(cookie).then((s) => socket.write(frame(JSON.stringify(s))));
      }
    });
    const drop = () => sockets.delete(socket);
    socket.on('close', drop);
    socket.on('error', drop);
  }

  /** Forwards a chat completion to /v1 and reports it on the WebSocket. */
  async function chat(req, res, body, authorization) {
    let parsed = {};
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      /* the gateway will answer the error */
    }
    const reqId = req.headers['x-request-id'] || `shim-${Math.random().toString(16).slice(2, 10)}`;
    const started = Date.now();
    const inputTokens = Math.ceil(JSON.stringify(parsed.messages ?? '').length / 4);
    const row = { req_id: reqId, requested_model: parsed.model ?? '', stream: !!parsed.stream, started_at_ms: started, input_tokens: inputTokens, output_tokens: 0 };
    inFlight.set(reqId, row);
    broadcast({ type: 'request.started', req_id: reqId, requested_model: row.requested_model, stream: row.stream, input_tokens: inputTokens, ts_ms: started });
    const headers = { ...req.headers, authorization, 'x-request-id': reqId, 'content-length': Buffer.byteLength(body) };
    delete headers.cookie;
    delete headers.host;
    const up = http.request({ host: '127.0.0.1', port: gatewayPort, method: 'POST', path: '/v1/chat/completions', headers }, (ur) => {
      const provider = ur.headers['x-freellmapi-provider'];
      const model = ur.headers['x-freellmapi-model'];
      const keyId = ur.headers['x-freellmapi-provider-key'];
      if (provider) {
        Object.assign(row, { provider, model, key_id: keyId, attempt: 1 });
        broadcast({ type: 'request.attempt', req_id: reqId, attempt: 1, provider, model, key_id: keyId, proxy: null, ts_ms: Date.now() });
      }
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      let last = 0;
      ur.on('data', (d) => {
        row.output_tokens += (d.toString('utf8').match(/"content":"[^"]/g) ?? []).length;
        if (Date.now() - last > 200) {
          last = Date.now();
          broadcast({ type: 'request.tokens', req_id: reqId, output_tokens: row.output_tokens });
        }
        res.write(d);
      });
      ur.on('end', () => {
        res.end();
        inFlight.delete(reqId);
        const ok = (ur.statusCode ?? 500) < 400;
        totals.requests++;
        totals[ok ? 'success' : 'errors']++;
        totals.tokens_in += inputTokens;
        totals.tokens_out += row.output_tokens;
        broadcast({ type: 'request.finished', req_id: reqId, status: ok ? 'success' : 'error', provider, model, latency_ms: Date.now() - started, input_tokens: inputTokens, output_tokens: row.output_tokens, attempts: Number(ur.headers['x-freellmapi-attempts'] ?? 1) });
        if (keyId) broadcast({ type: 'ratelimit.gauge', key_id: keyId, rpm_used: totals.requests, rpm_limit: 60, tpm_used: totals.tokens_in + totals.tokens_out, tpm_limit: null });
      });
    });
    up.on('error', () => res.writeHead(502).end());
    res.on('close', () => {
      if (!res.writableFinished) {
        up.destroy();
        if (inFlight.delete(reqId)) broadcast({ type: 'request.finished', req_id: reqId, status: 'canceled', latency_ms: Date.now() - started, input_tokens: inputTokens, output_tokens: row.output_tokens, attempts: 1 });
      }
    });
    up.end(body);
  }

  /** Returns true when the shim handled the request. */
  function http_(req, res) {
    const path = new URL(req.url, 'http://x').pathname;
    const isPlayground = req.method === 'POST' && path === '/api/playground/chat/completions';
    const isV1 = req.method === 'POST' && path === '/v1/chat/completions';
    const isAdmin = /^\/api\/(profiles|users|settings)(\/|$)|^\/api\/auth\/password$/.test(path);
    if (!isPlayground && !isV1 && !isAdmin) return false;
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      if (isAdmin) {
        if (!(await admin(req, res, path, body))) apiError(res, 404, 'not_found', 'API route not found');
        return;
      }
      if (isV1) return chat(req, res, body, req.headers.authorization ?? '');
      if (!gatewayKey) {
        const r = await gatewayJson(gatewayPort, 'POST', '/api/gateway-keys', req.headers.cookie, { label: 'e2e shim' });
        if (r.status !== 201) {
          res.writeHead(r.status ?? 502, { 'content-type': 'application/json' }).end(JSON.stringify(r.body));
          return;
        }
        gatewayKey = r.body.key;
      }
      return chat(req, res, body, `Bearer ${gatewayKey}`);
    });
    return true;
  }

  return { http: http_, upgrade };
}
