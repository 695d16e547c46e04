// Every bound on attacker-controlled input, and every timeout, lives here so that reviewers find them
// in one place. Checks happen before allocation. Callers may pass a partial override (tests do).

const KiB = 1024;
const MiB = 1024 * KiB;

export const LIMITS = {
  // manifests and live-bootstrap sources files
  manifestBytes: 64 * MiB,
  manifestDistfiles: 200_000,
  sourcesLineBytes: 8 * KiB,
  urlBytes: 4 * KiB,
  nameBytes: 255,
  urlsPerDistfile: 64,

  // HTTP client
  maxRedirects: 10,
  connectTimeoutMs: 30_000,
  headersTimeoutMs: 30_000,
  /** No byte for this long on an open body: the source is stalled. */
  idleTimeoutMs: 30_000,
  attemptsPerSource: 4,
  /**
   * Blame (fetch/liars.ts): pairs of sources are assumed to have lied together only when at most this
   * many sources take part in disputes; each assumption hashes the whole file once.
   */
  blamePairSources: 8,
  backoffBaseMs: 250,
  backoffMaxMs: 15_000,
  maxHeaderBytes: 64 * KiB,
  /** A source may send at most this much for a distfile whose size the manifest does not pin. */
  maxDistfileBytes: 64 * 1024 * MiB,
  /** Bytes of one download written but not yet hashed by its hash thread (src/fetch/hash-thread.ts): past it the download waits. */
  downloadHashAheadBytes: 8 * MiB,

  // store
  lockPollMs: 100,
  lockWaitMs: 24 * 60 * 60 * 1000,
  /**
   * The piece record beside a partial split across sources (tmp/*.part.pieces), read back on resume: a
   * bit per piece, base64 in JSON. 64 GiB in 16 KiB pieces is 4 Mi pieces, some 700 KiB.
   */
  pieceRecordBytes: 2 * MiB,

  // output paths (`-o` and the like): symbolic links followed to what they lead to (Linux's MAXSYMLINKS)
  outputSymlinkHops: 40,

  // trust
  /** A signed note (checkpoint, release statement, witness response) as a whole. */
  noteBytes: 256 * KiB,
  /** Signature lines in one note; C2SP signed-note asks verifiers to accept at least 16. */
  noteSignatures: 64,
  /** A key name (for a checkpoint, also its origin line). */
  noteKeyNameBytes: 256,
  /** A key file (`PRIVATE+KEY+...`, a vkey, KEYFILE.pub): a few hundred bytes in practice. */
  keyFileBytes: 4 * KiB,
  /** A TLS certificate chain or private key in PEM (`serve --tls-cert`, `--tls-key`). */
  tlsPemBytes: 1 * MiB,
  checkpointExtensionLines: 16,
  /** Hashes in one inclusion or consistency proof; 64 covers any tree of up to 2^63 leaves. */
  proofHashes: 64,
  /** One log entry; C2SP tlog-tiles entry bundles prefix each entry with a uint16 length. */
  logEntryBytes: 65_535,
  tilePathBytes: 128,

  // mirror server (`sourcemesh serve`): everything a client sends is attacker-controlled
  /** Open connections in all; when full, an idle one of the client holding the most makes room. */
  serveMaxConnections: 1024,
  /** Open connections per client address (IPv6: per /64); more are closed at accept. */
  serveClientConnections: 64,
  /** Request line and headers together (Node's maxHeaderSize); larger gets 431. */
  serveMaxHeaderBytes: 16 * KiB,
  /** The request target (path and query) as sent; longer gets 400 before any decoding. */
  serveTargetBytes: 2 * KiB,
  /** The whole request head must arrive within this (slowloris). */
  serveHeadersTimeoutMs: 10_000,
  serveRequestTimeoutMs: 30_000,
  serveKeepAliveTimeoutMs: 5_000,
  /** A client that takes no byte for this long (a stalled reader) is dropped. */
  serveIdleTimeoutMs: 60_000,
  /**
   * A response of which the kernel takes no byte for this long is cut (its buffers go back). The kernel
   * takes bytes in steps of about a third of its send buffer (about 1.3 MB on Linux), so a client must
   * read some 22 KB/s not to be cut; nginx's send_timeout is 60 s too.
   */
  serveSendTimeoutMs: 60_000,
  /**
   * Token bucket per client address (IPv6: per /64): sustained requests per second, and burst. A
   * segmented fetch asks for 1 MiB pieces, so 1,000/s still lets one client take about 1 GB/s.
   */
  serveRequestsPerSecond: 1000,
  serveRequestBurst: 5000,
  /** Client buckets kept at once; full buckets are forgotten first. */
  serveRateClients: 65_536,
  /** More ranges than this in one request get the whole file (200) instead of multipart. */
  serveMaxRanges: 16,
  /** In-flight responses get this long to finish after SIGINT/SIGTERM. */
  serveShutdownMs: 30_000,
  /** Read buffer size: 1 MiB instead of 64 KiB is what gets Node near sendfile speed. */
  serveStreamBufferBytes: 1 * MiB,
  /** The smaller buffers a response gets when its client or the pool is short of 1 MiB ones. */
  serveSmallBufferBytes: 64 * KiB,
  /** Read buffers lent to responses at once, in bytes (two per large response at most). */
  serveBufferBytes: 256 * MiB,
  /** The part of serveBufferBytes lent only as small buffers: one for each of 1,024 connections. */
  serveBufferReserveBytes: 64 * MiB,
  /**
   * 1 MiB read buffers one client address (IPv6: /64) may hold at once; beyond, its responses get one
   * small buffer per connection it may open (serveClientConnections), and then wait for its own.
   */
  serveClientBufferBytes: 16 * MiB,
  /** Idle read buffers kept for reuse; beyond this, buffers unused for serveBufferIdleMs are freed. */
  serveBufferFloorBytes: 8 * MiB,
  serveBufferIdleMs: 10_000,
  /** Files up to this size are kept in memory once read and verified, up to serveCacheBytes in all. */
  serveCachedFileBytes: 1 * MiB,
  serveCacheBytes: 64 * MiB,
  /** Idle open files kept for the next request. */
  serveOpenFiles: 256,
  /**
   * Body reads from a local file system are done on the event loop (a pread from the page cache, as
   * nginx's worker does) until one takes longer than this: the disk, not the page cache, answered.
   * Then reads go through the thread pool for serveSyncReadBackoffMs.
   */
  serveSyncReadSlowMs: 4,
  serveSyncReadBackoffMs: 1000,
  /**
   * Listening sockets (SO_REUSEPORT) one serve process accepts on: libuv accepts one connection per
   * socket and event-loop turn, and a busy turn takes milliseconds, so newcomers waited one turn each.
   */
  serveAcceptSockets: 8,
  /**
   * With at most this many connections open, bodies are read serveQuietReadBytes at a time, so that a
   * client takes one piece out of the socket while the next is read (more connections keep the CPUs busy).
   */
  serveQuietConnections: 2,
  serveQuietReadBytes: 256 * KiB,
  /** A signed inventory (a note, but larger than noteBytes allows) and its file count. */
  inventoryBytes: 64 * MiB,
  inventoryFiles: 200_000,

  // log and witness servers (`log serve`, `witness serve`): bodies, clients and witness answers are attacker-controlled
  tlogMaxConnections: 4096,
  tlogMaxHeaderBytes: 16 * KiB,
  tlogHeadersTimeoutMs: 10_000,
  /** Receiving a whole request (a waiting /add?wait=checkpoint answer is bounded by logCheckpointWaitMs). */
  tlogRequestTimeoutMs: 30_000,
  tlogKeepAliveTimeoutMs: 5_000,
  /** Entries accepted but not yet stored; beyond this /add answers 503 with Retry-After (backpressure). */
  logPendingEntries: 65_536,
  /** Entries per group commit: one tree head update, one set of tiles. */
  logBatchEntries: 16_384,
  /** Clients waiting at once on /add?wait=checkpoint, and how long each waits. */
  logCheckpointWaiters: 65_536,
  logCheckpointWaitMs: 60_000,
  /** Another process on the same log directory may hold its write lock this long (E_LOCKED after). */
  logLockWaitMs: 30_000,
  /** One add-checkpoint exchange from the log to a witness. */
  logWitnessTimeoutMs: 10_000,
  /** Who may write to the log (`log serve --admit...`): per-key quotas, the defaults of --key-entries-per-hour and --key-bytes-per-day. */
  logKeyEntriesPerHour: 1000,
  logKeyBytesPerDay: 16 * MiB,
  /** Submitting keys whose quota state is held in memory; the others are read back from the log's state. */
  logQuotaKeysCached: 100_000,
  /** POST /add per client address (IPv6: per /64): sustained per second, burst (defaults of --add-rate); buckets kept. */
  logAddRequestsPerSecond: 200,
  logAddRequestBurst: 2000,
  logAddRateClients: 65_536,
  /** Entries waiting for or in signature verification; beyond this /add answers 503 (backpressure). */
  logVerifyPending: 16_384,
  /** An admission file (`--admit-file`, JSON), its keys and its projects. */
  logAdmissionBytes: 4 * MiB,
  logAdmittedKeys: 100_000,
  logAdmittedProjects: 100_000,
  /** vkeys one submission may name in Sourcemesh-Key headers (`--admit-any-signed`). */
  logSubmitterKeys: 16,
  /** An add-checkpoint body: the old size line, proof lines, a checkpoint note (noteBytes). */
  witnessRequestBytes: 260 * KiB,
  /** C2SP tlog-witness: a client MUST NOT send more than 63 consistency proof lines. */
  witnessProofLines: 63,
  /** add-checkpoint requests per client address (IPv6: per /64): sustained per second, burst; buckets kept. */
  witnessRequestsPerSecond: 100,
  witnessRequestBurst: 1000,
  witnessRateClients: 4096,

  // the node (`node run`, its panel): the config file and everything a browser sends are attacker-controlled
  /** The node config (DIR/node.json). */
  nodeConfigBytes: 1 * MiB,
  /** A request body to the panel (a form or a config); the panel's request head and timeouts. */
  panelBodyBytes: 64 * KiB,
  panelMaxHeaderBytes: 16 * KiB,
  panelRequestTimeoutMs: 30_000,
  /** Login sessions kept at once (oldest dropped first) and how long one lasts. */
  panelSessions: 64,
  panelSessionMs: 12 * 60 * 60 * 1000,
  /** Failed logins per client address: sustained per minute, burst. */
  panelLoginsPerMinute: 10,
  panelLoginBurst: 20,
  /** A crashed service is restarted after a backoff from this to the max (doubling), reset after it ran this long. */
  nodeRestartBaseMs: 1000,
  nodeRestartMaxMs: 60_000,
  nodeRestartResetMs: 60_000,
  /** A stopping service gets this long after SIGTERM, then SIGKILL. */
  nodeStopMs: 35_000,
  /** One line of a service's output kept for the node's log; longer lines are cut. */
  nodeServiceLineBytes: 16 * KiB,

  // releases, trust policies and key rotation (`release`, `release verify`, --trust-policy): bundles, policies
  // and rotation chains come from projects, mirrors and logs, so they are attacker-controlled
  /** A release bundle (JSON: the release note, checkpoint, proofs, rotation hops). */
  releaseBundleBytes: 4 * MiB,
  /** A trust policy file (JSON). */
  trustPolicyBytes: 64 * KiB,
  /** A rotation chain file a project keeps (every statement and skip link). */
  rotationChainBytes: 64 * MiB,
  /** Keys in one release key set (a policy's genesis set or a rotation statement). */
  rotationKeys: 64,
  /** Rotation hops carried in one bundle (O(log n) needed: 128 covers any chain a bundle can name). */
  rotationHops: 128,
  /** Statements in one rotation chain file. */
  rotationStatements: 1_000_000,
  /** Consistency proofs carried in one bundle, from older tree sizes. */
  bundleConsistencyProofs: 16,
  /** A Sigstore bundle of one attestation (its DSSE envelope must fit a log entry, 65,535 bytes). */
  attestationBytes: 128 * KiB,
  /** Attestation files read from one directory (`attest verify DIR`, policy checks). */
  attestationFiles: 100_000,
  /** Entries a client reads from a log to find attestations (the whole tree is re-hashed to its checkpoint). */
  attestationLogEntries: 1_000_000,
  /** Entries in one answer of a log's GET /attestations/... (its subject index; then the next page). */
  attestationLookupPage: 256,
  /** Files whose attestations a client asks a log's index for at once. */
  attestationLookupsAtOnce: 8,
  /** Cosignature timestamps up to this far in the future are taken as clock skew, not refused. */
  trustClockSkewSeconds: 300,
  /** Fetching a checkpoint or tile from a log (`--trust-policy` online). */
  logFetchTimeoutMs: 30_000,
  /** A tile or checkpoint answer from a log. */
  logFetchBytes: 1 * MiB,

  // tarballs (tarSha256, cleanse): compressed streams and tar headers from mirrors and upstreams are attacker-controlled
  /**
   * Output of decompressing one tarball, whatever its compressed size (a bomb costs time, never memory;
   * refused past this). 64 GiB: about 8 minutes of bzip2 on one core, and as much as a download may send.
   */
  decompressedTarBytes: 64 * 1024 * MiB,
  /**
   * Decompressed bytes per compressed byte read so far, past decompressionFloorBytes: more is refused as a
   * bomb (a 104 KB .tar.bz2 of 16 GiB once cost 129 s). Deflate cannot exceed about 1032:1, source
   * tarballs are rarely past 20:1; bzip2 and xz bombs reach millions to one.
   */
  decompressionRatio: 1024,
  /** Output any input may decompress to before the ratio applies (an empty tar is 10 KiB of zeros). */
  decompressionFloorBytes: 64 * MiB,
  /** A pax extended header's payload, held in memory while its entry is read. */
  tarPaxHeaderBytes: 1 * MiB,
  /** A path or link name in a tarball being cleansed. */
  tarPathBytes: 64 * KiB,
  /** Symbolic links a cleanse remembers (their paths and targets, bytes) to refuse any later path through one. */
  tarLinkPathBytes: 64 * MiB,

  // git objects and tar: a repository being archived is attacker-controlled (objects, packs, refs, attributes)
  /** An object inflated whole into memory: trees, commits, tags, delta bases and results, blobs being converted. */
  gitObjectBytes: 1024 * MiB,
  /** A blob streamed into a tar; larger declared sizes are refused before reading. */
  gitBlobBytes: 1024 * 1024 * MiB,
  /** Deltas applied to rebuild one packed object (git's repack caps --depth at 4095). */
  gitDeltaDepth: 10_000,
  /** Rebuilt delta bases kept for reuse (git's core.deltaBaseCacheLimit defaults to 96 MiB). */
  gitDeltaBaseCacheBytes: 96 * MiB,
  /**
   * Blocks of a pack kept in memory, per pack (src/archive/git/pack.ts; git maps whole packs instead); their
   * memory is reused once the budget is reached (issue 14: 16 MiB held the whole 13 MB pack of the
   * history-rich bench repository, a page fault per 4 KiB; 4 MiB: same speed on gnulib, 9 MiB less RSS).
   */
  gitPackCacheBytes: 4 * MiB,
  /** Annotated tags peeled to reach a commit. */
  gitTagDepth: 64,
  /** Trees nested below the root tree. */
  gitTreeDepth: 4096,
  /** Entries in one tree object. */
  gitTreeEntries: 1_000_000,
  /** A path inside the archive, prefix included. */
  gitPathBytes: 64 * KiB,
  /** A loose ref, HEAD, commondir, gitdir, config, shallow or alternates file. */
  gitRefFileBytes: 1 * MiB,
  /** packed-refs as a whole. */
  gitPackedRefsBytes: 1024 * MiB,
  /** Symbolic refs followed from one name (git's SYMREF_MAXDEPTH). */
  gitSymrefDepth: 5,
  /** A pack index (v2: 28 bytes per object, 8 more per 64-bit offset) or multi-pack-index read into memory. */
  gitPackIndexBytes: 2048 * MiB,
  /** Alternate object directories followed (git stops at 5 levels). */
  gitAlternatesDepth: 5,
  /** Tar bytes in flight from the archive reader to the deflate thread of a tar.gz (src/archive/gzip-thread.ts). */
  archiveDeflateQueueBytes: 4 * MiB,

  // BitTorrent (src/torrent/): .torrent files and everything peers send are attacker-controlled
  /** Lists and dictionaries nested in one bencoded value (a multi-file torrent nests one per directory). */
  bencodeDepth: 64,
  /** Values in one bencoded input (each costs a JavaScript object, far more than its 2 bytes of input). */
  bencodeItems: 1_000_000,
  /** A .torrent file read whole: 64 GiB in 16 KiB pieces has 2 MiB of piece layer and 80 MiB of v1 pieces. */
  torrentBytes: 128 * MiB,
  /** Files in one torrent (pad files included). */
  torrentFiles: 400_000,
  /** Largest piece length we make or accept (BEP 52 asks only for a power of two of at least 16 KiB). */
  torrentMaxPieceLength: 64 * MiB,
  /** A peer wire message (length prefix included): a bitfield of 8 Mi pieces, or a 16 KiB block with room. */
  peerMessageBytes: 1 * MiB + 16,
  /** A block a peer may request (BEP 3 clients ask for 16 KiB; libtorrent refuses more). */
  peerBlockBytes: 16 * KiB,
  /** Requests a peer may have waiting on us (advertised as `reqq`, BEP 10); twice this ends the connection. */
  peerRequestQueue: 250,
  /** Hashes in one BEP 52 `hashes` answer (8 KiB hashes: 256 KiB). */
  peerHashesPerRequest: 8192,
  /** A new connection must complete its handshake within this. */
  peerHandshakeTimeoutMs: 10_000,
  /** A connection silent for this long is closed (BEP 3 keep-alives come every two minutes). */
  peerIdleTimeoutMs: 180_000,
  /** `fetch --bittorrent`: how long a read waits for a peer to announce (BEP 3 `have`) a piece it lacks yet (a leecher a little behind). */
  peerHaveWaitMs: 5_000,
  /** `fetch --bittorrent`: pieces in flight at once from one peer that has some of them (another leecher), each a pipeline of block requests. */
  swarmPiecesPerPeer: 3,
  /** ... from a source that has them all (a seeder, a web seed): one, so other leechers see soon what it sent (docs/OPERATIONS.md). */
  swarmPiecesPerWholeSource: 1,
  /** ... in all, in one download (each one a piece buffered in memory until checked and written). */
  swarmPiecesInFlight: 8,
  /** A peer that said nothing of the pieces it has (no bitfield yet) is asked anyway after this, one piece at a time. */
  swarmSilentPeerGraceMs: 2_000,
  /** Connections to one peer made again after one closed on its own (1 s, 2 s, 4 s apart), before it counts as having nothing. */
  swarmPeerReconnects: 3,
  /**
   * `fetch --bittorrent`: peers of a torrent learned by a re-announce after a file's download started
   * (src/torrent/late-peers.ts) that the download takes on; a tracker may name any number.
   */
  swarmLatePeers: 8,
  /**
   * `fetch --bittorrent` with a DHT: a torrent's peers are looked up again this long after a lookup that
   * named a new peer (src/torrent/swarm-fetch.ts); after one that named none, twice the last wait, up to
   * the ceiling.
   */
  swarmDhtLookupFloorMs: 30_000,
  swarmDhtLookupCeilingMs: 10 * 60_000,
  /**
   * `fetch --bittorrent` (`--bt-wait`): how long after the start a file that no source served (no peer
   * found, or none answered) waits for peers the DHT or a tracker names later before it fails.
   */
  swarmPeerWaitMs: 5 * 60_000,
  /** Default of `seed --max-peers`. */
  seedMaxPeers: 200,
  /** Pieces a seeder keeps in memory once read and checked, to send their blocks to several peers (larger pieces are read block by block); pieces still being sent count, whatever the peers (src/torrent/seeder.ts pieceMemory). */
  seedPieceCacheBytes: 8 * MiB,
  /** A tracker's announce response (BEP 3), read whole: 200 compact peers are 1.2 KB; anything near this is hostile. */
  trackerResponseBytes: 256 * KiB,
  /** Peers one announce response may name (we ask for `numwant` 50); more and the response is refused whole. */
  trackerPeers: 200,
  /** Trackers of one torrent (announce-list, BEP 12, and --tracker) tried at most, in tier order: a torrent may list thousands. */
  trackersPerTorrent: 16,
  /** `numwant` sent in announces (BEP 3: how many peers we would like). */
  trackerNumwant: 50,
  /** One announce, from connect to the last byte of the body (a tracker that drips its answer is cut here). */
  trackerTimeoutMs: 15_000,
  /** Re-announces come no sooner than this, whatever `interval` a tracker asks for (its `min interval` is respected above it). */
  trackerIntervalFloorMs: 60_000,
  /** ... and no later than this, whatever `interval` or `min interval` it asks for (a tracker forgets a silent peer). */
  trackerIntervalCeilingMs: 2 * 60 * 60_000,

  // discovery (src/discovery/): mDNS packets from anyone on the link, DHT nodes and their answers are attacker-controlled
  /** Node announcements (instances of _sourcemesh._tcp) kept at once while discovering; more are counted and dropped. */
  discoveryCandidates: 1024,
  /** Announced nodes whose inventory is fetched and checked at once. */
  discoveryChecksInFlight: 16,
  /** One node's inventory fetch during discover: connect, headers and body within this. */
  discoveryCheckTimeoutMs: 2_000,
  /** mDNS packets taken per second from one sender address, and its burst; beyond, dropped. */
  discoveryPacketsPerSecond: 100,
  discoveryPacketBurst: 200,
  /** A DNS-SD TXT string (RFC 6763 §6.1: one length byte). */
  discoveryTxtBytes: 255,
  /** A DNS-SD instance label (RFC 6763 §4.1.1: one DNS label). */
  discoveryInstanceBytes: 63,
  /** The DHT state file (known nodes, our node id). */
  dhtStateBytes: 1 * MiB,
  /** Nodes remembered in the DHT state file. */
  dhtStateNodes: 2_000,
  /** A BEP 44 value, bencoded (BEP 44: at most 1000 bytes). */
  dhtValueBytes: 1000,
  /** BEP 44 salt (at most 64 bytes). */
  dhtSaltBytes: 64,
  /** One DHT get or lookup as a whole. */
  dhtQueryTimeoutMs: 30_000,
  /** `seed --republish`: how often a mirror-list pointer is put again (BEP 44 nodes drop items after some 2 hours). */
  dhtRepublishMs: 30 * 60_000,
  /** An info-hash we seed or upload is announced in the DHT again this often (BEP 5 nodes forget peers after some 30 minutes). */
  dhtAnnounceEveryMs: 15 * 60_000,
  /** Discovery challenges (`seed --announce`, `witness serve --announce`) answered per second per client address, and the burst. */
  discoveryChallengesPerSecond: 20,
  discoveryChallengeBurst: 40,
  /** New names an announcer tries when its name is taken on the link (RFC 6762 §9: "name (2)", "name (3)", ...); then it gives up. */
  discoveryProbeRenames: 32,

  // Roughtime (src/time/, RFC 10049): every datagram a server or client receives is attacker-controlled
  /** One Roughtime packet (a request is padded to 1024 bytes; a response with a 32-hash PATH is some 1.5 KiB). */
  roughtimePacketBytes: 4 * KiB,
  /** Tags in one message (a request has 3 to 5; unknown tags are ignored, but not without bound). */
  roughtimeTags: 64,
  /** Requests answered under one signature (one Merkle tree of their hashes; a PATH of log2 of this). */
  roughtimeBatch: 64,
  /** Requests queued for signing; more are dropped unanswered (a flood costs no memory). */
  roughtimeQueue: 4096,
  /**
   * Roughtime requests per client address (IPv6: per /64) a server answers: sustained per second and
   * burst (`witness serve --roughtime-rate`, `--roughtime-burst`); buckets kept. A client measures with
   * 2 requests (up to 3 attempts each) per server, so 10/s with bursts of 50 serves a whole NAT of them.
   */
  roughtimeRequestsPerSecond: 10,
  roughtimeRequestBurst: 50,
  roughtimeRateClients: 4096,
  /** One Roughtime query: the answer must arrive within this, or the attempt is lost. */
  roughtimeTimeoutMs: 1_000,
  /** Attempts per server in one measurement (the RFC's backoff is for repeated measurements). */
  roughtimeAttempts: 3,
  /** One Roughtime query through a proxy (--tor, --proxy: over TCP through SOCKS5), the handshake included. */
  roughtimeProxyTimeoutMs: 30_000,
  /**
   * "Clients MUST implement exponential backoff in establishing TCP connections and making requests over
   * UDP": attempt n+1 starts no sooner than min(initial * base^(n-1), max) after attempt n did (RFC 10049
   * "Protocol Details", its recommended 1 s, 1.5 and 24 h).
   */
  roughtimeRetryInitialMs: 1_000,
  roughtimeRetryBase: 1.5,
  roughtimeRetryMaxMs: 24 * 60 * 60 * 1000,
  /**
   * Roughtime over TCP (`witness serve --roughtime-tcp`): a frame is one packet (roughtimePacketBytes);
   * connections open at once, in all and per client address (IPv6: per /64); a connection that completes
   * no request for roughtimeTcpIdleMs is closed, however slowly it trickles bytes (slowloris); requests one
   * connection may have waiting for their answers (pipelined) before it is closed.
   */
  roughtimeTcpConnections: 256,
  roughtimeTcpConnectionsPerClient: 4,
  roughtimeTcpIdleMs: 10_000,
  roughtimeTcpPendingRequests: 16,
  /** A delegated online key is valid this long (MINT..MAXT); the server makes a new one before it ends. */
  roughtimeDelegationSeconds: 24 * 60 * 60,
  /** Signed time and the local clock may disagree by this much before a policy decision is refused. */
  signedTimeSkewSeconds: 300,
  /** A Roughtime proof file (RFC 10049 malfeasance report) read back. */
  roughtimeProofBytes: 1 * MiB,
  /** `doctor`: a service's port, or Tor's SOCKS port, must connect (and greet back) within this. */
  doctorConnectTimeoutMs: 2_000,
} as const;

export type Limits = { -readonly [K in keyof typeof LIMITS]: (typeof LIMITS)[K] extends number ? number : (typeof LIMITS)[K] };

export function limitsWith(overrides: Partial<Limits> = {}): Limits {
  return { ...LIMITS, ...overrides };
}
