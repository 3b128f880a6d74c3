package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certfleet/certfleet/core/atomicfile"
	"github.com/certfleet/certfleet/core/boundedfile"
	"github.com/certfleet/certfleet/core/secret"
	"gopkg.in/yaml.v3"
)

// Cache keeps the checked configuration between runs, so that a command whose configuration
// files have not changed skips parsing and checking them. An entry is used only when everything
// the result depends on is unchanged: the certfleet build, the list of files and their bytes, and
// the other files build read (ca_bundle files). What it holds was built without resolving a
// secret reference: with a resolver, the references are resolved after a hit, as Load resolves
// them, and only where build copies the value as written (see refSlotAt); otherwise the
// configuration is loaded in full. A sops-encrypted configuration is never cached.
type Cache struct {
	// Version identifies the certfleet build (its executable is identified too).
	Version string
	// Dir is the directory of the entries for a configuration whose state section is s; "": no
	// cache. It is created (0700) when missing.
	Dir func(s State) string
	// Debug, when not nil, says why an entry was not used or not written.
	Debug func(msg string, args ...any)
}

// WithCache loads through the cache c.
func WithCache(c Cache) LoadOption {
	return func(l *loader) { l.cache = &c }
}

// cacheFormat changes whenever an entry's layout or meaning does.
const cacheFormat = 2

var (
	cacheMagic = []byte("CFCFGC02")
	crcTable   = crc32.MakeTable(crc32.Castagnoli)
)

// maxEntrySize bounds what is read as an entry (10,000 certificates take about 1.4 MB).
const maxEntrySize = 256 << 20

// An entry is cacheMagic, the key, a CRC-32C of the payload, then the payload.
const cacheHeaderLen = 8 + sha256.Size + 4

// cacheDep is a file build read besides the configuration files, with the SHA-256 of what it read.
type cacheDep struct {
	Path string
	Sum  [sha256.Size]byte
}

// cachedRef is a value with a secret reference (or a $${ escape), as Load's resolver would see it.
type cachedRef struct {
	File  string
	Line  int
	Key   string
	Value string
	// Path is where the value is in its file: mapping keys, and list indices as "[i]".
	Path []string
}

// cacheEntry is what an entry holds, in the order it is written.
type cacheEntry struct {
	deps  []cacheDep
	state State
	// resolvable: every reference is at a place refSlotAt knows.
	resolvable bool
	refs       []cachedRef
	// warnings are Load's warnings but the plain-http ones, which Load adds only on success.
	warnings  []Warning
	plainHTTP []Warning
	cfg       *Config
}

type recordedRef struct {
	node *yaml.Node
	ref  cachedRef
}

type fileRoot struct {
	file string
	root *yaml.Node
}

// cacheRecord collects what an entry needs while an unresolved load runs.
type cacheRecord struct {
	raw map[string][]byte // each file as the key saw it
	// changed: the file reader returned other bytes than the key saw (decrypted, or changed since).
	changed  bool
	roots    []fileRoot
	refs     []recordedRef
	aliases  bool
	deps     []cacheDep
	warnings []Warning
}

func (r *cacheRecord) read(file string, data []byte) {
	if !bytes.Equal(r.raw[file], data) {
		r.changed = true
	}
}

func (c *Cache) debug(msg string, args ...any) {
	if c.Debug != nil {
		c.Debug(msg, args...)
	}
}

// buildIdentity names this build: a development build keeps its version string from build to
// build, but not its executable's size and time.
var buildIdentity = sync.OnceValue(func() string {
	var b bytes.Buffer
	if bi, ok := debug.ReadBuildInfo(); ok {
		b.WriteString(bi.String())
	}
	if exe, err := os.Executable(); err == nil {
		if st, err := os.Stat(exe); err == nil {
			fmt.Fprintf(&b, "\n%s %d %d", exe, st.Size(), st.ModTime().UnixNano())
		}
	}
	return b.String()
})

// buildHash names the entry format and the certfleet build (version and executable): it is in
// every entry's key, and its first bytes in the entry's name.
func buildHash(version string) []byte {
	h := sha256.New()
	for _, field := range []string{"certfleet configuration cache", strconv.Itoa(cacheFormat), version, buildIdentity()} {
		writeField(h, []byte(field))
	}
	return h.Sum(nil)
}

