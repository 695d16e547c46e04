// Command tlogcheck is the Go side of sourcemesh's interop test with golang.org/x/mod/sumdb/note and
// golang.org/x/mod/sumdb/tlog (the Debian package golang-golang-x-mod-dev).
//
//	tlogcheck verify  < cases.json  > report.json   Go checks what sourcemesh produced
//	tlogcheck produce < params.json > output.json   Go produces keys, notes, proofs and tiles for sourcemesh to check
//	tlogcheck http    < target.json > report.json   Go reads a running `sourcemesh log serve` over HTTP
//
// It is built in GOPATH mode against /usr/share/gocode, offline; test/interop/go-tlog.test.ts drives it.
// Every disagreement is reported as a failure line; the report lists how many checks ran.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ---------------------------------------------------------------------------------------------------
// verify: the JSON sourcemesh writes

type noteCase struct {
	Name    string   `json:"name"`
	Vkeys   []string `json:"vkeys"`
	Note    string   `json:"note"`
	Text    string   `json:"text"`
	Signers []string `json:"signers"` // names expected among the verified signatures
}

type badNoteCase struct {
	Name  string   `json:"name"`
	Vkeys []string `json:"vkeys"`
	Note  string   `json:"note"`
}

type checkpointCase struct {
	Vkey       string   `json:"vkey"`
	Note       string   `json:"note"`
	Origin     string   `json:"origin"`
	Size       int64    `json:"size"`
	Root       string   `json:"root"`
	Extensions []string `json:"extensions"`
}

type cosigner struct {
	Name      string `json:"name"`
	KeyID     uint32 `json:"keyId"`
	PublicKey string `json:"publicKey"`
	Vkey      string `json:"vkey"`
}

type cosignedCase struct {
	LogVkey    string     `json:"logVkey"`
	Cosigners  []cosigner `json:"cosigners"`
	Note       string     `json:"note"`
	Timestamps []uint64   `json:"timestamps"`
}

type sizedRoot struct {
	Size int64  `json:"size"`
	Root string `json:"root"`
}

type inclusionCase struct {
	Index int64    `json:"index"`
	Size  int64    `json:"size"`
	Proof []string `json:"proof"`
}

type consistencyCase struct {
	Old   int64    `json:"old"`
	New   int64    `json:"new"`
	Proof []string `json:"proof"`
}

type treeCase struct {
	Leaves      []string          `json:"leaves"`
	Roots       []sizedRoot       `json:"roots"`
	Inclusion   []inclusionCase   `json:"inclusion"`
	Consistency []consistencyCase `json:"consistency"`
}

type tileCase struct {
	Size        int64             `json:"size"`
	Root        string            `json:"root"`
	Tiles       map[string]string `json:"tiles"`
	Inclusion   []inclusionCase   `json:"inclusion"`
	Consistency []consistencyCase `json:"consistency"`
	OldRoots    []sizedRoot       `json:"oldRoots"`
}

type verifyInput struct {
	Notes       []noteCase       `json:"notes"`
	BadNotes    []badNoteCase    `json:"badNotes"`
	Checkpoints []checkpointCase `json:"checkpoints"`
	Cosigned    []cosignedCase   `json:"cosigned"`
	Trees       []treeCase       `json:"trees"`
	Tiles       []tileCase       `json:"tiles"`
}

type report struct {
	Checks   int      `json:"checks"`
	Failures []string `json:"failures"`
}

func (r *report) check(ok bool, format string, args ...interface{}) {
	r.Checks++
	if !ok && len(r.Failures) < 200 {
		r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
	}
}

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(fmt.Sprintf("bad base64 %q in input: %v", s, err))
	}
	return b
}

func mustHash(s string) tlog.Hash {
	var h tlog.Hash
	b := mustB64(s)
	if len(b) != tlog.HashSize {
		panic(fmt.Sprintf("hash %q is %d bytes", s, len(b)))
	}
	copy(h[:], b)
	return h
}

