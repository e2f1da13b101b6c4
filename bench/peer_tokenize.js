// The JavaScript references' encoding speed on the tokenizer corpus, as
// bench/bench_tokenize.c measures gkd: MB of input per second, the median
// of 7 runs after a warm-up, the whole file as one text and line by line.
// Needs the packages of tools/tokenizer_oracles (npm ci there).
//
//   node bench/peer_tokenize.js [CORPUS]
'use strict';
const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');
const root = path.resolve(__dirname, '..');
const req = createRequire(path.join(root, 'tools', 'tokenizer_oracles', 'package.json'));
const g3 = req('gpt-3-encoder');
const tk = req('js-tiktoken').getEncoding('r50k_base');
const gt = req('gpt-tokenizer/cjs/encoding/r50k_base');

const file = process.argv[2] || path.join(root, 'tests', 'fixtures', 'tokenizers', 'corpus.txt');
const bytes = fs.readFileSync(file);
const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
const lines = text.split('\n');
const peers = {
  'gpt-3-encoder': (s) => g3.encode(s),
  'js-tiktoken': (s) => tk.encode(s, [], []),
  'gpt-tokenizer': (s) => gt.encode(s, { allowedSpecial: new Set(), disallowedSpecial: new Set() }),
};
for (const [name, f] of Object.entries(peers)) {
  for (const mode of ['whole', 'lines']) {
    // gpt-3-encoder's merging is quadratic in a piece's length: the whole
    // file as one text takes about 44 s a run, so make bench leaves it out.
    if (name === 'gpt-3-encoder' && mode === 'whole' && !process.env.PEER_TOKENIZE_ALL) continue;
    const once = () => {
      const t0 = process.hrtime.bigint();
      let n = 0;
      if (mode === 'whole') n = f(text).length;
      else for (const l of lines) n += f(l).length;
      return [Number(process.hrtime.bigint() - t0) / 1e9, n];
    };
    once();
    const runs = [];
    let ids = 0;
    for (let r = 0; r < 7; r++) {
      const [s, n] = once();
      runs.push(s);
      ids = n;
    }
    runs.sort((a, b) => a - b);
    const s = runs[3];
    console.log(`bench tokenize-peer ${name} ${mode} mb_per_s=${(bytes.length / s / 1e6).toFixed(2)} ms=${(s * 1e3).toFixed(1)} bytes=${bytes.length} ids=${ids}`);
  }
}
