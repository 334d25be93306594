/** The text commands, by name: each takes its arguments (after the command) and a line writer. */
import { answerCommand, ANSWER_HELP } from './answer.js';
import { classifyCommand, CLASSIFY_HELP } from './classify.js';
import { embedCommand, EMBED_HELP } from './embed.js';
import { fillMaskCommand, FILL_MASK_HELP } from './fill-mask.js';
import type { Out } from './text-command.js';

export const TEXT_COMMANDS: Record<string, { run: (args: string[], out: Out) => Promise<void>; help: string }> = {
  'fill-mask': { run: fillMaskCommand, help: FILL_MASK_HELP },
  embed: { run: embedCommand, help: EMBED_HELP },
  classify: { run: classifyCommand, help: CLASSIFY_HELP },
  answer: { run: answerCommand, help: ANSWER_HELP },
};
