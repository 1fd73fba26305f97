/**
 * Token relevance views for text models: an HTML page (one row per method, each token's background
 * shaded by its normalised score, as the reference's .tex figures do with \colorbox{red!V}) and a
 * terminal rendering with 256-colour backgrounds.
 */
export interface TokenRow {
  title: string;
  tokens: readonly string[];
  /** Normalised to [0, 1]. */
  scores: ArrayLike<number>;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Word pieces glued as the reference's figures do: a `##` piece joins the previous token. */
function pieces(tokens: readonly string[]): { text: string; glue: boolean }[] {
  return tokens.map((t) => (t.startsWith('##') ? { text: t.slice(2), glue: true } : { text: t, glue: false }));
}

export function tokenHtml(title: string, rows: readonly TokenRow[]): string {
  const body = rows
    .map((r) => {
      const spans = pieces(r.tokens)
        .map((p, i) => {
          const v = Math.max(0, Math.min(1, r.scores[i] ?? 0));
          const bg = `rgba(220, 30, 30, ${v.toFixed(3)})`;
          return `${p.glue ? '' : ' '}<span title="${(r.scores[i] ?? 0).toFixed(4)}" style="background:${bg}">${escapeHtml(p.text)}</span>`;
        })
        .join('');
      return `<h2>${escapeHtml(r.title)}</h2>\n<p class="tokens">${spans}</p>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}h2{font-size:1em;margin:1.2em 0 .3em}.tokens{line-height:1.9}span{padding:1px 2px;border-radius:3px}</style>
</head><body><h1>${escapeHtml(title)}</h1>
${body}
</body></html>
`;
}

/** ANSI rendering: white → red backgrounds (xterm 256 colours 231, 224, 217, 210, 203, 196). */
export function tokenTerminal(row: TokenRow): string {
  const shades = [231, 224, 217, 210, 203, 196];
  return pieces(row.tokens)
    .map((p, i) => {
      const v = Math.max(0, Math.min(1, row.scores[i] ?? 0));
      const c = shades[Math.min(shades.length - 1, Math.floor(v * shades.length))]!;
      return `${p.glue ? '' : ' '}\x1b[48;5;${c}m\x1b[30m${p.text}\x1b[0m`;
    })
    .join('');
}
