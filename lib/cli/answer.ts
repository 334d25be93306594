/** `bort-compress answer MODEL --question Q --context C`: the span of the context that answers Q. */
import { BortError, quoteName } from '../errors.js';
import type { AnswerInput } from '../tasks/answer.js';
import { COMMON_HELP, openPipeline, parse, positiveInt, score, type Out } from './text-command.js';
import { inputLines } from './text-input.js';

export const ANSWER_HELP = `bort-compress answer MODEL.onnx --question Q --context C [--vocab V]

Extractive question answering with a QA model (start and end logits per token): the context span with
the largest start + end logit, at most --max-answer tokens long. Without --question and --context, reads
JSON lines {"question", "context"} from --file or standard input. Plain output: the answer, a tab, its
score; --json: {"question", "answer", "score", "start", "end"} (start/end: character offsets in the
context). With --truncate, the context is cut to fit, never the question.

${COMMON_HELP}
  --question Q       the question
  --context C        the text holding the answer
  --max-answer N     longest answer in tokens (default 30)`;

async function* jsonInputs(lines: AsyncIterable<string>): AsyncGenerator<AnswerInput> {
  let n = 0;
  for await (const line of lines) {
    n++;
    let x: unknown;
    try {
      x = JSON.parse(line);
    } catch {
      throw new BortError(`input line ${n} is not JSON`, 'give one {"question": …, "context": …} object a line, or use --question and --context');
    }
    const q = x as Partial<AnswerInput>;
    if (!q || typeof q.question !== 'string' || typeof q.context !== 'string') throw new BortError(`input line ${n} lacks "question" or "context"`, 'give one {"question": …, "context": …} object a line');
    yield { question: q.question, context: q.context };
  }
}

export async function answerCommand(args: string[], out: Out): Promise<void> {
  const { values: o, positionals } = parse(args, { question: { type: 'string', short: 'q' }, context: { type: 'string', short: 'c' }, 'max-answer': { type: 'string' } }, 'answer');
  if (o.help) return out(ANSWER_HELP);
  if ((o.question === undefined) !== (o.context === undefined)) throw new BortError(`--${o.question === undefined ? 'question' : 'context'} is missing`, 'give both --question and --context');
  if (positionals.length > 1) throw new BortError(`unexpected argument ${quoteName(positionals[1])}`, 'give the question and context with --question and --context');
  const p = await openPipeline('answer', positionals[0], o, { maxAnswerTokens: positiveInt(o['max-answer'], 'max-answer', 30) });
  try {
    const inputs = o.question !== undefined ? [{ question: o.question, context: o.context! }] : jsonInputs(inputLines([], o.file, 'answer'));
    for await (const r of p.stream(inputs)) out(o.json ? JSON.stringify(r) : `${r.answer}\t${score(r.score)}`);
  } finally {
    await p.close();
  }
}
