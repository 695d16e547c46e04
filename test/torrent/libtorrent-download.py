# Driven by test/torrent/*.test.ts: libtorrent 2.0.8 (Debian python3-libtorrent) downloads one torrent into
# SAVE_DIR, on loopback only (no DHT, LSD, UPnP or NAT-PMP), from the torrent's web seeds and/or the peers
# named, and prints one JSON line: whether it finished, the bytes it took from peers and from web seeds,
# and the errors libtorrent reported.
#   libtorrent-download.py TORRENT SAVE_DIR TIMEOUT_SECONDS [--no-piece-layers] [HOST:PORT...]
# --no-piece-layers: libtorrent gets the torrent without its piece layers (as from a magnet link), so it
# must ask peers for the hashes (BEP 52 hash request). SIGTERM ends the wait early (the JSON line is still
# printed): for a peer that will never have the whole file.
import json
import signal
import sys
import time

import libtorrent as lt

torrent, save, timeout, peers = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
no_layers = '--no-piece-layers' in peers
peers = [p for p in peers if p != '--no-piece-layers']
ses = lt.session({
    'listen_interfaces': '127.0.0.1:0',
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'alert_mask': lt.alert.category_t.error_notification | lt.alert.category_t.status_notification,
    'allow_multiple_connections_per_ip': True,
    # Plaintext only: a seed that does not speak MSE makes libtorrent's default retry plaintext only after
    # a timeout, which would only slow the tests.
    'out_enc_policy': lt.enc_policy.disabled, 'in_enc_policy': lt.enc_policy.disabled,
    # TCP only: a peer without uTP costs libtorrent a 3-second uTP attempt first.
    'enable_outgoing_utp': False, 'enable_incoming_utp': False,
})
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
    h.connect_peer((host, int(port)))
errors = []
end = time.time() + timeout
done = False
stopped = []
signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
while time.time() < end and not stopped:
    for a in ses.pop_alerts():
        if a.category() & lt.alert.category_t.error_notification:
            errors.append(a.message())
    s = h.status()
    if s.is_seeding:
        done = True
        break
    time.sleep(0.05)
s = h.status()
print(json.dumps({'done': done, 'progress': s.progress, 'peerBytes': s.total_payload_download, 'failedBytes': s.total_failed_bytes,
                  'redundantBytes': s.total_redundant_bytes, 'errors': errors[:20]}))
