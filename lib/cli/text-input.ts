/**
 * Where a text command's inputs come from: its arguments, else `--file F` (one text a line), else standard
 * input (one text a line). Lines are read as they are needed, so a long file streams.
 */
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { BortError, quoteName } from '../errors.js';

export async function* inputLines(args: string[], file: string | undefined, cmd: string): AsyncGenerator<string> {
  if (args.length && file) throw new BortError('texts given both as arguments and with --file', `use one of them; see bort-compress ${cmd} --help`);
  if (args.length) {
    yield* args;
    return;
  }
  let stream: NodeJS.ReadableStream;
  if (file !== undefined) {
    try {
      if (fs.statSync(file).isDirectory()) throw new Error('is a folder');
      stream = fs.createReadStream(file, { encoding: 'utf8' });
    } catch (e) {
      throw new BortError(`cannot read ${quoteName(file)}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, 'give --file a text file with one input a line');
    }
  } else {
    if (process.stdin.isTTY) throw new BortError('no input text', `give texts as arguments, --file F or lines on standard input; see bort-compress ${cmd} --help`);
    stream = process.stdin;
  }
  const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
  try {
    for await (const line of rl) yield line;
  } finally {
    rl.close();
  }
}
