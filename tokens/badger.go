package tokens

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// BadgerOptions configures OpenBadger.
type BadgerOptions struct {
	// Dir is the data directory; empty means in memory only.
	Dir string
	// EncryptionKey, if set (16, 24 or 32 bytes), encrypts the store at rest.
	EncryptionKey []byte
	// Logger receives badger's warnings and errors. Nil discards them.
	Logger *slog.Logger
	// GCInterval is how often value-log garbage collection runs. Default 10m.
	GCInterval time.Duration
	// CacheSize bounds the records kept in memory for validation. Default
	// 65536; negative disables the cache.
	CacheSize int
	// MinFree is the free space, in bytes, kept on the data directory's file
	// system: below it writes fail with ErrStoreFull (the server answers
	// 503) and OpenBadger refuses to open. Zero means DefaultMinFree;
	// negative disables the check (badger then dies of SIGBUS on a full
	// disk).
	MinFree int64
	// Salvage opens a store that failed its integrity check (see
	// ErrDamaged), for copying out what is readable: sks repair.
	Salvage bool

	// tune adjusts badger's options in tests.
	tune func(*badger.Options)
}

// Badger is the embedded Store, on disk or in memory.
type Badger struct {
	db   *badger.DB
	log  *slog.Logger
	mu   sync.RWMutex // held for reading by every operation, for writing by Close
	done chan struct{}
	wg   sync.WaitGroup
	now  func() time.Time

	durable bool // on disk: every write waits for a group sync
	sync    groupSync
	dir     string
	disk    *diskGuard   // nil: no free-space check
	seq     seqState     // used by the group sync's leader only
	cache   *recordCache // nil: disabled
}

// groupSync makes writes durable with one fsync for many commits.
//
// Badger's own SyncWrites syncs the WAL once per transaction even within a
// batch, so 32 concurrent logins queue behind 32 fsyncs (about 1,700 issues
// a second here). Instead writes commit without syncing and then wait for a
// sync that started after their commit: one db.Sync covers every commit
// that finished before it began.
//
// The sync itself is Badger.durableSync: db.Sync covers only the active
// memtable's WAL, so it also syncs the WALs of memtables that rotated out
// and are not flushed yet (a commit made just before a rotation would
// otherwise sit in the page cache until the flush, and a power loss in that
// window lost it).
type groupSync struct {
	mu      sync.Mutex
	cond    sync.Cond
	want    uint64 // generations requested
	synced  uint64 // highest generation a finished sync covers
	running bool
}

// wait returns once a sync that began after the caller's commit has finished.
func (g *groupSync) wait(syncFn func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.want++
	mine := g.want
	for g.synced < mine {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		target := g.want
		g.mu.Unlock()
		err := syncFn()
		g.mu.Lock()
		g.running = false
		g.cond.Broadcast()
		if err != nil {
			return fmt.Errorf("cannot sync token store: %w", err)
		}
		g.synced = target
	}
	return nil
}

var _ Store = (*Badger)(nil)