func proofHashes(list []string) []tlog.Hash {
	out := make([]tlog.Hash, len(list))
	for i, s := range list {
		out[i] = mustHash(s)
	}
	return out
}

func hashesEqual(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func verifiers(vkeys []string) (note.Verifiers, error) {
	var list []note.Verifier
	for _, k := range vkeys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, fmt.Errorf("NewVerifier(%q): %v", k, err)
		}
		list = append(list, v)
	}
	return note.VerifierList(list...), nil
}

// cosignatureVerifier checks C2SP tlog-cosignature cosignature/v1 signatures (type 0x04), which this
// x/mod version does not know, so that note.Open parses our cosigned notes and routes each signature here.
type cosignatureVerifier struct {
	name string
	id   uint32
	key  ed25519.PublicKey
	seen []uint64
}

func (v *cosignatureVerifier) Name() string    { return v.name }
func (v *cosignatureVerifier) KeyHash() uint32 { return v.id }
func (v *cosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	ts := binary.BigEndian.Uint64(sig[:8])
	if ts > 1<<63-1 {
		return false
	}
	signed := []byte("cosignature/v1\ntime " + strconv.FormatUint(ts, 10) + "\n")
	signed = append(signed, msg...)
	if !ed25519.Verify(v.key, signed, sig[8:]) {
		return false
	}
	v.seen = append(v.seen, ts)
	return true
}

func keyID(name string, typ byte, key []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', typ})
	h.Write(key)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// memStore is a stored-hash store in Go's tlog numbering, grown with StoredHashesForRecordHash.
type memStore struct {
	hashes  []tlog.Hash
	records int64
}

func (s *memStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(s.hashes)) {
			return nil, fmt.Errorf("stored hash %d not written (have %d)", x, len(s.hashes))
		}
		out[i] = s.hashes[x]
	}
	return out, nil
}

func (s *memStore) appendRecordHash(h tlog.Hash) error {
	hashes, err := tlog.StoredHashesForRecordHash(s.records, h, s)
	if err != nil {
		return err
	}
	s.hashes = append(s.hashes, hashes...)
	s.records++
	return nil
}

// tileMap is a tlog.TileReader over sourcemesh's tiles, keyed by C2SP paths (tile/<L>/<N>[.p/<W>]).
// Go names the same tile tile/8/<L>/<N>[.p/<W>] (it carries the tile height in the path).
type tileMap struct {
	tiles map[string][]byte
	reads int
}

func c2spPath(t tlog.Tile) string {
	return "tile/" + strings.TrimPrefix(t.Path(), "tile/8/")
}

// treeTiles lists the tiles a tree of the given size has: Go's NewTiles from 0 lists every partial
// width that intermediate sizes would have published; a tree has only the widest partial tile per level.
func treeTiles(size int64) []tlog.Tile {
	var out []tlog.Tile
	for _, t := range tlog.NewTiles(8, 0, size) {
		if t.W == 256 || int64(t.W) == (size>>(8*uint(t.L)))%256 {
			out = append(out, t)
		}
	}
	return out
}

func (m *tileMap) Height() int { return 8 }
func (m *tileMap) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, ok := m.tiles[c2spPath(t)]
		if !ok {
			return nil, fmt.Errorf("no tile %s", c2spPath(t))
		}
		m.reads++
		out[i] = data
	}
	return out, nil
}
func (m *tileMap) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