// entryPaths lists the entries of dir whose names start with prefix ("config-" for all). The
// directory is read, not globbed: its path may hold glob characters.
func entryPaths(dir, prefix string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var paths []string
	for _, e := range entries {
		if name := e.Name(); strings.HasPrefix(name, prefix) && strings.HasSuffix(name, ".cache") {
			paths = append(paths, filepath.Join(dir, name))
		}
	}
	return paths
}

// removeEntries removes every entry of dir whose name starts with prefix (a configuration's
// entries, of any build, and the one named before names held the build).
func removeEntries(dir, prefix string, debug func(string, ...any)) {
	for _, p := range entryPaths(dir, prefix) {
		if err := os.Remove(p); err == nil {
			debug("configuration cache entry removed: the configuration is sops-encrypted", "entry", p)
		}
	}
}

// writeField adds a length-prefixed field to the key, so that no two lists of fields hash alike.
func writeField(h hash.Hash, b []byte) {
	h.Write(binary.AppendUvarint(nil, uint64(len(b))))
	h.Write(b)
}

// fileScan is what the cache needs of a configuration file's bytes, taken in parts that each end
// at a line's end (or the file's): their SHA-256, whether the file reader would decrypt them
// (sops), and the state section's lines (stateSection's, found and cut alike).
type fileScan struct {
	sum          hash.Hash
	sops         bool
	section      []byte
	sectionFound bool
	sectionOpen  bool // the section may go on in the next part
}

func newFileScan() *fileScan { return &fileScan{sum: sha256.New()} }

// lines takes the next part of the file: whole lines (the file's last may lack its newline).
func (s *fileScan) lines(part []byte) {
	s.sum.Write(part)
	// A part starts at a line's start, where MayBeSops would look too; what it looks at after a
	// "sops" does not go past the line's end.
	s.sops = s.sops || secret.MayBeSops(part)
	switch {
	case s.sectionOpen:
		if len(part) > 0 && !sectionContinues(part[0]) {
			s.sectionOpen = false
			return
		}
		end, closed := sectionEnd(part)
		s.section = append(s.section, part[:end]...)
		s.sectionOpen = !closed
	case !s.sectionFound:
		start, found := stateLine(part)
		if !found {
			return
		}
		end, closed := sectionEnd(part[start:])
		s.section = append(s.section, part[start:start+end]...)
		s.sectionFound, s.sectionOpen = true, !closed
	}
}

// scanPartLen is the size of the parts a file is read in when its bytes are not kept.
const scanPartLen = 64 << 10

// scanFile reads the file at path in parts into s, with the limit of boundedfile.Read. A cache
// hit needs nothing else of the file: reading it whole into fresh memory costs more than
// everything else the hit does with it.
func (s *fileScan) scanFile(path string, buf []byte) error {
	f, _, err := boundedfile.Open(path, boundedfile.DefaultLimit)
	if err != nil {
		return err
	}
	defer f.Close()
	r := io.LimitReader(f, boundedfile.DefaultLimit+1)
	filled, total := 0, 0
	for {
		n, err := r.Read(buf[filled:])
		filled += n
		total += n
		if total > boundedfile.DefaultLimit {
			return fmt.Errorf("read %s: %w", path, boundedfile.ErrTooLarge)
		}
		if errors.Is(err, io.EOF) {
			s.lines(buf[:filled])
			return nil
		}
		if err != nil {
			return err
		}
		if nl := bytes.LastIndexByte(buf[:filled], '\n'); nl >= 0 {
			s.lines(buf[:nl+1])
			filled = copy(buf, buf[nl+1:filled])
		} else if filled == len(buf) {
			buf = append(buf, make([]byte, len(buf))...) // a line longer than a part
		}
	}
}

