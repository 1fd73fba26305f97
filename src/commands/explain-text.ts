import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { EMBEDDED } from '../embedded.js';
import { FileFormatError } from '../formats/host-tensor.js';
import { explainTokens } from '../methods/explain.js';
import { loadMethods } from '../methods/plugins.js';
import { loadBert } from '../models/load.js';
import { tokenHtml, tokenTerminal } from '../reports/token-view.js';
import { WordPieceTokenizer } from '../text/wordpiece.js';
import { writeFileAtomic } from '../util/files.js';
import { applyForward, startBackend } from './common.js';
import { resolveBertFiles } from './eraser-run.js';
import type { ExplainArgs } from './explain.js';
import { methodsJson } from './explain-run.js';
import { UsageError } from './options.js';

/**
 * `bench explain` for a BERT sequence classifier: --text (tokenised with the model's vocab.txt) or
 * --token-ids; per-token scores of every method, as JSON (`raw` = the reference's per-token vector,
 * [CLS] included), an HTML page (--html) and a coloured terminal view.
 */
export async function runExplainText(args: ExplainArgs, log: (s: string) => void): Promise<unknown> {
  const toStdout = args.json === '-';
  const say = toStdout ? (s: string) => process.stderr.write(`${s}\n`) : log;
  const { methods } = await loadMethods(args.method);
  const backend = await startBackend(args.backend, say);
  applyForward(args.forward, say);
  const vocab =
    args.vocab ??
    (args['model-config'] && !args['model-dir'] ? join(dirname(args['model-config']), 'vocab.txt') : undefined);
  const files = resolveBertFiles(
    { 'model-dir': args['model-dir'], 'model-config': args['model-config'], weights: args.weights, vocab },
    EMBEDDED.eraser.model,
  );
  const model = loadBert(files.config, files.weights);
  const cfg = model.config;
  const maxLength = args['max-length'] ?? files.params?.max_length ?? cfg.max_position_embeddings;
  let ids: Int32Array;
  let tokens: string[];
  if (args['token-ids']) {
    ids = Int32Array.from(args['token-ids'].split(',').map((s) => Number(s.trim())));
    const bad = [...ids].find((v) => !Number.isInteger(v) || v < 0 || v >= cfg.vocab_size);
    if (bad !== undefined || ids.length === 0)
      throw new UsageError(
        `--token-ids: expected comma-separated ids in [0, ${cfg.vocab_size}), found ${bad ?? 'none'}`,
      );
    if (ids.length > cfg.max_position_embeddings) {
      throw new UsageError(
        `--token-ids: ${ids.length} tokens, but the model takes at most ${cfg.max_position_embeddings} (${files.config})`,
      );
    }
    // Token strings are only for display here: without a vocab the ids stand in.
    tokens = existsSync(files.vocab)
      ? WordPieceTokenizer.fromFile(files.vocab).convertIdsToTokens(ids)
      : Array.from(ids, (i) => `#${i}`);
  } else {
    if (args.text === undefined) throw new UsageError('give --text "..." or --token-ids 1,17,33,2 for a BERT model');
    const enc = WordPieceTokenizer.fromFile(files.vocab).encode(args.text, { maxLength });
    if (enc.truncated)
      process.stderr.write(
        `warning: the text is longer than ${maxLength} word pieces; explained its first ${maxLength - 2}\n`,
      );
    ids = enc.inputIds;
    tokens = enc.tokens;
  }
  if (tokens.length !== ids.length) throw new FileFormatError(files.vocab, 'internal: tokens and ids differ in length');
  const ex = await explainTokens(model, ids, undefined, 1, ids.length, methods, {
    classes: args.class ?? 'top',
    startLayer: args['start-layer'],
  });
  const labels = cfg.labels ?? [...Array(cfg.num_labels).keys()].map(String);
  const logits = Array.from(ex.logits[0]!);
  say(`model: BERT ${cfg.num_hidden_layers} layers, hidden ${cfg.hidden_size}; ${ids.length} tokens`);
  say(
    `predicted class: ${ex.predicted[0]} (${labels[ex.predicted[0]!] ?? '?'}); logits ${logits.map((v) => v.toFixed(3)).join(', ')}`,
  );
  const rows = ex.methods.map((m) => ({
    title: `${m.method}${m.classes ? ` (class ${m.classes[0]})` : ''}`,
    tokens,
    scores: m.map[0]!,
  }));
  for (const r of rows)
    say(
      `  ${r.title}:${process.stdout.isTTY && !toStdout ? tokenTerminal(r) : ` ${tokens.map((t, i) => `${t}:${r.scores[i]!.toFixed(2)}`).join(' ')}`}`,
    );
  for (const w of ex.warnings) process.stderr.write(`warning: ${w}\n`);
  const json = {
    backend: backend.name,
    model: { name: cfg.name, config: cfg },
    tokens,
    inputIds: Array.from(ids),
    logits,
    predicted: ex.predicted[0]!,
    startLayer: args['start-layer'] ?? null,
    methods: methodsJson(ex),
    warnings: ex.warnings,
  };
  if (args.json) {
    if (toStdout) process.stdout.write(`${JSON.stringify(json)}\n`);
    else writeFileAtomic(args.json, `${JSON.stringify(json)}\n`);
  }
  if (args.html) {
    writeFileAtomic(args.html, tokenHtml(`bench explain: ${args.text ? args.text.slice(0, 80) : 'token ids'}`, rows));
    say(`wrote ${args.html}`);
  }
  return json;
}
