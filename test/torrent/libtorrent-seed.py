# Driven by test/torrent/*.test.ts: libtorrent 2.0.8 seeds one torrent from SAVE_DIR on loopback (no DHT,
# LSD, UPnP, NAT-PMP, uTP or encryption), prints {"port": N} once it listens and seeds, and runs until its
# standard input closes.
#   libtorrent-seed.py TORRENT SAVE_DIR
import json
import sys
import threading
import time

import libtorrent as lt

ses = lt.session({
    'listen_interfaces': '127.0.0.1:0',
    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    'out_enc_policy': lt.enc_policy.disabled, 'in_enc_policy': lt.enc_policy.disabled,
    'allow_multiple_connections_per_ip': True,
})
atp = lt.add_torrent_params()
atp.ti = lt.torrent_info(sys.argv[1])
atp.save_path = sys.argv[2]
h = ses.add_torrent(atp)
end = time.time() + 60
while not h.status().is_seeding and time.time() < end:
    time.sleep(0.05)
print(json.dumps({'port': ses.listen_port(), 'seeding': h.status().is_seeding}), flush=True)
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
done.wait()
s = h.status()
print(json.dumps({'uploaded': s.total_payload_upload}), flush=True)
