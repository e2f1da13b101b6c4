#!/bin/sh
# Writes tests/fixtures/tokenizers/corpus.txt, the text the subword
# tokenizers are checked on against their reference implementations
# (docs/tokenizers.md). The corpus is bytes, one example per line (no
# example holds a newline): English from Debian's fortunes, German from
# trans-de-en, C and Python from this repository at a pinned commit, then
# hand-written lines: emoji, CJK and other scripts, combining marks, odd
# spaces, long runs of spaces and digits, contractions, and lines with
# invalid UTF-8. The output depends only on those packages' files and the
# pinned commit, so running it again gives the same bytes.
#
#   apt-get install -y fortunes fortunes-min trans-de-en
#   tools/make_tokenizer_corpus.sh [OUT]
set -eu
LC_ALL=C
export LC_ALL
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/tests/fixtures/tokenizers/corpus.txt}
fortunes=/usr/share/games/fortunes
dict=/usr/share/trans/de-en
pin=b2f7cc4 # the commit the code lines are taken from
for f in "$fortunes/computers" "$dict"; do
    [ -r "$f" ] || { echo "make_tokenizer_corpus: $f missing (apt-get install -y fortunes fortunes-min trans-de-en)" >&2; exit 1; }
done
mkdir -p "$(dirname "$out")"
tmp=$out.tmp
: > "$tmp"

# English: every 7th non-empty line of each fortune file (the '%'
# separators dropped), tabs and trailing spaces kept.
for f in $(ls "$fortunes" | grep -v '\.dat$' | grep -v '\.u8$' | sort); do
    awk '$0 != "%" && $0 != "" && NR % 7 == 0' "$fortunes/$f" >> "$tmp"
done

# German: every 450th entry of the dictionary (comments dropped).
awk '!/^#/ && NR % 450 == 0' "$dict" >> "$tmp"

# Code: C and Python from this repository as of the pinned commit.
for p in src/data/subword.c src/util/json_min.c src/data/tokenizer.c tools/reference.py tools/ref_model.py; do
    git -C "$root" show "$pin:$p" | awk 'NF > 0' >> "$tmp"
done

