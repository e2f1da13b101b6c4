#!/usr/bin/python3
"""Write tests/fixtures/metrics_ref.tsv: NLTK reference values for the string
metrics of src/eval/metrics.c (corpus/sentence BLEU, chrF, Self-BLEU).

Usage: /usr/bin/python3 tools/reference_metrics.py

Needs Debian's python3-nltk only (no torch); building and testing gkd never
needs Python, the output file is committed.

Format: one record per line, tab-separated, strings escaped (\\\\ \\t \\n \\r):
  pair      CASE  HYP  REF          hypothesis i and its first reference (in order)
  ref       CASE  I    REF          an extra reference of hypothesis I
  bleu      CASE  UNIT VALUE        nltk corpus_bleu (defaults, no smoothing)
  bleusm    CASE  UNIT SMOOTH V     nltk corpus_bleu with SmoothingFunction().methodSMOOTH
  sbleu     CASE  I UNIT SMOOTH V   nltk sentence_bleu of pair I with methodSMOOTH
  chrf      CASE  VALUE             nltk corpus_chrf(beta=2), single reference
  schrf     CASE  I VALUE           nltk sentence_chrf(beta=2) of pair I
  sample    CASE  TEXT              a sample of a Self-BLEU set
  selfbleu  CASE  UNIT VALUE        mean sentence_bleu(others, s_i, method1)
  selfbleusm CASE UNIT SMOOTH V     the same with methodSMOOTH
UNIT is "words" (str.split()) or "chars" (list(str)). Values are %.17g.
SMOOTH is the number of NLTK's SmoothingFunction method. Corpus BLEU covers
CORPUS_METHODS only: method5 and method7 (and method6) read the n-gram
counts of the corpus's LAST sentence (corpus_bleu passes its leftover loop
variables), so their corpus value depends on the order of the corpus.
method6 is left out everywhere: NLTK asserts a non-zero trigram precision,
so it fails on exactly the short outputs smoothing is for.
"""
import os
import random
import warnings

from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu
from nltk.translate.chrf_score import corpus_chrf, sentence_chrf

BETA = 2.0
CORPUS_METHODS = (0, 1, 2, 3, 4)
SENTENCE_METHODS = (0, 1, 2, 3, 4, 5, 7)
UNITS = {"words": str.split, "chars": list}


def esc(s):
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def fmt(x):
    return "%.17g" % float(x)


# Each case: list of (hyp, [refs...]).
CASES = {
    "paper": [
        ("It is a guide to action which ensures that the military always obeys the commands of the party",
         ["It is a guide to action that ensures that the military will forever heed Party commands",
          "It is the guiding principle which guarantees the military forces always being under the command of the Party",
          "It is the practical guide for the army always to heed the directions of the party"]),
        ("he read the book because he was interested in world history",
         ["he was interested in world history because he read the book"]),
    ],
    "exact": [("the cat sat on the mat", ["the cat sat on the mat"]),
              ("123+456=579", ["123+456=579"])],
    "empty_output": [("", ["the cat sat on the mat"]), ("a b c d e", ["a b c d e"])],
    "all_empty_output": [("", ["abc"]), ("", ["x y"])],
    "no_overlap": [("foo bar baz qux", ["the cat sat on the mat"])],
    "short_hyp": [("the cat", ["the cat sat on the mat"]), ("sat on", ["the cat sat on the mat"])],
    "long_hyp": [("the cat sat on the mat and then the cat sat on the mat again", ["the cat sat on the mat"])],
    "repeats": [("the the the the the the the", ["the cat is on the mat"])],
    "whitespace": [("  the\tcat  sat\non the mat ", ["the cat sat on  the mat"]),
                   ("a  b", ["a b"])],
    "short_strings": [("ab", ["ab"]), ("abc", ["abd"]), ("x", ["y"]), ("579", ["579"])],
    "unicode": [("caf\u00e9 na\u00efve \u20ac10", ["cafe na\u00efve \u20ac 10"]),
                ("\u00fcber stra\u00dfe", ["\u00fcber strasse"])],
    "digits": [("7+8=5c1 5+6+1=2c1 ->125", ["7+8=5c1 5+6+1=2c1 ->125"]),
               ("7+8=5c1 5+6=1c1 ->115", ["7+8=5c1 5+6+1=2c1 ->125"]),
               ("->125", ["7+8=5c1 5+6+1=2c1 ->125"])],
    "multi_ref": [("the cat is on the mat", ["there is a cat on the mat", "the cat sits on a mat"]),
                  ("a dog barks loudly at night", ["the dog barks at night", "a dog is barking loudly"])],
    "closest_ref_tie": [("one two three four", ["one two three", "one two three four five"])],
    # Smoothing matters on 1-3 word outputs: higher-order precisions are 0/1.
    "short_refs": [("cat", ["cat"]), ("the cat", ["the cat"]), ("a cat sat", ["the cat sat"]),
                   ("dog", ["the dog"])],
    "one_word": [("yes", ["yes"])],
    "one_word_longer_ref": [("yes", ["yes it is"])],
    "two_words_miss": [("a b", ["b a"])],
    "three_words_multi": [("on the mat", ["the mat", "on a mat", "on the mat today"])],
    "five_gram": [("a b c d e f g", ["a b c d e f x"]), ("x y z", ["x y z w"])],
}