// OpenBadger opens (creating if needed) the store. On disk every write is
// synced before it returns, so an acknowledged token survives kill -9 and
// power loss; concurrent writes share one sync (see groupSync). It fails
// with ErrDamaged when the directory holds less than was acknowledged, and
// with ErrStoreFull when its disk is below the free-space reserve.
func OpenBadger(o BadgerOptions) (*Badger, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := badger.DefaultOptions(o.Dir).
		WithLogger(badgerLogger{log}).
		// Sizes for a store of small records: badger's defaults (64 MiB
		// memtables, 256 MiB block cache) would dominate the process's
		// memory, and the disk reserve (DefaultMinFree) follows them.
		WithMemTableSize(badgerMemTableSize).
		WithValueThreshold(badgerValueThreshold).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(2 << 20).
		WithBlockCacheSize(8 << 20).
		WithValueLogFileSize(badgerVlogFileSize).
		WithNumCompactors(2).
		WithMetricsEnabled(false).
		// Not WithChecksumVerificationMode(options.OnTableRead): in badger
		// v4.9.6 a damaged block then panics (nil dereference in
		// Table.VerifyChecksum) in a goroutine no recover reaches.
		WithDetectConflicts(true)
	if o.Dir == "" {
		opts = opts.WithInMemory(true)
	}
	if len(o.EncryptionKey) > 0 {
		opts = opts.WithEncryptionKey(o.EncryptionKey).WithIndexCacheSize(8 << 20)
	}
	if o.tune != nil {
		o.tune(&opts)
	}
	minFree := o.MinFree
	if minFree == 0 {
		minFree = DefaultMinFree
	}
	if o.Dir != "" {
		if err := checkSpaceAtOpen(o.Dir, minFree); err != nil {
			return nil, err
		}
		// Even when salvaging: badger would delete the tables.
		if err := preOpenCheck(o.Dir); err != nil {
			return nil, err
		}
		if err := checkTables(o.Dir); err != nil {
			return nil, err
		}
		if len(o.EncryptionKey) == 0 {
			if err := verifyTables(o.Dir); err != nil {
				return nil, err
			}
		}
	}
	db, err := openBadgerDB(opts)
	if err != nil {
		if o.Dir == "" {
			return nil, fmt.Errorf("cannot open token store (memory): %w", err)
		}
		if errors.Is(err, ErrDamaged) {
			return nil, fmt.Errorf("cannot open token store %s: %w", o.Dir, err)
		}
		// Badger's errors do not wrap their causes, so a damaged file
		// cannot be told from other failures here.
		return nil, fmt.Errorf("cannot open token store %s: %w (if its files are damaged, see \"Repairing the token store\" in the README)", o.Dir, err)
	}
	s := &Badger{db: db, log: log, done: make(chan struct{}), now: time.Now, durable: o.Dir != "", dir: o.Dir}
	s.sync.cond.L = &s.sync.mu
	if o.Dir != "" {
		if minFree > 0 {
			s.disk = &diskGuard{dir: o.Dir, minFree: minFree}
		}
		if err := s.openSeq(o.Dir, o.Salvage); err != nil {
			db.Close()
			return nil, err
		}
	}
	switch {
	case o.CacheSize == 0:
		s.cache = newRecordCache(65536)
	case o.CacheSize > 0:
		s.cache = newRecordCache(o.CacheSize)
	}
	if err := s.migrateKeys(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot move per-realm keys of token store %s to the global layout: %w", o.Dir, err)
	}
	if o.Dir != "" {
		iv := o.GCInterval
		if iv <= 0 {
			iv = 10 * time.Minute
		}
		s.wg.Add(1)
		go s.gcLoop(iv)
	}
	return s, nil
}

// openBadgerDB is badger.Open that turns a panic into an error: badger
// panics on some damaged files (a truncated table: "slice bounds out of
// range") rather than failing.
func openBadgerDB(opts badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: badger failed reading its files: %v (see \"Repairing the token store\" in the README)", ErrDamaged, r)
		}
	}()
	return badger.Open(opts)
}

func (s *Badger) gcLoop(iv time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			for s.db.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

// Close flushes and closes the store. It waits for running operations.
func (s *Badger) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	close(s.done)
	s.wg.Wait()
	err := s.db.Close()
	s.db = nil
	if f := s.seq.f; f != nil {
		err = errors.Join(err, f.Sync(), f.Close())
		s.seq.f = nil
	}
	return err
}

// view and update run fn in one transaction while holding the close lock.
// update retries on badger's conflict error: concurrent logins of one user
// are serialised by it, so that exactly one token ends up current.
func (s *Badger) view(fn func(txn *badger.Txn) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.db.View(fn)
}

func (s *Badger) update(ctx context.Context, fn func(txn *badger.Txn) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	if err := s.checkSpace(); err != nil {
		return err
	}
	for {
		err := s.db.Update(fn)
		if errors.Is(err, badger.ErrConflict) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		if err != nil || !s.durable {
			return err
		}
		return s.sync.wait(s.durableSync)
	}
}

func (s *Badger) getRecord(txn *badger.Txn, key []byte) (Record, *badger.Item, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Record{}, nil, ErrNotFound
	}
	if err != nil {
		return Record{}, nil, err
	}
	var rec Record
	err = item.Value(func(v []byte) error {
		var derr error
		rec, derr = decodeRecord(v)
		return derr
	})
	if err != nil {
		return Record{}, nil, err
	}
	if !rec.Expires.IsZero() && !s.now().Before(rec.Expires) {
		return Record{}, nil, ErrNotFound
	}
	return rec, item, nil
}