// cachePlace is where the entry of a configuration whose files were scanned is, and its key
// (false: the configuration is not cached, and is loaded as without a cache).
func (l *loader) cachePlace(path string, files []string, scans []*fileScan) (key [sha256.Size]byte, entryPath string, ok bool) {
	c := l.cache
	build := buildHash(c.Version)
	h := sha256.New()
	writeField(h, build)
	var state State
	stateFound, sops := false, false
	for i, f := range files {
		s := scans[i]
		writeField(h, []byte(f))
		writeField(h, s.sum.Sum(nil))
		sops = sops || s.sops // the file reader would decrypt it (checked again after reading: cacheRecord.changed)
		if !stateFound && s.sectionFound {
			if state, stateFound = parseStateSection(f, s.section); !stateFound {
				c.debug("configuration cache not used: the state section is not in block style", "file", f)
				return key, "", false
			}
		}
	}
	h.Sum(key[:0])
	dir := c.Dir(state)
	if dir == "" {
		return key, "", false
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return key, "", false
	}
	// An entry is named by the configuration's path and the build: two certfleet builds reading one
	// configuration with one state (a daemon and a cron job of another release) keep an entry
	// each instead of replacing each other's on every load.
	pathHash := sha256.Sum256([]byte(abs))
	pathPrefix := "config-" + hex.EncodeToString(pathHash[:8])
	if sops {
		// No decrypted content on disk: the entries of the file before it was encrypted go too,
		// every build's.
		removeEntries(dir, pathPrefix, c.debug)
		return key, "", false
	}
	return key, filepath.Join(dir, pathPrefix+"-"+hex.EncodeToString(build[:4])+".cache"), true
}

// loadCached is Load through the cache.
func (l *loader) loadCached(path string, files []string) (*Config, []Warning, error) {
	c := l.cache
	scans := make([]*fileScan, len(files))
	buf := make([]byte, scanPartLen)
	for i, f := range files {
		scans[i] = newFileScan()
		if err := scans[i].scanFile(f, buf); err != nil {
			c.debug("configuration cache not used", "reason", err)
			return l.load(files) // which reports the error as it always does
		}
	}
	key, entryPath, ok := l.cachePlace(path, files, scans)
	if !ok {
		return l.load(files)
	}
	if cfg, warnings, err, ok := l.fromEntry(entryPath, key); ok {
		return cfg, warnings, err
	}
	// A miss: the load compares what it reads with what the key saw (cacheRecord.read), so the
	// files are read whole now and the key is made again from these bytes (a file may have
	// changed since the scan).
	raw := make(map[string][]byte, len(files))
	for i, f := range files {
		data, err := boundedfile.Read(f, boundedfile.DefaultLimit)
		if err != nil {
			c.debug("configuration cache not used", "reason", err)
			return l.load(files)
		}
		raw[f] = data
		scans[i] = newFileScan()
		scans[i].lines(data)
	}
	if key, entryPath, ok = l.cachePlace(path, files, scans); !ok {
		return l.load(files)
	}
	return l.loadAndStore(files, raw, key, entryPath)
}

// fromEntry returns Load's result from the entry at path (false: it cannot be used).
func (l *loader) fromEntry(path string, key [sha256.Size]byte) (*Config, []Warning, error, bool) {
	c := l.cache
	data, err := boundedfile.Read(path, maxEntrySize)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.debug("configuration cache entry not read", "entry", path, "error", err)
		}
		return nil, nil, nil, false
	}
	switch {
	case len(data) < cacheHeaderLen || !bytes.Equal(data[:8], cacheMagic):
		c.debug("configuration cache entry ignored: not an entry of this format", "entry", path)
		return nil, nil, nil, false
	case !bytes.Equal(data[8:8+sha256.Size], key[:]):
		c.debug("configuration cache entry ignored: the configuration or certfleet changed", "entry", path)
		return nil, nil, nil, false
	case binary.BigEndian.Uint32(data[8+sha256.Size:]) != crc32.Checksum(data[cacheHeaderLen:], crcTable):
		c.debug("configuration cache entry ignored: it is damaged", "entry", path)
		return nil, nil, nil, false
	}
	d := newCacheDecoder(data[cacheHeaderLen:])
	var e cacheEntry
	for _, v := range []any{&e.deps, &e.state, &e.resolvable} {
		if err := d.decode(v); err != nil {
			c.debug("configuration cache entry ignored", "entry", path, "error", err)
			return nil, nil, nil, false
		}
	}
	for _, dep := range e.deps {
		if b, err := boundedfile.Read(dep.Path, boundedfile.DefaultLimit); err != nil || sha256.Sum256(b) != dep.Sum {
			c.debug("configuration cache entry ignored: a file it read changed", "entry", path, "file", dep.Path)
			return nil, nil, nil, false
		}
	}
	if l.resolver != nil && !e.resolvable {
		c.debug("configuration cache entry not used: a secret reference is where the cache cannot resolve it", "entry", path)
		return nil, nil, nil, false
	}
	if l.onState != nil {
		l.onState(e.state)
		l.onState = nil // once, whatever follows
	}
	e.cfg = &Config{}
	for _, v := range []any{&e.refs, &e.warnings, &e.plainHTTP, e.cfg} {
		if err := d.decode(v); err != nil {
			c.debug("configuration cache entry ignored", "entry", path, "error", err)
			return nil, nil, nil, false
		}
	}
	if l.resolver == nil {
		return e.cfg, append(e.warnings, e.plainHTTP...), nil, true
	}
	return l.resolveEntry(&e)
}

