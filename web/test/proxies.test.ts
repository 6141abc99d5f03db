import { describe, expect, it } from 'vitest';
import { buildProxyUrl, describeProbe, proxyErrorWords, maskProxyUrl, parseBypass, previewImport, proxyHealth } from '../src/lib/proxies';
import { mergeProfiles } from '../src/lib/catalog';
import { formatBytes } from '../src/lib/format';

const form = (address: string, over: Partial<{ scheme: 'http' | 'socks5'; username: string; password: string }> = {}) => ({
  scheme: over.scheme ?? 'http',
  address,
  username: over.username ?? '',
  password: over.password ?? '',
});

describe('buildProxyUrl', () => {
  it('joins the scheme and host:port', () => {
    expect(buildProxyUrl(form('127.0.0.1:8080'))).toEqual({ url: 'http://127.0.0.1:8080' });
    expect(buildProxyUrl(form('proxy.example:1080', { scheme: 'socks5' }))).toEqual({ url: 'socks5://proxy.example:1080' });
  });
  it('takes a whole URL, its scheme winning over the select', () => {
    expect(buildProxyUrl(form('socks5h://h:1080/'))).toEqual({ url: 'socks5h://h:1080' });
    expect(buildProxyUrl(form('ftp://h:21'))).toHaveProperty('error');
  });
  it('percent-encodes typed credentials, which replace those in the URL', () => {
    expect(buildProxyUrl(form('h:3128', { username: 'me', password: 'p@ss:w/rd' }))).toEqual({ url: 'http://me:p%40ss%3Aw%2Frd@h:3128' });
    expect(buildProxyUrl(form('http://a:b@h:3128'))).toEqual({ url: 'http://a:b@h:3128' });
    expect(buildProxyUrl(form('http://a:b@h:3128', { username: 'c', password: 'd' }))).toEqual({ url: 'http://c:d@h:3128' });
  });
  it('refuses missing ports, paths and bad ports in words', () => {
    expect(buildProxyUrl(form(''))).toEqual({ error: 'Enter the proxy address as host:port.' });
    expect(buildProxyUrl(form('example.com'))).toHaveProperty('error');
    expect(buildProxyUrl(form('h:8080/path'))).toHaveProperty('error');
    expect(buildProxyUrl(form('h:70000'))).toHaveProperty('error');
    expect(buildProxyUrl(form(':8080'))).toHaveProperty('error');
  });
});

describe('maskProxyUrl', () => {
  it('hides credentials', () => {
    expect(maskProxyUrl('http://user:secret@h:1')).toBe('http://****@h:1');
    expect(maskProxyUrl('socks5://h:1')).toBe('socks5://h:1');
  });
});

describe('previewImport', () => {
  it('counts entries and reports refused lines by number', () => {
    const p = previewImport('# list\nsocks5://1.2.3.4:1080 FR\n\n1.2.3.5:3128\nnot-a-proxy\nhttp://h:1 FRANCE\n');
    expect(p.entries).toBe(2);
    expect(p.problems.map((x) => x.line)).toEqual([5, 6]);
  });
});

describe('proxyHealth', () => {
  it('tells disabled, untested, healthy, failing and unhealthy apart', () => {
    expect(proxyHealth({ enabled: false, healthy: true })).toBe('disabled');
    expect(proxyHealth({ enabled: true, healthy: true, health: { consecutive_failures: 0, last_check_at: null } })).toBe('untested');
    expect(proxyHealth({ enabled: true, healthy: true, health: { consecutive_failures: 0, last_check_at: 5 } })).toBe('healthy');
    expect(proxyHealth({ enabled: true, healthy: true, health: { consecutive_failures: 1, last_check_at: 5 } })).toBe('failing');
    expect(proxyHealth({ enabled: true, healthy: false })).toBe('unhealthy');
  });
});

describe('describeProbe', () => {
  it('says what happened', () => {
    expect(describeProbe({ ok: true, latency_ms: 123.4 })).toBe('Working: answered in 123 ms.');
    expect(describeProbe({ ok: false, error: 'tcp connect error: Connection refused (os error 111)', latency_ms: 2 })).toBe(
      "Failing: connection refused: nothing answers at the proxy's address (after 2 ms).",
    );
    expect(describeProbe({ ok: false })).toBe('Failing: no answer.');
  });
});

describe('parseBypass', () => {
  it('splits on commas and spaces, lower-cases and dedups', () => {
    expect(parseBypass('Groq, google  groq')).toEqual(['groq', 'google']);
  });
});

describe('mergeProfiles', () => {
  it('adds profiles the model list lacks', () => {
    const list = mergeProfiles(
      [
        { id: 'auto', kind: 'auto', providers: [] },
        { id: 'm', kind: 'model', providers: ['custom'] },
      ],
      [
        { id: '1', name: 'fast', strategy: 'failover', models: ['m'] },
        { id: '2', name: 'm', strategy: 'failover', models: ['x'] },
      ],
    );
    expect(list.map((m) => `${m.kind}:${m.id}`)).toEqual(['auto:auto', 'model:m', 'profile:fast']);
  });
});

describe('formatBytes', () => {
  it('uses binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(20 * 1024 * 1024)).toBe('20 MB');
    expect(formatBytes(undefined)).toBe('—');
  });
});

describe('proxyErrorWords', () => {
  it('turns the client error chain into a few words', () => {
    expect(proxyErrorWords('client error (Connect): error connecting to socks proxy: SOCKS error: failed to create underlying connection')).toMatch(/^connection refused/);
    expect(proxyErrorWords('operation timed out')).toMatch(/^timed out/);
    expect(proxyErrorWords('unsuccessful tunnel (407 Proxy Authentication Required)')).toMatch(/407/);
    expect(proxyErrorWords('SOCKS error: general failure')).toBe('the SOCKS handshake failed');
    expect(proxyErrorWords('weird')).toBe('weird');
    expect(proxyErrorWords('x'.repeat(200))).toHaveLength(138);
  });
});
