/**
 * Progress lines on a terminal for steps that take more than a second; silent when stderr is not a
 * TTY (pipelines, CI) so that output stays machine-readable.
 */
export class Progress {
  private current?: { name: string; start: number };
  private readonly tty: boolean;
  constructor(private readonly stream: NodeJS.WriteStream) {
    this.tty = !!stream.isTTY;
  }

  step(name: string): void {
    this.finishCurrent();
    this.current = { name, start: Date.now() };
    if (this.tty) this.stream.write(`  … ${name}`);
  }

  private finishCurrent(): void {
    if (!this.current || !this.tty) return;
    const s = (Date.now() - this.current.start) / 1000;
    // rewrite the line: show the time only for steps that were slow enough to notice
    this.stream.write(`\r\x1b[K${s >= 1 ? `  ✓ ${this.current.name} (${s.toFixed(1)} s)\n` : ''}`);
  }

  done(): void {
    this.finishCurrent();
    this.current = undefined;
  }
}