// loadAndStore loads the files without resolving, writes the entry, and returns what Load returns.
func (l *loader) loadAndStore(files []string, raw map[string][]byte, key [sha256.Size]byte, path string) (*Config, []Warning, error) {
	rec := &cacheRecord{raw: raw}
	unresolved := *l
	unresolved.resolver, unresolved.record = nil, rec
	cfg, warnings, err := unresolved.load(files)
	l.onState = nil // the unresolved load gave it, if it could
	var e *cacheEntry
	if err == nil && !rec.changed {
		e = rec.entry(cfg, warnings[len(rec.warnings):])
		if serr := storeEntry(path, key, e); serr != nil {
			l.cache.debug("configuration cache entry not written", "error", serr)
		} else {
			pruneEntries(filepath.Dir(path), l.cache.debug)
		}
	}
	if l.resolver == nil {
		return cfg, warnings, err
	}
	if e != nil && e.resolvable {
		if cfg, warnings, err, ok := l.resolveEntry(e); ok {
			return cfg, warnings, err
		}
	}
	return l.load(files)
}

// entry makes the cache entry of a successful unresolved load.
func (r *cacheRecord) entry(cfg *Config, plainHTTP []Warning) *cacheEntry {
	e := &cacheEntry{deps: r.deps, state: cfg.State, warnings: r.warnings, plainHTTP: plainHTTP, cfg: cfg, resolvable: !r.aliases || len(r.refs) == 0}
	if len(r.refs) == 0 {
		return e
	}
	paths := refPaths(r.roots, r.refs)
	for _, rr := range r.refs {
		ref := rr.ref
		ref.Path = paths[rr.node]
		if slot, ok := refSlotAt(cfg, ref.Path); !ok || slot.get() != ref.Value {
			e.resolvable = false
		}
		e.refs = append(e.refs, ref)
	}
	return e
}

// refPaths finds where in its file each recorded reference is.
func refPaths(roots []fileRoot, refs []recordedRef) map[*yaml.Node][]string {
	want := make(map[*yaml.Node]bool, len(refs))
	for _, r := range refs {
		want[r.node] = true
	}
	out := make(map[*yaml.Node][]string, len(refs))
	// path is one stack shared by the whole walk (siblings overwrite each other's last element),
	// copied only where a reference is found: the tree of a fleet is large, its references few.
	var walk func(n *yaml.Node, path []string)
	walk = func(n *yaml.Node, path []string) {
		if len(out) == len(want) {
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				el := k.Value
				if k.Tag != "!!str" {
					el = "\x00" + el // matches no place: decoded, it need not be this string
				}
				walk(n.Content[i+1], append(path, el))
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, append(path, "["+strconv.Itoa(i)+"]"))
			}
		case yaml.ScalarNode:
			if want[n] {
				out[n] = append([]string(nil), path...)
			}
		}
	}
	for _, r := range roots {
		walk(r.root, nil)
	}
	return out
}

// storeEntry writes e under key at path, atomically and readable by the owner only.
func storeEntry(path string, key [sha256.Size]byte, e *cacheEntry) error {
	enc := newCacheEncoder()
	for _, v := range []any{&e.deps, &e.state, &e.resolvable, &e.refs, &e.warnings, &e.plainHTTP, e.cfg} {
		if err := enc.encode(v); err != nil {
			return err
		}
	}
	out := make([]byte, 0, cacheHeaderLen+len(enc.buf))
	out = append(out, cacheMagic...)
	out = append(out, key[:]...)
	out = binary.BigEndian.AppendUint32(out, crc32.Checksum(enc.buf, crcTable))
	out = append(out, enc.buf...)
	return atomicfile.Write(path, out, 0o600)
}

