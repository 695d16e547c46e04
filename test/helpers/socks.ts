// A real SOCKS5 server (Debian's dante-server) on loopback that accepts any username and password
// (PAM with pam_permit) and logs which username each connection used.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

const PAM_SERVICE = 'sourcemesh-socks-test';

export interface Socks {
  port: number;
  /** Usernames of the connections made so far, with their destination ports. */
  connections(): Promise<{ user: string; port: number }[]>;
  /**
   * Wait (at most 10 s) until the log shows at least `count` connections: dante writes its log lines after
   * the client has moved on. Returns either way; the caller's assertions say what is missing.
   */
  logged(count: number): Promise<void>;
  close(): Promise<void>;
}

export async function startSocks(dir: string): Promise<Socks> {
  if (!existsSync('/usr/sbin/danted')) throw new Error('dante-server is needed for this test: apt-get install dante-server');
  const pam = `/etc/pam.d/${PAM_SERVICE}`;
  if (!existsSync(pam)) await writeFile(pam, 'auth sufficient pam_permit.so\naccount sufficient pam_permit.so\n');
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const conf = path.join(dir, 'danted.conf');
  const log = path.join(dir, 'danted.log');
  await writeFile(conf, `logoutput: ${log}
internal: 127.0.0.1 port = ${port}
external: 127.0.0.1
socksmethod: pam.username
user.privileged: root
user.unprivileged: nobody
client pass {
  from: 127.0.0.0/8 to: 0.0.0.0/0
  log: error
}
socks pass {
  from: 127.0.0.0/8 to: 127.0.0.0/8
  pam.servicename: ${PAM_SERVICE}
  log: connect error
}
`);
  const child = spawn('/usr/sbin/danted', ['-f', conf, '-N', '1'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((r) => net.connect(port, '127.0.0.1').on('connect', function (this: net.Socket) { this.destroy(); r(true); }).on('error', () => r(false)));
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const connections = async () => {
    const text = await readFile(log, 'utf8').catch(() => '');
    // e.g. "tcp/connect [: pam.username%alice@127.0.0.1.44088 127.0.0.1.1080 -> 127.0.0.1.58817 127.0.0.1.18081"
    return [...text.matchAll(/tcp\/connect \[: pam\.username%(\S+)@127\.0\.0\.1\.\d+ \S+ -> \S+ 127\.0\.0\.1\.(\d+)/g)].map((m) => ({ user: m[1]!, port: Number(m[2]) }));
  };
  return {
    port,
    connections,
    async logged(count) {
      for (let i = 0; i < 200 && (await connections()).length < count; i++) await new Promise((r) => setTimeout(r, 50));
    },
    close: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.on('close', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}