func (s *Badger) setRecord(txn *badger.Txn, key []byte, rec Record) error {
	e := badger.NewEntry(key, encodeRecord(rec))
	e.ExpiresAt = expiresAt(rec.Expires)
	return txn.SetEntry(e)
}

// setSessions writes the user's list of current tokens, oldest first, with
// the expiry of its longest-lived record, so that it disappears with the
// last of them; tokens whose records are gone are left out, and an empty
// list is deleted. The records must already be written in txn.
func (s *Badger) setSessions(txn *badger.Txn, realm, user string, hs []Hash) error {
	key := currentKey(realm, user)
	v := make([]byte, 0, len(hs)*len(Hash{}))
	var last uint64 // Unix seconds; 0: a record never expires
	for _, h := range hs {
		item, err := txn.Get(tokenKey(realm, h))
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if exp := item.ExpiresAt(); len(v) == 0 || (last != 0 && (exp == 0 || exp > last)) {
			last = exp
		}
		v = append(v, h[:]...)
	}
	if len(v) == 0 {
		return txn.Delete(key)
	}
	e := badger.NewEntry(key, v)
	e.ExpiresAt = last
	return txn.SetEntry(e)
}

// expiresAt is badger's expiry for t: Unix seconds rounded up, so that
// badger never drops an entry before t (Get checks the exact time itself);
// 0 for none.
func expiresAt(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return uint64(max(sec, 1))
}

// writeTokens runs update for a write of token records in realm; fn returns
// the hashes whose records it changed, dropped from the cache afterwards.
func (s *Badger) writeTokens(ctx context.Context, realm string, fn func(txn *badger.Txn) ([]Hash, error)) error {
	if s.cache == nil {
		return s.update(ctx, func(txn *badger.Txn) error { _, err := fn(txn); return err })
	}
	var written []Hash
	s.cache.beginWrite()
	err := s.update(ctx, func(txn *badger.Txn) error {
		var err error
		written, err = fn(txn)
		return err
	})
	s.cache.endWrite(realm, written...)
	return err
}

// sessionsOf returns the hashes of the user's current tokens, oldest first.
// The list may name tokens that have expired since; those that are gone
// are dropped by the next write of the list.
func sessionsOf(txn *badger.Txn, realm, user string) ([]Hash, error) {
	item, err := txn.Get(currentKey(realm, user))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var hs []Hash
	err = item.Value(func(v []byte) error {
		if len(v) == 0 || len(v)%len(Hash{}) != 0 {
			return errCorrupt
		}
		hs = make([]Hash, len(v)/len(Hash{}))
		for i := range hs {
			copy(hs[i][:], v[i*len(Hash{}):])
		}
		return nil
	})
	return hs, err
}

// without returns hs without h, and whether h was there. It reuses hs.
func without(hs []Hash, h Hash) ([]Hash, bool) {
	out, found := hs[:0], false
	for _, x := range hs {
		if x == h {
			found = true
			continue
		}
		out = append(out, x)
	}
	return out, found
}

// Issue implements Store.
func (s *Badger) Issue(ctx context.Context, realm string, h Hash, rec Record, sessions int) ([]Hash, error) {
	rec.Superseded = false
	var superseded []Hash
	err := s.writeTokens(ctx, realm, func(txn *badger.Txn) ([]Hash, error) {
		if err := s.leavePreviousOwner(txn, realm, h, rec.User); err != nil {
			return nil, err
		}
		hs, err := sessionsOf(txn, realm, rec.User)
		if err != nil {
			return nil, err
		}
		live := hs[:0]
		for _, x := range hs {
			if x == h {
				continue
			}
			switch r, _, err := s.getRecord(txn, tokenKey(realm, x)); {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return nil, err
			case !r.Superseded && r.User == rec.User:
				// A token since stored again for another user is that
				// user's now: it leaves this list and is not superseded.
				live = append(live, x)
			}
		}
		// Supersede the oldest until h fits in the cap.
		drop := max(len(live)+1-max(sessions, 1), 0)
		for _, x := range live[:drop] {
			if err := s.markSuperseded(txn, realm, x); err != nil {
				return nil, err
			}
		}
		if err := s.setRecord(txn, tokenKey(realm, h), rec); err != nil {
			return nil, err
		}
		superseded = live[:drop:drop]
		written := append(superseded, h)
		return written, s.setSessions(txn, realm, rec.User, append(live[drop:], h))
	})
	if err != nil {
		return nil, err
	}
	return superseded, nil
}

