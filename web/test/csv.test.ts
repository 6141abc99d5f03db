import { describe, expect, it } from 'vitest';
import { csvField, toCsv } from '../src/lib/csv';

describe('csvField', () => {
  it('leaves plain values alone', () => {
    expect(csvField('abc')).toBe('abc');
    expect(csvField(42)).toBe('42');
    expect(csvField(-3.5)).toBe('-3.5');
    expect(csvField(true)).toBe('true');
    expect(csvField(null)).toBe('');
    expect(csvField(undefined)).toBe('');
    expect(csvField(NaN)).toBe('');
  });

  it('quotes commas, quotes, newlines and edge whitespace', () => {
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('line1\nline2')).toBe('"line1\nline2"');
    expect(csvField('cr\rlf')).toBe('"cr\rlf"');
    expect(csvField(' padded ')).toBe('" padded "');
  });

  it('neutralises spreadsheet formulas in text but not in numbers', () => {
    expect(csvField('=HYPERLINK("x")')).toBe('"\'=HYPERLINK(""x"")"');
    expect(csvField('+1')).toBe("'+1");
    expect(csvField('-1')).toBe("'-1");
    expect(csvField('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(csvField(-1)).toBe('-1');
  });
});

describe('toCsv', () => {
  it('writes a header and CRLF-terminated rows', () => {
    const rows = [
      { id: 'r1', model: 'llama, 70b', n: 3 },
      { id: 'r2', model: 'qwen "3"', n: 0 },
    ];
    const csv = toCsv(
      [
        { header: 'id', value: (r) => r.id },
        { header: 'model', value: (r) => r.model },
        { header: 'tokens', value: (r) => r.n },
      ],
      rows,
    );
    expect(csv).toBe('id,model,tokens\r\nr1,"llama, 70b",3\r\nr2,"qwen ""3""",0\r\n');
  });

  it('writes only the header for no rows', () => {
    expect(toCsv([{ header: 'a', value: () => 1 }], [])).toBe('a\r\n');
  });
});
