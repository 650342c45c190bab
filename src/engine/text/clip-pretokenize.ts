// Text → pre-tokens for the CLIP BPE, as transformers' slow CLIPTokenizer does it when ftfy is not
// installed (ftfy is not a dependency of transformers or diffusers, and the goldens were made without it):
//   BasicTokenizer(strip_accents=False, do_split_on_punc=False): drop NUL / U+FFFD / control and format
//   characters, map whitespace to ' ', space out CJK ideographs, NFC, split on whitespace, lower-case
//   each piece; then CLIP's regex splits the joined text into pre-tokens, and each pre-token becomes
//   its UTF-8 bytes spelled in GPT-2's byte alphabet (bytes_to_unicode).
//
// Differences that remain, by design or by platform:
// - With ftfy installed, transformers instead does whitespace_clean(ftfy.fix_text(text)).lower(): HTML
//   entities, mojibake, ligatures, full-width forms, curly quotes and zero-width characters come out
//   differently (8 of the 40 clip-tokenizer golden prompts). We follow the ftfy-less path.
// - Character categories and case mappings come from Node's ICU (Unicode 17 on Node 20.20) where the
//   reference used Python 3.11's tables (Unicode 14): only characters assigned after Unicode 14 differ.

/** Python's str.isspace() set: bidi classes WS, B, S and category Zs. */
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;
const CONTROL = /^\p{C}$/u;
const SPACE_SEPARATOR = /^\p{Zs}$/u;

/**
 * CLIP's pre-tokenizer pattern (openai/CLIP simple_tokenizer, kept by transformers), case-insensitive.
 * The special-token alternatives matter: bpe() maps those two strings to themselves.
 */
const CLIP_PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+/giu;

/** BERT's "CJK Unified Ideographs" blocks, the ones BasicTokenizer surrounds with spaces. */
function isCjkIdeograph(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** BasicTokenizer._clean_text then _tokenize_chinese_chars, one code point at a time. */
function cleanText(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    // \t \n \r are whitespace, not control; every other C* character (Cc, Cf, Cs, Co, Cn) is dropped.
    const isTabOrNewline = ch === '\t' || ch === '\n' || ch === '\r';
    if (cp === 0 || cp === 0xfffd || (!isTabOrNewline && CONTROL.test(ch))) continue;
    if (ch === ' ' || isTabOrNewline || SPACE_SEPARATOR.test(ch)) out += ' ';
    else if (isCjkIdeograph(cp)) out += ` ${ch} `;
    else out += ch;
  }
  return out;
}

function splitPythonWhitespace(text: string): string[] {
  return text.split(PY_WHITESPACE).filter((piece) => piece.length > 0);
}

/** The text BasicTokenizer hands back, joined by single spaces as CLIPTokenizer._tokenize does. */
export function basicClean(text: string): string {
  const pieces = splitPythonWhitespace(cleanText(text).normalize('NFC'));
  // The BasicTokenizer splits again after lower-casing; lower-casing never creates whitespace, so joining is enough.
  return pieces.map((piece) => piece.toLowerCase()).join(' ');
}

/** CLIP's regex over cleaned text: words, single digits, punctuation runs, contractions. */
export function clipPreTokens(cleaned: string): string[] {
  return Array.from(cleaned.matchAll(CLIP_PATTERN), (m) => m[0]);
}

/**
 * GPT-2's reversible byte → printable character table: printable Latin-1 bytes map to themselves,
 * the other 68 bytes to U+0100 onwards in byte order.
 */
export function bytesToUnicode(): string[] {
  const table = new Array<string>(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : 256 + next++);
  }
  return table;
}

const BYTE_ALPHABET = bytesToUnicode();
const utf8 = new TextEncoder();

/** A pre-token's UTF-8 bytes spelled in the byte alphabet, the form merges.txt and vocab.json use. */
export function toByteAlphabet(token: string): string {
  let out = '';
  for (const b of utf8.encode(token)) out += BYTE_ALPHABET[b]!;
  return out;
}
