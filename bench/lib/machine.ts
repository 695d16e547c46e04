// What a benchmark ran on, for the printed report and docs/BENCHMARKS.md.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findNginx } from './nginx.ts';

export interface Machine {
  date: string;
  nproc: string;
  memory: string;
  cpu: string;
  kernel: string;
  node: string;
  curl: string;
  nginx: string;
}

function firstLine(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  return r.status === 0 ? r.stdout.split('\n')[0]?.trim() : undefined;
}

export function describeMachine(): Machine {
  const cpuinfo = (() => {
    try {
      return readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return '';
    }
  })();
  const free = spawnSync('free', ['-h'], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } }).stdout ?? '';
  const mem = /^Mem:\s+(\S+)/m.exec(free)?.[1];
  return {
    date: new Date().toISOString().slice(0, 10),
    nproc: firstLine('nproc', []) ?? String(os.availableParallelism()),
    memory: mem ? `${mem} (free -h)` : `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? '?',
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    curl: firstLine('curl', ['--version'])?.split(' ').slice(0, 2).join(' ') ?? 'not installed',
    nginx: findNginx()?.version ?? 'not installed',
  };
}

export function formatMachine(m: Machine): string {
  return [
    `date ${m.date}; ${m.nproc} CPUs (${m.cpu}); memory ${m.memory}; ${m.kernel}`,
    `node ${m.node}; ${m.curl}; nginx ${m.nginx}`,
  ].join('\n');
}

/**
 * Linux pressure stall information: microseconds during which some runnable task waited for a CPU,
 * since boot (undefined without PSI). Two readings around a measurement say how contended it ran.
 */
export function cpuPressureMicros(): number | undefined {
  try {
    const m = /^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether COMMAND runs (`COMMAND ARGS` exits 0). */
export function hasCommand(cmd: string, args: string[] = ['--version']): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

/**
 * Sequential write throughput of the file system under DIR with the data flushed (fdatasync), in
 * MiB/s: what a tool that makes every file durable is bound by.
 */
export async function diskWriteMiBs(dir: string, mib = 512): Promise<number> {
  const file = path.join(dir, `.disk-probe-${process.pid}`);
  const buf = Buffer.alloc(1 << 20, 0x5a);
  const fh = await open(file, 'w');
  try {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < mib; i++) await fh.write(buf, 0, buf.length);
    await fh.datasync();
    return mib / (Number(process.hrtime.bigint() - t0) / 1e9);
  } finally {
    await fh.close();
    await rm(file, { force: true });
  }
}
