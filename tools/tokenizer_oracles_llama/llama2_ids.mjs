// Writes tests/fixtures/tokenizers/llama2_ids.txt: for each line of
// corpus.txt (split at "\n" only), the ids Llama 2's tokenizer gives it,
// space-separated, one line per corpus line (an empty line for none).
//
// Oracle: llama-tokenizer-js 1.2.2, encode(text, false, true): no BOS,
// with the preceding space (SentencePiece's dummy prefix), BPE by merge
// rank with byte fallback, as Meta's tokenizer.json. A line that is not
// valid UTF-8 is given as WHATWG's TextDecoder makes it (U+FFFD for each
// maximal invalid subpart, a BOM kept). Check: transformers.js's BPE
// (@lenml/tokenizers 3.7.2, encode with add_special_tokens false) on the
// tokenizer.json that llama2_vocab.mjs writes; each line where the two
// differ is printed and the run fails.
//
//   cd tools/tokenizer_oracles_llama && npm ci && node llama2_ids.mjs
import fs from 'fs';
import os from 'os';
import path from 'path';
import { fileURLToPath } from 'url';
import { execFileSync } from 'child_process';
import llama from 'llama-tokenizer-js';
import { TokenizerLoader } from '@lenml/tokenizers';

const here = path.dirname(fileURLToPath(import.meta.url));
const fix = path.resolve(here, '..', '..', 'tests', 'fixtures', 'tokenizers');
const corpus = fs.readFileSync(path.join(fix, 'corpus.txt'));
const dec = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llama2-'));
execFileSync('node', [path.join(here, 'llama2_vocab.mjs'), tmp], { stdio: 'inherit' });
const hf = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(path.join(tmp, 'tokenizer.json'), 'utf8')),
  tokenizerConfig: { tokenizer_class: 'LlamaTokenizer', add_bos_token: false, add_eos_token: false, legacy: true,
    bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', clean_up_tokenization_spaces: false },
});
fs.rmSync(tmp, { recursive: true });

const lines = [];
let start = 0;
for (let i = 0; i <= corpus.length; i++) {
  if (i === corpus.length || corpus[i] === 0x0a) {
    if (i > start || i < corpus.length) lines.push(corpus.subarray(start, i));
    start = i + 1;
  }
}
let differ = 0;
const rows = lines.map((b, k) => {
  const text = dec.decode(b);
  const ids = llama.encode(text, false, true);
  const check = text.length ? hf.encode(text, { add_special_tokens: false }) : [];
  if (ids.join(' ') !== check.join(' ')) {
    differ++;
    console.log(`line ${k + 1}: llama-tokenizer-js ${ids.join(' ')} / transformers.js ${check.join(' ')}`);
  }
  return ids.join(' ');
});
fs.writeFileSync(path.join(fix, 'llama2_ids.txt'), rows.join('\n') + '\n');
console.log(`llama2_ids: ${rows.length} lines, ${rows.reduce((s, r) => s + (r ? r.split(' ').length : 0), 0)} ids; ` +
  `transformers.js differs on ${differ}`);
if (differ) process.exit(1);
