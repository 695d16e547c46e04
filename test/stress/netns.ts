// Until every user has moved to test/helpers/netns.ts: then removed.
export { destroyRun, namespaces, Network, PREFIX, RUN_DIR, sweepStale, workDirOf, type NetNode } from '../helpers/netns.ts';
