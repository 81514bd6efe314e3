export { BaseTokenizer, CHAT_SPECIAL_TOKENS, DEFAULT_CHAT_TEMPLATE, renderChatTemplate } from "./base.js";
export type { BatchEncodeOptions, BatchEncoding, Parts } from "./batch.js";
export { encodeBatchForModel, offsetsFromByteLengths } from "./batch.js";
export type { CharTokenizerOptions } from "./char.js";
export { CharTokenizer } from "./char.js";
export type { AddedToken, EncodingWithOffsets } from "./hf.js";
export {
  BpeModel,
  HfTokenizer,
  loadTokenizer,
  tokenizerFromJSON,
  UnigramModel,
  WordLevelModel,
  WordPieceModel,
} from "./hf.js";
export type { PieceScanner } from "./pretokenize.js";
export { scannerFor, splitPieces, translateRegex } from "./pretokenize.js";
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
export type { Corpus, TrainBpeOptions, TrainProgress, TrainWordPieceOptions } from "./train.js";
export { trainBpe, trainWordPiece } from "./train.js";
export type {
  ChatMessage,
  ChatTemplateOptions,
  DecodeOptions,
  EncodeOptions,
  StreamDecoder,
  StreamDecoderOptions,
  Tokenizer,
} from "./types.js";
