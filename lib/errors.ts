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
