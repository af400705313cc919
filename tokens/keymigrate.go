package tokens

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/redis/go-redis/v9"
)

// Per-identity keys (/gen_key, /get_key) are global per identity text, as
// in the original, where the key's name was the identity text alone: a key
// made through a token of realm r is returned through a token of realm r2
// for the same identity. sks up to this change kept them per realm; both
// stores move such keys to the global layout when they open.
//
// Two realms may hold different keys for one identity. Then exactly one
// becomes the global key, by a rule that gives the same answer on every
// node and every run: an existing global key wins; otherwise the key of
// the realm whose name sorts first (byte order). The other per-realm keys
// stay where they were, unserved, so that data encrypted under them can
// still be recovered (sks migrate copies them; the log names them).

// realmKey is one per-identity key in the old per-realm layout.
type realmKey struct {
	Realm, Identity string
	Key             []byte
}

// keyMerge is what migration does for one identity.
type keyMerge struct {
	Identity string
	// Key is the identity's global key once migrated.
	Key []byte
	// From is the realm Key came from; empty if it was global already.
	From string
	// Write reports that Key is not yet the global key and must be written.
	Write bool
	// Drop are the realms whose per-realm key equals Key: deleted.
	Drop []string
	// Keep are the realms whose per-realm key differs: kept, unserved.
	Keep []string
}

// planKeyMerges groups legacy keys by identity and decides each identity's
// global key; global holds the existing global keys of those identities.
// The plans come sorted by identity.
func planKeyMerges(legacy []realmKey, global map[string][]byte) []keyMerge {
	slices.SortFunc(legacy, func(a, b realmKey) int {
		if c := strings.Compare(a.Identity, b.Identity); c != 0 {
			return c
		}
		return strings.Compare(a.Realm, b.Realm)
	})
	var plans []keyMerge
	for i := 0; i < len(legacy); {
		j := i
		for j < len(legacy) && legacy[j].Identity == legacy[i].Identity {
			j++
		}
		group := legacy[i:j]
		p := keyMerge{Identity: group[0].Identity}
		if k, ok := global[p.Identity]; ok {
			p.Key = k
		} else {
			p.Key, p.From, p.Write = group[0].Key, group[0].Realm, true
		}
		for _, rk := range group {
			if bytes.Equal(rk.Key, p.Key) {
				p.Drop = append(p.Drop, rk.Realm)
			} else {
				p.Keep = append(p.Keep, rk.Realm)
			}
		}
		plans = append(plans, p)
		i = j
	}
	return plans
}

// logKeyMerges reports a migration: a summary, and one warning per identity
// whose realms held different keys. Keys are never logged; the identity
// appears as its user and source lines.
func logKeyMerges(log *slog.Logger, plans []keyMerge) {
	moved, conflicts := 0, 0
	for _, p := range plans {
		if p.Write {
			moved++
		}
		if len(p.Keep) == 0 {
			continue
		}
		conflicts++
		user, rest, _ := strings.Cut(p.Identity, "\n")
		source, _, _ := strings.Cut(rest, "\n")
		servedFrom := p.From
		if servedFrom == "" {
			servedFrom = "(global key)"
		}
		log.Warn("per-identity key: realms held different keys; one is served in every realm, the others are kept unserved",
			"user", user, "source", source, "served_from_realm", servedFrom, "kept_realms", strings.Join(p.Keep, ","))
	}
	if moved > 0 || conflicts > 0 {
		log.Info("per-identity keys are global per identity now", "moved", moved, "identities_with_conflicting_keys", conflicts)
	}
}

