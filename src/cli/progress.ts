// Rendering fetch events for people: bars on a TTY (per file and total: bytes, rate, ETA), plain
// lines otherwise (CI logs, pipes). Machines use --json and get no progress output at all.
import cliProgress from 'cli-progress';
import { describeRejection, type FetchEvent, type FetchReport, type FileOutcome } from '../fetch/fetcher.ts';
import { formatBytes, paint, type Io } from './output.ts';

export interface ProgressView {
  onEvent(e: FetchEvent): void;
  stop(): void;
}

export function createProgress(io: Io, totalFiles: number, totalBytes: number | undefined): ProgressView {
  const tty = Boolean(io.stderr.isTTY) && !io.env.CI;
  return tty ? barsView(io, totalFiles, totalBytes) : linesView(io);
}

function linesView(io: Io): ProgressView {
  const say = (verb: string, rest: string) => io.stderr.write(`${verb.padEnd(8)} ${rest}\n`);
  return {
    onEvent(e) {
      switch (e.type) {
        case 'waiting': say('waiting', `${e.name}: another process (${e.holder}) is fetching it`); break;
        case 'retry': say('retry', `${e.name}: ${e.message} (attempt ${e.attempt + 1} in ${(e.delayMs / 1000).toFixed(1)} s)`); break;
        case 'rejected': say('rejected', `${e.name}: ${describeRejection(e)}`); break;
        case 'done': {
          const o = e.outcome;
          if (o.status === 'fetched') say('fetched', `${o.name}  ${formatBytes(o.size ?? 0)}  from ${o.source}`);
          else if (o.status === 'present') say('present', o.name);
          else say('failed', o.error?.message ?? o.name);
          break;
        }
      }
    },
    stop() {},
  };
}

function barsView(io: Io, totalFiles: number, totalBytes: number | undefined): ProgressView {
  const multi = new cliProgress.MultiBar(
    {
      stream: io.stderr as NodeJS.WriteStream,
      clearOnComplete: false,
      hideCursor: true,
      etaBuffer: 50,
      fps: 8,
      format: (options, params, payload: { label: string; rate: string; bytes: string; eta: string }) => {
        const bar = cliProgress.Format.BarFormat(params.progress, options);
        return `${payload.label.slice(0, 32).padEnd(32)} ${bar} ${payload.bytes.padStart(21)} ${payload.rate.padStart(12)} ${payload.eta}`;
      },
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  let doneFiles = 0;
  let doneBytes = 0;
  const total = multi.create(totalBytes ?? 1, 0, { label: `total 0/${totalFiles} files`, rate: '', bytes: '', eta: '' });
  const bars = new Map<string, { bar: cliProgress.SingleBar; bytes: number; size?: number; t0: number }>();
  const payload = (bytes: number, size: number | undefined, t0: number) => {
    const secs = Math.max(0.001, (Date.now() - t0) / 1000);
    const rate = bytes / secs;
    const eta = size && rate > 0 ? `ETA ${Math.max(0, Math.round((size - bytes) / rate))}s` : '';
    return { bytes: size ? `${formatBytes(bytes)}/${formatBytes(size)}` : formatBytes(bytes), rate: `${formatBytes(rate)}/s`, eta };
  };
  const refreshTotal = () => {
    const p = payload(doneBytes, totalBytes, started);
    total.update(totalBytes ? doneBytes : doneFiles / Math.max(1, totalFiles), { label: `total ${doneFiles}/${totalFiles} files`, ...p });
  };
  return {
    onEvent(e) {
      switch (e.type) {
        case 'start':
          bars.set(e.name, { bar: multi.create(e.size ?? 1, 0, { label: e.name, rate: '', bytes: '', eta: '' }), bytes: 0, size: e.size, t0: Date.now() });
          break;
        case 'bytes': {
          const b = bars.get(e.name);
          doneBytes += e.delta;
          if (b) {
            b.bytes += e.delta;
            b.bar.update(b.size ? b.bytes : 0, { label: e.name, ...payload(b.bytes, b.size, b.t0) });
          }
          refreshTotal();
          break;
        }
        case 'rejected': multi.log(`${paint(io, io.stderr, 'yellow', 'rejected')} ${e.name}: ${describeRejection(e)}\n`); break;
        case 'retry': multi.log(`retry    ${e.name}: ${e.message}\n`); break;
        case 'done': {
          doneFiles++;
          const b = bars.get(e.outcome.name);
          if (b) {
            multi.remove(b.bar);
            bars.delete(e.outcome.name);
          }
          if (e.outcome.status === 'failed') multi.log(`${paint(io, io.stderr, 'red', 'failed')}   ${e.outcome.error?.message}\n`);
          refreshTotal();
          break;
        }
      }
    },
    stop() {
      multi.stop();
    },
  };
}

export function summaryLines(io: Io, report: FetchReport, seconds: number): string {
  const bytes = report.files.filter((f) => f.status === 'fetched').reduce((n, f) => n + (f.size ?? 0), 0);
  const lines = [
    `${report.fetched} fetched, ${report.present} already present, ${report.failed} failed; ` +
      `${formatBytes(bytes)} in ${seconds.toFixed(1)} s (${formatBytes(bytes / Math.max(seconds, 0.001))}/s)`,
  ];
  const bySource = new Map<string, number>();
  // Mirrors by base URL; upstream by host, or a manifest of 300 upstream URLs gives 300 lines.
  const origin = (f: FileOutcome) => (f.via === 'upstream' && /^https?:/.test(f.source!) ? `upstream ${new URL(f.source!).host}` : f.source!);
  for (const f of report.files) if (f.status === 'fetched' && f.source) bySource.set(origin(f), (bySource.get(origin(f)) ?? 0) + 1);
  for (const [source, n] of [...bySource].sort((a, b) => b[1] - a[1])) lines.push(`  ${String(n).padStart(5)} from ${source}`);
  const liars = new Map<string, number>();
  for (const f of report.files) for (const r of f.rejected) if (r.code === 'E_CHECKSUM' || r.code === 'E_SIZE') liars.set(r.source, (liars.get(r.source) ?? 0) + 1);
  for (const [source, n] of liars) lines.push(paint(io, io.stderr, 'yellow', `  ${source} served wrong bytes for ${n} file(s): rejected`));
  return lines.join('\n') + '\n';
}
