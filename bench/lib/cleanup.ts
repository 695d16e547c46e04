// Tear-down for benchmarks: servers and children they started are stopped on a normal end, on an
// error, and on SIGINT/SIGTERM/SIGHUP, newest first. Each task also has a synchronous form for the
// last-resort 'exit' hook (a process.exit() elsewhere), where nothing asynchronous runs any more.

interface Task {
  run: () => Promise<void> | void;
  /** What can still be done synchronously at 'exit' (send a signal, say). */
  runSync?: () => void;
}

const tasks: Task[] = [];
let installed = false;

/** Register a tear-down; returns a function that unregisters it (when the resource ended by itself). */
export function onCleanup(run: Task['run'], runSync?: Task['runSync']): () => void {
  install();
  const task: Task = { run, runSync };
  tasks.push(task);
  return () => {
    const i = tasks.indexOf(task);
    if (i >= 0) tasks.splice(i, 1);
  };
}

/** Run every registered tear-down, newest first; errors are reported, not thrown. */
export async function cleanup(): Promise<void> {
  while (tasks.length) {
    const task = tasks.pop()!;
    try {
      await task.run();
    } catch (err) {
      process.stderr.write(`cleanup: ${(err as Error).message}\n`);
    }
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: stopping servers and children\n`);
      void cleanup().finally(() => process.exit(128 + number));
    });
  }
  process.on('exit', () => {
    for (const task of tasks.splice(0).reverse()) {
      try {
        task.runSync?.();
      } catch {
        // exiting anyway
      }
    }
  });
}