func verify(in verifyInput) report {
	var r report

	// Signed notes: Go's note.Open must verify ours against our vkeys and return the same text.
	for _, c := range in.Notes {
		vs, err := verifiers(c.Vkeys)
		if err != nil {
			r.check(false, "note %s: %v", c.Name, err)
			continue
		}
		n, err := note.Open([]byte(c.Note), vs)
		if err != nil {
			r.check(false, "note %s: Go's note.Open refused it: %v", c.Name, err)
			continue
		}
		r.check(n.Text == c.Text, "note %s: Go read the text %q, we wrote %q", c.Name, n.Text, c.Text)
		var names []string
		for _, s := range n.Sigs {
			names = append(names, s.Name)
		}
		sort.Strings(names)
		want := append([]string(nil), c.Signers...)
		sort.Strings(want)
		r.check(strings.Join(names, ",") == strings.Join(want, ","), "note %s: Go verified signatures by %v, we expected %v", c.Name, names, want)
	}
	// Notes we refuse (tampered, wrong key) must be refused by Go too.
	for _, c := range in.BadNotes {
		vs, err := verifiers(c.Vkeys)
		if err != nil {
			r.check(false, "bad note %s: %v", c.Name, err)
			continue
		}
		_, err = note.Open([]byte(c.Note), vs)
		r.check(err != nil, "bad note %s: Go's note.Open accepted a note we refuse", c.Name)
	}

	// Checkpoints: verified by note.Open, then the three lines parsed here (tlog.ParseTree only reads
	// Go's own origin line in this version).
	for _, c := range in.Checkpoints {
		vs, err := verifiers([]string{c.Vkey})
		if err != nil {
			r.check(false, "checkpoint %s: %v", c.Origin, err)
			continue
		}
		n, err := note.Open([]byte(c.Note), vs)
		if err != nil {
			r.check(false, "checkpoint %s/%d: Go's note.Open refused it: %v", c.Origin, c.Size, err)
			continue
		}
		lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
		if len(lines) < 3 {
			r.check(false, "checkpoint %s: fewer than 3 lines", c.Origin)
			continue
		}
		size, err := strconv.ParseInt(lines[1], 10, 64)
		r.check(err == nil && strconv.FormatInt(size, 10) == lines[1], "checkpoint %s: size line %q is not canonical decimal", c.Origin, lines[1])
		root, err := tlog.ParseHash(lines[2])
		r.check(err == nil, "checkpoint %s: Go's tlog.ParseHash refused the root line %q: %v", c.Origin, lines[2], err)
		r.check(lines[0] == c.Origin && size == c.Size && root == mustHash(c.Root), "checkpoint %s/%d: Go read origin %q size %d root %s", c.Origin, c.Size, lines[0], size, root)
		r.check(strings.Join(lines[3:], "\n") == strings.Join(c.Extensions, "\n"), "checkpoint %s: extension lines differ: %q", c.Origin, lines[3:])
		// The signature's key name is the origin.
		r.check(len(n.Sigs) == 1 && n.Sigs[0].Name == c.Origin, "checkpoint %s: not signed under its origin", c.Origin)
	}

	// Cosigned checkpoints: note.Open parses our note; the log key is Go's verifier, each cosigner a
	// cosignature/v1 verifier written here from C2SP tlog-cosignature.
	for i, c := range in.Cosigned {
		logV, err := note.NewVerifier(c.LogVkey)
		if err != nil {
			r.check(false, "cosigned %d: %v", i, err)
			continue
		}
		list := []note.Verifier{logV}
		var cvs []*cosignatureVerifier
		for _, w := range c.Cosigners {
			key := mustB64(w.PublicKey)
			id := keyID(w.Name, 0x04, key)
			r.check(id == w.KeyID, "cosigner %s: key ID %08x, we computed %08x", w.Name, id, w.KeyID)
			// The vkey text: name+hex(id)+base64(0x04||key); Go's NewVerifier knows no type 0x04, so check its parts.
			parts := strings.SplitN(w.Vkey, "+", 3)
			r.check(len(parts) == 3 && parts[0] == w.Name && parts[1] == fmt.Sprintf("%08x", id) && parts[2] == base64.StdEncoding.EncodeToString(append([]byte{0x04}, key...)), "cosigner %s: vkey %q", w.Name, w.Vkey)
			_, err := note.NewVerifier(w.Vkey)
			r.check(err != nil, "cosigner %s: Go's NewVerifier accepted a type 0x04 vkey (unexpected for this x/mod version)", w.Name)
			cv := &cosignatureVerifier{name: w.Name, id: id, key: ed25519.PublicKey(key)}
			cvs = append(cvs, cv)
			list = append(list, cv)
		}
		n, err := note.Open([]byte(c.Note), note.VerifierList(list...))
		if err != nil {
			r.check(false, "cosigned %d: Go's note.Open refused it: %v", i, err)
			continue
		}
		r.check(len(n.Sigs) == 1+len(c.Cosigners), "cosigned %d: Go verified %d signatures, want %d", i, len(n.Sigs), 1+len(c.Cosigners))
		for j, cv := range cvs {
			r.check(len(cv.seen) == 1 && cv.seen[0] == c.Timestamps[j], "cosigned %d: cosigner %s timestamps %v, want %d", i, cv.name, cv.seen, c.Timestamps[j])
		}
	}

	// Tree hashes and proofs over the leaves we sent.
	for _, tc := range in.Trees {
		var store memStore
		for _, leaf := range tc.Leaves {
			if err := store.appendRecordHash(tlog.RecordHash(mustB64(leaf))); err != nil {
				panic(err)
			}
		}
		roots := map[int64]tlog.Hash{}
		for _, c := range tc.Roots {
			h, err := tlog.TreeHash(c.Size, &store)
			r.check(err == nil && h == mustHash(c.Root), "tree hash of size %d: Go %s, ours %s (%v)", c.Size, h, c.Root, err)
			roots[c.Size] = mustHash(c.Root)
		}
		for _, c := range tc.Inclusion {
			proof := proofHashes(c.Proof)
			leaf := tlog.RecordHash(mustB64(tc.Leaves[c.Index]))
			err := tlog.CheckRecord(proof, c.Size, roots[c.Size], c.Index, leaf)
			r.check(err == nil, "inclusion %d in %d: Go's CheckRecord refused our proof: %v", c.Index, c.Size, err)
			goProof, err := tlog.ProveRecord(c.Size, c.Index, &store)
			r.check(err == nil && hashesEqual(goProof, proof), "inclusion %d in %d: Go's ProveRecord differs from our proof", c.Index, c.Size)
			if len(proof) > 0 {
				bad := append([]tlog.Hash(nil), proof...)
				bad[len(bad)/2][0] ^= 1
				r.check(tlog.CheckRecord(bad, c.Size, roots[c.Size], c.Index, leaf) != nil, "inclusion %d in %d: Go accepted a tampered proof", c.Index, c.Size)
			}
		}
		for _, c := range tc.Consistency {
			proof := proofHashes(c.Proof)
			err := tlog.CheckTree(proof, c.New, roots[c.New], c.Old, roots[c.Old])
			r.check(err == nil, "consistency %d to %d: Go's CheckTree refused our proof: %v", c.Old, c.New, err)
			goProof, err := tlog.ProveTree(c.New, c.Old, &store)
			r.check(err == nil && hashesEqual(goProof, proof), "consistency %d to %d: Go's ProveTree differs from our proof", c.Old, c.New)
		}
	}

	// Tiles: read through Go's TileHashReader, then rebuilt from the level-0 tiles and compared tile by tile.
	for _, c := range in.Tiles {
		tm := &tileMap{tiles: map[string][]byte{}}
		for p, data := range c.Tiles {
			tm.tiles[p] = mustB64(data)
		}
		root := mustHash(c.Root)
		reader := tlog.TileHashReader(tlog.Tree{N: c.Size, Hash: root}, tm)
		h, err := tlog.TreeHash(c.Size, reader)
		r.check(err == nil && h == root, "tiles %d: Go's TreeHash over our tiles = %s, want %s (%v)", c.Size, h, c.Root, err)
		for _, ic := range c.Inclusion {
			goProof, err := tlog.ProveRecord(c.Size, ic.Index, reader)
			r.check(err == nil && hashesEqual(goProof, proofHashes(ic.Proof)), "tiles %d: inclusion of %d from Go's TileHashReader differs from ours (%v)", c.Size, ic.Index, err)
		}
		oldRoots := map[int64]tlog.Hash{}
		for _, o := range c.OldRoots {
			oldRoots[o.Size] = mustHash(o.Root)
		}
		for _, cc := range c.Consistency {
			goProof, err := tlog.ProveTree(c.Size, cc.Old, reader)
			r.check(err == nil && hashesEqual(goProof, proofHashes(cc.Proof)), "tiles %d: consistency from %d via Go's TileHashReader differs from ours (%v)", c.Size, cc.Old, err)
			r.check(tlog.CheckTree(proofHashes(cc.Proof), c.Size, root, cc.Old, oldRoots[cc.Old]) == nil, "tiles %d: Go's CheckTree refused consistency from %d", c.Size, cc.Old)
		}

		// The set of tiles must be exactly what Go says a tree of this size has.
		want := map[string]bool{}
		for _, t := range treeTiles(c.Size) {
			want[c2spPath(t)] = true
		}
		for p := range tm.tiles {
			r.check(want[p], "tiles %d: we wrote %s, which Go's NewTiles does not list", c.Size, p)
		}
		for p := range want {
			_, ok := tm.tiles[p]
			r.check(ok, "tiles %d: Go's NewTiles lists %s, which we did not write", c.Size, p)
		}

		// This x/mod version's TileHashReader does not authenticate every full tile it reads, so rebuild
		// the stored hashes from the level-0 tiles alone and regenerate every tile from them.
		var rebuilt memStore
		var leaves int64
		for n := int64(0); leaves < c.Size; n++ {
			t := tlog.Tile{H: 8, L: 0, N: n, W: 256}
			if rem := c.Size - n*256; rem < 256 {
				t.W = int(rem)
			}
			data, ok := tm.tiles[c2spPath(t)]
			if !ok {
				r.check(false, "tiles %d: missing level-0 tile %s", c.Size, c2spPath(t))
				break
			}
			for i := 0; i < t.W; i++ {
				var h tlog.Hash
				copy(h[:], data[i*32:])
				if err := rebuilt.appendRecordHash(h); err != nil {
					panic(err)
				}
				leaves++
			}
		}
		if leaves != c.Size {
			continue
		}
		rh, err := tlog.TreeHash(c.Size, &rebuilt)
		r.check(err == nil && rh == root, "tiles %d: the tree rebuilt from level-0 tiles has root %s, want %s", c.Size, rh, c.Root)
		for p, data := range tm.tiles {
			t, err := tlog.ParseTilePath("tile/8/" + strings.TrimPrefix(p, "tile/"))
			if err != nil {
				r.check(false, "tiles %d: Go's ParseTilePath refused %s: %v", c.Size, p, err)
				continue
			}
			r.check(c2spPath(t) == p, "tiles %d: Go prints %s back as %s", c.Size, p, c2spPath(t))
			goData, err := tlog.ReadTileData(t, &rebuilt)
			r.check(err == nil && bytes.Equal(goData, data), "tiles %d: tile %s differs from Go's ReadTileData over the rebuilt hashes (%v)", c.Size, p, err)
		}
	}
	return r
}

