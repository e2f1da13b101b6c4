// Writes Llama 2's tokenizer, as llama-tokenizer-js 1.2.2 ships it (the
// 32000 pieces and 61249 merges of Meta's Llama 2 tokenizer.json), in the
// two layouts gkd reads (docs/tokenizers.md):
//
//   OUTDIR/tokenizer.json  Hugging Face, Llama 2's layout: BPE with
//                          byte_fallback, normalizer Prepend "▁" + Replace
//                          " " -> "▁", merges "a b" in rank order
//   OUTDIR/tokenizer.bin   llama2.c (tokenizer.py's format): "▁" written as
//                          a space, <s> and </s> as "\n<s>\n", "\n</s>\n"
//
// The package has no SentencePiece scores. tokenizer.bin's scores come
// from the merge ranks, which Hugging Face's converter sorted by score:
// the piece first made by merge r scores -r; <unk>, <s>, </s> and the 256
// byte pieces 0 (as in SentencePiece); the single characters, which no
// merge makes, -(61249 + id). Greedy merging by these scores and by rank
// then agree except where one piece can be made by two different pairs.
//
// The vocabulary falls under the Llama 2 Community License, so it is not
// committed: `make test` runs this into $(BUILD)/tokenizers/llama2.
//
//   node llama2_vocab.mjs OUTDIR
import fs from 'fs';
import path from 'path';
import llama from 'llama-tokenizer-js';

const out = process.argv[2];
if (!out) {
  console.error('usage: node llama2_vocab.mjs OUTDIR');
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });
const pieces = llama.vocabById;
const merges = [...llama.merges.keys()]; // insertion order is rank order
if (pieces.length !== 32000 || merges.length !== 61249) throw new Error('unexpected llama-tokenizer-js data');

// tokenizer.json
const vocab = {};
pieces.forEach((p, id) => { vocab[p] = id; });
const added = ['<unk>', '<s>', '</s>'].map((content, id) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
}));
const json = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: added,
  normalizer: {
    type: 'Sequence',
    normalizers: [
      { type: 'Prepend', prepend: '\u2581' },
      { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
    ],
  },
  pre_tokenizer: null,
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
      { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
  },
  decoder: {
    type: 'Sequence',
    decoders: [
      { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
      { type: 'ByteFallback' },
      { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 1, stop: 0 },
    ],
  },
  model: {
    type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null,
    end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges,
  },
};
fs.writeFileSync(path.join(out, 'tokenizer.json'), JSON.stringify(json, null, 2));

// tokenizer.bin
const score = new Float32Array(pieces.length);
for (let id = 259; id < pieces.length; id++) score[id] = -(merges.length + id);
for (let r = merges.length - 1; r >= 0; r--) {
  const [a, b] = merges[r].split(' ');
  score[llama.vocabByString.get(a + b)] = -r;
}
const bytes = pieces.map((p, id) => Buffer.from(id === 1 ? '\n<s>\n' : id === 2 ? '\n</s>\n' : p.replaceAll('\u2581', ' '), 'utf8'));
const maxlen = Math.max(...bytes.map((b) => b.length));
const parts = [];
const head = Buffer.alloc(4);
head.writeInt32LE(maxlen, 0);
parts.push(head);
bytes.forEach((b, id) => {
  const h = Buffer.alloc(8);
  h.writeFloatLE(score[id], 0);
  h.writeInt32LE(b.length, 4);
  parts.push(h, b);
});
fs.writeFileSync(path.join(out, 'tokenizer.bin'), Buffer.concat(parts));
console.log(`llama2_vocab: ${pieces.length} pieces, ${merges.length} merges, max_token_length ${maxlen} -> ${out}`);
