# Driven by test/torrent/*.test.ts: libtorrent (Debian python3-libtorrent, 2.0.8) reads torrents and makes
# its own for the same files, so the tests compare ours with the reference BEP 52 implementation.
#   read FILE...                   each torrent's v1 and v2 info-hashes, name, files, as libtorrent sees them
#   make OUTDIR PIECE_LENGTH KIND PATH...
#                                  libtorrent's own torrent for each PATH (a file or a directory), KIND
#                                  v1|v2|hybrid, or v1-padded (v1 with BEP 47 pad files aligning each file
#                                  to a piece, libtorrent's canonical_files), written to
#                                  OUTDIR/BASENAME.torrent without a creation date
import json
import os
import sys

import libtorrent as lt


def read(files):
    out = []
    for f in files:
        ti = lt.torrent_info(f)
        ih = ti.info_hashes()
        fs = ti.files()
        out.append({
            'v1': str(ih.v1) if ih.has_v1() else None,
            'v2': str(ih.v2) if ih.has_v2() else None,
            'name': ti.name(),
            'pieceLength': ti.piece_length(),
            'files': [{'path': fs.file_path(i), 'size': fs.file_size(i), 'pad': bool(fs.file_flags(i) & lt.file_storage.flag_pad_file),
                       'root': fs.root(i).to_bytes().hex() if ih.has_v2() and not fs.root(i).is_all_zeros() else None}
                      for i in range(fs.num_files())],
            'webSeeds': [w['url'] for w in ti.web_seeds()],
            'trackers': [t.url for t in ti.trackers()],
        })
    print(json.dumps(out))


def make(out, path, piece_length, kind):
    fs = lt.file_storage()
    lt.add_files(fs, path)
    flags = {'v1': lt.create_torrent.v1_only, 'v1-padded': lt.create_torrent.v1_only | lt.create_torrent.canonical_files,
             'v2': lt.create_torrent.v2_only, 'hybrid': 0}[kind]
    t = lt.create_torrent(fs, piece_length, flags=flags)
    lt.set_piece_hashes(t, os.path.dirname(os.path.abspath(path)))
    e = t.generate()
    e.pop(b'creation date', None)
    with open(os.path.join(out, os.path.basename(path) + '.torrent'), 'wb') as f:
        f.write(lt.bencode(e))


if sys.argv[1] == 'read':
    read(sys.argv[2:])
elif sys.argv[1] == 'make':
    for p in sys.argv[5:]:
        make(sys.argv[2], p, int(sys.argv[3]), sys.argv[4])
else:
    sys.exit('usage: libtorrent-create.py read FILE... | make OUTDIR PIECE_LENGTH v1|v1-padded|v2|hybrid PATH...')
