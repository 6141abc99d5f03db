import { describe, expect, it } from 'vitest';
import { ApiError, errorFromResponse, listOf } from '../src/lib/api';

describe('errorFromResponse', () => {
  it('reads the OpenAI-shaped error message', async () => {
    const res = new Response(JSON.stringify({ error: { message: 'wrong username or password', type: 'authentication_error', code: 'invalid_credentials' } }), { status: 401 });
    const e = await errorFromResponse(res);
    expect(e.message).toBe('wrong username or password');
    expect(e.status).toBe(401);
    expect(e.code).toBe('invalid_credentials');
    expect(e.unavailable).toBe(false);
  });

  it('falls back to the status line for non-JSON bodies', async () => {
    const e = await errorFromResponse(new Response('<html>bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }));
    expect(e.message).toBe('The server answered HTTP 502 Bad Gateway');
    const e2 = await errorFromResponse(new Response('upstream down', { status: 503 }));
    expect(e2.message).toBe('The server answered HTTP 503: upstream down');
  });
});

describe('ApiError.unavailable', () => {
  it('recognises unknown API routes but not missing objects', () => {
    expect(new ApiError('API route not found', 404, 'not_found').unavailable).toBe(true);
    expect(new ApiError('no such route', 404, 'unknown_endpoint').unavailable).toBe(true);
    expect(new ApiError('provider key not found', 404, 'not_found').unavailable).toBe(false);
    expect(new ApiError('API route not found', 400, 'not_found').unavailable).toBe(false);
  });
});

describe('listOf', () => {
  it('accepts {data:[...]} and bare arrays', () => {
    expect(listOf<number>({ data: [1, 2] })).toEqual([1, 2]);
    expect(listOf<number>([3])).toEqual([3]);
    expect(listOf<number>({})).toEqual([]);
    expect(listOf<number>(null)).toEqual([]);
  });
});