// maxEntries is how many entries (configurations read with one state) a cache directory keeps.
const maxEntries = 4

// pruneEntries removes all but the newest maxEntries entries of dir: the configuration files of
// tests or of a --config that moved leave entries nothing reads any more.
func pruneEntries(dir string, debug func(string, ...any)) {
	paths := entryPaths(dir, "config-")
	if len(paths) <= maxEntries {
		return
	}
	type entry struct {
		path string
		mod  time.Time
	}
	var entries []entry
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil {
			entries = append(entries, entry{p, st.ModTime()})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].mod.After(entries[j].mod) })
	for _, e := range entries[min(maxEntries, len(entries)):] {
		if err := os.Remove(e.path); err != nil {
			debug("configuration cache entry not removed", "entry", e.path, "error", err)
		}
	}
}

// resolveEntry resolves an entry's references as Load would have while loading (false: a resolved
// value would have changed what build decided, so the configuration must be loaded in full).
func (l *loader) resolveEntry(e *cacheEntry) (*Config, []Warning, error, bool) {
	type resolved struct {
		slot  refSlot
		value string
	}
	errs := &Errors{}
	var sets []resolved
	full := false
	replay := &replayResolver{inner: l.resolver}
	for _, r := range e.refs {
		v, err := l.resolver.Resolve(l.ctx, r.Value)
		replay.calls = append(replay.calls, resolution{r.Value, v, err})
		if err != nil {
			errs.add(Position{File: r.File, Line: r.Line}, r.Key, "", "%v", err)
			continue
		}
		slot, ok := refSlotAt(e.cfg, r.Path)
		if !ok || !resolvedAccepted(r.Path, v) {
			full = true
			continue
		}
		sets = append(sets, resolved{slot, v})
	}
	if full {
		l.cache.debug("configuration cache entry not used: a resolved value needs the full check")
		l.resolver = replay
		return nil, nil, nil, false
	}
	if err := errs.Err(); err != nil {
		return nil, e.warnings, err, true
	}
	for _, s := range sets {
		s.slot.set(s.value)
	}
	return e.cfg, append(e.warnings, e.plainHTTP...), nil, true
}

// resolvedAccepted says whether a resolved value passes what build checks at path: every place
// refSlotAt knows takes any text, but that some must not be empty and a webhook url must be one.
func resolvedAccepted(path []string, v string) bool {
	if v == "" {
		return false
	}
	if len(path) == 4 && path[0] == "notifications" && path[1] == "webhooks" && path[3] == "url" {
		return webhookURLAccepted(v)
	}
	return true
}

// refSlot is a string field of a Config, or a string value in one of its maps.
type refSlot struct {
	field  *string
	anyMap map[string]any
	strMap map[string]string
	key    string
}

func (s refSlot) get() string {
	switch {
	case s.field != nil:
		return *s.field
	case s.strMap != nil:
		if v, ok := s.strMap[s.key]; ok {
			return v
		}
	case s.anyMap != nil:
		if v, ok := s.anyMap[s.key].(string); ok {
			return v
		}
	}
	return "\x00 none" // no configuration value: never equal to a written one
}

func (s refSlot) set(v string) {
	switch {
	case s.field != nil:
		*s.field = v
	case s.strMap != nil:
		s.strMap[s.key] = v
	default:
		s.anyMap[s.key] = v
	}
}