// ---------------------------------------------------------------------------------------------------
// produce: Go makes keys, notes, a tree, proofs and tiles; sourcemesh verifies them.

type produceInput struct {
	Size        int64     `json:"size"`
	RootSizes   []int64   `json:"rootSizes"`
	Inclusion   [][]int64 `json:"inclusion"`   // [index, size]
	Consistency [][]int64 `json:"consistency"` // [old, new]
	Texts       []string  `json:"texts"`
}

type goKey struct {
	Skey string `json:"skey"`
	Vkey string `json:"vkey"`
}

type producedNote struct {
	Text    string   `json:"text"`
	Note    string   `json:"note"`
	Signers []string `json:"signers"`
}

type produceOutput struct {
	Keys        []goKey           `json:"keys"`
	Unknown     goKey             `json:"unknown"` // signs every note; never given to the verifier
	Notes       []producedNote    `json:"notes"`
	Checkpoint  producedNote      `json:"checkpoint"`
	Leaves      []string          `json:"leaves"`
	Roots       []sizedRoot       `json:"roots"`
	Inclusion   []inclusionCase   `json:"inclusion"`
	Consistency []consistencyCase `json:"consistency"`
	Tiles       map[string]string `json:"tiles"`
	StoredCount int64             `json:"storedCount"`
	Indexes     [][]int64         `json:"indexes"` // [level, n, StoredHashIndex(level, n)]
}

