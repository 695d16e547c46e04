# For test/discovery/pointer.test.ts: libtorrent 2.0.8 (Debian python3-libtorrent) makes a torrent of one
# file, hybrid (v1 and v2) or v1 only, and prints its info-hashes: the reference our btih is checked against.
#
#   /usr/bin/python3 test/discovery/make-torrent.py FILE OUT.torrent hybrid|v1
import os
import sys

import libtorrent as lt

path, out, kind = sys.argv[1], sys.argv[2], sys.argv[3]
fs = lt.file_storage()
lt.add_files(fs, path)
ct = lt.create_torrent(fs, 16384, flags=lt.create_torrent.v1_only if kind == 'v1' else 0)
lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
with open(out, 'wb') as f:
    f.write(lt.bencode(ct.generate()))
hashes = lt.torrent_info(out).info_hashes()
print(str(hashes.v1) if kind == 'v1' else str(hashes.v2))
