export { BaseTokenizer, CHAT_SPECIAL_TOKENS, DEFAULT_CHAT_TEMPLATE, renderChatTemplate } from "./base.js";
export type { PieceScanner } from "./pretokenize.js";
export { scannerFor, splitPieces } from "./pretokenize.js";
export type { EncodingName, TiktokenRanks } from "./tiktoken.js";
export {
  ENCODING_NAMES,
  getEncoding,
  loadEncodingRanks,
  loadTiktokenFile,
  parseJsTiktokenRanks,
  parseTiktokenFile,
  TiktokenTokenizer,
} from "./tiktoken.js";
export type {
  ChatMessage,
  ChatTemplateOptions,
  DecodeOptions,
  EncodeOptions,
  StreamDecoder,
  StreamDecoderOptions,
  Tokenizer,
} from "./types.js";
