// Pure helpers of the Proxies page (unit-tested in test/proxies.test.ts): building a proxy URL from the form,
// checking an import list before it is sent, and describing health and test results in words.

export const PROXY_SCHEMES = ['http', 'https', 'socks5', 'socks5h', 'socks4'] as const;
export type ProxyScheme = (typeof PROXY_SCHEMES)[number];

export const POOL_STRATEGIES: { id: string; label: string; hint: string }[] = [
  { id: 'none', label: 'Off', hint: 'The pool is not used: calls go direct (or through PROXY_URL when set).' },
  { id: 'random', label: 'Random', hint: 'Each key gets a random proxy for an hour.' },
  { id: 'round-robin', label: 'Round-robin', hint: 'Keys take the proxies in turn.' },
  { id: 'least-latency', label: 'Least latency', hint: 'Keys get the healthy proxy that answers fastest.' },
];

export interface ProxyForm {
  scheme: ProxyScheme;
  /** `host:port`, or a whole URL (its scheme and credentials then win over the other fields). */
  address: string;
  username: string;
  password: string;
}

/**
 * The URL to send as `url`, or an error message for people. Credentials are percent-encoded so that `@`, `:` or `/`
 * in a password survive; the server keeps them as written.
 */
export function buildProxyUrl(f: ProxyForm): { url: string } | { error: string } {
  let address = f.address.trim();
  if (!address) return { error: 'Enter the proxy address as host:port.' };
  let scheme: string = f.scheme;
  let creds = '';
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(.*)$/.exec(address);
  if (m) {
    scheme = m[1].toLowerCase();
    address = m[2];
    if (!(PROXY_SCHEMES as readonly string[]).includes(scheme)) {
      return { error: `Unsupported proxy scheme "${scheme}": use ${PROXY_SCHEMES.join(', ')}.` };
    }
  }
  const at = address.lastIndexOf('@');
  if (at >= 0) {
    creds = address.slice(0, at);
    address = address.slice(at + 1);
  }
  address = address.replace(/\/+$/, '');
  if (/[/?#\s]/.test(address)) return { error: 'The address must be host:port, without a path, query or spaces.' };
  const port = /:(\d+)$/.exec(address);
  if (!port) return { error: 'Add the port: host:port (e.g. 127.0.0.1:8080).' };
  const portNum = Number(port[1]);
  if (portNum < 1 || portNum > 65535) return { error: 'The port must be between 1 and 65535.' };
  if (address.length === port[0].length) return { error: 'Enter the host before the port.' };
  const user = f.username.trim();
  if (user || f.password) creds = `${encodeURIComponent(user)}:${encodeURIComponent(f.password)}`;
  return { url: `${scheme}://${creds ? `${creds}@` : ''}${address}` };
}

/** A URL for display: credentials replaced by `****` (also for URLs the server already masked). */
export function maskProxyUrl(url: string): string {
  return url.replace(/^([a-z0-9+.-]+:\/\/)[^@/]*@/i, '$1****@');
}

export interface ImportPreview {
  /** Lines that look like proxies (URL and optional country). */
  entries: number;
  /** 1-based numbers of lines that will be refused, with the reason. */
  problems: { line: number; error: string }[];
}

/** What the server will make of an import list (`url [country]` per line; blank lines and `#` comments skipped). */
export function previewImport(text: string): ImportPreview {
  const problems: ImportPreview['problems'] = [];
  let entries = 0;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const [url, country] = line.split(/\s+/);
    const built = buildProxyUrl({ scheme: 'http', address: url, username: '', password: '' });
    if ('error' in built) problems.push({ line: i + 1, error: built.error });
    else if (country && !/^[a-zA-Z]{2}$/.test(country)) problems.push({ line: i + 1, error: 'The country must be a two-letter code.' });
    else entries++;
  });
  return { entries, problems };
}

export interface ProxyHealthLike {
  enabled: boolean;
  healthy?: boolean | null;
  health?: { consecutive_failures?: number; last_check_at?: number | null } | null;
  stats?: { requests?: number; last_error?: string | null } | null;
}

export type HealthWord = 'disabled' | 'healthy' | 'failing' | 'unhealthy' | 'untested';

/**
 * One word for a proxy's state. `unhealthy`: out of rotation (3 failed probes, or a failed request); `failing`: its
 * last checks failed but it is still used; `untested`: never probed nor used since the gateway started.
 */
export function proxyHealth(p: ProxyHealthLike): HealthWord {
  if (!p.enabled) return 'disabled';
  if (p.healthy === false) return 'unhealthy';
  if ((p.health?.consecutive_failures ?? 0) > 0) return 'failing';
  const checked = (p.health?.last_check_at ?? 0) > 0 || (p.stats?.requests ?? 0) > 0;
  return checked ? 'healthy' : 'untested';
}

export const HEALTH_TEXT: Record<HealthWord, string> = {
  disabled: 'disabled',
  healthy: 'working',
  failing: 'failing checks',
  unhealthy: 'failing: out of rotation',
  untested: 'not tested yet',
};

export interface ProbeResult {
  id?: string;
  ok: boolean;
  latency_ms?: number | null;
  error?: string | null;
  healthy?: boolean;
}

/**
 * A proxy error in a few words. The server's messages are the HTTP client's chain ("error sending request for url
 * (…): client error (Connect): tcp connect error: Connection refused (os error 111)"); the full text stays available
 * as a tooltip.
 */
export function proxyErrorWords(message: string | null | undefined): string {
  const m = (message ?? '').trim();
  if (!m) return 'no answer';
  if (/connection refused|failed to create underlying connection/i.test(m)) return "connection refused: nothing answers at the proxy's address";
  if (/timed? ?out|deadline/i.test(m)) return 'timed out: the proxy did not answer in time';
  if (/\b407\b|proxy auth/i.test(m)) return 'the proxy refused the credentials (407)';
  if (/dns|resolve|lookup|name or service not known/i.test(m)) return "the proxy's host name does not resolve";
  if (/socks/i.test(m)) return 'the SOCKS handshake failed';
  if (/tunnel|connect.*(403|502|503)/i.test(m)) return 'the proxy refused to open a tunnel';
  if (/reset|broken pipe|unexpected eof|closed/i.test(m)) return 'the proxy closed the connection';
  return m.length > 140 ? `${m.slice(0, 137)}…` : m;
}

/** A test result as a sentence. */
export function describeProbe(r: ProbeResult): string {
  if (r.ok) return `Working: answered in ${Math.round(r.latency_ms ?? 0)} ms.`;
  return `Failing: ${proxyErrorWords(r.error)}${r.latency_ms ? ` (after ${Math.round(r.latency_ms)} ms)` : ''}.`;
}

/** Bypass list typed by people ("groq, google") → platform ids. */
export function parseBypass(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).map((s) => s.trim().toLowerCase()).filter(Boolean))];
}
