# What the libtorrent 2.0.8 drivers (Debian python3-libtorrent) share: test/torrent/libtorrent-download.py
# (the tests) and bench/lib/libtorrent-leech.py (bench:swarm) each add a path to this folder and import it.
# A session on the wire as our seeds speak it, and the wait for a torrent to be complete.
import time

import libtorrent as lt


def session(listen):
    """A session listening on LISTEN (HOST:PORT), with no DHT, LSD, UPnP or NAT-PMP."""
    return lt.session({
        'listen_interfaces': listen,
        'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
        'alert_mask': lt.alert.category_t.error_notification | lt.alert.category_t.status_notification,
        'allow_multiple_connections_per_ip': True,
        # Plaintext only: a seed that does not speak MSE makes libtorrent's default retry plaintext only
        # after a timeout, which would only slow the runs.
        'out_enc_policy': lt.enc_policy.disabled, 'in_enc_policy': lt.enc_policy.disabled,
        # TCP only: a peer without uTP costs libtorrent a 3-second uTP attempt first.
        'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    })


def wait_until_seeding(ses, h, timeout, interval, each=None, stopped=lambda: False):
    """
    Poll every INTERVAL seconds, for at most TIMEOUT seconds or until STOPPED() is true, until torrent H
    has every piece verified; EACH() is called at the start of every turn. Returns (done, errors): the
    messages of the error alerts popped meanwhile.
    """
    errors = []
    end = time.time() + timeout
    while time.time() < end and not stopped():
        if each is not None:
            each()
        for a in ses.pop_alerts():
            if a.category() & lt.alert.category_t.error_notification:
                errors.append(a.message())
        if h.status().is_seeding:
            return True, errors
        time.sleep(interval)
    return False, errors