def random_cases():
    rng = random.Random(1234)
    words = "the a cat dog sat ran on under mat log red blue big".split()
    for c in range(3):
        pairs = []
        for _ in range(25):
            ref = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
            hyp_words = ref.split()
            # Perturb: drop, swap, replace a few words.
            for _ in range(rng.randint(0, 4)):
                op = rng.random()
                if op < 0.3 and len(hyp_words) > 1:
                    hyp_words.pop(rng.randrange(len(hyp_words)))
                elif op < 0.6:
                    hyp_words.insert(rng.randrange(len(hyp_words) + 1), rng.choice(words))
                else:
                    hyp_words[rng.randrange(len(hyp_words))] = rng.choice(words)
            pairs.append((" ".join(hyp_words), [ref]))
        CASES["random%d" % c] = pairs
    alphabet = "abcdefgh"
    pairs = []
    for _ in range(30):
        ref = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
        hyp = list(ref)
        for _ in range(rng.randint(0, 3)):
            hyp[rng.randrange(len(hyp))] = rng.choice(alphabet)
        pairs.append(("".join(hyp[::-1] if rng.random() < 0.2 else hyp), [ref]))
    CASES["random_chars"] = pairs


SELF = {
    "identical": ["the cat sat", "the cat sat", "the cat sat"],
    "distinct": ["the cat sat on the mat", "a dog ran under the log", "red blue big cat"],
    "mixed": ["the cat sat on the mat", "the cat sat on a mat", "a dog sat on the mat", "the cat ran"],
    "modes": ["abcd", "abce", "abcd", "xyzw", "abcd"],
    "with_empty": ["", "the cat", "the cat sat on the mat today"],
}


def main():
    random_cases()
    warnings.simplefilter("ignore")
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "..", "tests", "fixtures", "metrics_ref.tsv")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    sf = SmoothingFunction()
    m1 = sf.method1
    lines = ["# Written by tools/reference_metrics.py (NLTK 3.8); do not edit."]
    for name, pairs in CASES.items():
        for i, (hyp, refs) in enumerate(pairs):
            lines.append("\t".join(["pair", name, esc(hyp), esc(refs[0])]))
            for r in refs[1:]:
                lines.append("\t".join(["ref", name, str(i), esc(r)]))
        for unit, split in UNITS.items():
            hyps = [split(h) for h, _ in pairs]
            refs = [[split(r) for r in rs] for _, rs in pairs]
            lines.append("\t".join(["bleu", name, unit, fmt(corpus_bleu(refs, hyps))]))
            for k in CORPUS_METHODS:
                v = corpus_bleu(refs, hyps, smoothing_function=getattr(sf, "method%d" % k))
                lines.append("\t".join(["bleusm", name, unit, str(k), fmt(v)]))
            for i in range(len(pairs)):
                for k in SENTENCE_METHODS:
                    fn = None if k == 0 else getattr(sf, "method%d" % k)
                    v = sentence_bleu(refs[i], hyps[i], smoothing_function=fn)
                    lines.append("\t".join(["sbleu", name, str(i), unit, str(k), fmt(v)]))
        hyps = [h for h, _ in pairs]
        refs = [rs[0] for _, rs in pairs]
        lines.append("\t".join(["chrf", name, fmt(corpus_chrf(refs, hyps, beta=BETA))]))
        for i in range(len(pairs)):
            lines.append("\t".join(["schrf", name, str(i), fmt(sentence_chrf(refs[i], hyps[i], beta=BETA))]))
    for name, samples in SELF.items():
        for s in samples:
            lines.append("\t".join(["sample", name, esc(s)]))
        for unit, split in UNITS.items():
            toks = [split(s) for s in samples]
            vals = []
            for i in range(len(toks)):
                others = toks[:i] + toks[i + 1:]
                vals.append(sentence_bleu(others, toks[i], smoothing_function=m1))
            lines.append("\t".join(["selfbleu", name, unit, fmt(sum(vals) / len(vals))]))
            for k in SENTENCE_METHODS:
                fn = getattr(sf, "method%d" % k)
                vals = [sentence_bleu(toks[:i] + toks[i + 1:], toks[i], smoothing_function=fn)
                        for i in range(len(toks))]
                lines.append("\t".join(["selfbleusm", name, unit, str(k), fmt(sum(vals) / len(vals))]))
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    print("wrote", out, len(lines), "lines")


if __name__ == "__main__":
    main()
