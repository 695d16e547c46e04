// A running node: its config in force, the supervisor of its services and its record. Every change
// (SIGHUP after an edit of node.json, a form of the panel) goes through here: validated whole first, so a
// bad config is refused with the field named and the services go on as they were.
import type { Logger } from '../logger.ts';
import { loadConfig, type NodeConfig, saveConfig } from './config.ts';
import { nodeStatus, mirrorStatus, type NodeStatusReport } from './status.ts';
import { NodeState, SyncReportReader } from './state.ts';
import { Supervisor, type SupervisorOptions } from './supervisor.ts';

const STATUS_TTL_MS = 1000;

export interface RuntimeOptions {
  dir: string;
  cli: readonly string[];
  logger: Logger;
  supervisor?: Partial<SupervisorOptions>;
}

export class NodeRuntime {
  readonly dir: string;
  readonly supervisor: Supervisor;
  readonly state: NodeState;
  readonly #logger: Logger;
  #config: NodeConfig;
  #status?: { at: number; config: NodeConfig; report: Promise<NodeStatusReport> };

  private constructor(o: RuntimeOptions, config: NodeConfig) {
    this.dir = o.dir;
    this.#logger = o.logger;
    this.#config = config;
    this.state = NodeState.open(o.dir);
    const reports = new SyncReportReader();
    this.supervisor = new Supervisor({
      dir: o.dir, cli: o.cli, logger: o.logger, ...o.supervisor,
      onLine: (service, stream, line) => {
        if (service !== 'mirrorSync' || stream !== 'stdout') return;
        const r = reports.push(line, Date.now());
        if (r) void this.#recordSync(r);
      },
    });
  }

  /** Load DIR/node.json (refused whole when bad) and start what it switches on. */
  static async start(o: RuntimeOptions): Promise<NodeRuntime> {
    const config = await loadConfig(o.dir);
    const rt = new NodeRuntime(o, config);
    await rt.#sample();
    await rt.supervisor.apply(config);
    return rt;
  }

  get config(): NodeConfig {
    return this.#config;
  }

  /** Re-read node.json (SIGHUP): a bad file is refused (thrown) and nothing changes. */
  async reload(): Promise<NodeConfig> {
    const next = await loadConfig(this.dir);
    this.#config = next;
    await this.supervisor.apply(next);
    return next;
  }

  /** A change from the panel: validated, saved durably, then applied. Throws E_CONFIG naming the field. */
  async change(next: unknown): Promise<NodeConfig> {
    const saved = await saveConfig(this.dir, next);
    this.#config = saved;
    this.#logger.info({ services: Object.fromEntries(Object.entries(saved.services).map(([k, s]) => [k, s.enabled])) }, 'config saved');
    await this.supervisor.apply(saved);
    return saved;
  }

  /**
   * What the node is doing. Read from files and databases, so a panel page under load costs one read per
   * second at most, not one per request.
   */
  status(): Promise<NodeStatusReport> {
    const now = Date.now();
    if (this.#status === undefined || now - this.#status.at > STATUS_TTL_MS || this.#status.config !== this.#config) {
      this.#status = { at: now, config: this.#config, report: nodeStatus(this.#config, this.dir, this.state) };
    }
    return this.#status.report;
  }

  async close(): Promise<void> {
    await this.supervisor.close();
    this.state.close();
  }

  async #recordSync(r: Parameters<NodeState['addSync']>[0]): Promise<void> {
    try {
      this.state.addSync(r);
      await this.#sample();
      this.#status = undefined;
    } catch (err) {
      this.#logger.warn({ error: (err as Error).message }, 'cannot record the sync in the node state');
    }
  }

  /** A point of the disk-use chart. */
  async #sample(): Promise<void> {
    const m = await mirrorStatus(this.#config, this.dir);
    if (m.error === undefined) this.state.addSize({ at: Date.now(), bytes: m.bytes, files: m.files });
  }
}
