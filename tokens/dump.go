package tokens

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/redis/go-redis/v9"
)

// EntryKind says what an Entry holds.
type EntryKind uint8

// The kinds of Entry, one per kind of thing a Store keeps.
const (
	// EntryToken is a token record: Realm, Hash, Record.
	EntryToken EntryKind = iota + 1
	// EntryCurrent is a user's list of current tokens: Realm, Name (the
	// user), Sessions, Expires.
	EntryCurrent
	// EntryKey is a per-identity key: Name (the identity), Value. Keys
	// are global per identity; Realm is empty.
	EntryKey
	// EntryGroup is a group's global key: Name (the group), Value.
	EntryGroup
	// EntryRole is a user's role in a group: Realm, Group, Name (the
	// user), Admin, Member.
	EntryRole
	// EntryRealmKey is a per-realm key of the layout before keys became
	// global, kept unserved because it differed from its identity's global
	// key: Realm, Name (the identity), Value.
	EntryRealmKey
)

// String names the kind for messages.
func (k EntryKind) String() string {
	switch k {
	case EntryToken:
		return "token"
	case EntryCurrent:
		return "current"
	case EntryKey:
		return "key"
	case EntryGroup:
		return "group"
	case EntryRole:
		return "role"
	case EntryRealmKey:
		return "realm-key"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Entry is one stored item, independent of the store's own layout, so that
// a whole store can be copied to a store of another kind. Fields a kind
// does not use are zero.
type Entry struct {
	Kind  EntryKind
	Realm string
	// Name is the user (current, role), the identity (key, realm-key) or
	// the group (group).
	Name string
	// Group is the group of a role.
	Group string
	// Hash is the token hash (token).
	Hash Hash
	// Sessions are the hashes of the user's current tokens, oldest first
	// (current).
	Sessions []Hash
	// Record is the token record (token); its Expires is the token's expiry.
	Record Record
	// Value is the key bytes (key, group).
	Value []byte
	// Admin and Member are the role bits (role).
	Admin, Member bool
	// Expires is when a list of current tokens ends; zero means never.
	Expires time.Time
}

// Dumper reads out and writes back whole stores, for migrating between
// store kinds (sks migrate). Dump is meant for a store no node is writing
// to: it is a snapshot for Badger, a key scan for Redis.
type Dumper interface {
	// Dump calls fn for every live entry; expired tokens are left out.
	Dump(ctx context.Context, fn func(Entry) error) error
	// Load writes one entry as it is, with no supersede logic.
	Load(ctx context.Context, e Entry) error
}

// Copy copies every entry of from into to and returns how many it copied.
// Entries already in to with the same key are overwritten; others stay.
// progress, if not nil, is called after every 10,000 entries.
func Copy(ctx context.Context, from, to Dumper, progress func(copied int)) (n int, err error) {
	err = from.Dump(ctx, func(e Entry) error {
		if err := to.Load(ctx, e); err != nil {
			return fmt.Errorf("cannot copy %s entry %d: %w", e.Kind, n+1, err)
		}
		n++
		if progress != nil && n%10000 == 0 {
			progress(n)
		}
		return nil
	})
	return n, err
}

var _ Dumper = (*Badger)(nil)

// Dump implements Dumper from one read transaction.
func (s *Badger) Dump(ctx context.Context, fn func(Entry) error) error {
	return s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			if isGuardBadgerKey(item.Key()) {
				continue // login failures and bans stay with their node
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("cannot read store entry: %w", err)
			}
			e, ok, err := s.badgerEntry(txn, item.Key(), v, item.ExpiresAt())
			if err != nil {
				return fmt.Errorf("cannot dump store entry %q: %w", item.Key(), err)
			}
			if !ok {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// badgerEntry parses one key/value; ok is false for an expired token and
// for a list of current tokens that are all gone (the list's TTL is rounded
// up to whole seconds, so it can outlive its tokens briefly).
func (s *Badger) badgerEntry(txn *badger.Txn, key, v []byte, exp uint64) (e Entry, ok bool, err error) {
	if len(key) == 0 {
		return e, false, errCorrupt
	}
	if key[0] == pfxMeta {
		return e, false, nil // the store's own bookkeeping
	}
	var parts []string
	rest := key[1:]
	for len(rest) > 0 {
		var p string
		if p, rest, ok = readString(rest); !ok {
			return e, false, errCorrupt
		}
		parts = append(parts, p)
	}
	want := map[byte]int{pfxToken: 2, pfxCurrent: 2, pfxKey: 1, pfxRealmKey: 2, pfxGroup: 1, pfxRole: 3}[key[0]]
	if want == 0 || len(parts) != want {
		return e, false, errCorrupt
	}
	switch key[0] {
	case pfxToken:
		e = Entry{Kind: EntryToken, Realm: parts[0]}
		if len(parts[1]) != len(e.Hash) {
			return e, false, errCorrupt
		}
		copy(e.Hash[:], parts[1])
		if e.Record, err = decodeRecord(v); err != nil {
			return e, false, err
		}
		if !e.Record.Expires.IsZero() && !s.now().Before(e.Record.Expires) {
			return e, false, nil
		}
	case pfxCurrent:
		e = Entry{Kind: EntryCurrent, Realm: parts[0], Name: parts[1]}
		if e.Sessions, err = s.liveSessions(txn, e.Realm, e.Name); err != nil || len(e.Sessions) == 0 {
			return e, false, err
		}
		if exp != 0 {
			e.Expires = time.Unix(int64(exp), 0)
		}
	case pfxKey:
		e = Entry{Kind: EntryKey, Name: parts[0], Value: v}
	case pfxRealmKey:
		e = Entry{Kind: EntryRealmKey, Realm: parts[0], Name: parts[1], Value: v}
	case pfxGroup:
		e = Entry{Kind: EntryGroup, Name: parts[0], Value: v}
	case pfxRole:
		if len(v) != 1 {
			return e, false, errCorrupt
		}
		e = Entry{Kind: EntryRole, Realm: parts[0], Group: parts[1], Name: parts[2],
			Admin: v[0]&roleAdmin != 0, Member: v[0]&roleMember != 0}
	}
	return e, true, nil
}

// Load implements Dumper.
func (s *Badger) Load(ctx context.Context, e Entry) error {
	if e.Kind == EntryToken {
		return s.writeTokens(ctx, e.Realm, func(txn *badger.Txn) ([]Hash, error) {
			return []Hash{e.Hash}, s.setRecord(txn, tokenKey(e.Realm, e.Hash), e.Record)
		})
	}
	return s.update(ctx, func(txn *badger.Txn) error {
		switch e.Kind {
		case EntryCurrent:
			if len(e.Sessions) == 0 {
				return nil
			}
			v := make([]byte, 0, len(e.Sessions)*len(Hash{}))
			for _, h := range e.Sessions {
				v = append(v, h[:]...)
			}
			be := badger.NewEntry(currentKey(e.Realm, e.Name), v)
			be.ExpiresAt = expiresAt(e.Expires)
			return txn.SetEntry(be)
		case EntryKey:
			return txn.Set(makeKey(pfxKey, e.Name), append([]byte(nil), e.Value...))
		case EntryRealmKey:
			return txn.Set(makeKey(pfxRealmKey, e.Realm, e.Name), append([]byte(nil), e.Value...))
		case EntryGroup:
			return txn.Set(makeKey(pfxGroup, e.Name), append([]byte(nil), e.Value...))
		case EntryRole:
			r := roleBits(e)
			if r == 0 {
				return txn.Delete(makeKey(pfxRole, e.Realm, e.Group, e.Name))
			}
			return txn.Set(makeKey(pfxRole, e.Realm, e.Group, e.Name), []byte{r})
		}
		return fmt.Errorf("unknown entry kind %v", e.Kind)
	})
}

func roleBits(e Entry) byte {
	var r byte
	if e.Admin {
		r |= roleAdmin
	}
	if e.Member {
		r |= roleMember
	}
	return r
}

// Dump implements Dumper by scanning the keys under KeyPrefix (on every
// master in cluster mode). It is not a snapshot: run it on a quiet store.
func (s *Redis) Dump(ctx context.Context, fn func(Entry) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.cluster != nil {
		// Entries go to fn one master at a time; fn need not be safe
		// for concurrent use.
		var masters []*redis.Client
		err := s.cluster.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
			masters = append(masters, c)
			return nil
		})
		if err != nil {
			return s.fail(ctx, "list cluster masters", err)
		}
		for _, c := range masters {
			if err := s.dumpNode(ctx, c, fn); err != nil {
				return err
			}
		}
		return nil
	}
	return s.dumpNode(ctx, s.c, fn)
}

func (s *Redis) dumpNode(ctx context.Context, c redis.Cmdable, fn func(Entry) error) error {
	match := globEscape(s.prefix) + "*"
	var cursor uint64
	for {
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		keys, next, err := c.Scan(cctx, cursor, match, 512).Result()
		cancel()
		if err != nil {
			return s.fail(ctx, "scan keys", err)
		}
		for _, k := range keys {
			if err := s.dumpKey(ctx, c, k, fn); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// dumpKey reads one key and passes its entries to fn. Keys that vanished
// (expired) since the scan are skipped; keys of an unknown shape are an
// error, so that a migration never drops data silently.
func (s *Redis) dumpKey(ctx context.Context, c redis.Cmdable, key string, fn func(Entry) error) error {
	rest := strings.TrimPrefix(key, s.prefix)
	bad := fmt.Errorf("cannot dump redis key %q: not an sks key", key)
	if isGuardRedisKey(rest) {
		return nil // login failures and bans are not migrated
	}
	switch rest {
	case "{keys}":
		return s.hscan(ctx, key, "dump "+key, func(f, v string) error {
			return fn(Entry{Kind: EntryKey, Name: f, Value: []byte(v)})
		})
	case "{keys}:layout":
		return nil // the marker of migrateKeys; every store writes its own
	}
	var tagKind byte
	switch {
	case strings.HasPrefix(rest, "{r:"):
		tagKind = 'r'
	case strings.HasPrefix(rest, "{g:"):
		tagKind = 'g'
	default:
		return bad
	}
	end := strings.IndexByte(rest, '}')
	if end < 0 {
		return bad
	}
	name, ok := unescapeTag(rest[3:end])
	if !ok {
		return bad
	}
	rest = rest[end+1:]
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	get := func() ([]byte, bool, error) {
		b, err := c.Get(cctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, s.fail(ctx, "dump "+key, err)
		}
		return b, true, nil
	}
	switch {
	case tagKind == 'r' && strings.HasPrefix(rest, ":t:"):
		h, err := parseHex(rest[3:])
		if err != nil {
			return bad
		}
		e := Entry{Kind: EntryToken, Realm: name, Hash: h}
		b, ok, err := get()
		if err != nil || !ok {
			return err
		}
		if e.Record, err = decodeRecord(b); err != nil {
			return fmt.Errorf("cannot dump redis key %q: %w", key, err)
		}
		if !e.Record.Expires.IsZero() && !s.now().Before(e.Record.Expires) {
			return nil
		}
		return fn(e)
	case tagKind == 'r' && strings.HasPrefix(rest, ":u:"):
		e := Entry{Kind: EntryCurrent, Realm: name, Name: rest[3:]}
		b, ok, err := get()
		if err != nil || !ok {
			return err
		}
		hs, err := parseHexList(string(b))
		if err != nil || len(hs) == 0 {
			return fmt.Errorf("cannot dump redis key %q: %w", key, errCorrupt)
		}
		// Leave out tokens that are gone, as Badger does.
		for _, h := range hs {
			if n, err := c.Exists(cctx, s.tokenKey(name, h)).Result(); err != nil {
				return s.fail(ctx, "dump "+key, err)
			} else if n == 1 {
				e.Sessions = append(e.Sessions, h)
			}
		}
		if len(e.Sessions) == 0 {
			return nil
		}
		ttl, err := c.PTTL(cctx, key).Result()
		if err != nil {
			return s.fail(ctx, "dump "+key, err)
		}
		switch {
		case ttl == -2*time.Nanosecond || ttl == -2*time.Millisecond:
			return nil // expired since GET
		case ttl > 0:
			e.Expires = s.now().Add(ttl)
		}
		return fn(e)
	case tagKind == 'r' && rest == ":k":
		return s.hscan(ctx, key, "dump "+key, func(f, v string) error {
			return fn(Entry{Kind: EntryRealmKey, Realm: name, Name: f, Value: []byte(v)})
		})
	case tagKind == 'g' && rest == ":key":
		b, ok, err := get()
		if err != nil || !ok {
			return err
		}
		return fn(Entry{Kind: EntryGroup, Name: name, Value: b})
	case tagKind == 'g' && strings.HasPrefix(rest, ":r:"):
		realm := rest[3:]
		return s.hscan(ctx, key, "dump "+key, func(f, v string) error {
			r, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("cannot dump redis key %q: role of %q is %q", key, f, v)
			}
			return fn(Entry{Kind: EntryRole, Realm: realm, Group: name, Name: f,
				Admin: r&roleAdmin != 0, Member: r&roleMember != 0})
		})
	}
	return bad
}

func parseHex(s string) (Hash, error) {
	var h Hash
	if len(s) != hex.EncodedLen(len(h)) {
		return h, errCorrupt
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, errCorrupt
	}
	return h, nil
}

// Load implements Dumper.
func (s *Redis) Load(ctx context.Context, e Entry) error {
	ctx, cancel, err := s.call(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	set := func(key string, v any, expires time.Time) error {
		if expires.IsZero() {
			return s.c.Set(ctx, key, v, 0).Err()
		}
		if !s.now().Before(expires) {
			return nil // expired in transit
		}
		return s.c.SetArgs(ctx, key, v, redis.SetArgs{ExpireAt: time.UnixMilli(pxat(expires))}).Err()
	}
	switch e.Kind {
	case EntryToken:
		err = set(s.tokenKey(e.Realm, e.Hash), encodeRecord(e.Record), e.Record.Expires)
	case EntryCurrent:
		if len(e.Sessions) == 0 {
			return nil
		}
		var v strings.Builder
		for _, h := range e.Sessions {
			v.WriteString(hex.EncodeToString(h[:]))
		}
		err = set(s.currentKey(e.Realm, e.Name), v.String(), e.Expires)
	case EntryKey:
		err = s.c.HSet(ctx, s.keysKey(), e.Name, e.Value).Err()
	case EntryRealmKey:
		err = s.c.HSet(ctx, s.realmKeysKey(e.Realm), e.Name, e.Value).Err()
	case EntryGroup:
		err = s.c.Set(ctx, s.groupKey(e.Name), e.Value, 0).Err()
	case EntryRole:
		if r := roleBits(e); r == 0 {
			err = s.c.HDel(ctx, s.rolesKey(e.Realm, e.Group), e.Name).Err()
		} else {
			err = s.c.HSet(ctx, s.rolesKey(e.Realm, e.Group), e.Name, strconv.Itoa(int(r))).Err()
		}
	default:
		return fmt.Errorf("unknown entry kind %v", e.Kind)
	}
	if err != nil {
		return s.fail(ctx, "load "+e.Kind.String(), err)
	}
	return nil
}