// migrateKeys moves per-realm keys to the global layout (see above). It
// runs in OpenBadger before the store serves; with nothing to move it costs
// one seek. A crash part-way is harmless: an identity moves within one
// transaction, and the next open finishes the rest by the same rule.
func (s *Badger) migrateKeys(ctx context.Context) error {
	var legacy []realmKey
	global := map[string][]byte{}
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pfxRealmKey}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			realm, rest, ok := readString(item.Key()[1:])
			var identity string
			if ok {
				identity, rest, ok = readString(rest)
			}
			if !ok || len(rest) != 0 {
				return fmt.Errorf("per-realm key %q: %w", item.Key(), errCorrupt)
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			legacy = append(legacy, realmKey{Realm: realm, Identity: identity, Key: v})
		}
		for _, rk := range legacy {
			item, err := txn.Get(makeKey(pfxKey, rk.Identity))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if global[rk.Identity], err = item.ValueCopy(nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || len(legacy) == 0 {
		return err
	}
	plans := planKeyMerges(legacy, global)
	var todo []keyMerge
	for _, p := range plans {
		if p.Write || len(p.Drop) > 0 {
			todo = append(todo, p) // else only conflicts are left: nothing to change
		}
	}
	// A few hundred identities per transaction: one sync each, and well
	// under badger's transaction size limit.
	for chunk := range slices.Chunk(todo, 256) {
		err := s.update(ctx, func(txn *badger.Txn) error {
			for _, p := range chunk {
				if p.Write {
					if err := txn.Set(makeKey(pfxKey, p.Identity), p.Key); err != nil {
						return err
					}
				}
				for _, realm := range p.Drop {
					if err := txn.Delete(makeKey(pfxRealmKey, realm, p.Identity)); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	logKeyMerges(s.log, plans)
	return nil
}

// migrateKeys moves per-realm keys to the global layout (see above) when
// OpenRedis connects, once per Redis: a marker key records that it ran, so
// later starts skip the key scan. Nodes that open at the same time move the
// same keys to the same places; a key written meanwhile by /gen_key wins
// (HSETNX). A crash part-way leaves no marker, and the next open finishes.
// Upgrade every node together: an older node writes per-realm keys.
func (s *Redis) migrateKeys(ctx context.Context) error {
	marker := s.keysKey() + ":layout"
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	n, err := s.c.Exists(cctx, marker).Result()
	cancel()
	if err != nil {
		return s.fail(ctx, "check key layout", err)
	}
	if n == 1 {
		return nil
	}
	nodes := []redis.Cmdable{s.c}
	if s.cluster != nil {
		nodes = nil
		err := s.cluster.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
			nodes = append(nodes, c)
			return nil
		})
		if err != nil {
			return s.fail(ctx, "list cluster masters", err)
		}
	}
	byIdentity := map[string][]realmKey{}
	match := globEscape(s.prefix) + "{r:*}:k"
	for _, c := range nodes {
		var cursor uint64
		for {
			cctx, cancel := context.WithTimeout(ctx, s.timeout)
			keys, next, err := c.ScanType(cctx, cursor, match, 512, "hash").Result()
			cancel()
			if err != nil {
				return s.fail(ctx, "scan per-realm keys", err)
			}
			for _, k := range keys {
				rest := strings.TrimPrefix(k, s.prefix)
				if !strings.HasPrefix(rest, "{r:") || strings.IndexByte(rest, '}') != len(rest)-3 {
					continue // not a realm's key hash (a '}' in a user name)
				}
				realm, ok := unescapeTag(rest[3 : len(rest)-3])
				if !ok {
					return fmt.Errorf("cannot move per-realm keys: bad realm in redis key %q", k)
				}
				err := s.hscan(ctx, k, "read per-realm keys", func(f, v string) error {
					byIdentity[f] = append(byIdentity[f], realmKey{Realm: realm, Identity: f, Key: []byte(v)})
					return nil
				})
				if err != nil {
					return err
				}
			}
			if next == 0 {
				break
			}
			cursor = next
		}
	}
	var plans []keyMerge
	for id, group := range byIdentity {
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		g, err := s.c.HGet(cctx, s.keysKey(), id).Bytes()
		if err == nil || errors.Is(err, redis.Nil) {
			global := map[string][]byte{}
			if err == nil {
				global[id] = g
			}
			p := planKeyMerges(group, global)[0]
			if p.Write {
				var set bool
				if set, err = s.c.HSetNX(cctx, s.keysKey(), id, p.Key).Result(); err == nil && !set {
					// Written meanwhile: that key wins.
					if g, err = s.c.HGet(cctx, s.keysKey(), id).Bytes(); err == nil {
						p = planKeyMerges(group, map[string][]byte{id: g})[0]
					}
				}
			}
			for _, realm := range p.Drop {
				if err == nil {
					err = s.c.HDel(cctx, s.realmKeysKey(realm), id).Err()
				}
			}
			plans = append(plans, p)
		}
		cancel()
		if err != nil {
			return s.fail(ctx, "move per-realm key", err)
		}
	}
	cctx, cancel = context.WithTimeout(ctx, s.timeout)
	err = s.c.Set(cctx, marker, "2", 0).Err()
	cancel()
	if err != nil {
		return s.fail(ctx, "mark key layout", err)
	}
	slices.SortFunc(plans, func(a, b keyMerge) int { return strings.Compare(a.Identity, b.Identity) })
	logKeyMerges(s.log, plans)
	return nil
}
