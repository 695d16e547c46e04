// bittorrent-protocol ships no types: src/torrent/wire.ts, its one importer, describes what we use.
declare module 'bittorrent-protocol' {
  const Wire: unknown;
  export default Wire;
}
