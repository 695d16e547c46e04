# A libtorrent 2.0.8 leecher for bench:swarm (Debian python3-libtorrent), run inside a network namespace:
# it listens on LISTEN (HOST:PORT) for the other leechers, connects to the PEERS named, takes the
# torrent's web seeds (BEP 19) as they are, and exits as soon as it has the whole file verified (as
# `sourcemesh fetch` does), printing one JSON line: done, seconds, payload bytes from peers and from web
# seeds, bytes it uploaded, and the errors libtorrent reported. No DHT, LSD, UPnP or NAT-PMP.
#   libtorrent-leech.py TORRENT SAVE_DIR LISTEN TIMEOUT_SECONDS [HOST:PORT...]
import json
import os
import sys
import time

import libtorrent as lt

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'test', 'helpers'))
from libtorrent_session import session, wait_until_seeding  # noqa: E402

t0 = time.time()
torrent, save, listen, timeout, peers = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5:]
ses = session(listen)
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(torrent)
atp.save_path = save
h = ses.add_torrent(atp)
# The other leechers may not listen yet: ask again until connected (libtorrent drops failed addresses).
last_connect = [0.0]


def connect():
    if time.time() - last_connect[0] > 1.0:
        last_connect[0] = time.time()
        connected = {f'{p.ip[0]}:{p.ip[1]}' for p in h.get_peer_info()}
        for p in peers:
            if p not in connected:
                host, port = p.rsplit(':', 1)
                h.connect_peer((host, int(port)))


done, errors = wait_until_seeding(ses, h, timeout, 0.02, each=connect)
s = h.status()
web = 0
for p in h.get_peer_info():
    if p.connection_type in (lt.peer_info.web_seed, lt.peer_info.http_seed):
        web += p.total_download
print(json.dumps({'done': done, 'seconds': time.time() - t0, 'payloadDownload': s.total_payload_download, 'webSeedBytesStillConnected': web,
                  'uploaded': s.total_payload_upload, 'failedBytes': s.total_failed_bytes, 'errors': errors[:20]}))
sys.exit(0 if done else 1)
