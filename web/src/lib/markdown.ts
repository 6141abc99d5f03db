// A small, safe Markdown renderer for chat answers. Every piece of source text is HTML-escaped; the only tags in the
// output are the ones generated here, and links are limited to http(s) and mailto URLs. Unclosed code fences (a
// stream still arriving) render as a code block up to the end of the text.
//
// Supported: paragraphs (single newlines become <br>), ATX headings, fenced code (``` or ~~~, with a language
// class), inline code, **bold**/__bold__, *italic*/_italic_, ~~strike~~, [links](url), bare http(s) URLs,
// unordered and ordered lists (nested by indentation), blockquotes, horizontal rules, backslash escapes.

export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Returns the URL if it is safe to link to, else null. */
export function safeUrl(raw: string): string | null {
  const url = raw.trim();
  // Control characters and whitespace inside the scheme are how `java\tscript:` tricks work: refuse them all.
  if (/[\u0000-\u001f\u007f\s]/.test(url)) return null;
  if (/^(https?:\/\/|mailto:)/i.test(url)) return url;
  // Relative links and fragments cannot carry a script scheme.
  if (/^(\/(?!\/)|#|\.\.?\/)/.test(url)) return url;
  return null;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const HR = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;

export function renderMarkdown(src: string): string {
  return blocks(src.replace(/\r\n?/g, '\n').split('\n'));
}

function isBlockStart(line: string): boolean {
  return FENCE.test(line) || HEADING.test(line) || HR.test(line) || QUOTE.test(line) || LIST_ITEM.test(line);
}

function indentOf(line: string): number {
  const m = /^[ \t]*/.exec(line);
  return m ? m[0].replace(/\t/g, '    ').length : 0;
}

/** Deeper nesting (quotes in quotes, lists in lists) renders as plain paragraphs: no unbounded recursion. */
const MAX_DEPTH = 8;

function blocks(lines: string[], depth = 0): string {
  let out = '';
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.trim() === '') {
      i++;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const marker = fence[1];
      const lang = fence[2].replace(/[^\w+#.-]/g, '').slice(0, 32);
      const body: string[] = [];
      i++;
      while (i < lines.length) {
        const l = lines[i];
        const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(l);
        if (close && close[1][0] === marker[0] && close[1].length >= marker.length) {
          i++;
          break;
        }
        body.push(l);
        i++;
      }
      const cls = lang ? ` class="language-${escapeHtml(lang)}"` : '';
      out += `<pre><code${cls}>${escapeHtml(body.join('\n'))}</code></pre>`;
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      const level = heading[1].length;
      out += `<h${level}>${inline(heading[2])}</h${level}>`;
      i++;
      continue;
    }
    if (HR.test(line)) {
      out += '<hr>';
      i++;
      continue;
    }
    if (QUOTE.test(line) && depth < MAX_DEPTH) {
      const inner: string[] = [];
      while (i < lines.length && lines[i].trim() !== '') {
        const q = QUOTE.exec(lines[i]);
        inner.push(q ? q[1] : lines[i]);
        i++;
      }
      out += `<blockquote>${blocks(inner, depth + 1)}</blockquote>`;
      continue;
    }
    if (LIST_ITEM.test(line) && depth < MAX_DEPTH) {
      const [html, next] = list(lines, i, depth);
      out += html;
      i = next;
      continue;
    }
    const para: string[] = [];
    while (i < lines.length && lines[i].trim() !== '' && (para.length === 0 || (depth < MAX_DEPTH && !isBlockStart(lines[i])))) {
      para.push(lines[i].trim());
      i++;
    }
    out += `<p>${para.map(inline).join('<br>')}</p>`;
  }
  return out;
}

/** Parses a list starting at `start`; returns its HTML and the index of the first line after it. */
function list(lines: string[], start: number, depth: number): [string, number] {
  const first = LIST_ITEM.exec(lines[start])!;
  const baseIndent = indentOf(first[1]);
  const ordered = /\d/.test(first[2]);
  const startNum = ordered ? parseInt(first[2], 10) : 1;
  const items: string[][] = [];
  let i = start;
  let loose = false;
  while (i < lines.length) {
    const line = lines[i];
    const m = LIST_ITEM.exec(line);
    if (m && indentOf(m[1]) === baseIndent && /\d/.test(m[2]) === ordered) {
      items.push([m[3]]);
      i++;
      continue;
    }
    if (line.trim() === '') {
      // A blank line continues the list only if the next non-blank line is indented or another item.
      let j = i + 1;
      while (j < lines.length && lines[j].trim() === '') j++;
      if (j < lines.length) {
        const n = LIST_ITEM.exec(lines[j]);
        if ((n && indentOf(n[1]) === baseIndent && /\d/.test(n[2]) === ordered) || indentOf(lines[j]) > baseIndent) {
          items[items.length - 1].push('');
          loose = true;
          i = j;
          continue;
        }
      }
      break;
    }
    if (indentOf(line) > baseIndent || (!isBlockStart(line) && items.length > 0)) {
      // Continuation of the current item (nested list, code, or a lazy paragraph line).
      const strip = Math.min(indentOf(line), baseIndent + 4);
      items[items.length - 1].push(line.replace(/^[ \t]*/, (ws) => ' '.repeat(Math.max(0, ws.replace(/\t/g, '    ').length - strip))));
      i++;
      continue;
    }
    break;
  }
  const tag = ordered ? 'ol' : 'ul';
  const startAttr = ordered && startNum !== 1 ? ` start="${startNum}"` : '';
  const body = items
    .map((item) => {
      const hasBlocks = item.length > 1 && item.slice(1).some((l) => isBlockStart(l) || l === '');
      if (!hasBlocks && !loose) return `<li>${item.map((l) => inline(l.trim())).join('<br>')}</li>`;
      return `<li>${blocks(item, depth + 1)}</li>`;
    })
    .join('');
  return [`<${tag}${startAttr}>${body}</${tag}>`, i];
}

const ESCAPABLE = '\\`*_{}[]()#+-.!~>|';
const SPECIAL = new Set(['\\', '`', '[', '*', '_', '~', 'h', 'H']);

/** Renders inline Markdown: every character of `src` ends up escaped or inside a generated tag. */
export function inline(src: string): string {
  let out = '';
  let i = 0;
  let plain = '';
  const flush = () => {
    out += escapeHtml(plain);
    plain = '';
  };
  while (i < src.length) {
    const c = src[i];
    // Fast path: most characters cannot start any inline construct.
    if (!SPECIAL.has(c)) {
      plain += c;
      i++;
      continue;
    }
    const rest = src.slice(i);
    const prev = i > 0 ? src[i - 1] : ' ';
    let m: RegExpExecArray | null;
    if (c === '\\' && i + 1 < src.length && ESCAPABLE.includes(src[i + 1])) {
      plain += src[i + 1];
      i += 2;
      continue;
    }
    if (c === '`' && (m = /^(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/.exec(rest))) {
      flush();
      let code = m[2];
      if (/^ .* $/.test(code)) code = code.slice(1, -1);
      out += `<code>${escapeHtml(code)}</code>`;
      i += m[0].length;
      continue;
    }
    if (c === '[' && (m = /^\[((?:[^\[\]\\]|\\.)*)\]\(\s*<?([^\s<>()]+(?:\([^\s()]*\))?[^\s<>()]*)>?(?:\s+"[^"]*")?\s*\)/.exec(rest))) {
      const href = safeUrl(m[2]);
      flush();
      const text = inline(m[1]);
      out += href
        ? `<a href="${escapeHtml(href)}" target="_blank" rel="noopener noreferrer">${text || escapeHtml(href)}</a>`
        : text;
      i += m[0].length;
      continue;
    }
    if ((c === 'h' || c === 'H') && !/[\w/]/.test(prev) && (m = /^https?:\/\/[^\s<>"'`]+/i.exec(rest))) {
      let url = m[0];
      // Trailing punctuation belongs to the sentence, not the URL.
      const trail = /[.,;:!?)\]*_]+$/.exec(url);
      if (trail) url = url.slice(0, url.length - trail[0].length);
      if (url.length > 8) {
        flush();
        out += `<a href="${escapeHtml(url)}" target="_blank" rel="noopener noreferrer">${escapeHtml(url)}</a>`;
        i += url.length;
        continue;
      }
    }
    if ((c === '*' || c === '_') && src[i + 1] === c) {
      const re = c === '*' ? /^\*\*(?=\S)([\s\S]*?\S)\*\*/ : /^__(?=\S)([\s\S]*?\S)__(?!\w)/;
      if ((c === '*' || !/\w/.test(prev)) && (m = re.exec(rest))) {
        flush();
        out += `<strong>${inline(m[1])}</strong>`;
        i += m[0].length;
        continue;
      }
    }
    if (c === '*' || c === '_') {
      const re = c === '*' ? /^\*(?=[^\s*])((?:\*\*[\s\S]*?\*\*|[^*])*?[^\s*])\*(?!\*)/ : /^_(?=\S)([\s\S]*?\S)_(?!\w)/;
      if ((c === '*' || !/\w/.test(prev)) && (m = re.exec(rest))) {
        flush();
        out += `<em>${inline(m[1])}</em>`;
        i += m[0].length;
        continue;
      }
    }
    if (c === '~' && (m = /^~~(?=\S)([\s\S]*?\S)~~/.exec(rest))) {
      flush();
      out += `<del>${inline(m[1])}</del>`;
      i += m[0].length;
      continue;
    }
    plain += c;
    i++;
  }
  flush();
  return out;
}
