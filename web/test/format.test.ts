import { describe, expect, it } from 'vitest';
import {
  formatCompact,
  formatDuration,
  formatInt,
  formatPercent,
  formatRelative,
  formatUntil,
  toMs,
} from '../src/lib/format';

describe('numbers', () => {
  it('formats integers with separators', () => {
    expect(formatInt(1234567)).toBe('1,234,567');
    expect(formatInt(0)).toBe('0');
    expect(formatInt(undefined)).toBe('—');
    expect(formatInt(NaN)).toBe('—');
  });

  it('formats compact numbers', () => {
    expect(formatCompact(950)).toBe('950');
    expect(formatCompact(1234)).toBe('1.2k');
    expect(formatCompact(1000)).toBe('1k');
    expect(formatCompact(15300)).toBe('15k');
    expect(formatCompact(2_500_000)).toBe('2.5M');
    expect(formatCompact(999_999)).toBe('1M');
    expect(formatCompact(-4200)).toBe('-4.2k');
    expect(formatCompact(null)).toBe('—');
  });

  it('formats percentages', () => {
    expect(formatPercent(0.9876)).toBe('98.8%');
    expect(formatPercent(1)).toBe('100%');
    expect(formatPercent(0)).toBe('0%');
    expect(formatPercent(0.5)).toBe('50%');
    expect(formatPercent(1.7)).toBe('100%');
    expect(formatPercent(null)).toBe('—');
  });
});

describe('durations', () => {
  it('formats each scale', () => {
    expect(formatDuration(0)).toBe('0 ms');
    expect(formatDuration(849.6)).toBe('850 ms');
    expect(formatDuration(1200)).toBe('1.2 s');
    expect(formatDuration(2000)).toBe('2 s');
    expect(formatDuration(12_345)).toBe('12 s');
    expect(formatDuration(185_000)).toBe('3m 05s');
    expect(formatDuration(2 * 3600_000 + 3 * 60_000)).toBe('2h 03m');
    expect(formatDuration(28 * 3600_000)).toBe('1d 4h');
    expect(formatDuration(-5)).toBe('0 ms');
    expect(formatDuration(undefined)).toBe('—');
  });

  it('formats relative times', () => {
    const now = 1_700_000_000_000;
    expect(formatRelative(now - 1000, now)).toBe('just now');
    expect(formatRelative(now - 42_000, now)).toBe('42 s ago');
    expect(formatRelative(now - 5 * 60_000, now)).toBe('5 min ago');
    expect(formatRelative(now - 3 * 3600_000, now)).toBe('3 h ago');
    expect(formatRelative(now - 3 * 86400_000, now)).toBe('3 d ago');
    expect(formatRelative(null, now)).toBe('never');
    expect(formatUntil(now + 42_000, now)).toBe('in 42 s');
    expect(formatUntil(now - 1, now)).toBe('now');
  });

  it('normalises second and millisecond timestamps', () => {
    expect(toMs(1_700_000_000)).toBe(1_700_000_000_000);
    expect(toMs(1_700_000_000_000)).toBe(1_700_000_000_000);
    expect(toMs(null)).toBeNull();
  });
});