// leavePreviousOwner drops h from the list of current tokens of the user
// it belonged to, when /stored_token stores h again for another user: the
// token is the new user's only, and a later login of its previous owner
// must not supersede it (the original answered "YES <new user>").
func (s *Badger) leavePreviousOwner(txn *badger.Txn, realm string, h Hash, user string) error {
	prev, _, err := s.getRecord(txn, tokenKey(realm, h))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil || prev.User == user {
		return err
	}
	hs, err := s.liveSessions(txn, realm, prev.User)
	if err != nil {
		return err
	}
	if hs, found := without(hs, h); found {
		return s.setSessions(txn, realm, prev.User, hs)
	}
	return nil
}

// markSuperseded sets the superseded flag of a live token's record. Older
// tokens were marked when they left the list of current ones.
func (s *Badger) markSuperseded(txn *badger.Txn, realm string, h Hash) error {
	key := tokenKey(realm, h)
	rec, item, err := s.getRecord(txn, key)
	if err != nil {
		return err
	}
	rec.Superseded = true
	e := badger.NewEntry(key, encodeRecord(rec))
	e.ExpiresAt = item.ExpiresAt()
	return txn.SetEntry(e)
}

// Touch implements Store.
func (s *Badger) Touch(ctx context.Context, realm string, h Hash, expires time.Time) error {
	return s.writeTokens(ctx, realm, func(txn *badger.Txn) ([]Hash, error) {
		key := tokenKey(realm, h)
		rec, _, err := s.getRecord(txn, key)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		rec.Expires = expires
		if err := s.setRecord(txn, key, rec); err != nil {
			return nil, err
		}
		hs, err := s.liveSessions(txn, realm, rec.User)
		if err != nil || !slices.Contains(hs, h) {
			return []Hash{h}, err
		}
		return []Hash{h}, s.setSessions(txn, realm, rec.User, hs)
	})
}

// liveSessions is sessionsOf without the tokens that are gone or expired.
func (s *Badger) liveSessions(txn *badger.Txn, realm, user string) ([]Hash, error) {
	hs, err := sessionsOf(txn, realm, user)
	if err != nil {
		return nil, err
	}
	live := hs[:0]
	for _, x := range hs {
		if _, _, err := s.getRecord(txn, tokenKey(realm, x)); errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		live = append(live, x)
	}
	return live, nil
}

// Get implements Store.
func (s *Badger) Get(ctx context.Context, realm string, h Hash) (Record, error) {
	var gen uint64
	cacheable := false
	if s.cache != nil {
		if rec, ok := s.cache.get(realm, h); ok {
			if !rec.Expires.IsZero() && !s.now().Before(rec.Expires) {
				return Record{}, ErrNotFound
			}
			return rec, nil
		}
		gen, cacheable = s.cache.snapshot()
	}
	var rec Record
	err := s.view(func(txn *badger.Txn) error {
		var err error
		rec, _, err = s.getRecord(txn, tokenKey(realm, h))
		return err
	})
	if err == nil && cacheable {
		s.cache.put(realm, h, rec, gen)
	}
	return rec, err
}

// Revoke implements Store.
func (s *Badger) Revoke(ctx context.Context, realm string, h Hash) error {
	return s.writeTokens(ctx, realm, func(txn *badger.Txn) ([]Hash, error) {
		key := tokenKey(realm, h)
		rec, _, err := s.getRecord(txn, key)
		if err != nil {
			return nil, err
		}
		if err := txn.Delete(key); err != nil {
			return nil, err
		}
		hs, err := s.liveSessions(txn, realm, rec.User)
		if err != nil {
			return nil, err
		}
		if hs, found := without(hs, h); found {
			return []Hash{h}, s.setSessions(txn, realm, rec.User, hs)
		}
		return []Hash{h}, nil
	})
}

