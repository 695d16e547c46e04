// The service side of `node run`'s supervisor: a service ends when its supervisor does, even when the
// supervisor is killed with SIGKILL and has no chance to stop it. The supervisor spawns each service with
// an IPC channel (supervisor.ts) and names it in SUPERVISED_ENV; the channel closes when the supervisor's
// process ends, however it ends, on every platform Node runs on, and that 'disconnect' is taken here as
// the supervisor's SIGTERM: the same graceful stop, then a hard exit after limits.nodeStopMs
// (docs/OPERATIONS.md, "Running a node").
import { LIMITS } from '../limits.ts';

/** Set by the supervisor in the environment of each service it starts. */
export const SUPERVISED_ENV = 'SOURCEMESH_SUPERVISED';

/**
 * In a service started by the supervisor: stop when the supervisor is gone. The variable is removed so
 * the service's own children (serve's workers, which have channels of their own) do not take it.
 */
export function endWithSupervisor(env: NodeJS.ProcessEnv = process.env, stopMs = LIMITS.nodeStopMs): boolean {
  if (env[SUPERVISED_ENV] === undefined) return false;
  delete env[SUPERVISED_ENV];
  // Spawned without a channel (by hand, with the variable copied): nothing to watch.
  if (!process.channel) return false;
  // The channel alone must not keep a service alive that has finished its work.
  process.channel.unref();
  process.once('disconnect', () => {
    setTimeout(() => process.exit(1), stopMs).unref();
    process.kill(process.pid, 'SIGTERM');
  });
  return true;
}
