import { describe, expect, it } from 'vitest';
import type { ModelEntry } from '../src/lib/api';
import { allowListBody, allowListChoices, allowListSummary, filterChoices, limitText, MAX_LIMIT, parseLimitInput } from '../src/lib/gatewaykeys';

describe('limits', () => {
  it('reads an empty field (or 0) as no limit and a whole number as the limit', () => {
    expect(parseLimitInput('')).toBeNull();
    expect(parseLimitInput('  ')).toBeNull();
    expect(parseLimitInput('0')).toBeNull();
    expect(parseLimitInput('60')).toBe(60);
    expect(parseLimitInput('1,000,000')).toBe(1_000_000);
    expect(parseLimitInput(String(MAX_LIMIT))).toBe(MAX_LIMIT);
  });

  it('refuses anything else in words', () => {
    for (const bad of ['-1', '1.5', 'ten', '1e3']) expect(() => parseLimitInput(bad)).toThrow(/whole number/);
    expect(() => parseLimitInput(String(MAX_LIMIT + 1))).toThrow(/At most/);
  });

  it('shows a limit or "no limit"', () => {
    expect(limitText(null, 'rpm')).toBe('no limit');
    expect(limitText(0, 'rpm')).toBe('no limit');
    expect(limitText(1500, 'rpm')).toBe('1,500 rpm');
  });
});

describe('allow-list', () => {
  const catalog: ModelEntry[] = [
    { id: 'auto', kind: 'auto', providers: [] },
    { id: 'zeta', kind: 'model', providers: ['groq'] },
    { id: 'alpha', kind: 'model', providers: ['custom'] },
    { id: 'coding', kind: 'profile', providers: [] },
  ];

  it('summarises null and [] as all models', () => {
    expect(allowListSummary(null)).toBe('all models');
    expect(allowListSummary([])).toBe('all models');
    expect(allowListSummary(['a'])).toBe('1 model');
    expect(allowListSummary(['a', 'b'])).toBe('2 models');
  });

  it('offers profiles then models, never auto, and keeps listed ids the user no longer has first', () => {
    expect(allowListChoices(catalog, ['gone', 'alpha'])).toEqual([
      { id: 'gone', kind: 'missing' },
      { id: 'coding', kind: 'profile' },
      { id: 'alpha', kind: 'model' },
      { id: 'zeta', kind: 'model' },
    ]);
    expect(allowListChoices([], null)).toEqual([]);
  });

  it('offers model groups between profiles and models', () => {
    const withGroup: ModelEntry[] = [...catalog, { id: 'llama-3.3-70b', kind: 'group', providers: ['groq', 'nvidia'] }];
    expect(allowListChoices(withGroup, null).map((c) => `${c.kind}:${c.id}`)).toEqual([
      'profile:coding',
      'group:llama-3.3-70b',
      'model:alpha',
      'model:zeta',
    ]);
  });

  it('filters by substring but keeps what is ticked', () => {
    const choices = allowListChoices(catalog, null);
    expect(filterChoices(choices, 'ALP', []).map((c) => c.id)).toEqual(['alpha']);
    expect(filterChoices(choices, 'alp', ['zeta']).map((c) => c.id)).toEqual(['alpha', 'zeta']);
    expect(filterChoices(choices, '', [])).toHaveLength(3);
  });

  it('sends null for all models, the ticked ids otherwise, and refuses an empty "only"', () => {
    expect(allowListBody('all', ['a'])).toBeNull();
    expect(allowListBody('only', [' a ', 'b', 'a', ''])).toEqual(['a', 'b']);
    expect(() => allowListBody('only', [])).toThrow(/at least one model/);
  });
});
