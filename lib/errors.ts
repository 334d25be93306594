/**
 * The one error type users see. `message` names the problem, `fix` says what to do about it; the CLI
 * prints them as one line and exits non-zero, never a stack trace.
 */
export class BortError extends Error {
  readonly fix: string;
  constructor(problem: string, fix: string) {
    super(`${problem}: ${fix}`);
    this.name = 'BortError';
    this.fix = fix;
  }
}

/**
 * Text from a model file made safe for one line of a terminal: control characters (newlines, terminal
 * escapes, NUL) shown as \xNN / \uNNNN escapes. For output whose format has no quotes (a label).
 */
export function escapeControls(text: unknown): string {
  return String(text).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * A name taken from a model file (tensor, node, input), made safe to put in a one-line message:
 * control characters escaped (escapeControls), and names longer than 80 characters cut in the middle.
 * Always quoted.
 */
export function quoteName(name: unknown): string {
  let s = escapeControls(name);
  if (s.length > 80) s = `${s.slice(0, 38)}…(${s.length - 76} more)…${s.slice(-38)}`;
  return `'${s}'`;
}
