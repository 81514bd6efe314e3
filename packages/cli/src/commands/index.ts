import type { Command } from "commander";
import { registerChat } from "./chat.js";
import { registerChatUi } from "./chat-ui.js";
import { registerEval } from "./eval.js";
import { registerFinetune } from "./finetune.js";
import { registerGenerate } from "./generate.js";
import { registerInfo } from "./info.js";
import { registerInspect } from "./inspect.js";
import { registerLogits } from "./logits.js";
import { registerScaling } from "./scaling.js";
import { registerServe } from "./serve.js";
import { registerTokenize } from "./tokenize.js";
import { registerTrain } from "./train.js";

/** Every subcommand registers itself here: one line per command module. */
export const commands: Array<(program: Command) => void> = [
  registerInfo,
  registerServe,
  registerGenerate,
  registerChat,
  registerChatUi,
  registerLogits,
  registerInspect,
  registerTokenize,
  registerTrain,
  registerFinetune,
  registerEval,
  registerScaling,
];
