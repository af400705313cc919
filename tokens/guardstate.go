package tokens

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/redis/go-redis/v9"
)

// The brute-force guard keeps its failures and bans in the token store, so
// that they survive a restart (badger) or are shared by every node (Redis).
// Those keys are not tokens: Dump skips them and migrate leaves them behind.

// pfxGuard keys hold the guard's state: guard key -> opaque value.
const pfxGuard = 'b'

// GuardPut stores the guard's value under key until expires (synced as
// every write of a durable store is).
func (s *Badger) GuardPut(ctx context.Context, key string, value []byte, expires time.Time) error {
	return s.update(ctx, func(txn *badger.Txn) error {
		e := badger.NewEntry(makeKey(pfxGuard, key), value)
		e.ExpiresAt = expiresAt(expires)
		return txn.SetEntry(e)
	})
}

// GuardDelete removes the guard's value under key.
func (s *Badger) GuardDelete(ctx context.Context, key string) error {
	return s.update(ctx, func(txn *badger.Txn) error {
		return txn.Delete(makeKey(pfxGuard, key))
	})
}

// GuardLoad calls fn for every unexpired guard value.
func (s *Badger) GuardLoad(ctx context.Context, fn func(key string, value []byte) error) error {
	return s.view(func(txn *badger.Txn) error {
		prefix := []byte{pfxGuard}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			k, rest, ok := readString(it.Item().Key()[1:])
			if !ok || len(rest) != 0 {
				return fmt.Errorf("corrupt guard key %q: %w", it.Item().Key(), errCorrupt)
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("cannot read guard state: %w", err)
			}
			if err := fn(k, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// GuardClient returns the client and key prefix for the guard's shared
// state (guard.NewRedis), which lives under the prefix's {guard} hash tag.
func (s *Redis) GuardClient() (redis.UniversalClient, string, error) {
	if s.closed.Load() {
		return nil, "", ErrClosed
	}
	return s.c, s.prefix, nil
}

// isGuardRedisKey reports whether key (without the prefix) is the guard's.
func isGuardRedisKey(rest string) bool { return strings.HasPrefix(rest, "{guard}:") }

// isGuardBadgerKey reports whether a badger key is the guard's.
func isGuardBadgerKey(key []byte) bool { return len(key) > 0 && key[0] == pfxGuard }
