import { describe, expect, it } from 'vitest';
import { renderMarkdown as md, safeUrl, inline } from '../src/lib/markdown';

describe('escaping', () => {
  it('escapes raw HTML everywhere', () => {
    expect(md('<script>alert(1)</script>')).toBe('<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>');
    expect(md('<img src=x onerror="alert(1)">')).not.toContain('<img');
    expect(md('**<b>x</b>**')).toBe('<p><strong>&lt;b&gt;x&lt;/b&gt;</strong></p>');
    expect(md('`<i>`')).toBe('<p><code>&lt;i&gt;</code></p>');
    expect(md('```html\n<div a="b">&amp;</div>\n```')).toBe(
      '<pre><code class="language-html">&lt;div a=&quot;b&quot;&gt;&amp;amp;&lt;/div&gt;</code></pre>',
    );
    expect(md("- <a href='x'>")).toBe('<ul><li>&lt;a href=&#39;x&#39;&gt;</li></ul>');
    expect(md('# <h1>')).toBe('<h1>&lt;h1&gt;</h1>');
  });

  it('refuses script URLs in links and keeps the text escaped', () => {
    expect(md('[click](javascript:alert(1))')).toBe('<p>click</p>');
    expect(md('[x](JaVaScRiPt:alert(1))')).not.toContain('href');
    expect(md('[x](data:text/html;base64,PHNjcmlwdD4=)')).not.toContain('href');
    expect(md('[x](vbscript:msgbox)')).not.toContain('href');
    expect(safeUrl('java\tscript:alert(1)')).toBeNull();
    expect(safeUrl('https://example.com/a?b=1')).toBe('https://example.com/a?b=1');
    expect(safeUrl('mailto:a@b.c')).toBe('mailto:a@b.c');
    expect(safeUrl('//evil.example')).toBeNull();
  });

  it('escapes quotes inside link URLs so attributes cannot be broken out of', () => {
    const html = md('[x](https://e.com/"onmouseover="alert(1))');
    expect(html).not.toMatch(/href="[^"]*"onmouseover/);
    expect(inline('[a](https://e.com/?q="x")')).not.toContain('"x"');
  });

  it('sanitises the code fence language', () => {
    expect(md('```"><script>\nx\n```')).not.toContain('<script>');
  });
});

describe('blocks', () => {
  it('renders paragraphs and line breaks', () => {
    expect(md('a\nb\n\nc')).toBe('<p>a<br>b</p><p>c</p>');
  });

  it('renders fenced code, keeping markdown inside literal', () => {
    expect(md('```js\nconst a = **b**;\n```\nafter')).toBe(
      '<pre><code class="language-js">const a = **b**;</code></pre><p>after</p>',
    );
    expect(md('~~~\nx\n~~~')).toBe('<pre><code>x</code></pre>');
  });

  it('renders an unclosed fence (stream in progress) as code to the end', () => {
    expect(md('text\n```py\nprint(1)')).toBe('<p>text</p><pre><code class="language-py">print(1)</code></pre>');
  });

  it('renders unordered, ordered and nested lists', () => {
    expect(md('- a\n- b')).toBe('<ul><li>a</li><li>b</li></ul>');
    expect(md('1. one\n2. two')).toBe('<ol><li>one</li><li>two</li></ol>');
    expect(md('3. three\n4. four')).toBe('<ol start="3"><li>three</li><li>four</li></ol>');
    expect(md('- a\n  - b\n- c')).toBe('<ul><li><p>a</p><ul><li>b</li></ul></li><li>c</li></ul>');
  });

  it('renders headings, quotes and rules', () => {
    expect(md('## Title')).toBe('<h2>Title</h2>');
    expect(md('> quoted *text*')).toBe('<blockquote><p>quoted <em>text</em></p></blockquote>');
    expect(md('a\n\n---\n\nb')).toBe('<p>a</p><hr><p>b</p>');
  });
});

describe('inline', () => {
  it('renders emphasis and code', () => {
    expect(inline('**bold** and *it* and _it_ and __b__')).toBe(
      '<strong>bold</strong> and <em>it</em> and <em>it</em> and <strong>b</strong>',
    );
    expect(inline('`a*b*c`')).toBe('<code>a*b*c</code>');
    expect(inline('~~gone~~')).toBe('<del>gone</del>');
  });

  it('leaves intraword underscores and lone stars alone', () => {
    expect(inline('snake_case_name')).toBe('snake_case_name');
    expect(inline('2 * 3 * 4')).toBe('2 * 3 * 4');
  });

  it('renders links and bare URLs', () => {
    expect(inline('[docs](https://example.com)')).toBe(
      '<a href="https://example.com" target="_blank" rel="noopener noreferrer">docs</a>',
    );
    expect(inline('see https://example.com/x.')).toBe(
      'see <a href="https://example.com/x" target="_blank" rel="noopener noreferrer">https://example.com/x</a>.',
    );
  });

  it('honours backslash escapes', () => {
    expect(inline('\\*not italic\\*')).toBe('*not italic*');
  });
});

describe('performance', () => {
  it('renders a long single line quickly', () => {
    const line = 'word '.repeat(40_000) + '**end**';
    const t0 = performance.now();
    const html = md(line);
    expect(html.endsWith('<strong>end</strong></p>')).toBe(true);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

describe('nesting', () => {
  it('bounds quote and list nesting instead of recursing without limit', () => {
    const html = md('> '.repeat(5000) + 'deep');
    expect(html.startsWith('<blockquote>'.repeat(8))).toBe(true);
    expect(html).toContain('deep');
    const list = md(Array.from({ length: 50 }, (_, i) => `${'  '.repeat(i)}- item ${i}`).join('\n'));
    expect(list).toContain('item 49');
  });
});