// refSlotAt is where build put the value written at path, for the places where build copies a
// string as written and checks at most that it is not empty (or, for a webhook url, that it is a
// URL): what Load does with a resolved value there is what resolveEntry does. Any other place
// (false) makes a configuration with a reference there load in full when references are resolved.
func refSlotAt(cfg *Config, p []string) (refSlot, bool) {
	if len(p) < 2 {
		return refSlot{}, false
	}
	index := func(el string, n int) (int, bool) {
		if len(el) < 3 || el[0] != '[' || el[len(el)-1] != ']' {
			return 0, false
		}
		i, err := strconv.Atoi(el[1 : len(el)-1])
		return i, err == nil && i >= 0 && i < n
	}
	switch p[0] {
	case "state":
		if len(p) == 2 && p[1] == "dsn" {
			return refSlot{field: &cfg.State.DSN}, true
		}
	case "issuers":
		iss := cfg.Issuers[p[1]]
		if iss == nil || len(p) < 4 {
			return refSlot{}, false
		}
		switch {
		case p[2] == "scm" && iss.SCM != nil:
			s, rest := iss.SCM, p[3:]
			if len(rest) == 2 && rest[0] == "lookup" {
				s, rest = s.Lookup, rest[1:]
			}
			if s == nil || len(rest) != 1 {
				return refSlot{}, false
			}
			f := map[string]*string{"client_id": &s.ClientID, "client_secret": &s.ClientSecret, "login": &s.Login, "password": &s.Password, "customer_uri": &s.CustomerURI}[rest[0]]
			return refSlot{field: f}, f != nil
		case p[2] == "acme" && iss.ACME != nil:
			a, rest := iss.ACME, p[3:]
			switch {
			case len(rest) == 1 && rest[0] == "account_key_passphrase":
				return refSlot{field: &a.AccountKeyPassphrase}, true
			case len(rest) == 2 && rest[0] == "eab" && rest[1] == "key_id":
				return refSlot{field: &a.EAB.KeyID}, true
			case len(rest) == 2 && rest[0] == "eab" && rest[1] == "hmac_key":
				return refSlot{field: &a.EAB.HMACKey}, true
			case len(rest) == 3 && rest[0] == "dns" && rest[1] == "settings" && a.DNS.Settings != nil:
				return refSlot{strMap: a.DNS.Settings, key: rest[2]}, true
			}
		}
	case "devices":
		d := cfg.Devices[p[1]]
		if d == nil || len(p) != 4 {
			return refSlot{}, false
		}
		switch p[2] {
		case "credentials":
			c := &d.Credentials
			f := map[string]*string{"username": &c.Username, "password": &c.Password, "api_key": &c.APIKey, "token": &c.Token}[p[3]]
			return refSlot{field: f}, f != nil
		case "options":
			return refSlot{anyMap: d.Options, key: p[3]}, d.Options != nil
		}
	case "certificates":
		c := cfg.Certificates[p[1]]
		switch {
		case c == nil:
		case len(p) == 4 && p[2] == "issuer_options" && c.IssuerOptions != nil:
			return refSlot{anyMap: c.IssuerOptions, key: p[3]}, true
		case len(p) == 6 && p[2] == "bindings" && p[4] == "options":
			if i, ok := index(p[3], len(c.Bindings)); ok && c.Bindings[i].Options != nil {
				return refSlot{anyMap: c.Bindings[i].Options, key: p[5]}, true
			}
		}
	case "notifications":
		n := &cfg.Notifications
		switch {
		case len(p) == 3 && p[1] == "email" && n.Email != nil && p[2] == "username":
			return refSlot{field: &n.Email.Username}, true
		case len(p) == 3 && p[1] == "email" && n.Email != nil && p[2] == "password":
			return refSlot{field: &n.Email.Password}, true
		case len(p) >= 4 && p[1] == "webhooks":
			i, ok := index(p[2], len(n.Webhooks))
			switch {
			case !ok:
			case len(p) == 4 && p[3] == "url":
				return refSlot{field: &n.Webhooks[i].URL}, true
			case len(p) == 5 && p[3] == "headers" && n.Webhooks[i].Headers != nil:
				return refSlot{strMap: n.Webhooks[i].Headers, key: p[4]}, true
			}
		}
	}
	return refSlot{}, false
}

type resolution struct {
	ref, value string
	err        error
}

// replayResolver answers the calls resolveEntry made, in the same order, from memory, so that a
// full load after resolveEntry gave up asks the resolver (which registers every value with the
// redactor) nothing twice.
type replayResolver struct {
	inner Resolver
	calls []resolution
	next  int
}

func (r *replayResolver) Resolve(ctx context.Context, ref string) (string, error) {
	if r.next < len(r.calls) && r.calls[r.next].ref == ref {
		c := r.calls[r.next]
		r.next++
		return c.value, c.err
	}
	r.next = len(r.calls) // the order differs: no more answers from memory
	return r.inner.Resolve(ctx, ref)
}