# Hand-written lines: other scripts, emoji, marks, spaces, digits.
cat >> "$tmp" <<'EOF'
Hello world! It's a test, isn't it? They're here; we've gone; I'm done; you'll see; he'd know.
IT'S LOUD. SHE'S HERE. 'S 'T 'RE 'VE 'M 'LL 'D 'x ''s '''
'sworn 'tis 'reward 'very 'mine 'llama 'done
日本語のテキストです。東京は大きな都市です。
中文文本：你好，世界！我们今天去公园散步。
한국어 텍스트입니다. 안녕하세요, 세계!
Ελληνικά: Καλημέρα κόσμε. Русский: Привет, мир! Українська: Ґанок, їжак.
العربية: مرحبا بالعالم ١٢٣٤٥٦٧٨٩٠ עברית: שלום עולם
हिन्दी: नमस्ते दुनिया। தமிழ்: வணக்கம் ไทย: สวัสดีชาวโลก
Emoji: 😀😃😄 👍🏽 👩‍👩‍👧‍👦 🏳️‍🌈 🇩🇪🇯🇵 ❤️ ✌️ 🤷‍♀️ 🧑🏿‍🚀
Combining: ﬁ ǅ a̐éö̲ Z̵̡̢̛͕̺̫a̶l̷g̸o̵ 한글 한글
Numbers: ½ ¾ ² ³ ⁴ Ⅻ ⅻ ① ② ⑳ ١٢٣ ۴۵۶ १२३ ๑๒๓ ０１２３ 𝟘𝟙𝟚 𐒠𐒡
Mixed: abc123def 3.14159 1e-10 0x7fffffff -42 +17 1,000,000 192.168.0.1 2024-01-31T12:00:00Z
Symbols: ∀x∈ℝ: x²≥0 → ∑_{i=1}^{n} i = n(n+1)/2 ≠ ∞ ≈ ≤ ≥ © ® ™ € £ ¥ ₹ § ¶ † ‡ • … ‰
Quotes: “double” ‘single’ «guillemets» „German“ 「Japanese」 — dash – en - hyphen
Code: if (x != NULL && *p++ == '\0') { return -1; } // comment /* block */ #include <stdio.h>
Python: def f(x): return [i**2 for i in range(x) if i % 2 == 0]  # squares
URL: https://example.com/path?query=value&other=123#frag mailto:someone@example.org
Trailing spaces     
	 	 	mixed tabs and spaces	 	 
a  b   c    d     e      f       g        h
Punctuation runs: !!!??? ... ,,, ;;; ::: --- ___ *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]]
Unicode letters: ŁódźŻółć Ærøskøbing Straße ĳssel Ǆemal ŉ ǰ ꝏ ꜳ ß ẞ
Supplementary: 𝓗𝓮𝓵𝓵𝓸 𝕎𝕠𝕣𝕝𝕕 𠜎𠜱𠝹𠱓 𐐷𐐸
The text <|endoftext|> is not parsed as a special token here.<|endoftext|>
EOF
# Long runs of spaces and digits, and long words.
awk 'BEGIN {
    s = ""; for (i = 0; i < 300; i++) s = s " "; print "x" s "y";
    print s "leading";
    print "trailing" s;
    d = ""; for (i = 0; i < 2000; i++) d = d (i % 10); print d;
    print "Numbers " d " end";
    w = ""; for (i = 0; i < 1500; i++) w = w substr("abcdefghijklmnopqrstuvwxyz", i % 26 + 1, 1); print w;
    t = ""; for (i = 0; i < 200; i++) t = t "\t"; print "tabs" t "tabs";
    p = ""; for (i = 0; i < 500; i++) p = p "="; print p;
    r = ""; for (i = 0; i < 400; i++) r = r "ab"; print r;
    print "a" s s s "b";
}' >> "$tmp"
# Characters easier said as octal bytes: decomposed accents, odd spaces
# (no-break, ideographic, em, thin, U+0085, U+2028), zero-width ones,
# private use, control bytes and a carriage return.
printf 'Combining: e\314\201 \303\251 n\314\203 \303\261 A\314\212 \303\205 e\314\201\314\202\314\243 x\314\270\n' >> "$tmp"
printf 'Whitespace types: tab\there, nbsp\302\240here, ideographic\343\200\200space, em\342\200\203space, thin\342\200\211space, nel\302\205here\n' >> "$tmp"
printf 'Separators: a\342\200\250b paragraph\342\200\251c vt\013ff\014cr\rend  \302\240 \343\200\200\343\200\200x\n' >> "$tmp"
printf 'Zero width: a\342\200\213b\342\200\214c\342\200\215d\342\201\240e\357\273\277f private\356\200\200use\n' >> "$tmp"
printf 'Control: \001\002\033[0m\177 bell\007 nul-free\n' >> "$tmp"
# Invalid UTF-8: lone continuation bytes, a truncated sequence, overlong
# forms, an encoded surrogate, a code point past U+10FFFF, 0xFE and 0xFF.
printf 'Invalid \200 continuation\n' >> "$tmp"
printf 'Truncated \303 two-byte and \342\202 three-byte\n' >> "$tmp"
printf 'Overlong \300\257 slash and \340\200\257\n' >> "$tmp"
printf 'Surrogate \355\240\200 encoded\n' >> "$tmp"
printf 'Beyond \364\220\200\200 U+10FFFF\n' >> "$tmp"
printf 'Bytes \376\377 never valid\n' >> "$tmp"
printf '\377\376\375 at the start and end \360\237\230\n' >> "$tmp"
printf 'Latin-1 text: caf\351 na\357ve \374ber Stra\337e\n' >> "$tmp"
printf 'Mixed valid é and invalid \351 side by side é\351é\n' >> "$tmp"
printf '\301\277\302\200 \337\277\340\240\200 \355\237\277\356\200\200\n' >> "$tmp"

mv "$tmp" "$out"
echo "make_tokenizer_corpus: $(wc -l < "$out") lines, $(wc -c < "$out") bytes in $out"
