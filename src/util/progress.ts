// A progress line on stderr for long operations: redrawn in place on a terminal, a line every
// few seconds otherwise (logs), nothing when quiet.
import { formatBytes } from './units';

export class Progress {
  private lastDraw = 0;
  private readonly started = Date.now();
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly quiet = false,
    private readonly unit: 'bytes' | 'count' = 'bytes',
  ) {
    this.tty = process.stderr.isTTY === true;
  }

  update(done: number): void {
    if (this.quiet) return;
    const now = Date.now();
    if (now - this.lastDraw < (this.tty ? 100 : 2000) && done < this.total) return;
    this.lastDraw = now;
    const frac = this.total > 0 ? Math.min(1, done / this.total) : 1;
    const width = 30;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    const fmt = (n: number) => (this.unit === 'bytes' ? formatBytes(n) : String(Math.round(n)));
    const secs = (now - this.started) / 1000;
    const line = `${this.label} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${fmt(done)}/${fmt(this.total)} ${secs.toFixed(1)}s`;
    process.stderr.write(this.tty ? `\r${line}\x1b[K` : `${line}\n`);
  }

  done(): void {
    if (this.quiet) return;
    this.lastDraw = 0;
    this.update(this.total);
    if (this.tty) process.stderr.write('\n');
  }
}
