# Driven by test/torrent/*.test.ts: libtorrent 2.0.8 (Debian python3-libtorrent) downloads one torrent into
# SAVE_DIR, on loopback only (no DHT, LSD, UPnP or NAT-PMP), from the torrent's web seeds and/or the peers
# named, and prints one JSON line: whether it finished, the bytes it took from peers and from web seeds,
# and the errors libtorrent reported.
#   libtorrent-download.py TORRENT SAVE_DIR TIMEOUT_SECONDS [--no-piece-layers] [--v2-handshake] [HOST:PORT...]
# --no-piece-layers: libtorrent gets the torrent without its piece layers (as from a magnet link), so it
# must ask peers for the hashes (BEP 52 hash request). --v2-handshake: the peers named are said to speak
# v2 (libtorrent's pex_lt_v2 flag), so for a hybrid torrent libtorrent greets them with the truncated v2
# info-hash instead of the v1 one. SIGTERM ends the wait early (the JSON line is still printed): for a
# peer that will never have the whole file.
import json
import os
import signal
import sys

import libtorrent as lt

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'helpers'))
from libtorrent_session import session, wait_until_seeding  # noqa: E402

torrent, save, timeout, peers = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
no_layers = '--no-piece-layers' in peers
v2_handshake = '--v2-handshake' in peers
peers = [p for p in peers if p not in ('--no-piece-layers', '--v2-handshake')]
# libtorrent 2.0.8 pex_flags.hpp: encryption 1, utp 4, holepunch 8 (the default 13), lt_v2 128 (bit 7).
PEX_DEFAULT, PEX_LT_V2 = 13, 128
ses = session('127.0.0.1:0')
atp = lt.add_torrent_params()
if no_layers:
    e = lt.bdecode(open(torrent, 'rb').read())
    e.pop(b'piece layers', None)
    atp.ti = lt.torrent_info(e)
else:
    atp.ti = lt.torrent_info(torrent)
atp.save_path = save
h = ses.add_torrent(atp)
for p in peers:
    host, port = p.rsplit(':', 1)
    h.connect_peer((host, int(port)), 0, PEX_DEFAULT | PEX_LT_V2 if v2_handshake else PEX_DEFAULT)
stopped = []
signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
done, errors = wait_until_seeding(ses, h, timeout, 0.05, stopped=lambda: bool(stopped))
s = h.status()
print(json.dumps({'done': done, 'progress': s.progress, 'peerBytes': s.total_payload_download, 'failedBytes': s.total_failed_bytes,
                  'redundantBytes': s.total_redundant_bytes, 'errors': errors[:20]}))