func b64hashes(list []tlog.Hash) []string {
	out := make([]string, len(list))
	for i, h := range list {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

func produce(in produceInput) produceOutput {
	var out produceOutput
	var signers []note.Signer
	for _, name := range []string{"go.example/log", "go.example/release-1", "go.example/release-2"} {
		skey, vkey, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			panic(err)
		}
		s, err := note.NewSigner(skey)
		if err != nil {
			panic(err)
		}
		signers = append(signers, s)
		out.Keys = append(out.Keys, goKey{skey, vkey})
	}
	uskey, uvkey, err := note.GenerateKey(rand.Reader, "go.example/release-1")
	if err != nil {
		panic(err)
	}
	unknown, _ := note.NewSigner(uskey)
	out.Unknown = goKey{uskey, uvkey}

	for i, text := range in.Texts {
		chosen := []note.Signer{signers[1+i%2], unknown}
		if i%3 == 0 {
			chosen = []note.Signer{signers[1], signers[2], unknown}
		}
		msg, err := note.Sign(&note.Note{Text: text}, chosen...)
		if err != nil {
			panic(fmt.Sprintf("Sign(%q): %v", text, err))
		}
		var names []string
		for _, s := range chosen {
			if s != unknown {
				names = append(names, s.Name())
			}
		}
		out.Notes = append(out.Notes, producedNote{Text: text, Note: string(msg), Signers: names})
	}

	var store memStore
	for i := int64(0); i < in.Size; i++ {
		leaf := []byte(fmt.Sprintf("go record %d\n", i))
		out.Leaves = append(out.Leaves, base64.StdEncoding.EncodeToString(leaf))
		if err := store.appendRecordHash(tlog.RecordHash(leaf)); err != nil {
			panic(err)
		}
	}
	out.StoredCount = tlog.StoredHashCount(in.Size)
	for _, size := range in.RootSizes {
		h, err := tlog.TreeHash(size, &store)
		if err != nil {
			panic(err)
		}
		out.Roots = append(out.Roots, sizedRoot{size, base64.StdEncoding.EncodeToString(h[:])})
	}
	for _, c := range in.Inclusion {
		p, err := tlog.ProveRecord(c[1], c[0], &store)
		if err != nil {
			panic(err)
		}
		out.Inclusion = append(out.Inclusion, inclusionCase{Index: c[0], Size: c[1], Proof: b64hashes(p)})
	}
	for _, c := range in.Consistency {
		p, err := tlog.ProveTree(c[1], c[0], &store)
		if err != nil {
			panic(err)
		}
		out.Consistency = append(out.Consistency, consistencyCase{Old: c[0], New: c[1], Proof: b64hashes(p)})
	}
	out.Tiles = map[string]string{}
	for _, t := range treeTiles(in.Size) {
		data, err := tlog.ReadTileData(t, &store)
		if err != nil {
			panic(err)
		}
		out.Tiles[c2spPath(t)] = base64.StdEncoding.EncodeToString(data)
	}
	for level := 0; level < 20; level++ {
		for _, n := range []int64{0, 1, 2, 3, 5, 1000, 123456789} {
			out.Indexes = append(out.Indexes, []int64{int64(level), n, tlog.StoredHashIndex(level, n)})
		}
	}

	// A checkpoint for the whole tree, signed by the log key, in C2SP tlog-checkpoint form.
	root, _ := tlog.TreeHash(in.Size, &store)
	cpText := fmt.Sprintf("go.example/log\n%d\n%s\n", in.Size, base64.StdEncoding.EncodeToString(root[:]))
	msg, err := note.Sign(&note.Note{Text: cpText}, signers[0])
	if err != nil {
		panic(err)
	}
	out.Checkpoint = producedNote{Text: cpText, Note: string(msg), Signers: []string{signers[0].Name()}}
	return out
}

// ---------------------------------------------------------------------------------------------------
// http: a running sourcemesh log, read as a Go client of the tlog-tiles API would read it.

type httpInput struct {
	URL      string      `json:"url"`
	Vkey     string      `json:"vkey"`
	Samples  []int64     `json:"samples"`  // entry indexes to prove
	OldTrees []sizedRoot `json:"oldTrees"` // earlier checkpoints the test saw, for consistency proofs
}

// httpTiles is a tlog.TileReader fetching C2SP tile paths from the log's URL.
type httpTiles struct {
	base    string
	fetched map[string][]byte
}

func (h *httpTiles) get(path string) ([]byte, error) {
	if data, ok := h.fetched[path]; ok {
		return data, nil
	}
	res, err := http.Get(h.base + "/" + path)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<24))
	if err != nil {
		return nil, err
	}
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s", path, res.Status)
	}
	h.fetched[path] = data
	return data, nil
}