// Replace implements Store. The new token takes the place of the old one
// as the newest of the user's current tokens.
func (s *Badger) Replace(ctx context.Context, realm string, old, next Hash, issued, expires time.Time) (Record, error) {
	var out Record
	err := s.writeTokens(ctx, realm, func(txn *badger.Txn) ([]Hash, error) {
		key := tokenKey(realm, old)
		rec, _, err := s.getRecord(txn, key)
		if err != nil {
			return nil, err
		}
		hs, err := s.liveSessions(txn, realm, rec.User)
		if err != nil {
			return nil, err
		}
		hs, found := without(hs, old)
		if rec.Superseded || !found {
			return nil, ErrNotCurrent
		}
		if err := txn.Delete(key); err != nil {
			return nil, err
		}
		rec.Issued, rec.Expires = issued, expires
		if err := s.setRecord(txn, tokenKey(realm, next), rec); err != nil {
			return nil, err
		}
		out = rec
		return []Hash{old, next}, s.setSessions(txn, realm, rec.User, append(hs, next))
	})
	return out, err
}

func (s *Badger) getBytes(key []byte) ([]byte, error) {
	var out []byte
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	return out, err
}

// GetKey implements Store.
func (s *Badger) GetKey(ctx context.Context, identity string) ([]byte, error) {
	return s.getBytes(makeKey(pfxKey, identity))
}

// PutKey implements Store.
func (s *Badger) PutKey(ctx context.Context, identity string, key []byte) error {
	return s.update(ctx, func(txn *badger.Txn) error {
		return txn.Set(makeKey(pfxKey, identity), bytes.Clone(key))
	})
}

// ForEachKey implements Store.
func (s *Badger) ForEachKey(ctx context.Context, fn func(identity string, key []byte) error) error {
	prefix := []byte{pfxKey}
	return s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			identity, rest, ok := readString(it.Item().Key()[len(prefix):])
			if !ok || len(rest) != 0 {
				return errCorrupt
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := fn(identity, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// CreateGroup implements Store.
func (s *Badger) CreateGroup(ctx context.Context, realm, group, admin string, key []byte) error {
	return s.update(ctx, func(txn *badger.Txn) error {
		gk := makeKey(pfxGroup, group)
		if _, err := txn.Get(gk); err == nil {
			return ErrGroupExists
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if err := txn.Set(gk, bytes.Clone(key)); err != nil {
			return err
		}
		return txn.Set(makeKey(pfxRole, realm, group, admin), []byte{roleAdmin})
	})
}

func roleOf(txn *badger.Txn, key []byte) (byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var r byte
	err = item.Value(func(v []byte) error {
		if len(v) != 1 {
			return errCorrupt
		}
		r = v[0]
		return nil
	})
	return r, err
}

// GroupRole implements Store.
func (s *Badger) GroupRole(ctx context.Context, realm, group, user string) (admin, member bool, err error) {
	var r byte
	err = s.view(func(txn *badger.Txn) error {
		var err error
		r, err = roleOf(txn, makeKey(pfxRole, realm, group, user))
		return err
	})
	return r&roleAdmin != 0, r&roleMember != 0, err
}

// ModGroup implements Store.
func (s *Badger) ModGroup(ctx context.Context, realm, group string, addMembers, addAdmins, remove []string) error {
	return s.update(ctx, func(txn *badger.Txn) error {
		change := func(user string, set, clear byte) error {
			k := makeKey(pfxRole, realm, group, user)
			r, err := roleOf(txn, k)
			if err != nil {
				return err
			}
			r = (r | set) &^ clear
			if r == 0 {
				return txn.Delete(k)
			}
			return txn.Set(k, []byte{r})
		}
		for _, u := range addMembers {
			if err := change(u, roleMember, 0); err != nil {
				return err
			}
		}
		for _, u := range addAdmins {
			if err := change(u, roleAdmin, 0); err != nil {
				return err
			}
		}
		for _, u := range remove {
			if err := change(u, 0, roleAdmin|roleMember); err != nil {
				return err
			}
		}
		return nil
	})
}

// GroupKey implements Store.
func (s *Badger) GroupKey(ctx context.Context, group string) ([]byte, error) {
	return s.getBytes(makeKey(pfxGroup, group))
}

// badgerLogger sends badger's own messages to slog; its info and debug
// chatter is dropped.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}