func (h *httpTiles) Height() int { return 8 }
func (h *httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := h.get(c2spPath(t))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}
func (h *httpTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// bundleEntries splits a C2SP tlog-tiles entry bundle: big-endian uint16 lengths, then the bytes.
func bundleEntries(data []byte) ([][]byte, error) {
	var out [][]byte
	for len(data) > 0 {
		if len(data) < 2 {
			return nil, fmt.Errorf("bundle ends inside a length")
		}
		n := int(binary.BigEndian.Uint16(data))
		if len(data) < 2+n {
			return nil, fmt.Errorf("bundle ends inside an entry")
		}
		out = append(out, data[2:2+n])
		data = data[2+n:]
	}
	return out, nil
}

func readHTTP(in httpInput) report {
	var r report
	h := &httpTiles{base: strings.TrimSuffix(in.URL, "/"), fetched: map[string][]byte{}}
	vs, err := verifiers([]string{in.Vkey})
	if err != nil {
		r.check(false, "%v", err)
		return r
	}
	raw, err := h.get("checkpoint")
	if err != nil {
		r.check(false, "checkpoint: %v", err)
		return r
	}
	n, err := note.Open(raw, vs)
	if err != nil {
		r.check(false, "Go's note.Open refused the served checkpoint: %v", err)
		return r
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		r.check(false, "checkpoint has %d lines", len(lines))
		return r
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	r.check(err == nil, "checkpoint size %q", lines[1])
	root, err := tlog.ParseHash(lines[2])
	r.check(err == nil, "checkpoint root %q: %v", lines[2], err)
	r.check(lines[0] == n.Sigs[0].Name, "checkpoint origin %q is not the key name %q", lines[0], n.Sigs[0].Name)

	// The tree through Go's TileHashReader, over our HTTP server.
	reader := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, h)
	th, err := tlog.TreeHash(size, reader)
	r.check(err == nil && th == root, "TreeHash(%d) over served tiles = %s, checkpoint says %s (%v)", size, th, root, err)

	// Entry bundles: each entry hashes to its level-0 tile hash; keep the record hashes.
	var rebuilt memStore
	var records []tlog.Hash
	for b := int64(0); b*256 < size; b++ {
		w := size - b*256
		if w > 256 {
			w = 256
		}
		t := tlog.Tile{H: 8, L: 0, N: b, W: int(w)}
		bundlePath := "tile/entries/" + strings.TrimPrefix(c2spPath(t), "tile/0/")
		data, err := h.get(bundlePath)
		if err != nil {
			r.check(false, "%v", err)
			return r
		}
		entries, err := bundleEntries(data)
		r.check(err == nil && int64(len(entries)) == w, "bundle %s: %d entries, want %d (%v)", bundlePath, len(entries), w, err)
		tile, err := h.get(c2spPath(t))
		if err != nil {
			r.check(false, "%v", err)
			return r
		}
		for i, e := range entries {
			rh := tlog.RecordHash(e)
			var th tlog.Hash
			copy(th[:], tile[i*32:])
			r.check(rh == th, "entry %d: RecordHash differs from the level-0 tile", b*256+int64(i))
			records = append(records, rh)
			// This x/mod's TileHashReader does not authenticate every full tile: rebuild from the records.
			if err := rebuilt.appendRecordHash(rh); err != nil {
				panic(err)
			}
		}
	}
	if int64(len(records)) != size {
		r.check(false, "read %d records, checkpoint says %d", len(records), size)
		return r
	}
	rh, err := tlog.TreeHash(size, &rebuilt)
	r.check(err == nil && rh == root, "tree rebuilt from the entries: %s, checkpoint says %s", rh, root)
	// Every tile the tree has is served, and equals Go's ReadTileData over the rebuilt hashes.
	for _, t := range treeTiles(size) {
		served, err := h.get(c2spPath(t))
		if err != nil {
			r.check(false, "%v", err)
			continue
		}
		want, err := tlog.ReadTileData(t, &rebuilt)
		r.check(err == nil && bytes.Equal(served, want), "served tile %s differs from Go's ReadTileData (%v)", c2spPath(t), err)
	}
	for _, i := range in.Samples {
		proof, err := tlog.ProveRecord(size, i, reader)
		r.check(err == nil, "ProveRecord(%d, %d) over served tiles: %v", size, i, err)
		r.check(err == nil && tlog.CheckRecord(proof, size, root, i, records[i]) == nil, "CheckRecord of entry %d failed", i)
	}
	for _, o := range in.OldTrees {
		proof, err := tlog.ProveTree(size, o.Size, reader)
		r.check(err == nil && tlog.CheckTree(proof, size, root, o.Size, mustHash(o.Root)) == nil, "consistency from the checkpoint of %d to %d failed (%v)", o.Size, size, err)
	}
	return r
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tlogcheck verify|produce|http < input.json")
		os.Exit(2)
	}
	dec := json.NewDecoder(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	switch os.Args[1] {
	case "verify":
		var in verifyInput
		if err := dec.Decode(&in); err != nil {
			fmt.Fprintln(os.Stderr, "tlogcheck: reading input:", err)
			os.Exit(1)
		}
		if err := enc.Encode(verify(in)); err != nil {
			os.Exit(1)
		}
	case "produce":
		var in produceInput
		if err := dec.Decode(&in); err != nil {
			fmt.Fprintln(os.Stderr, "tlogcheck: reading input:", err)
			os.Exit(1)
		}
		if err := enc.Encode(produce(in)); err != nil {
			os.Exit(1)
		}
	case "http":
		var in httpInput
		if err := dec.Decode(&in); err != nil {
			fmt.Fprintln(os.Stderr, "tlogcheck: reading input:", err)
			os.Exit(1)
		}
		if err := enc.Encode(readHTTP(in)); err != nil {
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: tlogcheck verify|produce|http < input.json")
		os.Exit(2)
	}
}
